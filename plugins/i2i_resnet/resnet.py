"""ResNet generators of CycleGAN (Zhu et al., 2017, https://arxiv.org/abs/1703.10593).

Johnson et al.'s encoder / residual blocks / decoder. The module layout (and so every state-dict key)
matches the reference implementation, so reference checkpoints load as they are.
"""

from __future__ import annotations

import torch
from torch import nn

from i2i_core.layers import (
    ConvTranspose2d,
    ReflectionPad2d,
    check_images,
    conv_bias,
    init_reference_weights,
    norm_layer,
)

PADDINGS = {"reflect": ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": None}


def _padded_conv(in_ch: int, out_ch: int, kernel: int, padding: str, bias: bool) -> list[nn.Module]:
    pad = kernel // 2
    if padding not in PADDINGS:
        raise ValueError(f"unknown padding '{padding}'; choose one of {', '.join(PADDINGS)}")
    if PADDINGS[padding] is None:
        return [nn.Conv2d(in_ch, out_ch, kernel, padding=pad, bias=bias)]
    return [PADDINGS[padding](pad), nn.Conv2d(in_ch, out_ch, kernel, bias=bias)]


class ResnetBlock(nn.Module):
    """Two 3x3 convolutions with normalisation and an identity shortcut: (B, C, H, W) -> (B, C, H, W)."""

    def __init__(self, channels: int, norm: str, dropout: bool, padding: str) -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers = [*_padded_conv(channels, channels, 3, padding, bias), norm_layer(norm, channels), nn.ReLU(True)]
        if dropout:
            layers.append(nn.Dropout(0.5))
        layers += [*_padded_conv(channels, channels, 3, padding, bias), norm_layer(norm, channels)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """ResNet generator: (B, 3, H, W) in [-1, 1] -> (B, 3, H, W) in [-1, 1], H and W multiples of 4.

    Args:
        n_blocks: residual blocks at the bottleneck (9 for ``resnet9``, 6 for ``resnet6``).
        ngf: filters of the first convolution; the bottleneck has ``4 * ngf``.
        norm: ``instance``, ``batch`` or ``none``.
        dropout: dropout 0.5 inside each residual block (CycleGAN uses none).
        padding: ``reflect``, ``replicate`` or ``zero`` padding inside the residual blocks.

    Example:
        >>> net = ResnetGenerator(n_blocks=2, ngf=8)
        >>> net(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
    """

    size_multiple = 4

    def __init__(
        self, n_blocks: int = 9, ngf: int = 64, norm: str = "instance", dropout: bool = False, padding: str = "reflect"
    ) -> None:
        super().__init__()
        bias = conv_bias(norm)
        # As in the reference, the 7x7 convolutions are always reflection-padded; ``padding`` is for the blocks.
        layers: list[nn.Module] = [*_padded_conv(3, ngf, 7, "reflect", bias), norm_layer(norm, ngf), nn.ReLU(True)]
        channels = ngf
        for _ in range(2):
            layers += [
                nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, channels * 2),
                nn.ReLU(True),
            ]
            channels *= 2
        layers += [ResnetBlock(channels, norm, dropout, padding) for _ in range(n_blocks)]
        for _ in range(2):
            layers += [
                ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1, bias=bias),
                norm_layer(norm, channels // 2),
                nn.ReLU(True),
            ]
            channels //= 2
        layers += [*_padded_conv(channels, 3, 7, "reflect", True), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        init_reference_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "generator input", self.size_multiple)
        return self.model(x)


def resnet9(ngf: int = 64, norm: str = "instance", dropout: bool = False, padding: str = "reflect") -> ResnetGenerator:
    """ResNet generator with 9 residual blocks (CycleGAN's default for 256x256 images)."""
    return ResnetGenerator(9, ngf=ngf, norm=norm, dropout=dropout, padding=padding)


def resnet6(ngf: int = 64, norm: str = "instance", dropout: bool = False, padding: str = "reflect") -> ResnetGenerator:
    """ResNet generator with 6 residual blocks (CycleGAN's choice for 128x128 images)."""
    return ResnetGenerator(6, ngf=ngf, norm=norm, dropout=dropout, padding=padding)
