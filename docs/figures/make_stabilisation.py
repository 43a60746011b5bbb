"""Short real runs on the embedded data for docs/stabilisation.md, and the figures it shows.

    python docs/figures/make_stabilisation.py            # about 15 minutes on 2 CPU cores

Every run uses the quickstart's scale (128 px, ResNet-6 with 32 filters, PatchGAN) so the comparison is cheap;
the recipes' own settings (learning rate, cycle weight, discriminator pre-training) are what differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image

import i2i_core

ROOT = Path(__file__).parents[2]
RUNS = ROOT / "runs" / "stabilisation"
FIGURES = Path(__file__).parent
STEPS = 400
SCALE = [
    "data.load_size=143",
    "data.crop_size=128",
    "model.generator.name='resnet6'",
    "model.generator.ngf=32",
    "model.discriminator.name='patchgan'",
    f"train.steps={STEPS}",
    "output.sample_every=100",
    "output.checkpoint_every=0",
    "output.log_every=5",
    "output.num_samples=3",
    "report.reporters=[]",
]
RUNS_TO_MAKE = {
    "no-pretrain": ("photo2anime.toml", []),
    "d-pretrain-100": ("photo2anime.toml", ["train.d_pretrain_steps=100"]),
    "figure4-fast": ("figure4-fast.toml", []),
    "figure4-slow": ("figure4-slow.toml", []),
}


def run(name: str) -> Path:
    recipe_file, extra = RUNS_TO_MAKE[name]
    recipe = i2i_core.load_recipe(ROOT / "recipes" / recipe_file, [*SCALE, *extra, f"output.dir='{RUNS / name}'"])
    return i2i_core.train(recipe, restart=True, show_progress=False).run_dir


def metrics(run_dir: Path) -> list[dict]:
    return [m for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines()) if "warning" not in m]


def smooth(values: list[float], k: int = 6) -> list[float]:
    return [sum(values[max(0, i - k + 1) : i + 1]) / len(values[max(0, i - k + 1) : i + 1]) for i in range(len(values))]


def plot_losses(dirs: dict[str, Path], keys: list[str], path: Path, title: str) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    figure = Figure(figsize=(4.2 * len(keys), 3.2))
    FigureCanvasAgg(figure)
    for i, key in enumerate(keys):
        axes = figure.add_subplot(1, len(keys), i + 1)
        for label, run_dir in dirs.items():
            lines = [m for m in metrics(run_dir) if key in m]
            axes.plot([m["step"] for m in lines], smooth([m[key] for m in lines]), label=label)
        axes.set_title(key)
        axes.set_xlabel("step")
        axes.grid(alpha=0.3)
    axes.legend()
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=80)


def side_by_side(dirs: dict[str, Path], path: Path) -> None:
    grids = [Image.open(sorted((d / "samples").glob("step_*.png"))[-1]).convert("RGB") for d in dirs.values()]
    width = sum(g.width for g in grids) + 8 * (len(grids) - 1)
    canvas = Image.new("RGB", (width, max(g.height for g in grids)), "white")
    x = 0
    for grid in grids:
        canvas.paste(grid, (x, 0))
        x += grid.width + 8
    canvas.save(path, quality=85, optimize=True)


def main() -> None:
    dirs = {name: run(name) for name in RUNS_TO_MAKE}
    pretrain = {k: dirs[k] for k in ("no-pretrain", "d-pretrain-100")}
    figure4 = {k: dirs[k] for k in ("figure4-fast", "figure4-slow")}
    plot_losses(pretrain, ["D_A", "D_B", "G_A", "G_B"], FIGURES / "d_pretrain_losses.png", "Discriminator pre-training")
    plot_losses(figure4, ["D_A", "G_A", "cycle_A", "cycle_B"], FIGURES / "figure4_losses.png", "Figure 4 settings")
    side_by_side(figure4, FIGURES / "figure4_samples.jpg")
    side_by_side(pretrain, FIGURES / "d_pretrain_samples.jpg")
    for name, run_dir in dirs.items():
        last = metrics(run_dir)[-1]
        warnings = [
            m["warning"]
            for m in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "warning" in m
        ]
        print(name, {k: round(last[k], 3) for k in ("G_A", "G_B", "cycle_A", "cycle_B", "D_A", "D_B")}, warnings)


if __name__ == "__main__":
    main()
