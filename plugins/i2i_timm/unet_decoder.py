"""U-Net generators over timm backbones: any ``features_only`` encoder, a decoder built from its ``feature_info``.

The encoder sees the image normalised as its weights expect (its ``mean`` and ``std``). The decoder climbs back
from the deepest features, one block per feature level, each up-sampling bilinearly (no transposed convolutions,
so no checkerboard artefacts) and joining that level as a skip; a last block joins a full-resolution stem over the
image itself, so fine detail survives, and a 3x3 convolution with tanh gives the output.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.data import resolve_model_data_config
from torch import nn

from i2i_core.layers import check_images, conv_bias, init_reference_weights, norm_layer
from i2i_timm.encoders import create_encoder


class ConvNormAct(nn.Sequential):
    """3x3 convolution, normalisation, ReLU: (B, in, H, W) -> (B, out, H, W)."""

    def __init__(self, in_channels: int, out_channels: int, norm: str) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=conv_bias(norm)),
            norm_layer(norm, out_channels),
            nn.ReLU(True),
        )


class DecoderBlock(nn.Module):
    """Up-sample to the skip's size, join the skip on channels, then two ``ConvNormAct``:
    (B, in, h, w) and (B, skip, H, W) -> (B, out, H, W)."""

    def __init__(self, in_channels: int, skip_channels: int, out_channels: int, norm: str) -> None:
        super().__init__()
        self.convs = nn.Sequential(
            ConvNormAct(in_channels + skip_channels, out_channels, norm), ConvNormAct(out_channels, out_channels, norm)
        )

    def forward(self, x: torch.Tensor, skip: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
        return self.convs(torch.cat([x, skip], 1))


def decoder_width(reduction: int, ngf: int) -> int:
    """Channels of the decoder block at ``reduction``: ngf up to 1/4 resolution, doubling per halving, at most 4ngf."""
    return ngf * min(max(reduction // 4, 1), 4)


class TimmUnetGenerator(nn.Module):
    """U-Net over a timm ``features_only`` encoder: (B, 3, H, W) in [-1, 1] -> (B, 3, H, W) in [-1, 1], H and W
    multiples of the encoder's total stride (``size_multiple``).

    Args:
        encoder: a ``timm.create_model(..., features_only=True)`` module; it keeps its own weights and norms.
        ngf: channels of the stem and of the decoder blocks at up to 1/4 resolution (see ``decoder_width``).
        norm: the decoder's normalisation: ``instance``, ``batch`` or ``none``.

    Features (CUT's encoder features): layer 0 is the input, layer ``k`` the encoder's ``k``-th feature map
    (its ``feature_info``, shallow to deep); ``feature_layers`` defaults to the input and the first four.

    Example:
        >>> net = TimmUnetGenerator(create_encoder("resnet18"), ngf=8)
        >>> net(torch.zeros(1, 3, 64, 64)).shape
        torch.Size([1, 3, 64, 64])
        >>> net.feature_layers, net.feature_channels(net.feature_layers)
        ((0, 1, 2, 3, 4), [3, 64, 64, 128, 256])
    """

    def __init__(self, encoder: nn.Module, ngf: int = 64, norm: str = "instance") -> None:
        super().__init__()
        channels, reductions = encoder.feature_info.channels(), encoder.feature_info.reduction()
        self.size_multiple = math.lcm(*reductions)
        self.encoder = encoder
        self._widths = [3, *channels]
        self.feature_layers = tuple(range(min(5, len(self._widths))))
        self.channels_last = getattr(encoder, "output_fmt", "NCHW") == "NHWC"
        data = resolve_model_data_config(encoder)
        self.register_buffer("mean", torch.tensor(data["mean"]).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(data["std"]).view(1, 3, 1, 1), persistent=False)
        self.stem = nn.Sequential(ConvNormAct(3, ngf, norm), ConvNormAct(ngf, ngf, norm))
        skips = [*reversed([*zip(channels[:-1], reductions[:-1], strict=True)]), (ngf, 1)]  # deep to shallow
        blocks, in_channels = [], channels[-1]
        for skip_channels, reduction in skips:
            blocks.append(DecoderBlock(in_channels, skip_channels, decoder_width(reduction, ngf), norm))
            in_channels = decoder_width(reduction, ngf)
        self.decoder = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Conv2d(in_channels, 3, 3, padding=1), nn.Tanh())
        for part in (self.stem, self.decoder, self.head):
            init_reference_weights(part)

    def _encode(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The encoder's feature maps, (B, C_k, H_k, W_k) each, shallow to deep."""
        features = self.encoder(((x + 1) / 2 - self.mean) / self.std)
        return [f.permute(0, 3, 1, 2) for f in features] if self.channels_last else features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        check_images(x, "generator input", self.size_multiple)
        features = self._encode(x)
        y = features[-1]
        for block, skip in zip(self.decoder, [*features[-2::-1], self.stem(x)], strict=True):
            y = block(y, skip)
        return self.head(y)

    def _check_layers(self, layers: Sequence[int]) -> None:
        last = len(self._widths) - 1
        bad = [i for i in layers if not isinstance(i, int) or not 0 <= i <= last]
        if not layers or bad:
            raise ValueError(
                f"feature layers must be 0 (the input) to {last} (the encoder's {last} feature maps), e.g. "
                f"{list(self.feature_layers)}, got {list(layers)}"
            )

    def feature_channels(self, layers: Sequence[int]) -> list[int]:
        """Channels of each of :meth:`features`' maps for ``layers``."""
        self._check_layers(layers)
        return [self._widths[i] for i in layers]

    def features(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The input (layer 0) and the encoder's feature maps (layers 1 and up) for each of ``layers``, in their
        order: (B, C_k, H_k, W_k) each."""
        check_images(x, "generator input", self.size_multiple)
        self._check_layers(layers)
        found = [x, *self._encode(x)] if max(layers) else [x]
        return [found[i] for i in layers]


def timm_unet(
    encoder: str = "resnet18", pretrained: bool = False, ngf: int = 64, norm: str = "instance"
) -> TimmUnetGenerator:
    """U-Net generator over the multi-scale features of any timm encoder (inputs a multiple of its stride).

    Args:
        encoder: a timm model name (``timm.list_models()``), optionally with a weights tag (``resnet18.a1_in1k``).
        pretrained: start the encoder from timm's pretrained weights (downloaded, or from the local cache);
            otherwise from timm's random init.
        ngf: the decoder's width (see ``decoder_width``).
        norm: the decoder's normalisation: ``instance``, ``batch`` or ``none``.

    Example:
        >>> timm_unet("efficientnet_b0", ngf=8).size_multiple
        32
    """
    return TimmUnetGenerator(create_encoder(encoder, pretrained), ngf=ngf, norm=norm)
