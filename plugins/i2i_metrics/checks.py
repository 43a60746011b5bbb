"""Input checks shared by the metrics, and the mapping of images from [-1, 1] to [0, 1]."""

from __future__ import annotations

import torch


def _describe(x: object) -> str:
    if isinstance(x, torch.Tensor):
        return f"a {x.dtype} tensor of shape {tuple(x.shape)}"
    return f"a {type(x).__name__}"


def check_images(x: torch.Tensor, name: str = "images", min_size: int = 1, min_count: int = 1) -> None:
    """Raise ValueError unless ``x`` is a floating (N, 3, H, W) tensor with N >= ``min_count``, H, W >= ``min_size``."""
    if not isinstance(x, torch.Tensor) or not x.is_floating_point() or x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name}: expected float RGB images of shape (N, 3, H, W), got {_describe(x)}")
    if x.shape[0] < min_count:
        raise ValueError(f"{name}: needs at least {min_count} images, got {x.shape[0]}")
    if min(x.shape[-2:]) < min_size:
        raise ValueError(f"{name}: images must be at least {min_size}x{min_size} pixels, got {tuple(x.shape[-2:])}")


def check_pairs(x: torch.Tensor, y: torch.Tensor, min_size: int = 1) -> None:
    """Raise ValueError unless ``x`` and ``y`` are (N, 3, H, W) images of one shape (image ``i`` pairs with ``i``)."""
    check_images(x, "x", min_size)
    check_images(y, "y", min_size)
    if x.shape != y.shape:
        raise ValueError(
            f"a paired metric needs x and y of the same shape (same N and size), got {tuple(x.shape)} "
            f"and {tuple(y.shape)}"
        )


def to_unit(x: torch.Tensor) -> torch.Tensor:
    """Images in [-1, 1] as float32 in [0, 1] (``(x + 1) / 2``, not clamped); a new tensor, ``x`` is left as is."""
    return (x.detach().to(torch.float32) + 1) / 2
