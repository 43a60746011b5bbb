"""The discriminator of "Photo-Anime Translation based on Cycle-Consistent Adversarial Networks".

The paper describes 3x3 convolutions followed by a fully connected layer from 512 channels to one output,
without giving code. This design follows it: 3x3 stride-2 convolutions ndf -> 2ndf -> 4ndf -> 8ndf with
LeakyReLU(0.2) and (after the first) normalisation, global average pooling, then Linear(8ndf, 1).
Pooling makes it work for any input size of at least 32x32.
"""

from __future__ import annotations

import torch
from torch import nn

from i2i_core.layers import check_images, conv_bias, init_reference_weights, norm_layer


class VanillaDiscriminator(nn.Module):
    """3x3 convolutions, global average pooling, fully connected: (B, 3, H, W) -> (B, 1) logits.

    Args:
        ndf: filters of the first convolution; each of the ``n_layers`` following doubles them (capped at 8ndf).
        n_layers: stride-2 convolutions after the first (3 reaches 512 channels with ndf 64).
        norm: ``instance``, ``batch`` or ``none``.

    Example:
        >>> VanillaDiscriminator(ndf=8)(torch.zeros(2, 3, 48, 80)).shape
        torch.Size([2, 1])
    """

    def __init__(self, ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> None:
        super().__init__()
        bias = conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(3, ndf, 3, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        channels = ndf
        for n in range(1, n_layers + 1):
            out = ndf * min(2**n, 8)
            layers += [
                nn.Conv2d(channels, out, 3, stride=2, padding=1, bias=bias),
                norm_layer(norm, out),
                nn.LeakyReLU(0.2, True),
            ]
            channels = out
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(channels, 1)
        init_reference_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "discriminator input")
        return self.fc(self.pool(self.features(x)).flatten(1))


def vanilla(ndf: int = 64, n_layers: int = 3, norm: str = "instance") -> VanillaDiscriminator:
    """The paper's discriminator: 3x3 convolutions, then a fully connected layer from 512 channels to 1."""
    return VanillaDiscriminator(ndf=ndf, n_layers=n_layers, norm=norm)
