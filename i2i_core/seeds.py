"""Every seed a run derives from ``train.seed``, in one place: a resumed or distributed run draws the same numbers
as an uninterrupted single-process one where it should, and different ones where it must.

Example:
    >>> rank_seed(0, rank=1, step=10), rank_seed(0, rank=1, step=10, stream=1)
    (1000013, 1000014)
"""

from __future__ import annotations

#: A prime spacing the seeds of processes (and of epochs) far apart.
SPACING = 1_000_003


def epoch_seed(seed: int, epoch: int) -> int:
    """The seed of the shuffled order of ``epoch`` (0-based): a resumed run sees the same order."""
    return seed * SPACING + epoch


def loader_seed(seed: int, epoch: int) -> int:
    """The seed of the data loader's own generator in ``epoch``."""
    return seed + epoch


def rank_seed(seed: int, rank: int, step: int, stream: int = 0) -> int:
    """The seed of random stream ``stream`` of process ``rank`` of a torchrun job, started or resumed at ``step``.

    Stream 0 is the global torch RNG (augmentations, dropout); methods number their own generators from 1 or
    derive them from their own seed (CycleGAN's image pools use ``2 * seed`` and streams 0 and 1)."""
    return seed + stream + SPACING * rank + step
