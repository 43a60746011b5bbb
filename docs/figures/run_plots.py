"""Reading run folders and plotting them, for the scripts that make the documentation's figures."""

from __future__ import annotations

import json
from pathlib import Path

from PIL import Image


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
