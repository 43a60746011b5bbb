"""The image history buffer of CycleGAN (Shrivastava et al., 2017): discriminators also see older fakes."""

from __future__ import annotations

import random
from typing import Any

import torch


class ImagePool:
    """Stores up to ``size`` generated images and mixes them into what the discriminator sees.

    While fewer than ``size`` images are stored, each image is stored and returned. Afterwards, with
    probability 0.5 a stored image is returned (and replaced by the new one), else the new image.
    ``size=0`` returns its input. Randomness comes from the pool's own seeded generator.

    Example:
        >>> pool = ImagePool(2, seed=0)
        >>> pool.query(torch.zeros(1, 3, 4, 4)).shape
        torch.Size([1, 3, 4, 4])
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []
        self.rng = random.Random(seed)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) -> (B, C, H, W): per image, either itself or an older stored one."""
        if self.size == 0:
            return images
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

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """(tensors, JSON-able state) for checkpoints."""
        tensors = {str(i): img.contiguous() for i, img in enumerate(self.images)}
        version, internal, gauss = self.rng.getstate()
        return tensors, {"size": self.size, "count": len(self.images), "rng": [version, list(internal), gauss]}

    def load_state_dict(self, tensors: dict[str, torch.Tensor], state: dict[str, Any]) -> None:
        self.images = [tensors[str(i)] for i in range(state["count"])]
        version, internal, gauss = state["rng"]
        self.rng.setstate((version, tuple(internal), gauss))
