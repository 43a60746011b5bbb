"""``i2i_core.training.autotune``: ``auto`` runs networks in the layout measured fastest on this machine, measured once."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch
from torch import nn

from i2i_core.precision import Layout, cpu_class
from i2i_core.recipe import recipe_from_dict
from i2i_core.training import autotune
from i2i_core.training.autotune import choose_layout
from i2i_core.training.build import compute_layout

CPU = torch.device("cpu")


def small_net() -> nn.Module:
    return nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1))


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    return tmp_path


@pytest.fixture
def timings(monkeypatch):
    """Fake pass times by layout; records what was measured."""
    measured: list[str] = []
    seconds = {"fp32 contiguous": 2.0, "fp32 channels-last": 1.5, "bf16 contiguous": 4.0, "bf16 channels-last": 3.0}

    def fake(module, layout, side, train, budget):
        measured.append(layout.describe())
        return seconds[layout.describe()]

    monkeypatch.setattr(autotune, "_pass_seconds", fake)
    return seconds, measured


def test_auto_takes_the_fastest_measured_layout_and_remembers_it(cache_home, timings):
    seconds, measured = timings
    layout = choose_layout(small_net, "small", 32, CPU)
    assert (layout.precision, layout.channels_last) == ("fp32", True)
    assert "fp32 channels-last 1.5 s" in layout.reason and cpu_class() in layout.reason
    assert measured == ["fp32 contiguous", "fp32 channels-last", "bf16 channels-last"]
    seconds["bf16 channels-last"] = 0.1  # a second call reads the cache: no new measurement
    assert choose_layout(small_net, "small", 32, CPU).describe() == "fp32 channels-last"
    assert len(measured) == 3
    stored = json.loads((cache_home / "i2i" / "compute.json").read_text())
    assert list(stored.values()) == [{"fp32 contiguous": 2.0, "fp32 channels-last": 1.5, "bf16 channels-last": 3.0}]
    choose_layout(small_net, "another network", 32, CPU)
    assert len(measured) == 6


def test_only_the_free_choice_is_measured(cache_home, timings):
    _, measured = timings
    assert choose_layout(small_net, "small", 32, CPU, "bf16", "auto").describe() == "bf16 channels-last"
    assert measured == ["bf16 contiguous", "bf16 channels-last"]
    assert choose_layout(small_net, "small", 32, CPU, "auto", "contiguous").describe() == "fp32 contiguous"
    layout = choose_layout(small_net, "small", 32, CPU, "fp32", "contiguous")
    assert layout == Layout("fp32", False, "set in the recipe") and len(measured) == 4


def test_a_layout_too_slow_to_finish_its_warm_up_is_given_up(cache_home, monkeypatch):
    monkeypatch.setattr(
        autotune, "_pass_seconds", lambda m, layout, *a, **k: 1.0 if layout.precision == "fp32" else float("inf")
    )
    layout = choose_layout(small_net, "small", 32, CPU, "auto", "channels_last")
    assert layout.describe() == "fp32 channels-last" and "bf16 channels-last too slow" in layout.reason


def test_a_real_measurement_leaves_the_random_numbers_alone(cache_home):
    torch.manual_seed(0)
    expected = torch.rand(3)
    torch.manual_seed(0)
    layout = choose_layout(small_net, "small", 16, CPU)
    assert torch.equal(torch.rand(3), expected)
    assert layout.describe() in ("fp32 contiguous", "fp32 channels-last", "bf16 channels-last")
    (stored,) = json.loads((cache_home / "i2i" / "compute.json").read_text()).values()
    assert all(s is None or 0 < s < 60 for s in stored.values())


def test_cuda_is_bf16_channels_last_without_measuring(timings):
    assert choose_layout(small_net, "small", 32, torch.device("cuda")).describe() == "bf16 channels-last"
    assert choose_layout(small_net, "small", 32, torch.device("cuda"), "fp16").describe() == "fp16 contiguous"
    assert timings[1] == []


def test_a_recipe_under_torchrun_takes_the_rule_by_cpu_flags(cache_home, timings, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    recipe = recipe_from_dict({"name": "x", "data": {"crop_size": 32, "load_size": 36}}, "x")
    layout = compute_layout(recipe, CPU)
    assert layout.precision == ("bf16" if cpu_class() in ("AMX", "AVX512-BF16") else "fp32")
    assert timings[1] == []


def test_cpu_class_follows_the_emulated_one():
    code = "from i2i_core.precision import cpu_class; print(cpu_class())"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "default"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert done.stdout.strip() == "default", done.stderr
    assert cpu_class() in ("AMX", "AVX512-BF16", "AVX-512", "AVX2", "default")
