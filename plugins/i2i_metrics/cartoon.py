"""Metrics that see a cartoon, with no weights: ``palette`` (few colours), ``flat`` (flat regions), ``checker``.

- ``palette``: the colour entropy, in bits, of each output image's 5-bit-per-channel histogram (32 x 32 x 32 bins);
  cartoons use few colours, so score low.
- ``flat``: the share of each output image's pixels whose luminance barely changes (Sobel gradient below 0.02 per
  pixel on [0, 1]); cartoons are flat, so score high.
- ``checker``: how much the output adds a periodic pattern of period 2, 3 or 4 pixels (the checkerboard artefacts
  of transposed convolutions) compared with its source photo; 1 when nothing periodic is added.

All take (N, 3, H, W) images in [-1, 1], mapped to [0, 1] by ``(x + 1) / 2``; the luminance is ITU-R BT.601's
``0.299 R + 0.587 G + 0.114 B``. A split's score is the mean over its images of their per-image scores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from i2i_core.metric import Metric
from i2i_metrics.checks import check_images, check_pairs, to_unit

#: Levels per channel of the ``palette`` histogram (5 bits): 32 x 32 x 32 bins.
LEVELS = 32
#: ``flat``: a pixel is flat when its Sobel luminance gradient magnitude, per pixel on [0, 1], is below this.
FLAT_THRESHOLD = 0.02
#: ITU-R BT.601 luma weights of R, G, B (those of ``kornia.color.rgb_to_grayscale``).
LUMA = (0.299, 0.587, 0.114)
#: ``checker``: the periods looked for, in pixels.
PERIODS = (2, 3, 4)
#: ``checker``: the largest side of the square tiles whose power spectra are averaged (Welch's method).
TILE = 48
#: ``checker``: tile sides are multiples of this (of 2, 3 and 4), so each period's frequency falls exactly on a bin.
TILE_STEP = 12
#: ``checker``: the smallest tile side, hence the smallest image side.
MIN_TILE = 24
#: ``checker``: the neighbourhood of a frequency bin is the ring of bins at Chebyshev distance RING[0]..RING[1]
#: from it (a tone on a bin leaks, through the Hann window, into the bins at distance 1 only).
RING = (2, 4)
#: Added to every power (before its log) so that flat (zero-power) images give 1, not 0 / 0.
POWER_EPS = 1e-20
#: Images are taken this many at a time (a spectrum per tile, a histogram per image).
CHUNK = 16


def luminance(x: torch.Tensor) -> torch.Tensor:
    """The BT.601 luminance of (N, 3, H, W) images in [-1, 1], on [0, 1] (not clamped): (N, 1, H, W) float32."""
    weights = torch.tensor(LUMA, dtype=torch.float32, device=x.device).view(1, 3, 1, 1)
    return (to_unit(x) * weights).sum(dim=1, keepdim=True)


# --- palette -------------------------------------------------------------------------------------------------------


def palette_entropy(images: torch.Tensor) -> torch.Tensor:
    """The colour entropy of each image in bits: that of its 5-bit-per-channel colour histogram.

    Each channel, mapped to [0, 1], is quantised to ``floor(32 v)`` clamped to [0, 31] (for 8-bit images, the top
    5 bits of each value); the entropy ``-sum p log2 p`` is over the 32 x 32 x 32 = 32768 colour bins, ``p`` the
    share of the image's pixels in a bin. It is 0 for one colour, ``log2 k`` for ``k`` colours used equally, and at
    most ``min(15, log2(H W))``.

    Args:
        images: (N, 3, H, W) images in [-1, 1].

    Returns:
        (N,) float32 entropies in bits.

    Example:
        >>> halves = torch.full((1, 3, 4, 4), -1.0)
        >>> halves[..., 2:] = 1.0  # half black, half white
        >>> palette_entropy(halves)
        tensor([1.])
    """
    check_images(images, "images")
    with torch.no_grad():
        return torch.cat([_palette_entropy(chunk) for chunk in images.split(CHUNK)])


def _palette_entropy(images: torch.Tensor) -> torch.Tensor:
    levels = (to_unit(images) * LEVELS).floor().clamp(0, LEVELS - 1).long()
    index = (levels[:, 0] * LEVELS + levels[:, 1]) * LEVELS + levels[:, 2]  # (N, H, W)
    n = len(images)
    offsets = torch.arange(n, device=images.device).view(n, 1) * LEVELS**3
    counts = torch.bincount((index.reshape(n, -1) + offsets).flatten(), minlength=n * LEVELS**3)
    p = counts.view(n, -1).to(torch.float64) / index[0].numel()
    return -(p * torch.where(p > 0, p.log2(), 0.0)).sum(dim=1).to(torch.float32)


class Palette(Metric):
    """Colour entropy of the output in bits (5-bit-per-channel histogram, mean over images); cartoons score low.

    See :func:`palette_entropy`: 0 for an image of one colour, 1 for two colours in equal shares, at most 15. A
    score of the output alone: the second stream it reads (``target``) is not used, it is there so that ``i2i eval``
    also scores the identity (the source photos themselves). Lower is better for a translation to cartoons.

    Example:
        >>> Palette()(torch.zeros(2, 3, 8, 8), torch.zeros(1, 3, 8, 8))  # one colour
        0.0
    """

    reads = ("output", "target")
    paired = False
    higher_is_better = False

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(palette_entropy(x).mean())


# --- flat ----------------------------------------------------------------------------------------------------------


def gradient_magnitude(images: torch.Tensor) -> torch.Tensor:
    """The Sobel gradient magnitude of each image's luminance, per pixel on [0, 1], inside the image.

    The luminance (:func:`luminance`) is filtered with the Sobel kernels divided by 8 (``[1, 2, 1]`` smoothing
    times ``[-1, 0, 1]`` differences, as ``kornia.filters.sobel(normalized=True)``), so a linear ramp rising by
    ``s`` per pixel has magnitude ``s``; only pixels whose 3 x 3 neighbourhood lies in the image are kept (no
    padding).

    Args:
        images: (N, 3, H, W) images in [-1, 1], H, W >= 3.

    Returns:
        (N, H - 2, W - 2) float32 magnitudes ``sqrt(gx² + gy²)``.
    """
    check_images(images, "images", min_size=3)
    smooth = torch.tensor([1.0, 2.0, 1.0], device=images.device)
    diff = torch.tensor([-1.0, 0.0, 1.0], device=images.device)
    gx = torch.outer(smooth, diff) / 8
    kernels = torch.stack([gx, gx.T]).unsqueeze(1)  # (2, 1, 3, 3): d/dx, d/dy
    with torch.no_grad():
        g = F.conv2d(luminance(images), kernels)
        return g.square().sum(dim=1).sqrt()


def flat_share(images: torch.Tensor, threshold: float = FLAT_THRESHOLD) -> torch.Tensor:
    """The share of each image's pixels whose luminance gradient is below ``threshold`` per pixel, on [0, 1].

    The gradient is :func:`gradient_magnitude` (BT.601 luminance, Sobel kernels normalised by 1/8, pixels at least
    one pixel from the border): a ramp rising by 0.03 per pixel is not flat, one rising by 0.01 is.

    Args:
        images: (N, 3, H, W) images in [-1, 1], H, W >= 3.
        threshold: the gradient, on [0, 1] per pixel, below which a pixel is flat.

    Returns:
        (N,) float32 shares in [0, 1]: 1 for a constant image, about 0 for noise.

    Example:
        >>> ramp = torch.linspace(-1, 1, 11).expand(1, 3, 11, 11)  # rises by 0.1 per pixel on [0, 1]
        >>> flat_share(torch.cat([ramp, ramp * 0.1]))  # the second rises by 0.01 per pixel
        tensor([0., 1.])
    """
    return (gradient_magnitude(images) < threshold).to(torch.float32).mean(dim=(1, 2))


class Flat(Metric):
    """Share of the output's pixels whose Sobel luminance gradient is below 0.02 per pixel on [0, 1]; cartoons: high.

    See :func:`flat_share`: 1 for a constant image, about 0 for noise; cartoons, made of flat areas, score high.
    A score of the output alone: the second stream it reads (``target``) is not used, it is there so that
    ``i2i eval`` also scores the identity (the source photos themselves).

    Example:
        >>> Flat()(torch.zeros(2, 3, 8, 8), torch.zeros(1, 3, 8, 8))
        1.0
    """

    reads = ("output", "target")
    paired = False
    higher_is_better = True

    def __init__(self, threshold: float = FLAT_THRESHOLD) -> None:
        if not threshold > 0:
            raise ValueError(f"threshold must be positive, got {threshold}")
        self.threshold = threshold

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(flat_share(x, self.threshold).mean())


# --- checker -------------------------------------------------------------------------------------------------------


def checker_tile(height: int, width: int) -> int:
    """The side of the tiles :func:`checker_ratio` cuts images of ``height`` x ``width`` into: the largest multiple
    of 12 (so that periods 2, 3 and 4 fall on exact bins) up to :data:`TILE` that fits, at least 24."""
    side = min(TILE, TILE_STEP * (min(height, width) // TILE_STEP))
    if side < MIN_TILE:
        raise ValueError(f"checker: images must be at least {MIN_TILE}x{MIN_TILE} pixels, got {height}x{width}")
    return side


def tile_spectrum(images: torch.Tensor, tile: int) -> torch.Tensor:
    """The power spectrum of each image's luminance, averaged over overlapping tiles (Welch's method).

    The luminance (:func:`luminance`) is cut into ``tile`` x ``tile`` tiles with a stride of ``tile // 2`` (rows and
    columns left over at the bottom and right, fewer than ``tile // 2``, are not used); each tile has its mean
    removed and is multiplied by a 2-D periodic Hann window; the squared magnitude of its 2-D DFT, in float64, is
    averaged over the tiles. A tone of exactly ``k / tile`` cycles per pixel lands on bin ``k`` and its two
    neighbours, and nowhere else.

    Args:
        images: (N, 3, H, W) images in [-1, 1], H, W >= ``tile``.
        tile: the side of the tiles, even.

    Returns:
        (N, tile, tile) float64 power, indexed ``[ky, kx]`` as ``torch.fft.fft2`` orders frequencies.
    """
    check_images(images, "images", min_size=tile)
    with torch.no_grad():
        hann = torch.hann_window(tile, periodic=True, dtype=torch.float64, device=images.device)
        window = torch.outer(hann, hann)
        spectra = []
        for chunk in images.split(CHUNK):
            y = luminance(chunk)[:, 0].to(torch.float64)
            tiles = y.unfold(1, tile, tile // 2).unfold(2, tile, tile // 2)  # (n, rows, cols, tile, tile)
            tiles = tiles - tiles.mean(dim=(-2, -1), keepdim=True)
            spectra.append(torch.fft.fft2(tiles * window).abs().square().mean(dim=(1, 2)))
        return torch.cat(spectra)


def candidate_bins(tile: int, periods: tuple[int, ...] = PERIODS) -> list[tuple[int, int]]:
    """The spectrum bins ``(ky, kx)`` of the periodic patterns looked for: for each period ``p``, with
    ``k = round(tile / p)``, stripes across x ``(0, k)``, across y ``(k, 0)`` and along both diagonals ``(k, ±k)``
    (checkerboards); indices mod ``tile``, duplicates dropped (at period 2 both diagonals are one bin).

    Example:
        >>> candidate_bins(24, periods=(2,))
        [(0, 12), (12, 0), (12, 12)]
    """
    bins: list[tuple[int, int]] = []
    for period in periods:
        k = round(tile / period)
        for ky, kx in ((0, k), (k, 0), (k, k), (k, -k)):
            if (b := (ky % tile, kx % tile)) not in bins:
                bins.append(b)
    return bins


def ring_offsets(ring: tuple[int, int] = RING) -> list[tuple[int, int]]:
    """The offsets ``(dy, dx)`` of a bin's neighbourhood: Chebyshev distance ``ring[0]`` to ``ring[1]``."""
    near, far = ring
    span = range(-far, far + 1)
    return [(dy, dx) for dy in span for dx in span if max(abs(dy), abs(dx)) >= near]


def background_weights(offsets: list[tuple[int, int]]) -> torch.Tensor:
    """Weights ``w`` (summing to 1) such that ``w . log P[ring]`` is the value at the centre of the least-squares
    quadratic surface ``c + a dy + b dx + d dy² + e dx² + f dy dx`` through the log power of the ring: (R,) float64."""
    d = torch.tensor(offsets, dtype=torch.float64)
    dy, dx = d[:, 0], d[:, 1]
    design = torch.stack([torch.ones_like(dy), dy, dx, dy.square(), dx.square(), dy * dx], dim=1)
    return torch.linalg.pinv(design)[0]


def peak_prominence(power: torch.Tensor, bins: list[tuple[int, int]], ring: tuple[int, int] = RING) -> torch.Tensor:
    """The power at each bin over the background there, estimated from the bins around it.

    The background is ``exp`` of the value at the bin of the least-squares quadratic surface fitted to the log
    power of the ring of bins at Chebyshev distance ``ring[0]`` to ``ring[1]`` (:func:`background_weights`;
    indices mod the spectrum's size, as the DFT is periodic): a spectrum that falls off smoothly, or that a blur
    multiplies by a smooth (e.g. Gaussian) response, has no peak.

    Args:
        power: (N, T, T) power spectra (:func:`tile_spectrum`).
        bins: B bins ``(ky, kx)``.
        ring: nearest and farthest Chebyshev distance of the neighbourhood.

    Returns:
        (N, B) float64 prominences, ``(P[bin] + eps) / exp(w . log(P[ring] + eps))`` with ``eps = 1e-20`` (1 where
        all are 0).
    """
    size = power.shape[-1]
    offsets = ring_offsets(ring)
    rows = torch.tensor([[(ky + dy) % size for dy, _ in offsets] for ky, _ in bins], device=power.device)
    cols = torch.tensor([[(kx + dx) % size for _, dx in offsets] for _, kx in bins], device=power.device)
    weights = background_weights(offsets).to(power.device)
    background = ((power[:, rows, cols] + POWER_EPS).log() @ weights).exp()  # (N, B)
    ky, kx = torch.tensor(bins, device=power.device).unbind(dim=1)
    peak = power[:, ky, kx]  # (N, B)
    return (peak + POWER_EPS) / background


def checker_ratio(output: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
    """How much each output adds a periodic pattern of period 2, 3 or 4 pixels to its source: 1 if nothing.

    For each image pair:

    1. the luminance power spectra of output and source, averaged over Hann-windowed tiles (:func:`tile_spectrum`)
       of side :func:`checker_tile` (48 for images of at least 48 px; a multiple of 12, so the frequencies 1/2,
       1/3 and 1/4 cycles per pixel fall on exact bins whatever the image size);
    2. at each bin of :func:`candidate_bins` (those frequencies across x, across y and along both diagonals), the
       peak's prominence over its neighbourhood (:func:`peak_prominence`: the power at the bin over the background
       fitted to the bins at distance 2 to 4 around it), for the output divided by that for the source;
    3. the largest of these ratios.

    Args:
        output, source: (N, 3, H, W) images in [-1, 1] of one shape, H, W >= 24.

    Returns:
        (N,) float32 ratios: exactly 1 for an output equal to its source, about 1 for a blurred source, far above
        1 when the output adds a periodic pattern at one of these frequencies, below 1 when it removes one.

    Example:
        >>> photo = torch.rand(1, 3, 48, 48, generator=torch.Generator().manual_seed(0)) - 0.5
        >>> checker_ratio(photo, photo)
        tensor([1.])
        >>> stripes = 0.1 * torch.tensor([1.0, -1.0]).repeat(24)  # period 2 across x
        >>> bool(checker_ratio(photo + stripes, photo) > 10)
        True
    """
    check_pairs(output, source)
    tile = checker_tile(*output.shape[-2:])
    bins = candidate_bins(tile)
    ratios = peak_prominence(tile_spectrum(output, tile), bins) / peak_prominence(tile_spectrum(source, tile), bins)
    return ratios.max(dim=1).values.to(torch.float32)


class Checker(Metric):
    """Periodic artefacts: the output's spectral peaks at periods 2, 3 and 4 px over its source's (1: none added).

    See :func:`checker_ratio`: per image, the largest ratio, over the frequencies 1/2, 1/3 and 1/4 cycles per pixel
    across x, y and along the diagonals, of the prominence of the output's luminance power peak over its
    neighbourhood to the source's; the score is the mean over images. The identity scores 1 by definition
    (``i2i eval`` shows it as ``-``: it would compare the source with itself).
    """

    reads = ("output", "source")
    paired = True
    higher_is_better = False

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(checker_ratio(x, y).mean())
