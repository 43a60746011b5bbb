"""Building blocks shared by networks: normalisation and padding layers, reference weight init, input checks.

Plugin authors may use these so their networks behave like the first-party ones. :class:`InstanceNorm2d` and
:class:`ReflectionPad2d` compute what PyTorch's layers of the same names compute, but keep channels-last tensors
channels-last (PyTorch's make contiguous copies, forward and backward), and the padding has a faster backward.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from i2i_core.errors import I2IError

NORMS = ("instance", "batch", "none")


def _is_channels_last(x: torch.Tensor) -> bool:
    return x.ndim == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


class InstanceNorm2d(nn.InstanceNorm2d):
    """``nn.InstanceNorm2d`` (same options, state and results) that keeps a channels-last input channels-last.

    Example:
        >>> x = torch.randn(2, 8, 16, 16).contiguous(memory_format=torch.channels_last)
        >>> y = InstanceNorm2d(8)(x)
        >>> y.is_contiguous(memory_format=torch.channels_last), torch.allclose(y, F.instance_norm(x), atol=1e-5)
        (True, True)
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.affine or self.track_running_stats or not _is_channels_last(x):
            return super().forward(x)
        # for one image, instance norm is batch norm with batch statistics; batch norm runs channels-last
        per_image = [F.batch_norm(image, None, None, training=True, eps=self.eps) for image in x.split(1)]
        return per_image[0] if len(per_image) == 1 else torch.cat(per_image)


class _ReflectionPad2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
        ctx.padding = padding
        ctx.memory_format = torch.channels_last if _is_channels_last(x) else torch.contiguous_format
        return F.pad(x, padding, mode="reflect")

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        left, right, top, bottom = ctx.padding
        height, width = grad.shape[-2] - top - bottom, grad.shape[-1] - left - right
        # fold the padded columns back onto the columns they mirror, then the padded rows
        cols = grad[..., left : left + width].contiguous(memory_format=ctx.memory_format)
        for k in range(1, left + 1):
            cols[..., k] += grad[..., left - k]
        for k in range(1, right + 1):
            cols[..., width - 1 - k] += grad[..., left + width - 1 + k]
        out = cols[..., top : top + height, :].contiguous(memory_format=ctx.memory_format)
        for k in range(1, top + 1):
            out[..., k, :] += cols[..., top - k, :]
        for k in range(1, bottom + 1):
            out[..., height - 1 - k, :] += cols[..., top + height - 1 + k, :]
        return out, None


def reflection_pad2d(x: torch.Tensor, padding: tuple[int, int, int, int]) -> torch.Tensor:
    """``F.pad(x, padding, mode="reflect")`` for (B, C, H, W) with a faster backward that keeps the memory format.

    Args:
        x: (B, C, H, W).
        padding: (left, right, top, bottom), each smaller than the side it pads.

    Example:
        >>> reflection_pad2d(torch.arange(3.0).view(1, 1, 1, 3), (2, 1, 0, 0))
        tensor([[[[2., 1., 0., 1., 2., 1.]]]])
    """
    if not (torch.is_grad_enabled() and x.requires_grad):
        return F.pad(x, padding, mode="reflect")
    return _ReflectionPad2d.apply(x, tuple(padding))


class ReflectionPad2d(nn.ReflectionPad2d):
    """``nn.ReflectionPad2d`` computed by :func:`reflection_pad2d`."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return reflection_pad2d(x, self.padding)


class ConvTranspose2d(nn.ConvTranspose2d):
    """``nn.ConvTranspose2d`` (same options and state) that adds its bias as a separate operation when the bias
    needs a gradient: oneDNN's gradient of a transposed convolution's fused bias costs as much as the rest of its
    backward pass.

    Example:
        >>> up = ConvTranspose2d(4, 2, 3, stride=2, padding=1, output_padding=1)
        >>> up(torch.zeros(1, 4, 5, 5)).shape
        torch.Size([1, 2, 10, 10])
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        output_padding = self._output_padding(
            x, output_size, self.stride, self.padding, self.kernel_size, 2, self.dilation
        )
        fused = self.bias is None or not (torch.is_grad_enabled() and self.bias.requires_grad)
        y = F.conv_transpose2d(
            x,
            self.weight,
            self.bias if fused else None,
            self.stride,
            self.padding,
            output_padding,
            self.groups,
            self.dilation,
        )
        return y if fused else y + self.bias.view(1, -1, 1, 1)


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The reference CycleGAN's normalisation: ``instance`` (no affine, no running stats), ``batch`` or ``none``.

    Example:
        >>> layer = norm_layer("instance", 64)
        >>> type(layer).__name__, layer.affine, layer.track_running_stats
        ('InstanceNorm2d', False, False)
    """
    if norm == "instance":
        return InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "none":
        return nn.Identity()
    raise I2IError(f"unknown norm '{norm}'; choose one of {', '.join(NORMS)}")


def batch_independent(module: nn.Module) -> bool:
    """Whether ``module`` translates each image of a batch on its own, so that passes over several batches can run
    as one: no batch norm, whose statistics (in training) mix the images.

    Example:
        >>> batch_independent(nn.Sequential(nn.Conv2d(3, 8, 3), nn.InstanceNorm2d(8)))
        True
        >>> batch_independent(nn.Sequential(nn.Conv2d(3, 8, 3), nn.BatchNorm2d(8)))
        False
    """
    return not any(isinstance(layer, nn.modules.batchnorm._BatchNorm) for layer in module.modules())


def conv_bias(norm: str) -> bool:
    """Whether convolutions carry a bias: not before batch norm, whose shift makes it redundant."""
    return norm != "batch"


@torch.no_grad()
def init_reference_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """The reference initialisation: normal(0, std) on Conv/ConvTranspose/Linear weights, zero biases,
    normal(1, std) on batch-norm weights; then :func:`restore_identity_init`. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return restore_identity_init(module)


@torch.no_grad()
def restore_identity_init(module: nn.Module) -> nn.Module:
    """Re-apply the deliberate initialisation of ``module`` and its submodules: call ``reset_identity()`` on
    each that defines it, outermost first. Returns ``module``.

    The convention, for plugin authors: a module whose starting weights are chosen on purpose rather than drawn
    (a generator built with ``residual=True`` zeroes its output convolution so that it starts as the identity)
    defines a method ``reset_identity()`` that sets those weights again, in place. It must draw no random
    numbers (so the rest of the network gets the same weights for the same seed whether or not it runs) and
    work on the ``meta`` device (set values, read none); where the module has nothing to restore it does
    nothing. Every function that (re-)initialises a network's weights calls this function on the network
    last, so that a zero head survives it: :func:`init_reference_weights` does, and so does CUT's
    ``xavier_init``. A custom initialiser that loops over ``module.modules()`` should end the same way.

    Example:
        >>> class Zeroed(nn.Linear):
        ...     def reset_identity(self):
        ...         self.weight.zero_()
        >>> net = init_reference_weights(nn.Sequential(nn.Linear(2, 2), Zeroed(2, 2)))
        >>> bool(net[0].weight.any()), bool(net[1].weight.any())
        (True, False)
    """
    for m in module.modules():
        reset = getattr(m, "reset_identity", None)
        if callable(reset):
            reset()
    return module


def check_images(x: torch.Tensor, name: str = "input", multiple: int = 1) -> None:
    """Check that ``x`` is a (B, 3, H, W) floating tensor whose H and W are multiples of ``multiple``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor in [-1, 1], got {x.dtype}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"{name} height and width must be multiples of {multiple}, got {h}x{w}")


#: How far inside (-1, 1) a residual generator clamps its input before ``atanh``: an untrained one maps
#: x to clamp(x, -1 + eps, 1 - eps), within eps of x.
RESIDUAL_EPS = 1e-3


def residual_output(x: torch.Tensor, h: torch.Tensor, eps: float = RESIDUAL_EPS) -> torch.Tensor:
    """``tanh(atanh(clamp(x, -1 + eps, 1 - eps)) + h)``: the image ``x`` moved by ``h`` in atanh space, in (-1, 1).

    Computed in at least float32 (in bf16, 1 - eps rounds to 1, whose atanh is infinite) and returned in the
    dtype of ``h``.

    Example:
        >>> x = torch.tensor([-1.0, 0.0, 0.5, 1.0])
        >>> residual_output(x, torch.zeros(4))
        tensor([-0.9990,  0.0000,  0.5000,  0.9990])
    """
    dtype = torch.promote_types(torch.promote_types(x.dtype, h.dtype), torch.float32)
    x = x.to(dtype).clamp(-1 + eps, 1 - eps)
    base = 0.5 * (torch.log1p(x) - torch.log1p(-x))  # atanh, which ONNX exporters lack
    return torch.tanh(base + h.to(dtype)).to(h.dtype)


@torch.no_grad()
def zero_head(head: nn.Module) -> None:
    """Zero a residual generator's output convolution (weight and bias), which makes :func:`residual_output` the
    identity up to the clamp; for the generator's ``reset_identity()``. Draws no random numbers."""
    head.weight.zero_()
    if head.bias is not None:
        head.bias.zero_()


#: From this radius on, :func:`box_mean` sums running totals instead of pooling: a cost that does not grow with the
#: window (2.4x faster at radius 5 on a CPU, as fast at 2).
CUMULATIVE_BOX_RADIUS = 3


def _window_sums(x: torch.Tensor, radius: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Sums of ``x`` over each position's window of ``radius`` along ``dim`` (-1 or -2), clipped to the image, from
    differences of the running total; and each window's length."""
    n = x.shape[dim]
    total = F.pad(x.cumsum(dim), (0, 0, 1, 0) if dim == -2 else (1, 0))
    position = torch.arange(n, device=x.device)
    end, start = (position + radius + 1).clamp(max=n), (position - radius).clamp(min=0)
    return total.index_select(dim, end) - total.index_select(dim, start), (end - start).to(x.dtype)


def box_mean(x: torch.Tensor, radius: int) -> torch.Tensor:
    """The mean of each pixel's (2 radius + 1)^2 window, over the pixels inside the image: (B, C, H, W) -> same.

    Example:
        >>> box_mean(torch.arange(4.0).view(1, 1, 1, 4), 1)
        tensor([[[[0.5000, 1.0000, 2.0000, 2.5000]]]])
    """
    if radius < CUMULATIVE_BOX_RADIUS:
        return F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
    rows, widths = _window_sums(x, radius, -1)
    sums, heights = _window_sums(rows, radius, -2)
    return sums / (heights[:, None] * widths[None, :])


def guided_filter(guide: torch.Tensor, image: torch.Tensor, radius: int, eps: float) -> torch.Tensor:
    """He et al.'s guided filter, channel by channel: ``image`` smoothed where ``guide`` is flat, its edges kept
    where ``guide`` has edges. Each output pixel is ``a * guide + b``, with ``a``, ``b`` the windows' least-squares
    fit of ``image`` to ``guide`` (``eps`` penalising ``a``), averaged over the windows that hold the pixel.
    ``guide is image`` gives an edge-preserving self-smoothing (large ``eps``: flatter).

    Args:
        guide: (B, C, H, W), or (B, 1, H, W) to guide every channel alike.
        image: (B, C, H, W).
        radius: window radius in pixels (the window is 2 radius + 1 wide); eps: regularisation, in the squared
            units of ``guide`` (images in [-1, 1]: 1e-2 keeps most edges, 0.2 flattens all but strong ones).

    Returns:
        (B, C, H, W), computed in at least float32 and returned in ``image``'s dtype.

    Example:
        >>> flat = torch.full((1, 3, 8, 8), 0.25)
        >>> bool(torch.allclose(guided_filter(torch.rand(1, 3, 8, 8), flat, 2, 1e-2), flat))
        True
    """
    check_images(image, "guided_filter image")
    if guide.ndim != 4 or guide.shape[0] != image.shape[0] or guide.shape[-2:] != image.shape[-2:]:
        raise ValueError(
            f"guided_filter guide must be (B, 1 or C, H, W) like image {tuple(image.shape)}, got {tuple(guide.shape)}"
        )
    # in at least float32 and channels-first: on a CPU, box means of a few channels run 3.6x faster so (radius 5)
    dtype, contiguous = torch.promote_types(image.dtype, torch.float32), torch.contiguous_format
    g, p = guide.to(dtype, memory_format=contiguous), image.to(dtype, memory_format=contiguous)
    mean_g, mean_p = box_mean(g, radius), box_mean(p, radius)
    a = (box_mean(g * p, radius) - mean_g * mean_p) / (box_mean(g * g, radius) - mean_g * mean_g + eps)
    b = mean_p - a * mean_g
    layout = torch.channels_last if _is_channels_last(image) else contiguous
    return (box_mean(a, radius) * g + box_mean(b, radius)).to(image.dtype, memory_format=layout)


def posterize(images: torch.Tensor, levels: int = 10, chroma_step: float = 10.0) -> torch.Tensor:
    """A cartoon's flat palette: each pixel's CIE Lab lightness rounded to one of ``levels`` values evenly spaced
    over 0..100 and its chroma a*, b* to multiples of ``chroma_step``, then back to RGB (clipped to the gamut).
    Smooth shading becomes flat bands; edges stay where they are. The gradient passes straight through (as if
    the rounding were the identity), so a network trained through it learns the regions and colours and the
    rounding makes them flat.

    Args:
        images: (B, 3, H, W) in [-1, 1].
        levels: lightness levels (>= 2); chroma_step: a*, b* step in Lab units (> 0).

    Returns:
        (B, 3, H, W) in [-1, 1], in ``images``' dtype, at most ``levels`` lightness values per hue.

    Example:
        >>> ramp = torch.linspace(-1, 1, 64).view(1, 1, 1, 64).expand(1, 3, 8, 64)  # a grey ramp
        >>> len(posterize(ramp, levels=4)[0, 0].unique())
        4
    """
    import kornia  # imported here: the CLI starts without it

    check_images(images, "posterize images")
    lab = kornia.color.rgb_to_lab(((images.float() + 1) / 2).clamp(0, 1))
    lightness = (lab[:, :1] * ((levels - 1) / 100)).round() * (100 / (levels - 1))
    chroma = (lab[:, 1:] / chroma_step).round() * chroma_step
    flat = (kornia.color.lab_to_rgb(torch.cat([lightness, chroma], 1)) * 2 - 1).to(images.dtype)
    return flat if not images.requires_grad else images + (flat - images).detach()


class Posterize(nn.Module):
    """:func:`posterize` as a module: ``Posterize(levels, chroma_step)(images)``.

    Example:
        >>> Posterize(8, 12.0)(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, levels: int, chroma_step: float) -> None:
        super().__init__()
        if levels < 2 or chroma_step <= 0:
            raise ValueError(f"posterize levels must be >= 2 and chroma_step > 0, got {levels} and {chroma_step}")
        self.levels, self.chroma_step = levels, chroma_step

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return posterize(images, self.levels, self.chroma_step)

    def extra_repr(self) -> str:
        return f"levels={self.levels}, chroma_step={self.chroma_step}"


class GuidedFilter(nn.Module):
    """:func:`guided_filter` as a module: ``GuidedFilter(radius, eps)(guide, image)``.

    Example:
        >>> GuidedFilter(1, 1e-2)(torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, radius: int, eps: float) -> None:
        super().__init__()
        if radius < 1 or eps <= 0:
            raise ValueError(f"guided filter radius must be >= 1 and eps > 0, got radius {radius} and eps {eps}")
        self.radius, self.eps = radius, eps

    def forward(self, guide: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        return guided_filter(guide, image, self.radius, self.eps)

    def extra_repr(self) -> str:
        return f"radius={self.radius}, eps={self.eps}"


def _gaussian_kernel(sigma: float, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """A normalised 1-D Gaussian of ``2 * round(2 sigma) + 1`` taps."""
    half = max(1, round(2 * sigma))
    taps = torch.arange(-half, half + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (taps / sigma) ** 2)
    return kernel / kernel.sum()


def _shifted(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """``x`` moved so that each pixel holds its neighbour at (y + dy, x + dx); edges replicated."""
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="replicate")
    return padded[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]


def _check_outline_shape(threshold: float, sigma: float, width: int) -> None:
    if threshold <= 0 or sigma <= 0 or width < 1:
        raise ValueError(f"outline threshold and sigma must be > 0 and width >= 1, got {threshold}, {sigma}, {width}")


def _check_outline_strength(strength: float) -> None:
    if not 0 < strength <= 1:
        raise ValueError(f"outline strength must be in (0, 1], got {strength}")


def outline_mask(images: torch.Tensor, threshold: float = 0.03, sigma: float = 1.5, width: int = 2) -> torch.Tensor:
    """Where a cartoon would ink an outline: thin lines along the luminance edges of ``images``, ``width`` px wide.

    The luminance is blurred by a Gaussian of ``sigma`` px; its Sobel gradient magnitude (on the 0..1 scale, per
    pixel) is kept only where it is a maximum across the edge (non-maximum suppression in four directions, as
    Canny's: one-pixel lines), then soft-thresholded (0 below half the ``threshold``, 1 above 1.5 times it,
    linear between) and widened
    to ``width`` px by a maximum filter. Differentiable where a line is kept: a network before it learns which
    edges to draw by making them stronger or weaker. Exportable to ONNX (no ``atan2``).

    Args:
        images: (B, 3, H, W) in [-1, 1].
        threshold: gradient magnitude of an edge half inked (> 0); sigma: pre-blur in px (> 0); width: >= 1 px.

    Returns:
        (B, 1, H, W) in [0, 1], in float32 or wider.

    Example:
        >>> step = torch.full((1, 3, 16, 16), -0.8)
        >>> step[..., 8:] = 0.8  # a vertical edge between columns 7 and 8
        >>> mask = outline_mask(step)
        >>> [round(v, 2) for v in mask[0, 0, 8, 5:11].tolist()]
        [0.0, 0.0, 1.0, 1.0, 0.0, 0.0]
    """
    check_images(images, "outline images")
    _check_outline_shape(threshold, sigma, width)
    x = (images.to(torch.promote_types(images.dtype, torch.float32)) + 1) / 2
    luma = (x[:, :1] * 0.299 + x[:, 1:2] * 0.587 + x[:, 2:] * 0.114).contiguous()
    kernel = _gaussian_kernel(sigma, luma.dtype, luma.device)
    half = kernel.numel() // 2
    luma = F.conv2d(F.pad(luma, (half, half, 0, 0), mode="replicate"), kernel.view(1, 1, 1, -1))
    luma = F.conv2d(F.pad(luma, (0, 0, half, half), mode="replicate"), kernel.view(1, 1, -1, 1))
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], dtype=luma.dtype) / 8
    kernels = torch.stack([sobel, sobel.t()]).unsqueeze(1).to(luma.device)
    gradient = F.conv2d(F.pad(luma, (1, 1, 1, 1), mode="replicate"), kernels)
    gx, gy = gradient[:, :1], gradient[:, 1:]
    magnitude = torch.sqrt(gx * gx + gy * gy + 1e-12)
    # Non-maximum suppression across the edge: the gradient's direction to the nearest of 0, 45, 90, 135 degrees.
    ax, ay, tan22 = gx.abs(), gy.abs(), 0.41421356
    across_x, across_y = ay <= tan22 * ax, ax <= tan22 * ay
    diagonal = gx * gy > 0
    neighbours = {
        (0, 1): across_x,
        (1, 0): across_y,
        (1, 1): ~across_x & ~across_y & diagonal,
        (1, -1): ~across_x & ~across_y & ~diagonal,
    }
    peak = torch.zeros_like(magnitude, dtype=torch.bool)
    for (dy, dx), selected in neighbours.items():
        is_max = (magnitude >= _shifted(magnitude, dy, dx)) & (magnitude >= _shifted(magnitude, -dy, -dx))
        peak = peak | (selected & is_max)
    lines = (magnitude / threshold - 0.5).clamp(0, 1) * peak
    if width > 1:
        before = (width - 1) // 2
        lines = F.max_pool2d(F.pad(lines, (before, width - 1 - before, before, width - 1 - before)), width, stride=1)
    return lines


def outline(
    images: torch.Tensor, strength: float = 0.85, threshold: float = 0.03, sigma: float = 1.5, width: int = 2
) -> torch.Tensor:
    """Ink a cartoon's dark outlines onto ``images``: each colour scaled by ``1 - strength * mask`` (see
    :func:`outline_mask` for the other arguments). (B, 3, H, W) in [-1, 1] -> same, in ``images``' dtype.

    Example:
        >>> step = torch.full((1, 3, 16, 16), -0.8)
        >>> step[..., 8:] = 0.8
        >>> inked = outline(step, strength=1.0)
        >>> [round(v, 1) for v in inked[0, 0, 8, 6:10].tolist()]
        [-0.8, -1.0, -1.0, 0.8]
    """
    _check_outline_strength(strength)
    mask = outline_mask(images, threshold, sigma, width)
    inked = (images.to(mask.dtype) + 1) * (1 - strength * mask) - 1
    return inked.to(images.dtype)


class Outline(nn.Module):
    """:func:`outline` as a module: ``Outline(strength, threshold, sigma, width)(images)``.

    Example:
        >>> Outline(0.85)(torch.zeros(1, 3, 8, 8)).shape
        torch.Size([1, 3, 8, 8])
    """

    def __init__(self, strength: float, threshold: float = 0.03, sigma: float = 1.5, width: int = 2) -> None:
        super().__init__()
        _check_outline_strength(strength)
        _check_outline_shape(threshold, sigma, width)
        self.strength, self.threshold, self.sigma, self.width = strength, threshold, sigma, width

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return outline(images, self.strength, self.threshold, self.sigma, self.width)

    def extra_repr(self) -> str:
        return f"strength={self.strength}, threshold={self.threshold}, sigma={self.sigma}, width={self.width}"
