"""The metric interface: a score comparing two sets of images, registered by plugins (hook ``register_metrics``).

An evaluation translates a test split and hands each metric the two image streams it ``reads``:

- ``source``: the test images of the source domain;
- ``output``: their translations;
- ``truth``: their ground truth in the target domain (paired data, or a ``<split>GT`` folder), when there is one;
- ``target``: the test images of the target domain (unpaired with ``source``);
- ``cycled``: the outputs translated back, when the method learns the other direction too.

A *paired* metric compares image ``i`` of one stream with image ``i`` of the other (PSNR against the ground
truth); an unpaired one compares the two sets as distributions (KID against the target domain).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import torch


class Metric(ABC):
    """A score of two image streams, each (N, 3, H, W) in [-1, 1] (the N of unpaired streams may differ).

    Subclasses set the class attributes and implement :meth:`__call__`.

    Example:
        >>> class MeanGap(Metric):
        ...     reads = ("output", "target")
        ...     def __call__(self, x, y):
        ...         return float((x.mean() - y.mean()).abs())
        >>> MeanGap()(torch.zeros(2, 3, 8, 8), torch.ones(5, 3, 8, 8))
        1.0
    """

    #: The two streams compared, e.g. ``("output", "truth")``.
    reads: ClassVar[tuple[str, str]] = ("output", "target")
    #: True: image ``i`` against image ``i`` (same N and size); False: the sets as distributions.
    paired: ClassVar[bool] = False
    #: Whether a larger score is better (PSNR) or worse (KID); ``eval.best`` keeps the best by it.
    higher_is_better: ClassVar[bool] = False

    @abstractmethod
    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        """The score of stream ``reads[0]`` (``x``) against stream ``reads[1]`` (``y``)."""
