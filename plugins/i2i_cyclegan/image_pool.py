"""The image history buffer of CycleGAN (Shrivastava et al., 2017): discriminators also see older fakes."""

from __future__ import annotations

import random
from typing import Any

import torch


class ImagePool:
    """Stores up to ``size`` generated images and mixes them into what the discriminator sees.

    While fewer than ``size`` images are stored, each image is stored and returned. Afterwards, with
    probability 0.5 a stored image is returned (and replaced by the new one), else the new image.
    ``size=0`` returns its input. Randomness comes from the pool's own seeded generator; with ``on_device``
    (CUDA graphs) a full pool keeps its images in one device buffer and draws from the device's default
    generator, with no Python branch: a captured step replays the same choices.

    Example:
        >>> pool = ImagePool(2, seed=0)
        >>> pool.query(torch.zeros(1, 3, 4, 4)).shape
        torch.Size([1, 3, 4, 4])
    """

    def __init__(self, size: int, seed: int = 0, on_device: bool = False) -> None:
        self.size, self.on_device = size, on_device
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)
        self._buffer: torch.Tensor | None = None  # (size, C, H, W): the images of a full pool, on_device

    @property
    def full(self) -> bool:
        return len(self.images) >= self.size

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W): per image, either itself or an older stored one."""
        if self.size == 0:
            return images
        if self.on_device and self.full:
            return self._query_on_device(images)
        out = []
        for image in images.detach():
            image = image.unsqueeze(0)
            if len(self.images) < self.size:
                self.images.append(image)
                out.append(image)
            elif self.rng.uniform(0, 1) > 0.5:
                index = self.rng.randint(0, self.size - 1)
                out.append(self.images[index].clone())
                self.images[index] = image
            else:
                out.append(image)
        return torch.cat(out, 0)

    def _query_on_device(self, images: torch.Tensor) -> torch.Tensor:
        if self._buffer is None or self._buffer.data_ptr() != self.images[0].data_ptr():
            self._buffer = torch.cat(self.images)
            self.images = list(self._buffer.split(1))  # views: checkpoints save the buffer's images
        out = []
        for image in images.detach().split(1):
            swap = torch.rand((), device=image.device) > 0.5
            index = torch.randint(self.size, (1,), device=image.device)
            stored = self._buffer.index_select(0, index)
            out.append(torch.where(swap, stored, image))
            self._buffer.index_copy_(0, index, torch.where(swap, image, stored))
        return torch.cat(out, 0)

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON-able state) for checkpoints."""
        tensors = {str(i): img.contiguous() for i, img in enumerate(self.images)}
        version, internal, gauss = self.rng.getstate()
        return tensors, {"size": self.size, "count": len(self.images), "rng": [version, list(internal), gauss]}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.images = [tensors[str(i)] for i in range(state["count"])]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
