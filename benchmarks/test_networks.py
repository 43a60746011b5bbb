"""Forward passes of the generators and discriminators at 256x256, batch 1, as training and inference run them."""

from __future__ import annotations

import pytest
import torch

import i2i_core
from i2i_core.compute_copy import ComputeCopy

NETWORKS = [
    ("generator", "resnet9"),
    ("generator", "unet256"),
    ("discriminator", "vanilla"),
    ("discriminator", "patchgan"),
]


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize(("kind", "name"), NETWORKS)
def test_forward(benchmark, measure, side, kind, name, precision):
    size = 256 if name == "unet256" else side(256)  # unet256 takes 256x256 only
    net = i2i_core.create(kind, name).eval()
    compute = ComputeCopy.for_precision(net, precision)
    x = compute.prepare(torch.rand(1, 3, size, size) * 2 - 1)
    with torch.no_grad():
        measure(lambda: compute.module(x), rounds=5)
    benchmark.extra_info["images_per_s"] = 1 / benchmark.stats.stats.mean
