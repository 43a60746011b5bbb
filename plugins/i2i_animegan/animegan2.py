"""The AnimeGANv2 generator (Chen, Liu and Chen, 2020), in the layout of its widely used PyTorch port, so that the
released photo -> anime weights (``face_paint_512_v2``, ``paprika``, ``celeba_distill``...) load as they are
(``i2i import-weights --from animegan2``).

A light encoder-decoder, 2.1 M parameters: convolutions with single-group normalisation (each image normalised as
a whole, like layer norm over channels and pixels) and leaky ReLU, two stride-2 steps down, four inverted
residual blocks (1x1 expansion, depthwise 3x3, 1x1 projection), and bilinear resizing back up. Sides must be
multiples of 4 (``i2i translate`` pads other images to them and crops the result).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i2i_core.layers import check_images


class ConvNormLReLU(nn.Sequential):
    """Padding, convolution without bias (unless ``bias``), one-group normalisation, leaky ReLU (0.2).

    ``padding`` is an int, or (left, right, top, bottom) for the stride-2 steps, which pad right and bottom only.
    """

    def __init__(
        self,
        channels_in: int,
        channels_out: int,
        kernel_size: int = 3,
        stride: int = 1,
        padding: int | tuple[int, int, int, int] = 1,
        groups: int = 1,
        bias: bool = False,
    ) -> None:
        super().__init__(
            nn.ReflectionPad2d(padding),
            nn.Conv2d(channels_in, channels_out, kernel_size, stride, groups=groups, bias=bias),
            nn.GroupNorm(1, channels_out),
            nn.LeakyReLU(0.2, inplace=True),
        )


class InvertedResBlock(nn.Module):
    """1x1 expansion by ``expansion`` (when not 1), depthwise 3x3, 1x1 projection and normalisation; the input is
    added back when the widths agree."""

    def __init__(self, channels_in: int, channels_out: int, expansion: float = 2) -> None:
        super().__init__()
        hidden = round(channels_in * expansion)
        expand = [ConvNormLReLU(channels_in, hidden, kernel_size=1, padding=0)] if expansion != 1 else []
        self.layers = nn.Sequential(
            *expand,
            ConvNormLReLU(hidden, hidden, groups=hidden, bias=True),
            nn.Conv2d(hidden, channels_out, 1, bias=False),
            nn.GroupNorm(1, channels_out),
        )
        self.residual = channels_in == channels_out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.layers(x)
        return x + y if self.residual else y


_DOWN = (0, 1, 0, 1)  # the stride-2 steps pad right and bottom by one


class AnimeGAN2Generator(nn.Module):
    """(B, 3, H, W) in [-1, 1] -> (B, 3, H, W) in [-1, 1], H and W multiples of 4.

    ``align_corners`` chooses how the decoder resizes: to the encoder's sizes with corners aligned (the port's
    default, as its web demos run it), or by a factor of 2 without (its ``test.py`` default).

    Example:
        >>> net = AnimeGAN2Generator().eval()
        >>> net(torch.zeros(1, 3, 40, 56)).shape
        torch.Size([1, 3, 40, 56])
    """

    def __init__(self, align_corners: bool = True) -> None:
        super().__init__()
        self.align_corners = align_corners
        self.size_multiple = 4
        self.block_a = nn.Sequential(
            ConvNormLReLU(3, 32, kernel_size=7, padding=3),
            ConvNormLReLU(32, 64, stride=2, padding=_DOWN),
            ConvNormLReLU(64, 64),
        )
        self.block_b = nn.Sequential(ConvNormLReLU(64, 128, stride=2, padding=_DOWN), ConvNormLReLU(128, 128))
        self.block_c = nn.Sequential(
            ConvNormLReLU(128, 128),
            InvertedResBlock(128, 256),
            *(InvertedResBlock(256, 256) for _ in range(3)),
            ConvNormLReLU(256, 128),
        )
        self.block_d = nn.Sequential(ConvNormLReLU(128, 128), ConvNormLReLU(128, 128))
        self.block_e = nn.Sequential(
            ConvNormLReLU(128, 64), ConvNormLReLU(64, 64), ConvNormLReLU(64, 32, kernel_size=7, padding=3)
        )
        self.out_layer = nn.Sequential(nn.Conv2d(32, 3, 1, bias=False), nn.Tanh())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "generator input", self.size_multiple)
        half = self.block_a(x)
        y = self.block_c(self.block_b(half))
        y = self.block_d(self._up(y, half.shape[-2:]))
        return self.out_layer(self.block_e(self._up(y, x.shape[-2:])))

    def _up(self, x: torch.Tensor, size: torch.Size) -> torch.Tensor:
        if self.align_corners:
            return F.interpolate(x, size, mode="bilinear", align_corners=True)
        return F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)


def animegan2(align_corners: bool = True) -> AnimeGAN2Generator:
    """AnimeGANv2's generator, in the layout of its PyTorch port's released photo -> anime weights."""
    return AnimeGAN2Generator(align_corners)
