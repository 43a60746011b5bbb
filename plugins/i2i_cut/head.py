"""CUT's patch head ``patch-mlp``: embeds sampled encoder features for the PatchNCE loss."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

#: Channels of ResNet-9's default feature layers (0, 4, 8, 12, 16), ngf 64: the head's default widths.
RESNET9_CHANNELS = (3, 128, 256, 256, 256)


def l2_normalize(x: torch.Tensor, eps: float = 1e-7) -> torch.Tensor:
    """Each row divided by its L2 norm plus ``eps``: (N, D) -> (N, D).

    Example:
        >>> l2_normalize(torch.tensor([[3.0, 4.0]]), eps=0.0)
        tensor([[0.6000, 0.8000]])
    """
    return x / (x.norm(p=2, dim=-1, keepdim=True) + eps)


class PatchMLP(nn.Module):
    """One two-layer MLP per feature layer (Linear(C_l, nc), ReLU, Linear(nc, nc)), each row then L2-normalised:
    a list of (N, C_l) -> a list of (N, nc). Keys ``mlp_<l>.0.weight``... as reference CUT's patch head.

    Example:
        >>> head = PatchMLP([3, 8], nc=16)
        >>> [tuple(e.shape) for e in head([torch.rand(5, 3), torch.rand(5, 8)])]
        [(5, 16), (5, 16)]
    """

    def __init__(self, channels: Sequence[int], nc: int = 256) -> None:
        super().__init__()
        if not channels:
            raise ValueError("patch-mlp needs the channels of at least one feature layer")
        self.channels, self.nc = tuple(channels), nc
        for i, width in enumerate(self.channels):
            self.add_module(f"mlp_{i}", nn.Sequential(nn.Linear(width, nc), nn.ReLU(), nn.Linear(nc, nc)))

    def forward(self, features: Sequence[torch.Tensor]) -> list[torch.Tensor]:
        if len(features) != len(self.channels):
            raise ValueError(f"patch-mlp has {len(self.channels)} feature layers, got {len(features)} feature tensors")
        return [l2_normalize(getattr(self, f"mlp_{i}")(x)) for i, x in enumerate(features)]


def patch_mlp(channels: Sequence[int] = RESNET9_CHANNELS, nc: int = 256) -> PatchMLP:
    """CUT's patch head: a two-layer MLP per feature layer, L2-normalised embeddings of nc dimensions.

    Args:
        channels: the widths of the generator's feature layers (a method sets them from its generator).
        nc: embedding dimensions.
    """
    return PatchMLP(channels, nc)
