"""The sliced Wasserstein distance between two equally large point sets, shared by ``swd`` and ``lab``."""

from __future__ import annotations

import torch


def random_directions(dim: int, count: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random unit vectors, uniform on the sphere of ``dim`` dimensions: (dim, count) float32 on the CPU."""
    d = torch.randn(dim, count, generator=generator, dtype=torch.float32)
    return d / d.norm(dim=0, keepdim=True)


def sliced_wasserstein(a: torch.Tensor, b: torch.Tensor, directions: torch.Tensor) -> torch.Tensor:
    """The sliced Wasserstein-1 distance: ``mean |sort(a @ u) - sort(b @ u)|`` over points and directions ``u``.

    Each direction's term is the exact 1-D Wasserstein-1 distance between the two point sets projected onto it.

    Args:
        a, b: (n, D) point sets of the same size.
        directions: (D, K) unit directions, one per column.

    Returns:
        The distance, a float32 scalar tensor on the points' device.

    Example:
        >>> a = torch.zeros(4, 2)
        >>> sliced_wasserstein(a, a + torch.tensor([3.0, 0.0]), torch.eye(2))  # shifted by 3 along the first axis
        tensor(1.5000)
    """
    if a.ndim != 2 or a.shape != b.shape or directions.shape[0] != a.shape[1]:
        raise ValueError(
            f"sliced_wasserstein: expected two (n, D) sets of one shape and (D, K) directions, got "
            f"{tuple(a.shape)}, {tuple(b.shape)} and {tuple(directions.shape)}"
        )
    u = directions.to(a.device, torch.float32)
    proj_a = (a.to(torch.float32) @ u).sort(dim=0).values
    proj_b = (b.to(torch.float32) @ u).sort(dim=0).values
    return (proj_a - proj_b).abs().mean()
