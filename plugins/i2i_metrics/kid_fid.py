"""``kid`` and ``fid``: distances between InceptionV3 features of output and target, computed by torchmetrics.

The extractor comes from a local weight file (see :mod:`i2i_metrics.inception`); only torch-fidelity's FID
Inception gives scores comparable with published ones.
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING

import torch

from i2i_core.metric import Metric
from i2i_metrics.checks import check_images
from i2i_metrics.inception import InceptionFeatures, load_inception

if TYPE_CHECKING:
    from torchmetrics import Metric as TorchMetric


def _check_sets(x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    check_images(x, "x", min_count=2)
    check_images(y, "y", min_count=2)
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")


def _feed(metric: TorchMetric, extractor: InceptionFeatures, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> None:
    """Update a torchmetrics KID/FID with ``y`` as the real and ``x`` as the generated images, batch by batch, in
    float32 on ``x``'s device (autocast off)."""
    metric.to(x.device)
    extractor.to(x.device)
    with torch.autocast(x.device.type, enabled=False):
        for images, real in ((y, True), (x, False)):
            for batch in images.to(x.device).split(batch_size):
                metric.update(batch.to(torch.float32), real=real)


class FID(Metric):
    """Fréchet Inception distance between output and target: torchmetrics' FID over 2048-d InceptionV3 pool features.

    ``weights`` is a local InceptionV3 file (default: ``$I2I_INCEPTION_WEIGHTS``); nothing is ever downloaded.
    With torch-fidelity's ``weights-inception-2015-12-05-6726825d.pth`` the score is the standard FID (for sets of a
    few thousand images); with torchvision's ``inception_v3_google-0cc3c7bd.pth`` it is not comparable with published
    FID. Images go through the extractor ``batch_size`` at a time; each set needs at least 2 images.
    """

    reads = ("output", "target")
    paired = False
    higher_is_better = False

    def __init__(self, weights: str = "", batch_size: int = 32) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.extractor = load_inception(weights)
        self.batch_size = batch_size

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        from torchmetrics.image.fid import FrechetInceptionDistance

        _check_sets(x, y, self.batch_size)
        with torch.no_grad():
            metric = FrechetInceptionDistance(feature=self.extractor)
            _feed(metric, self.extractor, x, y, self.batch_size)
            return float(metric.compute())


class KID(Metric):
    """Kernel Inception distance between output and target: torchmetrics' unbiased KID (mean over subsets).

    The squared MMD with the cubic polynomial kernel ``(f·g / 2048 + 1)³`` between 2048-d InceptionV3 pool
    features, averaged over ``subsets`` random subsets of ``min(subset_size, N, M)`` images of each set (drawn with
    ``seed``, so the score is deterministic). ``weights`` as for ``fid``: a local file, never downloaded; only
    torch-fidelity's file gives scores comparable with published KID. Each set needs at least 2 images.
    """

    reads = ("output", "target")
    paired = False
    higher_is_better = False

    def __init__(
        self, weights: str = "", subsets: int = 100, subset_size: int = 1000, seed: int = 0, batch_size: int = 32
    ) -> None:
        if min(subsets, subset_size - 1, batch_size) < 1:
            raise ValueError(
                f"subsets and batch_size must be positive and subset_size at least 2, got {subsets}, "
                f"{subset_size} and {batch_size}"
            )
        self.extractor = load_inception(weights)
        self.subsets, self.subset_size, self.seed, self.batch_size = subsets, subset_size, seed, batch_size

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> float:
        from torchmetrics.image.kid import KernelInceptionDistance

        _check_sets(x, y, self.batch_size)
        size = min(self.subset_size, x.shape[0], y.shape[0])
        with torch.no_grad():
            with warnings.catch_warnings():  # torchmetrics warns that KID keeps all features: they are few here
                warnings.simplefilter("ignore", UserWarning)
                metric = KernelInceptionDistance(feature=self.extractor, subsets=self.subsets, subset_size=size)
            _feed(metric, self.extractor, x, y, self.batch_size)
            with torch.random.fork_rng(devices=[]):  # torchmetrics draws the subsets from the global generator
                torch.manual_seed(self.seed)
                mean, _ = metric.compute()
            return float(mean)
