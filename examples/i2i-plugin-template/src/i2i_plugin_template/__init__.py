"""An i2i plugin providing one generator, ``template-generator``: a template to copy and rename."""

from __future__ import annotations

import torch
from torch import nn

from i2i_core import hookimpl

__all__ = ["TemplateGenerator", "template_generator"]


class TemplateGenerator(nn.Module):
    """Two stride-2 convolutions down, a residual block, two transposed convolutions up; the result is added to
    the input and squashed by tanh, so the network starts close to the identity.

    (B, 3, H, W) in [-1, 1] -> (B, 3, H, W) in [-1, 1]; H and W must be multiples of 4 (two halvings).
    """

    size_multiple = 4

    def __init__(self, width: int = 16) -> None:
        super().__init__()
        if width < 1:
            raise ValueError(f"width must be at least 1, got {width}")
        self.down = nn.Sequential(
            nn.Conv2d(3, width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(),
        )
        self.residual = nn.Sequential(
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 2 * width, 3, padding=1),
        )
        self.up = nn.Sequential(
            nn.ConvTranspose2d(2 * width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.ConvTranspose2d(2 * width, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.ndim != 4 or x.shape[1] != 3:
            raise ValueError(f"expected (B, 3, H, W), got {tuple(x.shape)}")
        h, w = x.shape[-2:]
        if h % self.size_multiple or w % self.size_multiple:
            raise ValueError(f"height and width must be multiples of {self.size_multiple}, got {h}x{w}")
        features = self.down(x)
        return torch.tanh(x + self.up(features + self.residual(features)))


def template_generator(width: int = 16) -> TemplateGenerator:
    """A small template generator: conv down, residual block, conv up, plus the input, tanh."""
    return TemplateGenerator(width)


@hookimpl
def register_generators(register):
    """Called by i2i when it loads plugins: each ``register`` call adds one component."""
    register("template-generator", template_generator, size_multiple=TemplateGenerator.size_multiple)
