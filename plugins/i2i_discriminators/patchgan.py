"""PatchGAN and PixelGAN discriminators of pix2pix / CycleGAN (https://arxiv.org/abs/1611.07004), PatchGAN also
anti-aliased as in CUT (Park et al., 2020) or spectrally normalised (Miyato et al., 2018) as White-box
cartoonization's.

Module layouts (and state-dict keys) match the reference implementations. Both judge images (3 channels) by
default; with ``in_channels = 6`` they judge pix2pix's pairs, an input and an output concatenated on channels.
"""

from __future__ import annotations

import torch
from i2i_resnet.antialias import Downsample
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from i2i_core.layers import check_images, conv_bias, init_reference_weights, norm_layer

#: What a discriminator reads: an image (3 channels), or pix2pix's pair of an input and an output (6).
IN_CHANNELS = (3, 6)


def check_input(x: torch.Tensor, channels: int) -> None:
    """:func:`~i2i_core.layers.check_images` for a discriminator of ``channels`` input channels."""
    if channels == 3:
        check_images(x, "discriminator input")
        return
    if not isinstance(x, torch.Tensor) or x.ndim != 4 or x.shape[1] != channels:
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise ValueError(f"discriminator input must have shape (B, {channels}, H, W), got {shape}")
    check_images(x[:, :3], "discriminator input")


def _check_channels(in_channels: int) -> None:
    if in_channels not in IN_CHANNELS:
        raise ValueError(f"in_channels must be 3 (an image) or 6 (pix2pix's pair of images), got {in_channels}")


class PatchDiscriminator(nn.Module):
    """PatchGAN: a grid of real/fake logits, one per overlapping patch. (B, 3, H, W) -> (B, 1, H', W').

    With ``n_layers=3`` each logit sees a 70x70 patch; a 256x256 input gives 30x30 logits. With ``antialias``
    each stride-2 convolution becomes a stride-1 convolution (and its activation) followed by a blur-pool. With
    ``in_channels=6`` it reads (B, 6, H, W): pix2pix's conditional discriminator. With ``spectral`` every
    convolution's weight is divided by its largest singular value (one power iteration per training forward; the
    estimates are buffers, so checkpoints resume exactly): the discriminator is 1-Lipschitz per layer and cannot
    grow sharp enough to drive the generator into adversarial patterns.

    Example:
        >>> PatchDiscriminator(ndf=8)(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 1, 6, 6])
    """

    def __init__(
        self,
        ndf: int = 64,
        n_layers: int = 3,
        norm: str = "instance",
        antialias: bool = False,
        in_channels: int = 3,
        spectral: bool = False,
    ) -> None:
        super().__init__()
        _check_channels(in_channels)
        self.in_channels = in_channels
        bias = conv_bias(norm)
        stride = 1 if antialias else 2
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=stride, padding=1), nn.LeakyReLU(0.2, True)]
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
        if spectral:  # after the initialisation, which writes the plain weights
            for index, layer in enumerate(self.model):
                if isinstance(layer, nn.Conv2d):
                    self.model[index] = spectral_norm(layer)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels)
        return self.model(x)


class PixelDiscriminator(nn.Module):
    """PixelGAN: 1x1 convolutions, one real/fake logit per pixel. (B, 3, H, W) -> (B, 1, H, W); with
    ``in_channels=6``, (B, 6, H, W) pairs (pix2pix's ``--netD pixel``).

    Example:
        >>> PixelDiscriminator(ndf=8)(torch.zeros(1, 3, 16, 16)).shape
        torch.Size([1, 1, 16, 16])
    """

    def __init__(self, ndf: int = 64, norm: str = "instance", in_channels: int = 3) -> None:
        super().__init__()
        _check_channels(in_channels)
        self.in_channels = in_channels
        bias = conv_bias(norm)
        self.net = nn.Sequential(
            nn.Conv2d(in_channels, ndf, 1),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf, ndf * 2, 1, bias=bias),
            norm_layer(norm, ndf * 2),
            nn.LeakyReLU(0.2, True),
            nn.Conv2d(ndf * 2, 1, 1, bias=bias),
        )
        init_reference_weights(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_input(x, self.in_channels)
        return self.net(x)


def patchgan(
    ndf: int = 64,
    n_layers: int = 3,
    norm: str = "instance",
    antialias: bool = False,
    in_channels: int = 3,
    spectral: bool = False,
) -> PatchDiscriminator:
    """PatchGAN discriminator (70x70 patches with n_layers=3), the reference CycleGAN's.

    With ``antialias``, CUT's discriminator; with ``in_channels=6`` (set by the pix2pix method), pix2pix's, which
    judges an input and an output together; with ``spectral`` (and ``norm="none"``), White-box cartoonization's
    spectrally normalised one."""
    return PatchDiscriminator(
        ndf=ndf, n_layers=n_layers, norm=norm, antialias=antialias, in_channels=in_channels, spectral=spectral
    )


def pixel(ndf: int = 64, norm: str = "instance", in_channels: int = 3) -> PixelDiscriminator:
    """PixelGAN discriminator: 1x1 convolutions, a logit per pixel."""
    return PixelDiscriminator(ndf=ndf, norm=norm, in_channels=in_channels)
