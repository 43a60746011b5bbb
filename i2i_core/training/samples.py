"""Sample grids: each row shows one fixed test pair: its inputs and what the method made of them, in the
method's column order (:attr:`i2i_core.method.Method.sample_columns`)."""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from i2i_core.checkpoint import atomic_write_bytes


def sample_grid(images: dict[str, torch.Tensor], columns: Sequence[str]) -> torch.Tensor:
    """Images keyed by ``columns``, each (N, 3, H, W) in [-1, 1] -> one (3, H', W') grid in [0, 1], a row per
    image and a column per key."""
    rows = torch.stack([images[name].detach().float().cpu() for name in columns], dim=1)  # (N, columns, 3, H, W)
    return make_grid(rows.flatten(0, 1), nrow=len(columns), padding=2, normalize=True, value_range=(-1, 1))


def save_sample_grid(path: str | os.PathLike, images: dict[str, torch.Tensor], columns: Sequence[str]) -> Path:
    """Write :func:`sample_grid` as a PNG, atomically."""
    buffer = io.BytesIO()
    save_image(sample_grid(images, columns), buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
