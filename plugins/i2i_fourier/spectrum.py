"""Fourier analysis of images: centred orthonormal spectra and statistics of their power.

Frequencies are in cycles/pixel. The centred spectrum of an (H, W) image holds ``f_y = (i - H//2) / H`` at row
``i`` and ``f_x = (j - W//2) / W`` at column ``j`` (x along columns, y along rows, downwards), so the DC term sits
at ``(H//2, W//2)`` and ``f_x, f_y`` lie in [-0.5, 0.5). A frequency's radius ``r = sqrt(f_x² + f_y²)`` reaches 0.5
on the axes (the Nyquist frequency) and up to √0.5 ≈ 0.71 in the spectrum's corners (diagonal detail, where the
checkerboard artefacts of transposed convolutions lie).

The statistics (:func:`radial_power_spectrum`, :func:`band_energy`, :func:`spectral_centroid`,
:func:`orientation_histogram`) use the power ``|F|²`` of :func:`fft2_centered`, computed in float64, and always
exclude the DC term (the mean brightness). An image without non-DC energy (a constant image: non-DC energy at most
1e-12 of its total energy, i.e. rounding noise) has all-zero statistics, never NaN. They take images of shape
``(*, H, W)``, e.g. ``(N, C, H, W)``, and return one result per leading index, in the input's dtype.
"""

from __future__ import annotations

from collections.abc import Sequence
from itertools import pairwise

import torch

from i2i_core.errors import I2IError

#: ITU-R BT.601 luma weights of R, G and B.
LUMA_WEIGHTS = (0.299, 0.587, 0.114)
#: The default bands of :func:`band_energy`: low, mid and high frequencies, in cycles/pixel.
DEFAULT_BANDS = ((0.0, 0.1), (0.1, 0.25), (0.25, 0.5))
#: The Nyquist frequency: the end of the common radial axis, in cycles/pixel.
NYQUIST = 0.5
#: Non-DC energy up to this fraction of the total energy is rounding noise: the image counts as constant.
CONSTANT_TOLERANCE = 1e-12


def luminance(x: torch.Tensor) -> torch.Tensor:
    """The ITU-R BT.601 luma ``0.299 R + 0.587 G + 0.114 B`` of RGB images.

    Args:
        x: (*, 3, H, W) RGB images.

    Returns:
        (*, 1, H, W) luminance.

    Example:
        >>> luminance(torch.tensor([1.0, 0.0, -1.0]).view(3, 1, 1)).flatten()
        tensor([0.1850])
    """
    if not isinstance(x, torch.Tensor) or x.ndim < 3 or x.shape[-3] != 3:
        raise I2IError(f"luminance: expected (*, 3, H, W) RGB images, got {_describe(x)}")
    weights = torch.tensor(LUMA_WEIGHTS, dtype=x.dtype, device=x.device).view(3, 1, 1)
    return (x * weights).sum(dim=-3, keepdim=True)


def fft2_centered(x: torch.Tensor, norm: str = "ortho") -> torch.Tensor:
    """The 2-D DFT over the last two dimensions, zero frequency shifted to the centre (index ``(H//2, W//2)``).

    With ``norm="ortho"`` the transform is scaled by ``1 / sqrt(H W)`` (the paper's equation 9), so it preserves
    energy (Parseval: ``sum |F|² == sum |x|²``). Each channel is transformed on its own; use :func:`luminance`
    first for one spectrum per image.

    Args:
        x: (*, H, W) real or complex tensor.
        norm: ``"ortho"``, ``"backward"`` (no scaling) or ``"forward"`` (``1 / (H W)``), as :func:`torch.fft.fft2`.

    Returns:
        (*, H, W) complex spectrum.

    Example:
        >>> fft2_centered(torch.ones(4, 4))[2, 2]  # DC = sum / sqrt(16)
        tensor(4.+0.j)
    """
    _check_spatial(x, "fft2_centered", real=False)
    return torch.fft.fftshift(torch.fft.fft2(x, norm=norm), dim=(-2, -1))


def log_magnitude(spec: torch.Tensor) -> torch.Tensor:
    """``log(1 + |F|)`` of a spectrum, the usual way to display one; same shape, real.

    Example:
        >>> log_magnitude(torch.tensor([0j, 3 + 4j]))
        tensor([0.0000, 1.7918])
    """
    if not isinstance(spec, torch.Tensor):
        raise I2IError(f"log_magnitude: expected a tensor, got {_describe(spec)}")
    return torch.log1p(spec.abs())


def frequency_grid(height: int, width: int, device: torch.device | str | None = None) -> tuple[torch.Tensor, ...]:
    """The frequencies ``(f_y, f_x)`` of :func:`fft2_centered`'s layout, each (H, W) float64, in cycles/pixel.

    Example:
        >>> fy, fx = frequency_grid(2, 4)
        >>> fx[0].tolist(), fy[:, 0].tolist()
        ([-0.5, -0.25, 0.0, 0.25], [-0.5, 0.0])
    """
    fy = torch.fft.fftshift(torch.fft.fftfreq(height, dtype=torch.float64, device=device))
    fx = torch.fft.fftshift(torch.fft.fftfreq(width, dtype=torch.float64, device=device))
    return torch.meshgrid(fy, fx, indexing="ij")


def radial_power_spectrum(x: torch.Tensor, bins: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """The radially averaged power spectrum: mean ``|F|²`` over the frequencies of each radial bin.

    The bins divide the common axis [0, 0.5] cycles/pixel evenly (bin ``k`` holds ``k·w <= r < (k+1)·w`` with
    ``w = 0.5 / bins``, the last one also ``r = 0.5``), so images of different sizes share it. The DC term and
    the corners beyond 0.5 are left out. With orthonormal scaling, white noise of variance σ² has power σ² in
    every bin whatever the image size.

    Args:
        x: (*, H, W) real images.
        bins: number of radial bins.

    Returns:
        ``(frequencies, power)``: (bins,) bin centres in cycles/pixel, and (*, bins) mean power; NaN in a bin
        that holds no frequency of this image size (the lowest bins of a small image).

    Example:
        >>> freqs, power = radial_power_spectrum(torch.randn(2, 64, 64), bins=8)
        >>> freqs.tolist()[:2], power.shape
        ([0.03125, 0.09375], torch.Size([2, 8]))
    """
    _check_count(bins, "radial_power_spectrum", "bins")
    power, fy, fx = _nondc_power(x, "radial_power_spectrum")
    radius = torch.hypot(fy, fx).flatten()
    inside = (radius > 0) & (radius <= NYQUIST)
    index = (radius[inside] / NYQUIST * bins).long().clamp(max=bins - 1)
    values = power.flatten(-2)[..., inside]
    sums = values.new_zeros((*values.shape[:-1], bins)).index_add_(-1, index, values)
    counts = torch.bincount(index, minlength=bins).to(sums.dtype)
    frequencies = (torch.arange(bins, dtype=torch.float64, device=x.device) + 0.5) * (NYQUIST / bins)
    return frequencies.to(x.dtype), (sums / counts).to(x.dtype)


def band_energy(x: torch.Tensor, bands: Sequence[Sequence[float]] = DEFAULT_BANDS) -> torch.Tensor:
    """The fraction of the non-DC energy in each radial frequency band.

    Band ``(lo, hi)`` holds the frequencies with ``lo < r <= hi`` cycles/pixel; the last band also holds every
    frequency beyond its upper edge (the spectrum's corners, up to √0.5), so bands that tile (0, 0.5] have
    fractions summing to 1. The DC term is excluded; an image without non-DC energy gets all zeros.

    Args:
        x: (*, H, W) real images.
        bands: increasing, non-overlapping ``(lo, hi)`` pairs with ``0 <= lo < hi``; default low (0, 0.1],
            mid (0.1, 0.25], high (0.25, 0.5] and beyond.

    Returns:
        (*, len(bands)) energy fractions.

    Example:
        >>> stripes = torch.tensor([1.0, -1.0]).repeat(8, 4)  # 8x8, alternating columns: f_x = 0.5
        >>> band_energy(stripes)
        tensor([0., 0., 1.])
    """
    bands = _check_bands(bands)
    power, fy, fx = _nondc_power(x, "band_energy")
    radius = torch.hypot(fy, fx)
    total = power.sum(dim=(-2, -1))
    energies = []
    for i, (lo, hi) in enumerate(bands):
        mask = (radius > lo) & ((radius <= hi) | (i == len(bands) - 1))
        energies.append((power * mask).sum(dim=(-2, -1)))
    return (torch.stack(energies, dim=-1) / _safe(total).unsqueeze(-1)).to(x.dtype)


def spectral_centroid(x: torch.Tensor) -> torch.Tensor:
    """The power-weighted mean radius of the non-DC frequencies, in cycles/pixel (0 for a constant image).

    Args:
        x: (*, H, W) real images.

    Returns:
        (*,) centroids in [0, √0.5].

    Example:
        >>> y = torch.arange(16.0).view(16, 1)
        >>> spectral_centroid(torch.cos(2 * torch.pi * 0.25 * y).repeat(1, 16))  # f_y = 0.25
        tensor(0.2500)
    """
    power, fy, fx = _nondc_power(x, "spectral_centroid")
    total = power.sum(dim=(-2, -1))
    return ((power * torch.hypot(fy, fx)).sum(dim=(-2, -1)) / _safe(total)).to(x.dtype)


def orientation_histogram(x: torch.Tensor, bins: int = 18) -> torch.Tensor:
    """The power-weighted histogram of the orientations of the non-DC frequencies over [0, 180) degrees.

    A frequency's orientation is ``atan2(f_y, f_x)`` modulo 180° (``F(f)`` and ``F(-f)`` are the same wave): 0°
    for waves along x (vertical stripes), 90° along y (horizontal stripes); an image edge puts its energy
    perpendicular to itself. Bin ``k`` holds ``[k, k+1) · 180 / bins`` degrees. The histogram sums to 1, or is
    all zeros for an image without non-DC energy.

    Args:
        x: (*, H, W) real images.
        bins: number of orientation bins (18: 10° each).

    Returns:
        (*, bins) histograms.

    Example:
        >>> stripes = torch.tensor([1.0, -1.0]).repeat(8, 4)  # varies along x only
        >>> orientation_histogram(stripes, bins=4)
        tensor([1., 0., 0., 0.])
    """
    _check_count(bins, "orientation_histogram", "bins")
    power, fy, fx = _nondc_power(x, "orientation_histogram")
    degrees = torch.remainder(torch.rad2deg(torch.atan2(fy, fx)), 180.0).flatten()
    index = (degrees / (180.0 / bins)).long().clamp(max=bins - 1)
    values = power.flatten(-2)
    histogram = values.new_zeros((*values.shape[:-1], bins)).index_add_(-1, index, values)
    return (histogram / _safe(values.sum(dim=-1)).unsqueeze(-1)).to(x.dtype)


def _nondc_power(x: torch.Tensor, caller: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``|F|²`` in float64 with the DC term zeroed, all zero for constant images; and the frequency grid."""
    _check_spatial(x, caller, real=True)
    power = fft2_centered(x.to(torch.float64)).abs().square()
    fy, fx = frequency_grid(*x.shape[-2:], device=x.device)
    nondc = power * ((fy != 0) | (fx != 0))
    varies = nondc.sum(dim=(-2, -1), keepdim=True) > CONSTANT_TOLERANCE * power.sum(dim=(-2, -1), keepdim=True)
    return nondc * varies, fy, fx


def _safe(total: torch.Tensor) -> torch.Tensor:
    """``total`` with zeros replaced by ones, so that 0 / total is 0."""
    return torch.where(total > 0, total, torch.ones_like(total))


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a tensor of shape {tuple(x.shape)} and dtype {x.dtype}"
    return f"{type(x).__name__}"


def _check_spatial(x: object, caller: str, real: bool) -> None:
    if not isinstance(x, torch.Tensor) or x.ndim < 2 or x.shape[-2] == 0 or x.shape[-1] == 0:
        raise I2IError(f"{caller}: expected images of shape (*, H, W) with H, W >= 1, got {_describe(x)}")
    if real and not x.dtype.is_floating_point:
        raise I2IError(f"{caller}: expected a real floating-point tensor, got {_describe(x)}")


def _check_count(value: object, caller: str, name: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise I2IError(f"{caller}: {name} must be a positive integer, got {value!r}")


def _check_bands(bands: Sequence[Sequence[float]]) -> tuple[tuple[float, float], ...]:
    try:
        pairs = tuple((float(lo), float(hi)) for lo, hi in bands)
    except (TypeError, ValueError):
        raise I2IError(f"band_energy: bands must be (lo, hi) pairs, got {bands!r}") from None
    edges = [edge for pair in pairs for edge in pair]
    increasing = all(a <= b for a, b in pairwise(edges))
    if not pairs or edges[0] < 0 or not increasing or any(lo == hi for lo, hi in pairs):
        raise I2IError(
            f"band_energy: bands must be increasing, non-overlapping (lo, hi) pairs with 0 <= lo < hi, got {bands!r}"
        )
    return pairs
