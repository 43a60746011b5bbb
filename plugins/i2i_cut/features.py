"""The generator feature contract CUT trains with, and the sampling of feature patches.

A generator declares its encoder features with three members:

- ``feature_layers``: the layers CUT compares by default, a tuple of ints;
- ``feature_channels(layers) -> list[int]``: the channels of each of those layers' feature maps (a ``ValueError``
  for layers it does not have);
- ``features(x, layers) -> list[Tensor]``: the feature maps of (B, 3, H, W) images, (B, C_l, H_l, W_l) each, in
  the order of ``layers``.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from i2i_core.errors import I2IError

CONTRACT = ("feature_layers", "feature_channels", "features")


def feature_layers(generator: nn.Module, name: str, layers: Sequence[int]) -> tuple[list[int], list[int]]:
    """The layers CUT compares (``layers``, or the generator's ``feature_layers`` when empty) and their channels.

    Refuses, naming generator ``name``, one that does not declare its features or does not have those layers.
    """
    missing = [member for member in CONTRACT if not hasattr(generator, member)]
    if missing:
        raise I2IError(
            f"generator '{name}' cannot train with CUT: it does not declare its encoder features (no "
            f"{', '.join(missing)}). Use a generator that does (resnet9, resnet6, unet128, unet256, timm-unet), "
            "or add them to it: see docs/cut.md"
        )
    chosen = list(layers) or list(generator.feature_layers)
    try:
        channels = generator.feature_channels(chosen)
    except ValueError as exc:
        hint = f"; nce.layers = [] compares its own feature layers {list(generator.feature_layers)}" if layers else ""
        raise I2IError(f"nce.layers: generator '{name}': {exc}{hint}") from None
    return chosen, list(channels)


def sample_patches(features: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
    """The feature vectors at ``positions`` (indices into H * W, row-major) of every image:
    (B, C, H, W) and (P,) -> (B * P, C), image by image.

    Example:
        >>> x = torch.arange(8.0).view(1, 2, 2, 2)
        >>> sample_patches(x, torch.tensor([3, 0]))
        tensor([[3., 7.],
                [0., 4.]])
    """
    return features.permute(0, 2, 3, 1).flatten(1, 2)[:, positions].flatten(0, 1)
