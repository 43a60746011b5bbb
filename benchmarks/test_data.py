"""The training data pipeline: decoded, cached images cropped, flipped and batched as training reads them."""

from __future__ import annotations

from torch.utils.data import DataLoader

from i2i_core.bench import bench_recipe
from i2i_core.training.build import build_dataset


def test_data_pipeline(benchmark, measure, side):
    dataset = build_dataset(bench_recipe(None, side(256), "fp32", "cpu"), "train")
    loader = DataLoader(dataset, batch_size=1, shuffle=True, num_workers=0)

    def epoch() -> int:
        return sum(len(batch["A"]) for batch in loader)

    images = measure(epoch)
    benchmark.extra_info["images_per_s"] = images / benchmark.stats.stats.mean


def test_dataset_decoding(benchmark, measure, side):
    """Building the dataset decodes and resizes every image once (what the first epoch would otherwise pay)."""
    recipe = bench_recipe(None, side(256), "fp32", "cpu")
    dataset = measure(lambda: build_dataset(recipe, "train"), rounds=2)
    files = len(dataset.files_A) + len(dataset.files_B)
    benchmark.extra_info["images_per_s"] = files / benchmark.stats.stats.mean
