"""Short real runs on the embedded data for docs/stabilisation.md, and the figures it shows.

    python docs/figures/make_stabilisation.py            # about 15 minutes on 2 CPU cores

Every run uses the quickstart's scale (128 px, ResNet-6 with 32 filters, PatchGAN) so the comparison is cheap;
the recipes' own settings (learning rate, cycle weight, discriminator pre-training) are what differ.
"""

from __future__ import annotations

import json
from pathlib import Path

from run_plots import metrics, plot_losses, side_by_side

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
