"""U-Net generators of pix2pix / CycleGAN (Isola et al., 2017, https://arxiv.org/abs/1611.07004).

Built from nested skip blocks, innermost first. The module layout (and so every state-dict key) matches the
reference implementation, so reference checkpoints load as they are.

With ``residual=True`` the generator changes its input instead of drawing a new image: the output is
``tanh(atanh(clamp(x, -1 + eps, 1 - eps)) + head(h))``, ``head`` the outermost up-sampling (transposed)
convolution, which starts at zero, so that an untrained generator is the identity (up to the clamp, eps =
:data:`i2i_core.layers.RESIDUAL_EPS`). Same layout, same state-dict keys and the same other weights for the same seed as without.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from i2i_resnet.antialias import Upsample
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

#: How each level doubles the resolution: a 4x4 transposed convolution (the reference), bilinear resize
#: then a 3x3 convolution (resize-convolution, Odena et al. 2016), or CUT's blurred up-sampling then a 3x3
#: convolution. The last two draw no checkerboard.
UPSAMPLING = ("transpose", "resize", "antialias")


def up_convolution(upsample: str, in_channels: int, out_channels: int, bias: bool) -> nn.Module:
    """A level's up-sampling convolution: (B, in, H, W) -> (B, out, 2H, 2W). ``resize`` and ``antialias`` are a
    ``Sequential`` whose last module is the convolution."""
    if upsample == "transpose":
        return ConvTranspose2d(in_channels, out_channels, 4, stride=2, padding=1, bias=bias)
    if upsample not in UPSAMPLING:
        raise ValueError(f"unknown upsample '{upsample}'; choose one of {', '.join(UPSAMPLING)}")
    up = Upsample(in_channels) if upsample == "antialias" else nn.Upsample(scale_factor=2, mode="bilinear")
    return nn.Sequential(up, ReflectionPad2d(1), nn.Conv2d(in_channels, out_channels, 3, bias=bias))


class UnetSkipBlock(nn.Module):
    """One U-Net level: down-sample, the inner levels, up-sample, then join the skip on channels.

    (B, outer, H, W) -> (B, 2 * outer, H, W), or -> (B, out, H, W) for the outermost block.
    """

    def __init__(
        self,
        outer: int,
        inner: int,
        submodule: nn.Module | None = None,
        in_channels: int | None = None,
        outermost: bool = False,
        norm: str = "instance",
        dropout: bool = False,
        upsample: str = "transpose",
    ) -> None:
        super().__init__()
        self.outermost, self.innermost, self.inner = outermost, submodule is None, inner
        bias = conv_bias(norm)
        in_channels = outer if in_channels is None else in_channels
        up_in = inner if submodule is None else inner * 2
        down_conv = nn.Conv2d(in_channels, inner, 4, stride=2, padding=1, bias=bias)
        if outermost:
            up_conv = up_convolution(upsample, up_in, outer, bias=True)
            layers = [down_conv, submodule, nn.ReLU(True), up_conv, nn.Tanh()]
        else:
            # In place, as in the reference: the activation rewrites the block input, so the skip carries
            # LeakyReLU(x) rather than x. Reference weights depend on it.
            down = [nn.LeakyReLU(0.2, True), down_conv]
            if submodule is not None:
                down += [norm_layer(norm, inner), submodule]
            up_conv = up_convolution(upsample, up_in, outer, bias)
            layers = [*down, nn.ReLU(True), up_conv, norm_layer(norm, outer)]
            if dropout:
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)
        #: ``model[:down_layers]`` down-samples; the inner levels (or the up path) follow
        self.down_layers = 1 if outermost else 2 if submodule is None else 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.outermost:
            return self.model(x)
        return torch.cat([x, self.model(x)], 1)

    def down(self, x: torch.Tensor) -> torch.Tensor:
        """This level's down-sampling: (B, outer, H, W) -> (B, inner, H/2, W/2), normalised unless innermost.
        ``x`` is left as it is (the in-place LeakyReLU runs on a copy)."""
        return self.model[: self.down_layers](x if self.outermost else x.clone())


class UnetGenerator(nn.Module):
    """U-Net generator: (B, 3, H, W) in [-1, 1] -> (B, 3, H, W) in [-1, 1], H and W multiples of 2^num_downs.

    Args:
        num_downs: down-samplings (7 for ``unet128``, 8 for ``unet256``); at least 5.
        ngf: filters of the outermost level; levels have ngf, 2ngf, 4ngf, then 8ngf.
        norm: ``instance``, ``batch`` or ``none``.
        dropout: dropout 0.5 in the 8ngf levels below the innermost.
        upsample: how each level doubles the resolution (see :data:`UPSAMPLING`): ``transpose`` (the reference),
            ``resize`` or ``antialias``; the last two add no checkerboard pattern.
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
            instead of ``tanh(head(h))``, with :attr:`head` (the outermost up-sampling convolution) initialised to
            zero: the untrained generator is the identity up to the clamp. :meth:`reset_identity` zeroes the head
            again; initialisers call it (:func:`i2i_core.layers.restore_identity_init`).

    Features (CUT's encoder features): layer 0 is the input, layer ``k`` (1 to ``num_downs``) the output of the
    ``k``-th down-sampling, at 1/2^k of the input size.

    Example:
        >>> net = UnetGenerator(num_downs=5, ngf=4)
        >>> net(torch.zeros(1, 3, 32, 32)).shape
        torch.Size([1, 3, 32, 32])
        >>> [tuple(f.shape[1:]) for f in net.features(torch.zeros(1, 3, 32, 32), [0, 2])], net.feature_channels([5])
        ([(3, 32, 32), (8, 8, 8)], [32])
    """

    #: CUT's default NCE layers: the input and the first four down-samplings.
    feature_layers = (0, 1, 2, 3, 4)

    def __init__(
        self,
        num_downs: int = 8,
        ngf: int = 64,
        norm: str = "instance",
        dropout: bool = False,
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
        if num_downs < 5:
            raise ValueError(f"num_downs must be at least 5, got {num_downs}")
        self.size_multiple = 2**num_downs
        self.residual = residual
        level = {"norm": norm, "upsample": upsample}
        block = UnetSkipBlock(ngf * 8, ngf * 8, **level)
        for _ in range(num_downs - 5):
            block = UnetSkipBlock(ngf * 8, ngf * 8, block, dropout=dropout, **level)
        block = UnetSkipBlock(ngf * 4, ngf * 8, block, **level)
        block = UnetSkipBlock(ngf * 2, ngf * 4, block, **level)
        block = UnetSkipBlock(ngf, ngf * 2, block, **level)
        self.model = UnetSkipBlock(3, ngf, block, in_channels=3, outermost=True, **level)
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
    def head(self) -> nn.Module:
        """The output convolution (the outermost level's up-sampling convolution, to 3 channels), before the tanh."""
        up = self.model.model[-2]
        return up[-1] if isinstance(up, nn.Sequential) else up

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
        *layers, _tanh = self.model.model  # the outermost level has no skip: down, inner levels, ReLU, head, tanh
        h = x
        for layer in layers:
            h = layer(h)
        return residual_output(x, h)

    def _levels(self) -> list[UnetSkipBlock]:
        """The skip blocks, outermost first."""
        levels = [self.model]
        while not levels[-1].innermost:
            levels.append(levels[-1].model[levels[-1].down_layers])
        return levels

    def _check_layers(self, layers: Sequence[int]) -> None:
        depth = len(self._levels())
        bad = [i for i in layers if not isinstance(i, int) or not 0 <= i <= depth]
        if not layers or bad:
            raise ValueError(
                f"feature layers must be 0 (the input) to {depth} (the {depth} down-samplings), e.g. "
                f"{list(self.feature_layers)}, got {list(layers)}"
            )

    def feature_channels(self, layers: Sequence[int]) -> list[int]:
        """Channels of each of :meth:`features`' maps for ``layers``."""
        self._check_layers(layers)
        widths = [3, *(level.inner for level in self._levels())]
        return [widths[i] for i in layers]

    def features(self, x: torch.Tensor, layers: Sequence[int]) -> list[torch.Tensor]:
        """The input (layer 0) and the down-sampled maps (layers 1 to ``num_downs``): (B, C_k, H/2^k, W/2^k) for
        each ``k`` in ``layers``, in their order. Runs only the down path, as deep as asked for."""
        check_images(x, "generator input", self.size_multiple)
        self._check_layers(layers)
        found = [x]
        for level in self._levels()[: max(layers)]:
            found.append(level.down(found[-1]))
        return [found[i] for i in layers]


def unet128(
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
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
) -> UnetGenerator:
    """U-Net generator with 7 down-samplings (inputs a multiple of 128).

    With ``residual``, one that starts as the identity; with ``upsample="resize"`` or ``"antialias"``, one without
    checkerboard (see :class:`UnetGenerator`)."""
    return UnetGenerator(
        7,
        ngf,
        norm,
        dropout,
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


def unet256(
    ngf: int = 64,
    norm: str = "instance",
    dropout: bool = False,
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
) -> UnetGenerator:
    """U-Net generator with 8 down-samplings (inputs a multiple of 256).

    With ``residual``, one that starts as the identity; with ``upsample="resize"`` or ``"antialias"``, one without
    checkerboard (see :class:`UnetGenerator`)."""
    return UnetGenerator(
        8,
        ngf,
        norm,
        dropout,
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
