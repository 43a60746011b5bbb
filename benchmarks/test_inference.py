"""Inference: generator images/s at 256, end to end from JPEG files to PNG files, and a tiled 4K photo."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image

import i2i_core
from i2i_core.infer.translate import load_translator

PHOTOS = Path(__file__).parents[1] / "plugins" / "i2i_datasets" / "data" / "mini-photo2cartoon" / "testA"


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    net = i2i_core.create("generator", "resnet9")
    path = tmp_path_factory.mktemp("generator") / "resnet9.safetensors"
    return i2i_core.save_component(path, net, "generator", "resnet9", {})


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_translate_tensor(benchmark, measure, side, generator_file, precision):
    translator = load_translator(generator_file, device="cpu", precision=precision)
    x = torch.rand(1, 3, side(256), side(256)) * 2 - 1
    measure(lambda: translator.translate_tensor(x), rounds=5)
    benchmark.extra_info["images_per_s"] = 1 / benchmark.stats.stats.mean


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_translate_files(benchmark, measure, side, generator_file, tmp_path, precision):
    """Decode JPEGs, translate, encode PNGs, write them: what ``i2i translate`` does per image."""
    inputs = tmp_path / "in"
    inputs.mkdir()
    files = sorted(PHOTOS.iterdir())[:4]
    for path in files:
        Image.open(path).convert("RGB").resize((side(256), side(256))).save(inputs / f"{path.stem}.jpg", quality=95)
    translator = load_translator(generator_file, device="cpu", precision=precision)
    measure(lambda: translator.translate_many(sorted(inputs.iterdir()), tmp_path / "out", overwrite=True))
    benchmark.extra_info["images_per_s"] = len(files) / benchmark.stats.stats.mean


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_translate_4k_photo_tiled(benchmark, measure, smoke, generator_file, tmp_path, precision):
    """A 3840x2160 photo with the default settings: statistics pass, tiles within the default memory budget."""
    width, height = (384, 216) if smoke else (3840, 2160)
    photo = tmp_path / "photo.jpg"
    Image.open(sorted(PHOTOS.iterdir())[0]).convert("RGB").resize((width, height)).save(photo, quality=95)
    translator = load_translator(generator_file, device="cpu", precision=precision)
    measure(lambda: translator.translate(photo), rounds=1, warmup=0)
    benchmark.extra_info["tile"] = translator.tile_for(height, width)
