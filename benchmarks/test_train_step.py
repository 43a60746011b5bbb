"""Seconds per CycleGAN training step: the paper's networks, batch 1, random images; FLOPs counted per step."""

from __future__ import annotations

import pytest
import torch

from i2i_core.bench import bench_recipe, count_flops
from i2i_core.training.build import build_trainer


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
@pytest.mark.parametrize("size", [128, 256])
def test_train_step(benchmark, measure, side, size, precision):
    trainer = build_trainer(bench_recipe(None, side(size), precision, "cpu"))
    a, b = (torch.rand(1, 3, side(size), side(size)) * 2 - 1 for _ in range(2))
    flops = count_flops(lambda: trainer.train_step({"A": a, "B": b}))
    measure(lambda: trainer.train_step({"A": a, "B": b}))
    benchmark.extra_info["tflop_per_step"] = flops / 1e12
    benchmark.extra_info["tflops"] = flops / benchmark.stats.stats.mean / 1e12
