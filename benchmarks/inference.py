"""Inference speed and memory: generator images/s at 256, end-to-end images/s, a 4K photo in bounded memory.

    python benchmarks/inference.py

Each measurement runs in a fresh process so its peak RSS is its own. Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PHOTO = Path(__file__).parents[1] / "plugins" / "i2i_datasets" / "data" / "mini-photo2cartoon" / "testA"


def _generator_file(folder: Path) -> Path:
    import torch

    import i2i_core

    torch.manual_seed(0)
    net = i2i_core.create("generator", "resnet9")
    return i2i_core.save_component(folder / "resnet9.safetensors", net, "generator", "resnet9", {})


def measure(kind: str, precision: str, seconds: float) -> dict:
    import torch
    from PIL import Image

    from i2i_core.images import load_rgb
    from i2i_core.infer.translate import load_translator

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        translator = load_translator(_generator_file(folder), precision=precision)
        if kind == "forward256":
            x = torch.rand(1, 3, 256, 256) * 2 - 1
            translator.translate_tensor(x)
            start, count = time.perf_counter(), 0
            while time.perf_counter() - start < seconds:
                translator.translate_tensor(x)
                count += 1
            rate = count / (time.perf_counter() - start)
        elif kind == "files256":
            inputs = folder / "in"
            inputs.mkdir()
            for i, photo in enumerate(sorted(PHOTO.iterdir())):
                load_rgb(photo).resize((256, 256), Image.BICUBIC).save(inputs / f"{i}.jpg", quality=95)
            files = sorted(inputs.iterdir())
            translator.translate_many(files[:1], folder / "out")
            start = time.perf_counter()
            written, _ = translator.translate_many(files, folder / "out", fmt="png")
            rate = len(written) / (time.perf_counter() - start)
        else:  # a 3840x2160 photo, default settings
            photo = folder / "photo4k.png"
            load_rgb(sorted(PHOTO.iterdir())[1]).resize((3840, 2160), Image.BICUBIC).save(photo)
            start = time.perf_counter()
            translator.translate_file(photo, folder / "out")
            rate = 1 / (time.perf_counter() - start)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"kind": kind, "precision": precision, "images_per_s": rate, "peak_rss_mb": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0, help="Duration of the throughput loop.")
    parser.add_argument("--one", nargs=2, help=argparse.SUPPRESS)  # internal: measure one configuration
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one[0], args.one[1], args.seconds)))
        return
    labels = {
        "forward256": "generator, 256x256",
        "files256": "end to end, 256x256 JPEG -> PNG",
        "photo4k": "3840x2160 photo, default settings",
    }
    print("ResNet-9 generator (ngf 64), batch 1\n")
    print("| what | precision | images/s | s/image | peak RSS (MB) |")
    print("|---|---|---|---|---|")
    rates = {}
    for kind in labels:
        for precision in ("fp32", "bf16"):
            cmd = [sys.executable, __file__, "--one", kind, precision, "--seconds", str(args.seconds)]
            row = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.splitlines()[-1])
            rates[kind, precision] = row["images_per_s"]
            print(
                f"| {labels[kind]} | {precision} | {row['images_per_s']:.2f} | {1 / row['images_per_s']:.2f} "
                f"| {row['peak_rss_mb']:.0f} |",
                flush=True,
            )
    for kind in labels:
        print(f"\n{labels[kind]}: bf16 is {rates[kind, 'bf16'] / rates[kind, 'fp32']:.2f}x fp32 (same run).")


if __name__ == "__main__":
    main()
