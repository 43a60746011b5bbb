"""The ``swd`` metric: sliced Wasserstein distance between Laplacian-pyramid patches of two image sets.

The measure of Karras et al., "Progressive Growing of GANs" (2018), section 5, as their code computes it:

1. each image's Laplacian pyramid, built with the 5-tap binomial filter ``[1, 4, 6, 4, 1] / 16`` (OpenCV's
   ``pyrDown``/``pyrUp``, mirrored borders), from full resolution down to ``min_size`` pixels (the last level is the
   low-pass residual);
2. ``patches`` random ``patch_size`` x ``patch_size`` neighbourhoods per image and level (descriptors of 3 x 7 x 7);
3. the descriptors of each level normalised per set: every colour channel to zero mean and unit standard deviation
   over that set's descriptors and their pixels;
4. per level, the sliced Wasserstein distance between the two sets of descriptors with ``repeats`` x ``directions``
   random unit directions (see :func:`i2i_metrics.sliced.sliced_wasserstein`);
5. each level's distance multiplied by 1e3; the metric is their mean.

Because of step 3 the distance ignores a per-channel affine change (brightness, contrast) of a whole set at a level.
Unlike the paper's code, which compares equally large sets of one size, the randomness is seeded, both sets draw
patch positions from the same seed (identical sets score exactly 0), a larger set's descriptors are subsampled to
the smaller set's count, and a set of another image size is resized to the first one's.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from i2i_core.metric import Metric
from i2i_metrics.checks import check_images
from i2i_metrics.sliced import random_directions, sliced_wasserstein

#: The 5-tap binomial filter of the pyramids (OpenCV's pyrDown/pyrUp).
BINOMIAL = (1.0, 4.0, 6.0, 4.0, 1.0)
#: Distances are reported multiplied by this, as in the paper (its "SWD x 1e3").
SCALE = 1e3
#: Images are taken this many at a time when building pyramids.
CHUNK = 64


def _blur(x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
    """(N, C, H, W) filtered with the separable 5x5 binomial filter times ``gain``, mirrored (reflect) borders."""
    k = torch.tensor(BINOMIAL, dtype=x.dtype, device=x.device)
    kernel = (torch.outer(k, k) / 256 * gain).expand(x.shape[1], 1, 5, 5)
    return F.conv2d(F.pad(x, (2, 2, 2, 2), mode="reflect"), kernel, groups=x.shape[1])


def pyr_down(x: torch.Tensor) -> torch.Tensor:
    """Blur, then keep every other row and column: (N, C, H, W) -> (N, C, ceil(H/2), ceil(W/2))."""
    return _blur(x)[..., ::2, ::2]


def pyr_up(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Insert zeros between pixels, blur with 4 x the filter, crop: (N, C, h, w) -> (N, C, *size)."""
    n, c, h, w = x.shape
    up = x.new_zeros(n, c, 2 * h, 2 * w)
    up[..., ::2, ::2] = x
    return _blur(up, gain=4.0)[..., : size[0], : size[1]]


def laplacian_pyramid(x: torch.Tensor, levels: int) -> list[torch.Tensor]:
    """The Laplacian pyramid of (N, C, H, W) images: ``levels`` band-pass images, finest first, the last low-pass."""
    pyramid = [x]
    for _ in range(levels - 1):
        coarse = pyr_down(pyramid[-1])
        pyramid[-1] = pyramid[-1] - pyr_up(coarse, pyramid[-1].shape[-2:])
        pyramid.append(coarse)
    return pyramid


def pyramid_levels(size: int, min_size: int = 16) -> int:
    """How many levels from ``size`` pixels, halving, stay at least ``min_size``: 3 for 64 (64, 32, 16)."""
    levels = 0
    while size >= min_size:
        levels, size = levels + 1, size // 2
    return levels


def sample_patches(x: torch.Tensor, count: int, size: int, generator: torch.Generator) -> torch.Tensor:
    """``count`` random ``size`` x ``size`` patches of each image: (N, C, H, W) -> (N * count, C, size, size).

    Patch corners are uniform over the positions where the patch fits (drawn by ``generator``, on the CPU).
    """
    n, _, h, w = x.shape
    image = torch.arange(n).repeat_interleave(count)
    top = torch.randint(0, h - size + 1, (n * count,), generator=generator)
    left = torch.randint(0, w - size + 1, (n * count,), generator=generator)
    offsets = torch.arange(size)
    rows = (top[:, None] + offsets).to(x.device)
    cols = (left[:, None] + offsets).to(x.device)
    patches = x.permute(0, 2, 3, 1)[image.to(x.device)[:, None, None], rows[:, :, None], cols[:, None, :]]
    return patches.permute(0, 3, 1, 2)


def normalise_descriptors(desc: torch.Tensor) -> torch.Tensor:
    """(P, C, s, s) descriptors with each channel at zero mean and unit (population) std over P, s, s: (P, C s s)."""
    mean = desc.mean(dim=(0, 2, 3), keepdim=True)
    std = desc.std(dim=(0, 2, 3), correction=0, keepdim=True).clamp_min(1e-8)
    return ((desc - mean) / std).flatten(1)


def _descriptors(x: torch.Tensor, levels: int, patches: int, patch_size: int, seed: int) -> list[torch.Tensor]:
    """Normalised descriptors of each pyramid level of a set: ``levels`` tensors (N * patches, 3 patch_size²)."""
    generator = torch.Generator().manual_seed(seed)
    per_level: list[list[torch.Tensor]] = [[] for _ in range(levels)]
    for chunk in x.split(CHUNK):
        for level, band in enumerate(laplacian_pyramid(chunk.to(torch.float32), levels)):
            per_level[level].append(sample_patches(band, patches, patch_size, generator))
    return [normalise_descriptors(torch.cat(d)) for d in per_level]


def _match_count(a: torch.Tensor, b: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The larger set subsampled without replacement to the size of the smaller one."""
    n = min(len(a), len(b))
    if len(a) > n:
        a = a[torch.randperm(len(a), generator=generator)[:n].to(a.device)]
    if len(b) > n:
        b = b[torch.randperm(len(b), generator=generator)[:n].to(b.device)]
    return a, b


def swd_levels(
    x: torch.Tensor,
    y: torch.Tensor,
    min_size: int = 16,
    patches: int = 128,
    patch_size: int = 7,
    repeats: int = 4,
    directions: int = 128,
    seed: int = 0,
) -> torch.Tensor:
    """The sliced Wasserstein distance of each Laplacian-pyramid level between two image sets, times 1e3.

    Args:
        x, y: (N, 3, H, W) and (M, 3, H', W') images in [-1, 1]; ``y`` is resized (bilinear, antialiased) to
            H x W when the sizes differ. The smaller side sets the levels: ``min(H, W)``, halved down to
            ``min_size``.
        min_size: the smallest pyramid level, in pixels (at least ``patch_size``).
        patches: neighbourhoods sampled per image and level.
        patch_size: their side, in pixels.
        repeats, directions: ``repeats`` draws of ``directions`` random unit directions each.
        seed: seeds the patch positions (drawn alike for both sets: sets of one shape share them) and the
            directions; when N != M, also which descriptors of the larger set are kept (as many as the smaller has).

    Returns:
        (levels,) float32 distances x 1e3, finest level first; 0 for identical sets.
    """
    check_images(x, "x", min_size=max(min_size, patch_size))
    check_images(y, "y", min_size=max(min_size, patch_size))
    if min(patches, patch_size, repeats, directions) < 1 or min_size < patch_size:
        raise ValueError(
            f"swd_levels: patches, patch_size, repeats and directions must be positive and min_size >= patch_size, got "
            f"{patches}, {patch_size}, {repeats}, {directions} and min_size {min_size}"
        )
    with torch.no_grad():
        if y.shape[-2:] != x.shape[-2:]:
            y = F.interpolate(y.to(torch.float32), size=x.shape[-2:], mode="bilinear", antialias=True)
        levels = pyramid_levels(min(x.shape[-2:]), min_size)
        desc_x = _descriptors(x, levels, patches, patch_size, seed)
        desc_y = _descriptors(y, levels, patches, patch_size, seed)
        generator = torch.Generator().manual_seed(seed)
        distances = []
        for a, b in zip(desc_x, desc_y, strict=True):
            a, b = _match_count(a, b, generator)
            runs = [
                sliced_wasserstein(a, b, random_directions(a.shape[1], directions, generator)) for _ in range(repeats)
            ]
            distances.append(torch.stack(runs).mean() * SCALE)
        return torch.stack(distances)


class SWD(Metric):
    """Sliced Wasserstein distance x 1e3 between Laplacian-pyramid patches of output and target (Karras et al., 2018).

    The mean over pyramid levels of :func:`swd_levels`: 7x7 neighbourhoods, ``patches`` per image and level, from full
    resolution down to ``min_size`` pixels, normalised per set and channel, 4 x 128 random directions by default.
    Deterministic for a ``seed``; sets of different sizes (N, and H x W: the target is resized) are fine.
    """

    reads = ("output", "target")
    paired = False
    higher_is_better = False

    def __init__(
        self,
        patches: int = 128,
        min_size: int = 16,
        patch_size: int = 7,
        repeats: int = 4,
        directions: int = 128,
        seed: int = 0,
    ) -> None:
        self.options = {
            "patches": patches,
            "min_size": min_size,
            "patch_size": patch_size,
            "repeats": repeats,
            "directions": directions,
            "seed": seed,
        }
        if min(patches, patch_size, repeats, directions) < 1 or min_size < patch_size:
            raise ValueError(
                "patches, patch_size, repeats and directions must be positive and min_size at least patch_size"
            )

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        return float(swd_levels(x, y, **self.options).mean())
