"""Seconds per CycleGAN training step and peak memory, per image size and precision.

    python benchmarks/train_step.py                 # the paper's networks at 128 and 256, fp32 and bf16
    python benchmarks/train_step.py --sizes 128 --steps 3

Each configuration runs in a fresh process (so peak RSS is its own): one warm-up step, then the mean of
``--steps`` timed steps on random images. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

RECIPE = Path(__file__).parents[1] / "recipes" / "photo2anime.toml"


def measure(size: int, precision: str, steps: int) -> dict:
    import torch

    import i2i_core

    load = size + size // 8
    recipe = i2i_core.load_recipe(
        RECIPE, [f"data.crop_size={size}", f"data.load_size={load}", f"train.precision='{precision}'"]
    )
    trainer = i2i_core.build_trainer(recipe)
    a, b = torch.rand(1, 3, size, size) * 2 - 1, torch.rand(1, 3, size, size) * 2 - 1
    trainer.train_step(a, b)
    start = time.perf_counter()
    for _ in range(steps):
        trainer.train_step(a, b)
    seconds = (time.perf_counter() - start) / steps
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"size": size, "precision": precision, "s_per_step": seconds, "peak_rss_mb": peak_mb}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[128, 256])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: measure one configuration
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(int(args.one[0]), args.one[1], args.steps)))
        return
    import torch

    print(
        f"Machine: {platform.processor() or platform.machine()}, {torch.get_num_threads()} threads, torch {torch.__version__}"
    )
    print("Networks: recipes/photo2anime.toml (ResNet-9 generators, vanilla discriminators), batch 1\n")
    print("| size | precision | s / step | peak RSS (MB) |")
    print("|---|---|---|---|")
    rows = []
    for size in args.sizes:
        for precision in args.precisions:
            cmd = [sys.executable, __file__, "--one", str(size), precision, "--steps", str(args.steps)]
            row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            rows.append(row)
            print(f"| {size} | {precision} | {row['s_per_step']:.3f} | {row['peak_rss_mb']:.0f} |", flush=True)
    for size in args.sizes:
        t = {r["precision"]: r["s_per_step"] for r in rows if r["size"] == size}
        if "fp32" in t and "bf16" in t:
            print(f"\nAt {size}: bf16 is {t['fp32'] / t['bf16']:.2f}x faster than fp32 (same run).")


if __name__ == "__main__":
    main()
