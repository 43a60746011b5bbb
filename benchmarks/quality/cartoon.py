"""A deterministic photo -> cartoon filter built from kornia operators: the target domain of the quality benchmark.

The filter turns a photograph into a flat-shaded picture with dark outlines while keeping its geometry, so a
photo -> cartoon model trained on the benchmark can in principle reproduce it pixel for pixel:

1. **Smoothing** - a median filter removes fine texture and noise, then ``smooth_passes`` bilateral filters flatten
   the remaining regions while keeping their boundaries sharp (edge-preserving smoothing).
2. **Colour quantisation** in CIE Lab - lightness L* is rounded to one of ``levels`` evenly spaced values and the
   chroma a*, b* (scaled by ``saturation``) to multiples of ``chroma_step``, so hues survive while shading turns into
   flat bands; a small median filter on the quantised Lab channels removes isolated specks (the median of values on
   the grid is itself on the grid, so the result stays on the palette).
3. **Outlines** - Canny edges of the *smoothed* luminance (so quantisation bands do not become lines), widened to
   ``line_width`` pixels; the quantised colours under them are darkened by the factor ``1 - line_strength``.

Each step is its own function (:func:`smooth`, :func:`quantize`, :func:`outlines`); :class:`CartoonParams` holds
the parameters and their defaults. All operators are deterministic on the CPU.

Shapes: ``(B, 3, H, W)`` float RGB in [0, 1], H and W >= 8 -> ``(B, 3, H, W)`` float RGB in [0, 1].

Example::

    >>> import torch
    >>> x = torch.rand(2, 3, 64, 96)
    >>> y = cartoon(x)
    >>> y.shape, bool(y.min() >= 0), bool(y.max() <= 1)
    (torch.Size([2, 3, 64, 96]), True, True)
    >>> torch.equal(Cartoon()(x), y)
    True
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import kornia
import torch
import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["Cartoon", "CartoonParams", "cartoon", "outlines", "quantize", "smooth"]


@dataclass(frozen=True)
class CartoonParams:
    """The filter's parameters and their defaults (tuned on the 430x320 photos of ``mini-photo2cartoon``).

    Attributes:
        median_kernel: side of the median filter applied before the bilateral passes (odd; 1 = off).
        smooth_passes: number of bilateral filter passes.
        smooth_kernel: side of the bilateral filter window (odd).
        sigma_color: bilateral range sigma, in units of the L1 colour distance of [0, 1] RGB values.
        sigma_space: bilateral spatial sigma, in pixels.
        levels: lightness (L*) levels after quantisation, evenly spaced over 0..100 (>= 2).
        chroma_step: quantisation step of the chroma a*, b* (CIE Lab units).
        saturation: factor on a*, b* before quantisation (1 = colours as in the photo).
        cleanup_kernel: side of the median filter on the quantised Lab channels (odd; 1 = off).
        edge_low: Canny low (hysteresis) threshold on the luminance gradient magnitude.
        edge_high: Canny high threshold.
        edge_sigma: sigma of Canny's Gaussian pre-blur, in pixels.
        line_width: outline width in pixels (1 = Canny's one-pixel lines).
        line_strength: how much outlines darken the colour under them (0 = no outlines, 1 = black).
    """

    median_kernel: int = 3
    smooth_passes: int = 3
    smooth_kernel: int = 7
    sigma_color: float = 0.12
    sigma_space: float = 2.5
    levels: int = 7
    chroma_step: float = 12.0
    saturation: float = 1.0
    cleanup_kernel: int = 3
    edge_low: float = 0.1
    edge_high: float = 0.25
    edge_sigma: float = 1.5
    line_width: int = 2
    line_strength: float = 0.85

    def __post_init__(self) -> None:
        for name in ("median_kernel", "smooth_kernel", "cleanup_kernel"):
            value = getattr(self, name)
            if value < 1 or value % 2 == 0:
                raise ValueError(f"cartoon: {name} must be a positive odd integer, got {value}")
        if self.smooth_passes < 0:
            raise ValueError(f"cartoon: smooth_passes must be >= 0, got {self.smooth_passes}")
        if self.levels < 2:
            raise ValueError(f"cartoon: levels must be >= 2, got {self.levels}")
        if self.line_width < 1:
            raise ValueError(f"cartoon: line_width must be >= 1, got {self.line_width}")
        if not 0.0 <= self.line_strength <= 1.0:
            raise ValueError(f"cartoon: line_strength must be in [0, 1], got {self.line_strength}")
        if not 0.0 < self.edge_low <= self.edge_high:
            raise ValueError(f"cartoon: need 0 < edge_low <= edge_high, got {self.edge_low}, {self.edge_high}")
        if self.sigma_color <= 0 or self.sigma_space <= 0 or self.edge_sigma <= 0 or self.chroma_step <= 0:
            raise ValueError("cartoon: sigma_color, sigma_space, edge_sigma and chroma_step must be positive")
        if self.saturation < 0:
            raise ValueError(f"cartoon: saturation must be >= 0, got {self.saturation}")

    def to_dict(self) -> dict[str, int | float]:
        return asdict(self)


def _check_images(x: Tensor, what: str = "x") -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"cartoon: {what} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"cartoon: {what} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise ValueError(f"cartoon: {what} must be a float tensor with values in [0, 1], got {x.dtype}")
    if x.shape[-2] < 8 or x.shape[-1] < 8:
        raise ValueError(f"cartoon: {what} must be at least 8x8 pixels, got {x.shape[-2]}x{x.shape[-1]}")


def smooth(x: Tensor, params: CartoonParams | None = None) -> Tensor:
    """Edge-preserving smoothing: median filter, then ``params.smooth_passes`` bilateral passes. (B,3,H,W) -> same."""
    p = params or CartoonParams()
    y = x
    if p.median_kernel > 1:
        y = kornia.filters.median_blur(y, p.median_kernel)
    for _ in range(p.smooth_passes):
        y = kornia.filters.bilateral_blur(y, p.smooth_kernel, p.sigma_color, (p.sigma_space, p.sigma_space))
    return y


def quantize(
    x: Tensor, levels: int = 7, chroma_step: float = 12.0, saturation: float = 1.0, cleanup_kernel: int = 1
) -> Tensor:
    """Quantise RGB images in CIE Lab: (B,3,H,W) in [0, 1] -> same, on a fixed palette.

    Lightness L* (0..100) is rounded to ``levels`` evenly spaced values and the chroma a*, b* (scaled by
    ``saturation`` first) to multiples of ``chroma_step``. A median filter of side ``cleanup_kernel`` (odd, 1 = off)
    then removes isolated specks; it works on each quantised Lab channel, so values stay on the palette's grid.
    The result is converted back to RGB and clipped to [0, 1].
    """
    if levels < 2:
        raise ValueError(f"cartoon: levels must be >= 2, got {levels}")
    if chroma_step <= 0:
        raise ValueError(f"cartoon: chroma_step must be positive, got {chroma_step}")
    lab = kornia.color.rgb_to_lab(x.clamp(0.0, 1.0))
    steps = levels - 1
    lightness = torch.round(lab[:, :1] / 100.0 * steps) / steps * 100.0
    chroma = torch.round(lab[:, 1:] * saturation / chroma_step) * chroma_step
    lab = torch.cat([lightness, chroma], dim=1)
    if cleanup_kernel > 1:
        lab = kornia.filters.median_blur(lab, cleanup_kernel)
    return kornia.color.lab_to_rgb(lab, clip=True)


def outlines(smoothed: Tensor, params: CartoonParams | None = None) -> Tensor:
    """Outline mask of smoothed images: (B,3,H,W) -> (B,1,H,W) with values 0 (no line) or 1 (line)."""
    p = params or CartoonParams()
    gray = kornia.color.rgb_to_grayscale(smoothed)
    k = 2 * round(2 * p.edge_sigma) + 1
    _, edges = kornia.filters.canny(
        gray, p.edge_low, p.edge_high, kernel_size=k, sigma=(p.edge_sigma, p.edge_sigma), hysteresis=True
    )
    edges = (edges > 0.5).to(smoothed.dtype)
    if p.line_width > 1:  # widen to line_width pixels: right/down for even widths, symmetric for odd ones
        left = (p.line_width - 1) // 2
        right = p.line_width - 1 - left
        edges = F.max_pool2d(F.pad(edges, (left, right, left, right)), p.line_width, stride=1)
    return edges


def cartoon(x: Tensor, params: CartoonParams | None = None, **overrides: int | float) -> Tensor:
    """Cartoonise RGB images: ``(B, 3, H, W)`` float in [0, 1] -> ``(B, 3, H, W)`` float in [0, 1], same dtype.

    ``params`` (a :class:`CartoonParams`) or keyword overrides of its fields set the filter, e.g.
    ``cartoon(x, levels=4)``. Deterministic: the same input always gives the same output.

    Raises:
        ValueError: ``x`` is not a float tensor of shape (B, 3, H, W) with H, W >= 8, or a parameter is invalid.

    Example::

        >>> y = cartoon(torch.full((1, 3, 16, 16), 0.5))  # mid grey, L* 53.4
        >>> bool((y == y[..., :1, :1]).all())  # a flat image stays flat...
        True
        >>> [round(v, 3) for v in y[0, :, 0, 0].tolist()]  # ...on its quantised level, grey of L* 50
        [0.466, 0.466, 0.466]
    """
    _check_images(x)
    p = params or CartoonParams()
    if overrides:
        p = CartoonParams(**{**p.to_dict(), **overrides})
    x = x.clamp(0.0, 1.0)
    smoothed = smooth(x, p)
    flat = quantize(smoothed, p.levels, p.chroma_step, p.saturation, p.cleanup_kernel)
    lines = outlines(smoothed, p)
    return (flat * (1.0 - p.line_strength * lines)).clamp(0.0, 1.0)


class Cartoon(nn.Module):
    """:func:`cartoon` as a module (no learnable parameters): ``(B, 3, H, W)`` in [0, 1] -> same shape.

    Example::

        >>> import torch
        >>> f = Cartoon(levels=4)
        >>> f(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
    """

    def __init__(self, params: CartoonParams | None = None, **overrides: int | float) -> None:
        super().__init__()
        p = params or CartoonParams()
        self.params = CartoonParams(**{**p.to_dict(), **overrides}) if overrides else p

    def forward(self, x: Tensor) -> Tensor:
        return cartoon(x, self.params)

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v}" for k, v in self.params.to_dict().items())
