"""The ``fourier`` reporter: spectra, radial power spectra and spectral statistics of images vs a reference."""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2i_core.checkpoint import atomic_write_bytes
from i2i_core.errors import I2IError, did_you_mean
from i2i_fourier.spectrum import (
    DEFAULT_BANDS,
    NYQUIST,
    band_energy,
    fft2_centered,
    log_magnitude,
    luminance,
    orientation_histogram,
    radial_power_spectrum,
    spectral_centroid,
)

CHANNELS = ("luminance", "rgb")
BAND_NAMES = ("low", "mid", "high")
#: The quantile of the log-magnitudes at the top of the spectra's colour scale (the lowest frequencies saturate).
SATURATION = 0.995


class FourierReporter:
    """Compares the Fourier spectra of images with the first one, the reference.

    ``report(images, out_dir)`` takes an ordered mapping label -> image tensor, each (3, H, W) or (N, 3, H, W) in
    [-1, 1] (sizes may differ; statistics of a batch are the means of its images'), and writes into ``out_dir``:

    - ``spectra.png``: the log-magnitude spectrum ``log(1 + |F|)`` of each image, side by side, on one colour
      scale that saturates the brightest 0.5 % (a batch shows its mean);
    - ``radial_power.png``: the radially averaged power spectra on one log-scale plot, over 0-0.5 cycles/pixel;
    - ``fourier.json``: what ``report`` returns: per label its low/mid/high band energy fractions, spectral
      centroid and orientation histogram; per non-reference label the change of each band fraction and of the
      centroid from the reference (label minus reference) and the L1 distance between its orientation histogram
      and the reference's (0: same directions, 2: disjoint).

    ``channel="luminance"`` analyses the BT.601 luma; ``"rgb"`` each channel, averaging over the three.

    Example:
        >>> photo = torch.rand(3, 64, 48) * 2 - 1
        >>> blurred = torch.nn.functional.avg_pool2d(photo, 3, stride=1, padding=1)
        >>> result = FourierReporter().report({"photo": photo, "blurred": blurred}, Path("report"))
        >>> result["changes"]["blurred"]["spectral_centroid"] < 0
        True
    """

    def __init__(self, channel: str = "luminance", bins: int = 64, orientation_bins: int = 18) -> None:
        if channel not in CHANNELS:
            raise I2IError(
                f"reporter 'fourier': option channel must be one of {', '.join(CHANNELS)}, "
                f"got {channel!r}.{did_you_mean(str(channel), CHANNELS)}"
            )
        for name, value in (("bins", bins), ("orientation_bins", orientation_bins)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise I2IError(f"reporter 'fourier': option {name} must be a positive integer, got {value!r}")
        self.channel = channel
        self.bins = bins
        self.orientation_bins = orientation_bins

    def report(self, images: Mapping[str, torch.Tensor], out_dir: str | Path) -> dict[str, Any]:
        """Analyse ``images`` (the first is the reference), write the three files into ``out_dir`` (created if
        missing), return the numbers of ``fourier.json``."""
        planes = {label: self._planes(x) for label, x in _check_images(images).items()}
        figure, canvas = _matplotlib()
        reference = next(iter(planes))
        stats = {label: self._statistics(p) for label, p in planes.items()}
        result = {
            "reporter": "fourier",
            "channel": self.channel,
            "reference": reference,
            "bands": {name: list(band) for name, band in zip(BAND_NAMES, DEFAULT_BANDS, strict=True)},
            "images": stats,
            "changes": {label: _change(s, stats[reference]) for label, s in stats.items() if label != reference},
        }
        radial = {label: radial_power_spectrum(p, self.bins) for label, p in planes.items()}
        spectra = {label: log_magnitude(fft2_centered(p)).mean(dim=(0, 1)) for label, p in planes.items()}

        out_dir = Path(out_dir)
        atomic_write_bytes(out_dir / "spectra.png", _spectra_png(figure, canvas, spectra, self.channel))
        atomic_write_bytes(out_dir / "radial_power.png", _radial_png(figure, canvas, radial, reference, self.channel))
        atomic_write_bytes(out_dir / "fourier.json", (json.dumps(result, indent=2) + "\n").encode())
        return result

    def _planes(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, H, W) images as the (N, C, H, W) planes analysed: C = 1 for luminance, 3 for rgb."""
        return luminance(x) if self.channel == "luminance" else x

    def _statistics(self, planes: torch.Tensor) -> dict[str, Any]:
        n, _, height, width = planes.shape
        bands = band_energy(planes).mean(dim=(0, 1))
        return {
            "count": n,
            "height": height,
            "width": width,
            "band_energy": {name: float(v) for name, v in zip(BAND_NAMES, bands, strict=True)},
            "spectral_centroid": float(spectral_centroid(planes).mean()),
            "orientation_histogram": orientation_histogram(planes, self.orientation_bins).mean(dim=(0, 1)).tolist(),
        }


def fourier(channel: str = "luminance", bins: int = 64, orientation_bins: int = 18) -> FourierReporter:
    """Fourier spectra, radial power spectra, band energies and orientations of images vs the first one."""
    return FourierReporter(channel=channel, bins=bins, orientation_bins=orientation_bins)


def _check_images(images: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The images as detached float32 (N, 3, H, W) CPU tensors, in order; a clear error for anything else."""
    if not isinstance(images, Mapping) or not images:
        raise I2IError("reporter 'fourier': images must be a non-empty mapping label -> image tensor")
    checked = {}
    for label, x in images.items():
        if not isinstance(label, str) or not label:
            raise I2IError(f"reporter 'fourier': image labels must be non-empty strings, got {label!r}")
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else None
        if shape is None or len(shape) not in (3, 4) or shape[-3] != 3 or 0 in shape:
            got = f"shape {shape}" if shape is not None else type(x).__name__
            raise I2IError(
                f"reporter 'fourier': image '{label}' must be a tensor of shape (3, H, W) or (N, 3, H, W), got {got}"
            )
        if not x.dtype.is_floating_point:
            raise I2IError(
                f"reporter 'fourier': image '{label}' must be a real floating-point tensor with values in [-1, 1], got {x.dtype}"
            )
        x = x.detach().to("cpu", torch.float32)
        if not torch.isfinite(x).all():
            raise I2IError(f"reporter 'fourier': image '{label}' has NaN or infinite values")
        checked[label] = x if x.ndim == 4 else x.unsqueeze(0)
    return checked


def _change(stats: dict[str, Any], reference: dict[str, Any]) -> dict[str, Any]:
    histogram = torch.tensor(stats["orientation_histogram"])
    return {
        "band_energy": {name: v - reference["band_energy"][name] for name, v in stats["band_energy"].items()},
        "spectral_centroid": stats["spectral_centroid"] - reference["spectral_centroid"],
        "orientation_l1": float((histogram - torch.tensor(reference["orientation_histogram"])).abs().sum()),
    }


def _matplotlib() -> tuple[type, type]:
    """matplotlib's ``Figure`` and Agg canvas, imported only when a report is drawn."""
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError:
        raise I2IError(
            "reporter 'fourier' draws its figures with matplotlib, which is not installed: pip install matplotlib"
        ) from None
    return Figure, FigureCanvasAgg


def _png(figure: Any, canvas: type) -> bytes:
    canvas(figure)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    return buffer.getvalue()


def _spectra_png(figure: type, canvas: type, spectra: dict[str, torch.Tensor], channel: str) -> bytes:
    fig = figure(figsize=(3.2 * len(spectra) + 1.0, 3.6), layout="constrained")
    axes = fig.subplots(1, len(spectra), squeeze=False)[0]
    vmax = max(float(np.quantile(s.numpy(), SATURATION)) for s in spectra.values())
    for ax, (label, spectrum) in zip(axes, spectra.items(), strict=True):
        height, width = spectrum.shape
        shown = ax.imshow(
            spectrum.numpy(), cmap="magma", vmin=0.0, vmax=vmax, extent=(-NYQUIST, NYQUIST, NYQUIST, -NYQUIST)
        )
        ax.set_title(f"{label} ({height}x{width})")
        ax.set_xlabel("f_x (cycles/pixel)")
    axes[0].set_ylabel("f_y (cycles/pixel)")
    fig.colorbar(shown, ax=list(axes), label=f"log(1 + |F|), {channel}")
    return _png(fig, canvas)


def _radial_png(
    figure: type, canvas: type, radial: dict[str, tuple[torch.Tensor, torch.Tensor]], reference: str, channel: str
) -> bytes:
    fig = figure(figsize=(6.4, 4.4), layout="constrained")
    ax = fig.subplots()
    for label, (frequencies, batch_power) in radial.items():
        power = batch_power.mean(dim=(0, 1))
        shown = torch.isfinite(power) & (power > 0)
        is_reference = label == reference
        ax.plot(
            frequencies[shown].numpy(),
            power[shown].numpy(),
            label=f"{label} (reference)" if is_reference else label,
            linewidth=2.2 if is_reference else 1.4,
            color="black" if is_reference else None,
        )
    ax.set_yscale("log")
    ax.set_xlim(0.0, NYQUIST)
    ax.set_xlabel("radial frequency (cycles/pixel)")
    ax.set_ylabel("mean power |F|² (orthonormal DFT)")
    ax.set_title(f"Radially averaged power spectrum ({channel})")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    return _png(fig, canvas)
