"""Test photos of the quality benchmark beside each recipe's translation and the ground truth, for docs/quality.md.

    python docs/figures/make_quality_samples.py RUNS_DIR   # RUNS_DIR: the --out of benchmarks/quality/run.py

One row per test photo: the photo, each run's translation (its last checkpoint, at the benchmark's evaluation
size), the filtered ground truth.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch
from PIL import Image, ImageDraw

import i2i_core
from i2i_core.evaluation import EvalSet

FIGURES = Path(__file__).parent
ROWS = 3
RUNS = ("photo2anime", "photo2anime-fastcut", "photo2anime-fast")


def tile(image: torch.Tensor, label: str) -> Image.Image:
    """A (3, H, W) image in [-1, 1] as a PIL image with its label on a strip above it."""
    array = ((image.clamp(-1, 1) + 1) * 127.5).round().byte().permute(1, 2, 0).numpy()
    picture = Image.fromarray(array)
    out = Image.new("RGB", (picture.width, picture.height + 14), "white")
    out.paste(picture, (0, 14))
    ImageDraw.Draw(out).text((2, 1), label, fill="black")
    return out


def main(runs_dir: Path) -> Path:
    recipe = i2i_core.load_recipe(runs_dir / RUNS[-1] / "recipe.toml")
    data = EvalSet.from_recipe(recipe, "AtoB")
    columns = [("photo", data.source[:ROWS])]
    for name in RUNS:
        translator = i2i_core.load_translator(runs_dir / name, device="cpu", precision="fp32")
        with torch.no_grad():
            columns.append((name, translator.translate_tensor(data.source[:ROWS])))
    columns.append(("ground truth", data.truth[:ROWS]))
    tiles = [[tile(images[row], label) for label, images in columns] for row in range(ROWS)]
    width, height = tiles[0][0].size
    sheet = Image.new("RGB", (width * len(columns), height * ROWS), "white")
    for row, line in enumerate(tiles):
        for column, picture in enumerate(line):
            sheet.paste(picture, (column * width, row * height))
    path = FIGURES / "quality-benchmark-samples.png"
    sheet.save(path)
    return path


if __name__ == "__main__":
    print(main(Path(sys.argv[1])))
