"""The ``lab`` metric: distance between the colour distributions of two image sets, in CIE Lab units."""

from __future__ import annotations

import math

import torch

from i2i_core.metric import Metric
from i2i_metrics.checks import check_images, to_unit
from i2i_metrics.sliced import sliced_wasserstein

#: For directions ``u`` uniform on the unit sphere of 3-D, ``E|u . t| = |t| / 2``: the sliced distance is doubled so
#: that a colour distribution shifted by a Lab vector ``t`` is at distance ``|t|``.
SPHERE_FACTOR = 2.0


def sphere_directions(count: int) -> torch.Tensor:
    """``count`` unit vectors spread evenly over the sphere (a Fibonacci lattice): (3, count) float32.

    The first component (Lab's L axis) takes the midpoints of ``count`` equal steps of [-1, 1], so the mean of its
    absolute value is exactly 1/2 for an even ``count``; the other two turn by the golden angle from one to the next.
    """
    i = torch.arange(count, dtype=torch.float64)
    z = 1 - (2 * i + 1) / count
    r = (1 - z.square()).sqrt()
    phi = i * math.pi * (3 - math.sqrt(5))
    return torch.stack([z, r * phi.cos(), r * phi.sin()]).to(torch.float32)


def lab_pixels(x: torch.Tensor, count: int, seed: int) -> torch.Tensor:
    """The CIE Lab values of the pixels of (N, 3, H, W) images in [-1, 1]: (P, 3) rows (L, a, b).

    ``kornia.color.rgb_to_lab`` (sRGB, D65 white) of the images mapped to [0, 1]; when there are more than
    ``count`` pixels, ``count`` of them drawn uniformly with replacement by a generator seeded with ``seed``.
    """
    from kornia.color import rgb_to_lab

    lab = torch.cat([rgb_to_lab(chunk) for chunk in to_unit(x).split(64)])
    pixels = lab.permute(0, 2, 3, 1).reshape(-1, 3)
    if len(pixels) > count:
        pick = torch.randint(len(pixels), (count,), generator=torch.Generator().manual_seed(seed))
        pixels = pixels[pick.to(pixels.device)]
    return pixels


def lab_distance(
    x: torch.Tensor, y: torch.Tensor, pixels: int = 65536, directions: int = 64, seed: int = 0
) -> torch.Tensor:
    """The sliced Wasserstein-1 distance between the Lab pixel distributions of two image sets, in Lab units.

    Both sets contribute ``min(pixels, P_x, P_y)`` pixels (all of a set when it has that many, else a seeded
    sample, see :func:`lab_pixels`); the distance is ``2 x`` the mean over ``directions`` evenly spread unit
    directions (:func:`sphere_directions`) of the 1-D Wasserstein-1 distance of the projected pixels, so a shift of
    every pixel by a Lab vector ``t`` gives about ``|t|`` (exactly, along L).

    Args:
        x, y: (N, 3, H, W) and (M, 3, H', W') images in [-1, 1]; sizes may differ.

    Returns:
        A float32 scalar tensor, 0 for identical sets.
    """
    check_images(x, "x")
    check_images(y, "y")
    if min(pixels, directions) < 1:
        raise ValueError(f"lab: pixels and directions must be positive, got {pixels} and {directions}")
    with torch.no_grad():
        count = min(pixels, x.shape[0] * x.shape[2] * x.shape[3], y.shape[0] * y.shape[2] * y.shape[3])
        a, b = lab_pixels(x, count, seed), lab_pixels(y, count, seed)
        return SPHERE_FACTOR * sliced_wasserstein(a, b, sphere_directions(directions))


class LabDistance(Metric):
    """Colour-distribution distance in CIE Lab units: sliced Wasserstein between output and target pixel colours.

    See :func:`lab_distance`: ``pixels`` seeded sample of each set's Lab pixels, ``directions`` evenly spread
    directions; shifting every pixel's L by ``k`` gives ``k``.
    """

    reads = ("output", "target")
    paired = False
    higher_is_better = False

    def __init__(self, pixels: int = 65536, directions: int = 64, seed: int = 0) -> None:
        if min(pixels, directions) < 1:
            raise ValueError(f"pixels and directions must be positive, got {pixels} and {directions}")
        self.options = {"pixels": pixels, "directions": directions, "seed": seed}

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(lab_distance(x, y, **self.options))
