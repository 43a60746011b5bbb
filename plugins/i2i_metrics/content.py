"""The ``content`` metric: how much of the input's structure (its edges) a translation keeps."""

from __future__ import annotations

import math

import torch

from i2i_core.metric import Metric
from i2i_metrics.checks import check_pairs, to_unit
from i2i_metrics.paired import SSIM_KERNEL, ssim

#: The largest Sobel edge magnitude of a [0, 1] image with kornia's normalised (1/8) kernels: ``sqrt(20) / 8``,
#: reached at a corner (gradients 4/8 and 2/8). Edge maps are divided by it, so they lie in [0, 1].
MAX_EDGE = math.sqrt(20) / 8


def edge_map(x: torch.Tensor) -> torch.Tensor:
    """The Sobel edge magnitude of the grayscale image, scaled to [0, 1].

    The grayscale (ITU-R BT.601 weights) of the image mapped to [0, 1] is filtered with the normalised Sobel kernels
    (``kornia.filters.sobel``, replicated borders); the magnitude ``sqrt(gx² + gy²)`` is divided by its largest
    possible value :data:`MAX_EDGE` (values outside [-1, 1] may exceed 1 and are clamped).

    Args:
        x: (N, 3, H, W) images in [-1, 1].

    Returns:
        (N, 1, H, W) edge maps in [0, 1]: 0 where the image is flat, 1 at a black-white corner.
    """
    from kornia.color import rgb_to_grayscale
    from kornia.filters import sobel

    with torch.no_grad():
        return (sobel(rgb_to_grayscale(to_unit(x)), normalized=True, eps=0.0) / MAX_EDGE).clamp(0, 1)


class Content(Metric):
    """Structure kept: the mean SSIM between the Sobel edge maps of the output and of its source (1: all kept).

    Each grayscale image's edge magnitude is scaled to [0, 1] by its largest possible value (see
    :func:`edge_map`); SSIM uses an 11x11 Gaussian window (sigma 1.5, data range 1). An output with the source's
    edges scores 1, a blurred one less, a flat one about 0.
    """

    reads = ("output", "source")
    paired = True
    higher_is_better = True

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        check_pairs(x, y, min_size=SSIM_KERNEL)
        return float(ssim(edge_map(x), edge_map(y)).mean())
