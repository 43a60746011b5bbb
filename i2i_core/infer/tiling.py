"""Running a generator on images of any size: padding to its size multiple, tiles with blended overlaps, and
instance-normalisation statistics shared by every tile.

Instance normalisation computes per-image statistics; run per tile, each tile would get its own colours. So the
generator first runs once on the whole image, downscaled to at most ``stats_side`` pixels a side, recording the
mean and variance of every instance-norm layer; the tiles then run at full resolution with those statistics.
Overlapping tiles are blended with a raised-cosine window so no seam shows.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from typing import TypeVar

import torch
import torch.nn.functional as F
from torch import nn

N = TypeVar("N", bound=nn.Module)


class SharedStatsInstanceNorm(nn.Module):
    """Instance norm that either records its input's statistics (``mode="record"``) or normalises with the
    recorded ones (``mode="replay"``). Stands in for an ``nn.InstanceNorm2d`` without affine parameters."""

    def __init__(self, norm: nn.InstanceNorm2d) -> None:
        super().__init__()
        self.original, self.eps = norm, norm.eps
        self.mode = "record"
        self.mean: torch.Tensor | None = None
        self.var: torch.Tensor | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.mode == "record":
            var, mean = torch.var_mean(x.float(), dim=(2, 3), keepdim=True, correction=0)
            self.mean, self.var = mean, var
        out = (x.float() - self.mean) * torch.rsqrt(self.var + self.eps)
        return out.to(x.dtype)


def is_per_image_norm(module: nn.Module) -> bool:
    """Whether ``module`` is an instance norm that takes its statistics from each image (no affine parameters, no
    running statistics): the layers tiling and video windows share statistics for."""
    return isinstance(module, nn.InstanceNorm2d) and not module.affine and not module.track_running_stats


@contextlib.contextmanager
def swap_instance_norms(net: nn.Module, make: Callable[[nn.InstanceNorm2d], N]) -> Iterator[list[N]]:
    """Replace every affine-free ``nn.InstanceNorm2d`` of ``net`` by ``make(norm)`` while the context lasts;
    yields the replacements (each keeps the norm it stands for as ``original``)."""
    swapped: list[tuple[nn.Module, str, N]] = []
    for parent in list(net.modules()):
        for name, child in list(parent.named_children()):
            if is_per_image_norm(child):
                replacement = make(child)
                setattr(parent, name, replacement)
                swapped.append((parent, name, replacement))
    try:
        yield [replacement for _, _, replacement in swapped]
    finally:
        for parent, name, replacement in swapped:
            setattr(parent, name, replacement.original)


def shared_instance_norm(net: nn.Module) -> contextlib.AbstractContextManager[list[SharedStatsInstanceNorm]]:
    """Swap every affine-free ``nn.InstanceNorm2d`` of ``net`` for a :class:`SharedStatsInstanceNorm` while
    the context lasts; yields the replacements."""
    return swap_instance_norms(net, SharedStatsInstanceNorm)


def pad_to_multiple(x: torch.Tensor, multiple: int) -> tuple[torch.Tensor, tuple[int, int]]:
    """Pad (B, C, H, W) at the bottom and right to multiples of ``multiple`` (reflection where the image is
    large enough, else replication); returns the padded tensor and the original (H, W)."""
    h, w = x.shape[-2:]
    pad_h, pad_w = -h % multiple, -w % multiple
    if pad_h or pad_w:
        mode = "reflect" if pad_h < h and pad_w < w else "replicate"
        x = F.pad(x, (0, pad_w, 0, pad_h), mode=mode)
    return x, (h, w)


def _starts(length: int, tile: int, overlap: int, multiple: int) -> list[int]:
    """Tile origins along one axis: multiples of ``multiple``, covering ``length``, overlapping by >= overlap."""
    if length <= tile:
        return [0]
    stride = max(multiple, (tile - overlap) // multiple * multiple)
    count = math.ceil((length - tile) / stride) + 1
    starts = [min(i * stride, length - tile) for i in range(count)]
    return sorted({s - s % multiple for s in starts})


def _ramp(length: int, overlap: int, at_start: bool, at_end: bool) -> torch.Tensor:
    """1-D blending weights: raised-cosine ramps over ``overlap`` pixels at the edges shared with other tiles."""
    weight = torch.ones(length)
    if overlap > 0:
        ramp = 0.5 - 0.5 * torch.cos(torch.linspace(0, math.pi, overlap + 2)[1:-1])
        if not at_start:
            weight[:overlap] = ramp
        if not at_end:
            weight[-overlap:] = torch.minimum(weight[-overlap:], ramp.flip(0))
    return weight


def run_tiled(
    generator: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    tile: int,
    overlap: int,
    multiple: int,
) -> torch.Tensor:
    """Apply ``generator`` to (1, 3, H, W) ``x`` tile by tile (H, W multiples of ``multiple``) and blend.

    The output is accumulated on ``x``'s device in fp32; each tile is ``tile`` x ``tile`` pixels (rounded down
    to the multiple) and overlaps its neighbours by ``overlap`` pixels.
    """
    _, _, h, w = x.shape
    tile = max(multiple, tile // multiple * multiple)
    overlap = min(overlap, tile // 2)
    out = torch.zeros(1, 3, h, w, device=x.device)
    total = torch.zeros(1, 1, h, w, device=x.device)
    rows, cols = _starts(h, tile, overlap, multiple), _starts(w, tile, overlap, multiple)
    for top in rows:
        for left in cols:
            th, tw = min(tile, h - top), min(tile, w - left)
            y = generator(x[:, :, top : top + th, left : left + tw]).float()
            wy = _ramp(th, overlap, top == 0, top + th >= h)
            wx = _ramp(tw, overlap, left == 0, left + tw >= w)
            weight = (wy[:, None] * wx[None, :]).to(x.device)
            out[:, :, top : top + th, left : left + tw] += y * weight
            total[:, :, top : top + th, left : left + tw] += weight
    return out / total


@torch.no_grad()
def translate_tensor(
    net: nn.Module,
    x: torch.Tensor,
    tile: int | None = None,
    overlap: int = 32,
    stats_side: int = 1024,
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext,
    prepare: Callable[[torch.Tensor], torch.Tensor] = lambda t: t,
) -> torch.Tensor:
    """Translate (N, 3, H, W) images in [-1, 1] at full resolution; ``tile`` enables tiling (N = 1 only).

    The image is padded to the generator's ``size_multiple`` and the output cropped back to H x W (fp32).
    ``prepare`` turns each (fp32) input of the generator into what it takes (its dtype and memory format).
    """
    multiple = getattr(net, "size_multiple", 1)
    padded, (h, w) = pad_to_multiple(x, multiple)
    if tile is None or (padded.shape[-2] <= tile and padded.shape[-1] <= tile):
        with autocast():
            return net(prepare(padded))[..., :h, :w].float()
    with shared_instance_norm(net) as norms:
        scale = min(1.0, stats_side / max(h, w))
        small = padded
        if scale < 1.0:
            size = [max(multiple, round(s * scale / multiple) * multiple) for s in padded.shape[-2:]]
            small = F.interpolate(padded, size=size, mode="bilinear", antialias=True, align_corners=False)
        with autocast():
            net(prepare(small))  # records every instance-norm layer's statistics over the whole image
        for norm in norms:
            norm.mode = "replay"

        def run(t: torch.Tensor) -> torch.Tensor:
            with autocast():
                return net(prepare(t))

        return run_tiled(run, padded, tile, overlap, multiple)[..., :h, :w]
