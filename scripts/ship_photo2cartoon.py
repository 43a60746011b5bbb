#!/usr/bin/env python3
"""Ship a trained run as ``builtin:photo2cartoon``: its generator in fp16 with the facts of how it was made in the
file's metadata, sample images of photos it never saw, and the scores and Fourier report its model card quotes.

Usage::

    python scripts/ship_photo2cartoon.py --run runs/photo2cartoon [--pick best] [--baseline runs/paper]
        [--stage outline_strength=1.0 ...]

``--stage KEY=VALUE`` sets one of the generator's drawing stages (:data:`STAGE_OPTIONS`: they have no weights) in
the shipped file, in place of the training recipe's value; the file's metadata records which (``stages_set``).

Writes ``plugins/i2i_pretrained/photo2cartoon/generator.safetensors`` with ``samples.jpg`` and ``scores.json``
(the numbers of its card) beside it, ``docs/figures/photo2cartoon-example.jpg`` and the Fourier report in
``docs/figures/photo2cartoon-fourier/``.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path

import torch
from PIL import Image

import i2i_core
from i2i_core.checkpoint import (
    load_component,
    read_checkpoint_state,
    read_metadata,
    save_component,
    select_checkpoint,
)
from i2i_core.evaluation import evaluate
from i2i_core.host.registry import create
from i2i_core.images import load_rgb, to_tensor
from i2i_core.infer.export import export_component
from i2i_core.precision import cpu_class

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "plugins/i2i_pretrained/photo2cartoon"
FIGURES = ROOT / "docs/figures"
MINI = ROOT / "plugins/i2i_datasets/data/mini-photo2cartoon"
#: Shipped photos that are not in the training set (they come from scikit-image and scikit-learn, not Debian).
HELD_OUT = ["testA/sklearn-china.jpg", *(f"trainA/skimage-{n}.jpg" for n in ("astronaut", "chelsea", "coffee"))]
README_EXAMPLE = "testA/sklearn-china.jpg"
METRICS = ["swd", "lab", "content", "palette", "flat", "checker"]
#: The generator options of stages without weights, which ``--stage`` may set at shipping.
STAGE_OPTIONS = {
    "guided_radius": int,
    "guided_eps": float,
    "outline_strength": float,
    "outline_threshold": float,
    "outline_sigma": float,
    "outline_width": int,
    "posterize_levels": int,
    "posterize_chroma": float,
}
#: Metadata the component format writes itself.
FORMAT_KEYS = ("kind", "name", "options", "sha256", "format", "i2i_version")


def training_facts(run: Path, checkpoint: Path) -> dict[str, str]:
    """Steps, training minutes and machine of the checkpoint, for the shipped file's metadata."""
    state = read_checkpoint_state(checkpoint)
    minutes = state.get("train_seconds", 0) / 60
    return {
        "recipe": "recipes/photo2cartoon.toml",
        "steps": str(state["step"]),
        "train_minutes": f"{minutes:.1f}",
        "machine": f"{platform.processor() or platform.machine()}, CPU class {cpu_class()}, "
        f"{torch.get_num_threads()} threads, torch {torch.__version__}",
        "dataset": "scripts/build_photo2cartoon.py --detint: photos and game art from Debian 12 packages (README.md)",
        "licence": "MIT (the weights); the training images' licences are listed in README.md",
        "run": run.name,
    }


def parse_stage(text: str) -> tuple[str, int | float]:
    """``KEY=VALUE`` of ``--stage``, its value converted to the option's type."""
    key, _, value = text.partition("=")
    if key not in STAGE_OPTIONS or not value:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE with KEY one of {', '.join(STAGE_OPTIONS)}, got {text!r}")
    return key, STAGE_OPTIONS[key](value)


def set_stages(file: Path, stages: dict[str, int | float]) -> None:
    """Rewrite the component ``file`` with its drawing stages set to ``stages`` (same weights, in fp16)."""
    metadata = read_metadata(file)
    options = {**json.loads(metadata["options"]), **stages}
    net = create("generator", metadata["name"], **options)
    net.load_state_dict(load_component(file).state_dict())  # the stages have no weights: every key matches
    extra = {key: value for key, value in metadata.items() if key not in FORMAT_KEYS}
    extra["stages_set"] = json.dumps(stages, sort_keys=True)
    save_component(file, net, "generator", metadata["name"], options, dtype=torch.float16, extra=extra)


def side_by_side(pairs: list[tuple[Image.Image, Image.Image]], height: int = 256) -> Image.Image:
    """Rows of photo | translation, each ``height`` pixels high."""
    rows = []
    for photo, cartoon in pairs:
        width = round(photo.width * height / photo.height)
        row = Image.new("RGB", (2 * width + 8, height), "white")
        row.paste(photo.resize((width, height), Image.LANCZOS), (0, 0))
        row.paste(cartoon.resize((width, height), Image.LANCZOS), (width + 8, 0))
        rows.append(row)
    sheet = Image.new("RGB", (max(r.width for r in rows), sum(r.height + 8 for r in rows) - 8), "white")
    top = 0
    for row in rows:
        sheet.paste(row, (0, top))
        top += row.height + 8
    return sheet


def scores(checkpoint: str | Path, data: Path, size: int) -> dict:
    """:data:`METRICS` of the checkpoint on ``data``'s test split, and of the identity."""
    return evaluate(checkpoint, data=str(data), split="test", metrics=METRICS, size=size).to_json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--pick", default="best")
    parser.add_argument("--baseline", type=Path, help="a run of the paper's configuration on the same data")
    parser.add_argument("--data", type=Path, default=ROOT / "data/photo2cartoon")
    parser.add_argument("--stage", type=parse_stage, action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()

    checkpoint = select_checkpoint(args.run, args.pick)
    facts = training_facts(args.run, checkpoint)
    shipped = export_component(checkpoint, MODEL / "generator.safetensors", "AtoB", "fp16", facts)
    if args.stage:
        set_stages(shipped, dict(args.stage))
    translator = i2i_core.load_translator(shipped)

    photos = [load_rgb(MINI / name) for name in HELD_OUT]
    cartoons = [translator.translate(photo) for photo in photos]
    side_by_side(list(zip(photos, cartoons, strict=True))).save(MODEL / "samples.jpg", quality=88)
    example = HELD_OUT.index(README_EXAMPLE)
    side_by_side([(photos[example], cartoons[example])], 320).save(FIGURES / "photo2cartoon-example.jpg", quality=90)
    report = create("reporter", "fourier").report(
        {"photo": to_tensor(photos[example]), "photo2cartoon": to_tensor(cartoons[example])},
        FIGURES / "photo2cartoon-fourier",
    )

    results = {
        "facts": facts,
        "size_bytes": shipped.stat().st_size,
        "model": scores(shipped, args.data, 256),
        "mini": scores(shipped, MINI, 256),
        "fourier": report,
    }
    if args.baseline:
        results["baseline"] = scores(select_checkpoint(args.baseline), args.data, 256)
    (MODEL / "scores.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(json.dumps({k: v for k, v in results.items() if k != "fourier"}, indent=2, default=str))


if __name__ == "__main__":
    main()
