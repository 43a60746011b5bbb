"""Reconstruction losses: ``loss(x, y) -> scalar``, averaged over every element: ``l1``, ``l2``, and for
cartoons ``lowpass-l1`` (content without texture), ``yuv`` (colour) and ``tv`` (total variation of ``x``)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def l1() -> nn.L1Loss:
    """Mean absolute error (cycle-consistency and identity losses of CycleGAN)."""
    return nn.L1Loss()


def l2() -> nn.MSELoss:
    """Mean squared error."""
    return nn.MSELoss()


class LowpassL1(nn.Module):
    """L1 between ``factor`` x ``factor`` block means of ``x`` and ``y``: their colours and shapes must agree,
    their texture may differ (a content loss without a pretrained network). (B, C, H, W) twice -> scalar.

    Example:
        >>> x = torch.zeros(1, 3, 4, 4); y = x.clone(); y[..., ::2, ::2] = 1; y[..., 1::2, 1::2] = -1
        >>> float(LowpassL1(2)(x, y)), float(nn.L1Loss()(x, y))
        (0.0, 0.5)
    """

    def __init__(self, factor: int = 4) -> None:
        super().__init__()
        if factor < 1:
            raise ValueError(f"factor must be >= 1, got {factor}")
        self.factor = factor

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return F.l1_loss(F.avg_pool2d(x, self.factor), F.avg_pool2d(y, self.factor))


def lowpass_l1(factor: int = 4) -> LowpassL1:
    """L1 between block means (see :class:`LowpassL1`)."""
    return LowpassL1(factor)


#: RGB (0-1) -> YUV (BT.601).
YUV = torch.tensor(
    [[0.299, 0.587, 0.114], [-0.14714119, -0.28886916, 0.43601035], [0.61497538, -0.51496512, -0.10001026]]
)


class YUVColour(nn.Module):
    """AnimeGAN's colour loss between images in [-1, 1]: in YUV (BT.601, from 0-1 RGB), L1 on luma Y and Huber on
    the chroma U and V, after ``factor`` x ``factor`` block means (1: none). (B, 3, H, W) twice -> scalar.

    Example:
        >>> x = torch.zeros(1, 3, 4, 4)
        >>> float(YUVColour()(x, x)), YUVColour()(x, x + 0.2).item() > 0
        (0.0, True)
    """

    def __init__(self, factor: int = 1, luma_weight: float = 1.0, chroma_weight: float = 1.0) -> None:
        super().__init__()
        self.factor, self.luma_weight, self.chroma_weight = factor, luma_weight, chroma_weight
        self.register_buffer("matrix", YUV.clone(), persistent=False)

    def _yuv(self, images: torch.Tensor) -> torch.Tensor:
        if self.factor > 1:
            images = F.avg_pool2d(images, self.factor)
        return torch.einsum("ij,bjhw->bihw", self.matrix.to(images), (images + 1) / 2)

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        a, b = self._yuv(x), self._yuv(y)
        luma = F.l1_loss(a[:, :1], b[:, :1])
        chroma = F.huber_loss(a[:, 1:], b[:, 1:])
        return self.luma_weight * luma + self.chroma_weight * chroma


def yuv_colour(factor: int = 1, luma_weight: float = 1.0, chroma_weight: float = 1.0) -> YUVColour:
    """AnimeGAN's YUV colour loss (see :class:`YUVColour`)."""
    return YUVColour(factor, luma_weight, chroma_weight)


class TotalVariation(nn.Module):
    """Mean absolute difference of neighbouring pixels of ``x`` (``y`` is ignored: a loss of the output alone):
    (B, C, H, W) -> scalar. Penalises noise and fine texture.

    Example:
        >>> x = torch.zeros(1, 1, 2, 2); x[..., 1] = 1  # a vertical step
        >>> float(TotalVariation()(x, None))
        1.0
    """

    def forward(self, x: torch.Tensor, y: object = None) -> torch.Tensor:
        return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def total_variation() -> TotalVariation:
    """Total variation of the output (see :class:`TotalVariation`)."""
    return TotalVariation()
