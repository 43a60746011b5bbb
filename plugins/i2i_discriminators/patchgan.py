"""PatchGAN and PixelGAN discriminators of pix2pix / CycleGAN (https://arxiv.org/abs/1611.07004), PatchGAN also
anti-aliased as in CUT (Park et al., 2020).

Module layouts (and state-dict keys) match the reference implementations.
"""

from __future__ import annotations

import torch
from i2i_resnet.antialias import Downsample
from torch import nn

from i2i_core.layers import check_images, conv_bias, init_reference_weights, norm_layer


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, one per overlapping patch. (B, 3, H, W) -> (B, 1, H', W').

    With ``n_layers=3`` each logit sees a 70x70 patch; a 256x256 input gives 30x30 logits. With ``antialias``
    each stride-2 convolution becomes a stride-1 convolution (and its activation) followed by a blur-pool.

    Example:
        >>> PatchDiscriminator(ndf=8)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 1, 6, 6])
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = False) -> None:
        super().__init__()
        bias = conv_bias(norm)
        stride = 1 if antialias else 2
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 4, stride=stride, padding=1), nn.LeakyReLU(0.2, True)]
        layers += [Downsample(ndf)] if antialias else []
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2**n, 8)
            down = n < n_layers
            layers += [
                nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride if down else 1, padding=1, bias=bias),
                norm_layer(norm, ndf * mult),
                nn.LeakyReLU(0.2, True),
            ]
            layers += [Downsample(ndf * mult)] if antialias and down else []
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        init_reference_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "discriminator input")
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """PixelGAN: 1x1 convolutions, one real/fake logit per pixel. (B, 3, H, W) -> (B, 1, H, W).

    Example:
        >>> PixelDiscriminator(ndf=8)(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(self, ndf: int = 64, norm: str = "instance") -> None:
        super().__init__()
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(3, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )
        init_reference_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "discriminator input")
        return self.net(x)


def patchgan(ndf: int = 64, n_layers: int = 3, norm: str = "instance", antialias: bool = False) -> PatchDiscriminator:
    """PatchGAN discriminator (70x70 patches with n_layers=3), the reference CycleGAN's.

    With ``antialias``, CUT's discriminator."""
    return PatchDiscriminator(ndf=ndf, n_layers=n_layers, norm=norm, antialias=antialias)


def pixel(ndf: int = 64, norm: str = "instance") -> PixelDiscriminator:
    """PixelGAN discriminator: 1x1 convolutions, a logit per pixel."""
    return PixelDiscriminator(ndf=ndf, norm=norm)
