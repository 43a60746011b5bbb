"""Sample grids: each row shows real_A, fake_B, rec_A, real_B, fake_A, rec_B for one fixed test pair."""

from __future__ import annotations

import io
import os
from pathlib import Path

import torch
from torchvision.utils import make_grid, save_image

from i2i_core.checkpoint import atomic_write_bytes

COLUMNS = ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")


def sample_grid(images: dict[str, torch.Tensor]) -> torch.Tensor:
    """Images keyed by :data:`COLUMNS`, each (N, 3, H, W) in [-1, 1] -> one (3, H', W') grid in [0, 1]."""
    rows = torch.stack([images[name].detach().float().cpu() for name in COLUMNS], dim=1)  # (N, 6, 3, H, W)
    return make_grid(rows.flatten(0, 1), nrow=len(COLUMNS), padding=2, normalize=True, value_range=(-1, 1))


def save_sample_grid(path: str | os.PathLike, images: dict[str, torch.Tensor]) -> Path:
    """Write :func:`sample_grid` as a PNG, atomically."""
    buffer = io.BytesIO()
    save_image(sample_grid(images), buffer, format="png")
    atomic_write_bytes(path, buffer.getvalue())
    return Path(path)
