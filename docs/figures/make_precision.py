"""bf16 against fp32 over the first 300 steps of the quickstart, for docs/benchmarks.md.

    python docs/figures/make_precision.py            # about 5 minutes on 2 CPU cores

Both runs start from the same weights and see the same images in the same order; only the precision differs.
"""

from __future__ import annotations

from pathlib import Path

from run_plots import metrics, plot_losses, side_by_side

import i2i_core

ROOT = Path(__file__).parents[2]
RUNS = ROOT / "runs" / "precision"
FIGURES = Path(__file__).parent
STEPS = 300
LOSSES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")


def run(precision: str) -> Path:
    overrides = [
        f"train.steps={STEPS}",
        f"train.precision='{precision}'",
        "output.sample_every=100",
        "output.checkpoint_every=0",
        "output.log_every=5",
        "output.num_samples=3",
        f"output.dir='{RUNS / precision}'",
    ]
    recipe = i2i_core.load_recipe(ROOT / "recipes" / "quickstart.toml", overrides)
    return i2i_core.train(recipe, restart=True, show_progress=False).run_dir


def mean(values: list[float]) -> float:
    return sum(values) / len(values)


def main() -> None:
    dirs = {precision: run(precision) for precision in ("fp32", "bf16")}
    plot_losses(dirs, ["G_A", "cycle_A", "idt_A", "D_A"], FIGURES / "precision_losses.png", "bf16 against fp32")
    side_by_side(dirs, FIGURES / "precision_samples.jpg")
    print(f"| loss | fp32, mean of steps {STEPS // 2 + 1}-{STEPS} | bf16 | bf16 / fp32 |")
    print("|---|---|---|---|")
    for key in LOSSES:
        late = {p: mean([m[key] for m in metrics(d) if key in m and m["step"] > STEPS // 2]) for p, d in dirs.items()}
        print(f"| {key} | {late['fp32']:.4f} | {late['bf16']:.4f} | {late['bf16'] / late['fp32']:.3f} |")


if __name__ == "__main__":
    main()
