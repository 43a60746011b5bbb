"""ResNet generators of CycleGAN (Zhu et al., 2017, https://arxiv.org/abs/1703.10593) and CUT (Park et al., 2020).

Johnson et al.'s encoder / residual blocks / decoder, optionally with CUT's anti-aliased down- and up-sampling.
The module layout (and so every state-dict key) matches the reference implementations, so reference checkpoints
load as they are.

With ``residual=True`` the generator changes its input instead of drawing a new image: the output is
``tanh(atanh(clamp(x, -1 + eps, 1 - eps)) + head(h))``, ``head`` the last convolution, which starts at zero, so
that an untrained generator is the identity (up to the clamp, eps = :data:`i2i_core.layers.RESIDUAL_EPS`). Same layout, same
state-dict keys and the same other weights for the same seed as without it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from i2i_core.layers import (
    ConvTranspose2d,
    GuidedFilter,
    Outline,
    Posterize,
    ReflectionPad2d,
    check_images,
    conv_bias,
    init_reference_weights,
    norm_layer,
    residual_output,
    zero_head,
)
from i2i_resnet.antialias import Downsample, Upsample

PADDINGS = {"reflect": ReflectionPad2d, "replicate": nn.ReplicationPad2d, "zero": None}
#: How the decoder doubles the resolution: a transposed convolution (the reference), bilinear resize then
#: a convolution (resize-convolution, Odena et al. 2016), or CUT's blurred up-sampling then a convolution. The last
#: two draw no checkerboard; a transposed convolution draws one, even untrained.
UPSAMPLING = ("transpose", "resize", "antialias")


def upsampling(upsample: str, antialias_up: bool) -> str:
    """The up-sampling of ``upsample`` and the older flag ``antialias_up`` (the same as ``"antialias"``)."""
    if upsample not in UPSAMPLING:
        raise ValueError(f"unknown upsample '{upsample}'; choose one of {', '.join(UPSAMPLING)}")
    if antialias_up and upsample == "resize":
        raise ValueError("antialias_up = true asks for upsample 'antialias', but upsample is 'resize'; set one")
    return "antialias" if antialias_up else upsample


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


def _output_widths(layers: Sequence[nn.Module], channels: int) -> list[int]:
    """Channels of each layer's output, for a chain of layers fed ``channels`` channels."""
    widths = []
    for layer in layers:
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            channels = layer.out_channels
        widths.append(channels)
    return widths


class ResnetGenerator(nn.Module):
    """ResNet generator: (B, 3, H, W) in [-1, 1] -> (B, 3, H, W) in [-1, 1], H and W multiples of 4.

    Args:
        n_blocks: residual blocks at the bottleneck (9 for ``resnet9``, 6 for ``resnet6``).
        ngf: filters of the first convolution; the bottleneck has ``4 * ngf``.
        norm: ``instance``, ``batch`` or ``none``.
        dropout: dropout 0.5 inside each residual block (CycleGAN uses none).
        padding: ``reflect``, ``replicate`` or ``zero`` padding inside the residual blocks.
        antialias: down-sample with a stride-1 convolution, norm, ReLU, then a blur-pool (CUT's default) instead
            of a stride-2 convolution.
        antialias_up: the same as ``upsample="antialias"`` (CUT's default).
        upsample: how the decoder doubles the resolution (see :data:`UPSAMPLING`): ``transpose``, a transposed
            convolution (the reference); ``resize``, bilinear up-sampling, reflect padding, a 3x3
            convolution; ``antialias``, a blurred transposed "convolution" then a 3x3 convolution. Each is followed
            by norm and ReLU. ``resize`` and ``antialias`` add no checkerboard pattern.
        guided_radius, guided_eps: with a radius > 0, the output passes through a guided filter guided by the
            input (:func:`i2i_core.layers.guided_filter`, White-box cartoonization's output filter: radius 1, eps
            1e-2): flat regions of the photo come out flat, its edges stay sharp. 0: none.
        outline_strength, outline_threshold, outline_sigma, outline_width: with a strength > 0, the output (after
            the guided filter) is inked with dark outlines along its own luminance edges
            (:func:`i2i_core.layers.outline`: thin lines ``outline_width`` px wide where the gradient of the
            output blurred by ``outline_sigma`` px peaks above about ``outline_threshold``, colours scaled by
            ``1 - outline_strength``); the network learns which edges to draw by making them stronger. 0: none.
        posterize_levels, posterize_chroma: with levels > 0, the output (after the outlines) is posterized
            (:func:`i2i_core.layers.posterize`: Lab lightness on that many levels, chroma a*, b* in steps of
            ``posterize_chroma``; gradients pass straight through): flat colour bands. 0: none.
        residual: output ``tanh(atanh(clamp(x, -1 + eps, 1 - eps)) + head(h))`` (see :func:`residual_output`)
            instead of ``tanh(head(h))``, with :attr:`head` (the last 7x7 convolution) initialised to zero: the
            untrained generator is the identity up to the clamp. :meth:`reset_identity` zeroes the head again;
            initialisers call it (:func:`i2i_core.layers.restore_identity_init`).

    Features (CUT's encoder features): layer ``i`` is the output of ``model[i]``, 0 the reflect-padded input.
    ``feature_layers`` are the input, both down-sampling convolutions and the first and fifth residual blocks:
    0, 4, 8, 12, 16 when anti-aliased (as reference CUT), 0, 4, 7, 10, 14 otherwise. With ``residual`` the last
    layer (``model[-1]``, the tanh) is the generator's output.

    Example:
        >>> net = ResnetGenerator(n_blocks=2, ngf=8)
        >>> net(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
        >>> net.feature_layers, net.feature_channels(net.feature_layers)
        ((0, 4, 7, 10, 11), [3, 16, 32, 32, 32])
    """

    size_multiple = 4

    def __init__(
        self,
        n_blocks: int = 9,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
        padding: str = "reflect",
        antialias: bool = False,
        antialias_up: bool = False,
        residual: bool = False,
        upsample: str = "transpose",
        guided_radius: int = 0,
        guided_eps: float = 1e-2,
        posterize_levels: int = 0,
        posterize_chroma: float = 10.0,
        outline_strength: float = 0.0,
        outline_threshold: float = 0.03,
        outline_sigma: float = 1.5,
        outline_width: int = 2,
    ) -> None:
        super().__init__()
        self.residual = residual
        upsample = upsampling(upsample, antialias_up)
        bias = conv_bias(norm)
        # As in the reference, the 7x7 convolutions are always reflection-padded; ``padding`` is for the blocks.
        layers: list[nn.Module] = [*_padded_conv(3, ngf, 7, "reflect", bias), norm_layer(norm, ngf), nn.ReLU(True)]
        channels, downs = ngf, []
        for _ in range(2):
            downs.append(len(layers))
            if antialias:
                conv = nn.Conv2d(channels, channels * 2, 3, padding=1, bias=bias)
                layers += [conv, norm_layer(norm, channels * 2), nn.ReLU(True), Downsample(channels * 2)]
            else:
                conv = nn.Conv2d(channels, channels * 2, 3, stride=2, padding=1, bias=bias)
                layers += [conv, norm_layer(norm, channels * 2), nn.ReLU(True)]
            channels *= 2
        first_block = len(layers)
        layers += [ResnetBlock(channels, norm, dropout, padding) for _ in range(n_blocks)]
        for _ in range(2):
            if upsample == "antialias":
                conv = nn.Conv2d(channels, channels // 2, 3, padding=1, bias=bias)
                layers += [Upsample(channels), conv, norm_layer(norm, channels // 2), nn.ReLU(True)]
            elif upsample == "resize":
                convs = _padded_conv(channels, channels // 2, 3, "reflect", bias)
                layers += [nn.Upsample(scale_factor=2, mode="bilinear"), *convs, norm_layer(norm, channels // 2)]
                layers.append(nn.ReLU(True))
            else:
                up = ConvTranspose2d(channels, channels // 2, 3, stride=2, padding=1, output_padding=1, bias=bias)
                layers += [up, norm_layer(norm, channels // 2), nn.ReLU(True)]
            channels //= 2
        layers += [*_padded_conv(channels, 3, 7, "reflect", True), nn.Tanh()]
        self.model = nn.Sequential(*layers)
        self._widths = _output_widths(layers, 3)
        blocks = (first_block, first_block + min(4, n_blocks - 1)) if n_blocks else ()
        #: CUT's default NCE layers: the padded input, both down-sampling convolutions, the first and fifth block
        self.feature_layers = tuple(dict.fromkeys((0, *downs, *blocks)))
        #: The output's guided filter, guided by the input (``guided_radius`` > 0), or ``None``.
        self.guided = GuidedFilter(guided_radius, guided_eps) if guided_radius else None
        #: The output's outlines (``outline_strength`` > 0), or ``None``.
        self.outline = (
            Outline(outline_strength, outline_threshold, outline_sigma, outline_width) if outline_strength else None
        )
        #: The output's posterization (``posterize_levels`` > 0), or ``None``.
        self.posterize = Posterize(posterize_levels, posterize_chroma) if posterize_levels else None
        init_reference_weights(self)  # ends with reset_identity()

    @property
    def head(self) -> nn.Conv2d:
        """The output convolution (7x7, to 3 channels), just before the tanh."""
        return self.model[-2]

    @torch.no_grad()
    def reset_identity(self) -> None:
        """With ``residual``, zero the head's weight and bias, which makes the generator the identity (up to the
        clamp); without, nothing. Draws no random numbers."""
        if self.residual:
            zero_head(self.head)

    def forward(self, x: torch.Tensor, draw: bool = True) -> torch.Tensor:
        """The translation of ``x``; with ``draw=False``, the network's colours before :meth:`draw` (after the
        guided filter): what a method compares with the photo while its discriminators judge the drawn output."""
        check_images(x, "generator input", self.size_multiple)
        y = self._translate(x)
        if self.guided is not None:
            y = self.guided(x, y).clamp(-1, 1)
        return self.draw(y) if draw else y

    def draw(self, y: torch.Tensor) -> torch.Tensor:
        """The drawing stages, without weights: outlines, then posterization (each when set; else ``y``)."""
        if self.outline is not None:
            y = self.outline(y)
        return y if self.posterize is None else self.posterize(y)

    def _translate(self, x: torch.Tensor) -> torch.Tensor:
        if not self.residual:
            return self.model(x)
        *layers, _tanh = self.model
        h = x
        for layer in layers:
            h = layer(h)
        return residual_output(x, h)

    def _check_layers(self, layers: Sequence[int]) -> None:
        bad = [i for i in layers if not isinstance(i, int) or not 0 <= i < len(self.model)]
        if not layers or bad:
            raise ValueError(
                f"feature layers must be indices into the generator's {len(self.model)} layers (0 to "
                f"{len(self.model) - 1}, e.g. {list(self.feature_layers)}), got {list(layers)}"
            )

    def feature_channels(self, layers: Sequence[int]) -> list[int]:
        """Channels of each of :meth:`features`' maps for ``layers``."""
        self._check_layers(layers)
        return [self._widths[i] for i in layers]

    def features(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The outputs of ``model[i]`` for each ``i`` in ``layers``: (B, C_i, H_i, W_i) each, in the order of
        ``layers``. Runs the network only as deep as the deepest layer asked for."""
        check_images(x, "generator input", self.size_multiple)
        self._check_layers(layers)
        wanted, last, found, image = set(layers), max(layers), {}, x
        for i, layer in enumerate(self.model[: last + 1]):
            x = residual_output(image, x) if self.residual and i == len(self.model) - 1 else layer(x)
            if i in wanted:
                # an in-place activation next would overwrite the feature
                found[i] = x.clone() if i < last and getattr(self.model[i + 1], "inplace", False) else x
        return [found[i] for i in layers]


def resnet9(
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    padding: str = "reflect",
    antialias: bool = False,
    antialias_up: bool = False,
    residual: bool = False,
    upsample: str = "transpose",
    guided_radius: int = 0,
    guided_eps: float = 1e-2,
    posterize_levels: int = 0,
    posterize_chroma: float = 10.0,
    outline_strength: float = 0.0,
    outline_threshold: float = 0.03,
    outline_sigma: float = 1.5,
    outline_width: int = 2,
) -> ResnetGenerator:
    """ResNet generator with 9 residual blocks (CycleGAN's default for 256x256 images).

    With ``antialias`` and ``antialias_up``, CUT's generator; with ``residual``, one that starts as the identity;
    with ``upsample="resize"`` or ``"antialias"``, one without checkerboard (see :class:`ResnetGenerator`)."""
    return ResnetGenerator(
        9,
        ngf,
        norm,
        dropout,
        padding,
        antialias,
        antialias_up,
        residual,
        upsample,
        guided_radius,
        guided_eps,
        posterize_levels,
        posterize_chroma,
        outline_strength,
        outline_threshold,
        outline_sigma,
        outline_width,
    )


def resnet6(
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
    padding: str = "reflect",
    antialias: bool = False,
    antialias_up: bool = False,
    residual: bool = False,
    upsample: str = "transpose",
    guided_radius: int = 0,
    guided_eps: float = 1e-2,
    posterize_levels: int = 0,
    posterize_chroma: float = 10.0,
    outline_strength: float = 0.0,
    outline_threshold: float = 0.03,
    outline_sigma: float = 1.5,
    outline_width: int = 2,
) -> ResnetGenerator:
    """ResNet generator with 6 residual blocks (CycleGAN's choice for 128x128 images).

    With ``residual``, one that starts as the identity; with ``upsample="resize"`` or ``"antialias"``, one without
    checkerboard (see :class:`ResnetGenerator`)."""
    return ResnetGenerator(
        6,
        ngf,
        norm,
        dropout,
        padding,
        antialias,
        antialias_up,
        residual,
        upsample,
        guided_radius,
        guided_eps,
        posterize_levels,
        posterize_chroma,
        outline_strength,
        outline_threshold,
        outline_sigma,
        outline_width,
    )
