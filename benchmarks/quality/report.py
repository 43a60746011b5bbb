"""The quality benchmark's results: evaluation curves read from ``metrics.jsonl``, the score table (plain text and
Markdown, best per column marked) and the plot of score against training minutes.

Everything here works on plain dicts and lists (what ``results.json`` holds), so it can be used and tested without
training anything. A *row* is ``{"name": str, "steps": int | None, "minutes": float | None,
"scores": {metric: float | None}}``; the identity baseline is a row too (``IDENTITY``).
"""

from __future__ import annotations

import json
import math
import os
import platform
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

#: Which way each core metric points, for scores that come without ``higher_is_better`` (e.g. only curves).
HIGHER_IS_BETTER = {
    "psnr": True,
    "ssim": True,
    "content": True,
    "swd": False,
    "lab": False,
    "palette": False,
    "flat": True,
    "checker": False,
    "kid": False,
    "fid": False,
}
IDENTITY = "identity (input photos)"

Point = dict[str, float]
Curves = dict[str, list[Point]]
Row = dict[str, Any]


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def read_log(path: str | os.PathLike) -> tuple[Curves, dict[str, float]]:
    """The evaluation curves and the identity scores in a run's ``metrics.jsonl``.

    Lines with an ``"eval"`` object (``{"step": int, "minutes": float, "eval": {metric: score}}``) give one point
    ``{"step", "minutes", "value"}`` per metric; training log lines (no ``"eval"``), blank or broken lines (e.g. the
    last line of a killed run) are skipped, as are scores that are not numbers (``null``). A step logged twice keeps
    its last scores. The identity scores are the first ``"identity"`` object of an eval line (``{}`` if none).
    Returns ``({}, {})`` when the file does not exist.

    Example:
        >>> import tempfile
        >>> f = Path(tempfile.mkdtemp()) / "metrics.jsonl"
        >>> _ = f.write_text('{"step": 10, "loss": 1.0}\\n{"step": 20, "minutes": 0.5, "eval": {"psnr": 12.0}}\\n')
        >>> read_log(f)
        ({'psnr': [{'step': 20, 'minutes': 0.5, 'value': 12.0}]}, {})
    """
    curves: dict[str, dict[int, Point]] = {}
    identity: dict[str, float] = {}
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return {}, {}
    for line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if not isinstance(record, dict) or not isinstance(record.get("eval"), dict):
            continue
        step, minutes = record.get("step"), record.get("minutes")
        if not _finite(step):
            continue
        minutes = float(minutes) if _finite(minutes) else math.nan
        for name, value in record["eval"].items():
            if isinstance(value, int | float) and not isinstance(value, bool):  # NaN and inf are kept: divergence
                curves.setdefault(name, {})[int(step)] = {"step": int(step), "minutes": minutes, "value": float(value)}
        if not identity and isinstance(record.get("identity"), dict):
            identity = {k: float(v) for k, v in record["identity"].items() if _finite(v)}
    return {name: [points[s] for s in sorted(points)] for name, points in curves.items()}, identity


def read_curves(path: str | os.PathLike) -> Curves:
    """The evaluation curves of a run's ``metrics.jsonl``: ``{metric: [{"step", "minutes", "value"}, ...]}``."""
    return read_log(path)[0]


def last_point(curves: Curves) -> tuple[int | None, float | None]:
    """Step and training minutes of the last evaluation in ``curves`` (None, None without any)."""
    points = [p for values in curves.values() for p in values]
    if not points:
        return None, None
    last = max(points, key=lambda p: p["step"])
    return int(last["step"]), (last["minutes"] if _finite(last["minutes"]) else None)


def best_rows(rows: Sequence[Row], metrics: Iterable[str], higher_is_better: Mapping[str, bool]) -> dict[str, set[int]]:
    """For each metric, the indices of the rows with the best finite score (all of them on a tie; none when the
    metric's direction is unknown or no row has a finite score)."""
    best: dict[str, set[int]] = {}
    for name in metrics:
        if name not in higher_is_better:
            best[name] = set()
            continue
        values = {i: row["scores"].get(name) for i, row in enumerate(rows)}
        values = {i: float(v) for i, v in values.items() if _finite(v)}
        if not values:
            best[name] = set()
            continue
        top = (max if higher_is_better[name] else min)(values.values())
        best[name] = {i for i, v in values.items() if v == top}
    return best


def _cell(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}g}" if math.isfinite(value) else str(value)
    return str(value)


def _minutes(value: Any) -> str:
    return f"{value:.2f}" if _finite(value) else "-"


def table_cells(
    rows: Sequence[Row], metrics: Sequence[str], higher_is_better: Mapping[str, bool]
) -> tuple[list[str], list[list[str]], dict[str, set[int]]]:
    """Header and unmarked cells of the score table (recipe, steps, minutes, one column per metric) and the best
    rows per metric. The header names each metric with an arrow: ``psnr ↑`` (higher is better), ``swd ↓``."""

    def head(name: str) -> str:
        arrow = {True: " ↑", False: " ↓"}.get(higher_is_better.get(name), "")  # type: ignore[arg-type]
        return name + arrow

    header = ["recipe", "steps", "minutes", *(head(m) for m in metrics)]
    body = [
        [
            str(row["name"]),
            _cell(row.get("steps")),
            _minutes(row.get("minutes")),
            *(_cell(row["scores"].get(m)) for m in metrics),
        ]
        for row in rows
    ]
    return header, body, best_rows(rows, metrics, higher_is_better)


def format_table(rows: Sequence[Row], metrics: Sequence[str], higher_is_better: Mapping[str, bool]) -> str:
    """The score table as aligned plain text; the best score of each metric column carries a ``*``."""
    header, body, best = table_cells(rows, metrics, higher_is_better)
    for name_index, name in enumerate(metrics):
        for i, row in enumerate(body):  # unmarked cells get blanks in place of the mark, to keep numbers aligned
            row[3 + name_index] += " *" if i in best[name] else "  "
    grid = [header, *body]
    widths = [max(len(r[c]) for r in grid) for c in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) if c == 0 else cell.rjust(w) for c, (cell, w) in enumerate(zip(r, widths, strict=True)))
        for r in grid
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines) + "\n* best in its column (↑ higher is better, ↓ lower)\n"


def markdown_table(rows: Sequence[Row], metrics: Sequence[str], higher_is_better: Mapping[str, bool]) -> str:
    """The score table in Markdown; the best score of each metric column is in bold."""
    header, body, best = table_cells(rows, metrics, higher_is_better)
    for name_index, name in enumerate(metrics):
        for i in best[name]:
            body[i][3 + name_index] = f"**{body[i][3 + name_index]}**"
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join([":---", *(["---:"] * (len(header) - 1))]) + "|"]
    lines += ["| " + " | ".join(r) + " |" for r in body]
    return "\n".join(lines) + "\n"


#: How the table names a recipe trained on pairs.
PAIRED = "{name} (paired)"


def result_rows(results: Mapping[str, Any]) -> list[Row]:
    """The table rows of a ``results.json`` object: one per recipe (``name (paired)`` for one trained on pairs),
    then the identity baseline."""
    rows = [
        {
            "name": PAIRED.format(name=r["name"]) if r.get("paired") else r["name"],
            "steps": r.get("steps"),
            "minutes": r.get("minutes"),
            "scores": r.get("scores") or {},
        }
        for r in results.get("recipes", [])
    ]
    rows.append({"name": IDENTITY, "steps": None, "minutes": None, "scores": results.get("identity") or {}})
    return rows


def machine_info() -> dict[str, Any]:
    """What the timings depend on: CPU model and vector extensions, torch version, threads, accelerator."""
    import torch

    model = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), model)
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": model,
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
    }
    return info


def now() -> str:
    """The local date and time, ISO 8601 with its UTC offset."""
    return datetime.now().astimezone().isoformat(timespec="seconds")


def markdown_report(results: Mapping[str, Any]) -> str:
    """``results.md``: the setup (machine, budget, command) and the score table of a ``results.json`` object."""
    machine = results.get("machine", {})
    metrics = results.get("metrics", [])
    higher = {**HIGHER_IS_BETTER, **results.get("higher_is_better", {})}
    budget = results.get("budget", {})
    how = f"{budget['minutes']:g} minutes" if "minutes" in budget else f"{budget.get('steps')} steps"
    lines = [
        "# Photo -> cartoon quality benchmark",
        "",
        f"- date: {results.get('date', '-')}",
        f"- command: `{results.get('command', '-')}`",
        f"- budget: {how} of training per recipe (evaluation time excluded), evaluated every "
        f"{results.get('eval_every', '-')} steps on the {results.get('images', '-')} test images",
        f"- data: `{results.get('data', {}).get('path', '-')}` (VERSION {results.get('data', {}).get('version', '-')})",
        f"- CPU: {machine.get('cpu', '-')} ({machine.get('cpu_capability', '-')}, {machine.get('cpu_count', '-')} "
        f"logical cores), torch {machine.get('torch', '-')}, {machine.get('threads', '-')} threads"
        + (f", GPU: {machine['cuda']}" if machine.get("cuda") else ""),
        "",
        markdown_table(result_rows(results), metrics, higher),
        f"Best per column in bold. `{IDENTITY}`: the untouched test photos scored as if they were the "
        "translation (the do-nothing baseline). psnr and ssim compare with the filtered ground truth (testGT); "
        "swd, lab, kid and fid compare the set of outputs with testB (= testGT) as distributions; content compares "
        "each output with its input photo. ↑ higher is better, ↓ lower is better.",
    ]
    if any(r.get("paired") for r in results.get("recipes", [])):
        lines += [
            "",
            "A row marked (paired) trained on pairs (`"
            + str(results.get("paired_data") or "data-paired")
            + "`: the same training photos and their filtered versions) for the same budget: the ceiling of the "
            "unpaired recipes. Its last generator is scored on the same test images and ground truth; its curves "
            "have no psnr or ssim (the paired dataset gives no ground truth during training).",
        ]
    notes = [f"{r['name']}: {note}" for r in results.get("recipes", []) for note in r.get("notes", [])]
    errors = [f"{r['name']}: {r['error']}" for r in results.get("recipes", []) if r.get("error")]
    if notes or errors:
        lines += ["", "## Notes", "", *(f"- {n}" for n in [*errors, *notes])]
    return "\n".join(lines) + "\n"


def plot_curves(
    curves: Mapping[str, Curves],
    metrics: Sequence[str],
    path: str | os.PathLike,
    identity: Mapping[str, float] | None = None,
    higher_is_better: Mapping[str, bool] | None = None,
    title: str | None = None,
) -> Path:
    """Plot score against training minutes, one panel per metric and one line per recipe (``curves``: recipe name ->
    its curves); the identity scores are dashed horizontal lines. Written with matplotlib's Agg canvas (no display
    needed, no global backend change). Returns ``path``."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    identity = identity or {}
    higher = {**HIGHER_IS_BETTER, **(higher_is_better or {})}
    metrics = list(metrics) or sorted({m for c in curves.values() for m in c})
    cols = min(3, max(1, len(metrics)))
    rows = max(1, math.ceil(len(metrics) / cols))
    fig = Figure(figsize=(4.2 * cols, 3.2 * rows), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(rows, cols, squeeze=False).ravel()
    for ax, name in zip(axes, metrics, strict=False):
        for recipe, recipe_curves in curves.items():
            points = recipe_curves.get(name, [])
            if points:
                ax.plot([p["minutes"] for p in points], [p["value"] for p in points], marker="o", ms=3, label=recipe)
        if _finite(identity.get(name)):
            ax.axhline(identity[name], color="0.4", linestyle="--", linewidth=1, label=IDENTITY)
        way = {True: "higher is better", False: "lower is better"}.get(higher.get(name))  # type: ignore[arg-type]
        ax.set_title(f"{name} ({way})" if way else name)
        ax.set_xlabel("training minutes")
        ax.grid(alpha=0.3)
    for ax in axes[len(metrics) :]:
        ax.set_visible(False)
    handles, labels = axes[0].get_legend_handles_labels()
    for ax in axes[1 : len(metrics)]:  # one legend for the figure, with every recipe that appears anywhere
        for h, label in zip(*ax.get_legend_handles_labels(), strict=True):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=min(4, len(labels)), fontsize="small")
    if title:
        fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    return path
