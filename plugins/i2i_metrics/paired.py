"""Paired fidelity metrics: ``psnr`` and ``ssim`` against the ground truth, ``cycle-psnr`` of the reconstruction.

Images in [-1, 1] are mapped to [0, 1] first, so the data range is 1; values are not clamped.
"""

from __future__ import annotations

import torch

from i2i_core.metric import Metric
from i2i_metrics.checks import check_pairs, to_unit

#: The mean squared error is floored here, so identical images score ``10 log10(1 / 1e-10) = 100`` dB, not inf.
MSE_FLOOR = 1e-10
#: SSIM's Gaussian window: size and standard deviation in pixels (Wang et al., 2004).
SSIM_KERNEL, SSIM_SIGMA = 11, 1.5


def psnr(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The PSNR of each image pair in dB, ``10 log10(1 / max(MSE, 1e-10))`` on images mapped to [0, 1].

    Args:
        x, y: (N, 3, H, W) images in [-1, 1] of one shape.

    Returns:
        (N,) float32 PSNR, at most 100 dB (identical images).

    Example:
        >>> x = torch.zeros(1, 3, 8, 8)
        >>> psnr(x, x + 0.2)  # an offset of 0.1 on [0, 1]: MSE 0.01
        tensor([20.0000])
    """
    check_pairs(x, y)
    with torch.no_grad():
        mse = (to_unit(x) - to_unit(y)).square().mean(dim=(1, 2, 3))
        return -10 * torch.log10(mse.clamp_min(MSE_FLOOR))


def ssim(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """The mean SSIM of each image pair (11x11 Gaussian window, sigma 1.5, data range 1; torchmetrics' SSIM).

    Args:
        x, y: (N, C, H, W) images in [0, 1] of one shape, H, W >= 11 (here ``C`` may be any number).

    Returns:
        (N,) float32 SSIM in [-1, 1], 1 for identical images.
    """
    from torchmetrics.functional.image import structural_similarity_index_measure

    if x.shape != y.shape or x.ndim != 4 or min(x.shape[-2:]) < SSIM_KERNEL:
        raise ValueError(f"ssim: expected two (N, C, H, W) tensors of one shape, H, W >= {SSIM_KERNEL}")
    with torch.no_grad():
        return structural_similarity_index_measure(
            x.to(torch.float32),
            y.to(torch.float32),
            gaussian_kernel=True,
            sigma=SSIM_SIGMA,
            kernel_size=SSIM_KERNEL,
            reduction="none",
            data_range=1.0,
        )


class PSNR(Metric):
    """PSNR of the output against the ground truth, in dB: the mean of per-image PSNR on [0, 1], at most 100.

    Example:
        >>> x = torch.zeros(2, 3, 8, 8)
        >>> round(PSNR()(x, x + 0.2), 4)
        20.0
    """

    reads = ("output", "truth")
    paired = True
    higher_is_better = True

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(psnr(x, y).mean())


class CyclePSNR(PSNR):
    """PSNR of the cycle reconstruction against the source, in dB (mean of per-image PSNR on [0, 1])."""

    reads = ("cycled", "source")


class SSIM(Metric):
    """Mean SSIM of the output against the ground truth (11x11 Gaussian window, sigma 1.5, images on [0, 1])."""

    reads = ("output", "truth")
    paired = True
    higher_is_better = True

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        check_pairs(x, y, min_size=SSIM_KERNEL)
        return float(ssim(to_unit(x), to_unit(y)).mean())
