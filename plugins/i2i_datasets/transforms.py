"""The reference CycleGAN's image transform, on tensors: square resize, crop, horizontal flip, scale to [-1, 1]."""

from __future__ import annotations

import torch
from torchvision.transforms import InterpolationMode
from torchvision.transforms.v2 import functional as F

from i2i_core.images import uint8_to_float


def resize_square(image: torch.Tensor, size: int) -> torch.Tensor:
    """Resize a (3, H, W) uint8 image to (3, size, size), bicubic with antialiasing, aspect ratio not kept.

    On uint8 input torchvision follows Pillow's bicubic filter: results differ from ``PIL.Image.resize`` by at
    most one 8-bit level, in under 0.5% of the values.
    """
    return F.resize(image, [size, size], interpolation=InterpolationMode.BICUBIC, antialias=True)


def crop_flip(image: torch.Tensor, crop_size: int, top: int, left: int, flip: bool) -> torch.Tensor:
    """Crop a (3, S, S) uint8 image to (3, crop_size, crop_size) at (top, left), mirror it if ``flip``, and
    return it as float32 in [-1, 1]."""
    size = image.shape[-1]
    if not (0 <= top <= size - crop_size and 0 <= left <= size - crop_size):
        raise ValueError(f"crop of {crop_size} at top={top}, left={left} does not fit a {size}x{size} image")
    out = F.crop(image, top, left, crop_size, crop_size)
    return uint8_to_float(F.horizontal_flip(out) if flip else out)


def preprocess(image: torch.Tensor, load_size: int, crop_size: int, top: int, left: int, flip: bool) -> torch.Tensor:
    """(3, H, W) uint8 -> (3, crop_size, crop_size) float32 in [-1, 1]: resize to load_size x load_size,
    crop at (top, left), optionally mirror. The deterministic part of the training transform."""
    return crop_flip(resize_square(image, load_size), crop_size, top, left, flip)


def random_params(load_size: int, crop_size: int, flip: bool) -> tuple[int, int, bool]:
    """A random (top, left, flip) for :func:`preprocess`, drawn from torch's global RNG."""
    top, left = torch.randint(load_size - crop_size + 1, (2,)).tolist()
    return top, left, flip and bool(torch.rand(()) < 0.5)
