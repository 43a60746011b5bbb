"""``i2i bench`` and its helpers: FLOPs counted, not guessed; a table or JSON for this machine."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

from i2i_core.bench import bench_recipe, conv_peak, count_flops
from i2i_core.cli import cli
from i2i_core.precision import cpu_class
from i2i_core.training.build import build_trainer

TINY = str(Path(__file__).parent / "recipes" / "tiny.toml")


def test_flops_are_counted_by_torch():
    linear = torch.nn.Linear(4, 3)
    assert count_flops(lambda: linear(torch.zeros(2, 4))) == 2 * 2 * 4 * 3
    conv = torch.nn.Conv2d(8, 16, 3, padding=1)
    assert count_flops(lambda: conv(torch.zeros(1, 8, 10, 10))) == 2 * 10 * 10 * 16 * 8 * 9


def test_bench_recipe_defaults_to_the_papers_networks():
    recipe = bench_recipe(None, 64, "bf16", "cpu")
    assert (recipe["model.generator.name"], recipe["model.discriminator.name"]) == ("resnet9", "vanilla")
    assert (recipe["data.crop_size"], recipe["data.load_size"], recipe["train.precision"]) == (64, 72, "bf16")


def test_conv_peak_is_measured():
    assert 0.001 < conv_peak(torch.float32, torch.device("cpu")) < 1000


def test_bench_command_reports_step_time_flops_and_memory():
    args = [TINY, "--size", "32", "--precision", "bf16", "--steps", "1", "--json"]  # fp32: the table below
    result = CliRunner().invoke(cli, ["bench", *args])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert set(report["conv_peak_tflops"]) == {"bf16"}
    assert report["cpu_class"] == cpu_class() and report["auto"]["layout"].startswith(("fp32", "bf16"))
    assert [(row["size"], row["precision"]) for row in report["train"]] == [(32, "bf16")]
    # the FLOPs of a real step of the same recipe, counted here
    trainer = build_trainer(bench_recipe(TINY, 32, "bf16", "cpu"))
    images = torch.rand(1, 3, 32, 32) * 2 - 1
    flops = count_flops(lambda: trainer.train_step({"A": images, "B": images}))
    for row in report["train"]:
        assert row["tflop_per_step"] == pytest.approx(flops / 1e12, rel=1e-9)
        assert row["s_per_step"] > 0 and row["pct_of_peak"] > 0 and row["peak_rss_mb"] > 100
        assert row["page_faults_per_step"] >= 0
    assert all(rate > 0 for rate in report["generator_images_per_s"].values())


def test_bench_table():
    result = CliRunner().invoke(cli, ["bench", TINY, "--size", "32", "--precision", "fp32", "--steps", "1"])
    assert result.exit_code == 0, result.output
    assert f"CPU class {cpu_class()}" in result.output
    assert "auto trains in: " in result.output and "measured per pass at 32 px" in result.output
    assert "Convolution peak (3x3, 256 channels, 64x64, channels-last): fp32" in result.output
    assert (
        "| % of peak | peak RSS (MB) | page faults / step |\n|---|---|---|---|---|---|---|---|---|---|---|---|\n"
        in result.output
    )
    assert "| 32 | 1 | fp32 | off |" in result.output and "% of peak" in result.output


def test_bench_checks_the_recipe_before_measuring():
    result = CliRunner().invoke(cli, ["bench", "--size", "30"])
    assert result.exit_code == 1
    assert "data.crop_size (30) is not a multiple of 4, which generator 'resnet9' needs; try 28" in result.output


def test_profile_shares_name_the_operators_that_take_the_time():
    from i2i_core.bench import OVERHEAD, profile_step

    x = torch.rand(1, 16, 128, 128)
    conv = torch.nn.Conv2d(16, 16, 5, padding=2)
    with torch.no_grad():
        convolving = profile_step(lambda: conv(x))
        padding = profile_step(lambda: torch.nn.functional.pad(x, (8, 8, 8, 8), mode="reflect"))
    assert sum(convolving.values()) == pytest.approx(1.0) and sum(padding.values()) == pytest.approx(1.0)
    assert max(convolving, key=convolving.get) == "convolution forward"
    assert max(padding, key=padding.get) == "padding"
    assert set(convolving) >= {"convolution backward", "normalisation", "optimiser", OVERHEAD}


def test_bench_profile_splits_the_step_time():
    args = [TINY, "--size", "32", "--precision", "fp32", "--steps", "1", "--profile", "--json"]
    result = CliRunner().invoke(cli, ["bench", *args])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)["train"]
    profile = row["profile_ms"]
    assert sum(profile.values()) == pytest.approx(1000 * row["s_per_step"], rel=1e-6)
    assert profile["convolution backward"] > 0 and profile["convolution forward"] > 0 and profile["normalisation"] > 0
