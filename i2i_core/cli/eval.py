"""``i2i eval``: score a checkpoint's translations of a test split, beside doing nothing."""

from __future__ import annotations

import json
import math
from typing import TYPE_CHECKING

import click

from i2i_core.cli.options import PICK
from i2i_core.directions import DIRECTIONS

if TYPE_CHECKING:
    from i2i_core.evaluation import Evaluation


def _shown(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}" if math.isfinite(value) else str(value)


def _verdict(result: Evaluation, name: str) -> str:
    """Which way the metric points, and how the score compares with the identity's."""
    score, baseline, higher = result.scores[name], result.identity.get(name), result.higher_is_better[name]
    direction = "higher is better" if higher else "lower is better"
    if baseline is None or score == baseline:
        return direction
    return f"{'better' if (score > baseline) == higher else 'worse'} than identity; {direction}"


def print_evaluation(result: Evaluation) -> None:
    """The scores as a table: metric, score, identity's score, which is better."""
    where = f"{result.checkpoint}" + (f" (step {result.step})" if result.step is not None else "")
    click.echo(f"{where}: {result.direction} on split '{result.split}', {result.images} image(s)")
    rows = [("METRIC", "SCORE", "IDENTITY", "")]
    for name in result.scores:
        rows.append((name, _shown(result.scores[name]), _shown(result.identity.get(name)), _verdict(result, name)))
    widths = [max(len(r[i]) for r in rows) for i in range(3)]
    for row in rows:
        click.echo("  ".join([*(cell.ljust(w) for cell, w in zip(row, widths, strict=False)), row[3]]))
    for note in result.notes:
        click.echo(f"Note: {note}", err=True)


@click.command("eval")
@click.option(
    "-c", "--checkpoint", required=True, help="Run folder, checkpoint folder, generator .safetensors or builtin:NAME."
)
@PICK
@click.option("--data", "data", help="Dataset root (default: the run's data.root; needed for a checkpoint file).")
@click.option("--split", help="Split to score on (default: the run's eval.split, else test).")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True)
@click.option("--metric", "metrics", multiple=True, help="Metric to run (repeatable; default: the run's eval.metrics).")
@click.option("--size", type=click.IntRange(min=16), help="Side the images are resized to (default: eval.size).")
@click.option(
    "--inception-weights",
    type=click.Path(dir_okay=False),
    help="Local InceptionV3 weights for kid and fid (or set I2I_INCEPTION_WEIGHTS); i2i never downloads them.",
)
@click.option("--device", default=None, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print the result as one JSON object.")
def eval_command(
    checkpoint: str,
    pick: str | None,
    data: str | None,
    split: str | None,
    direction: str,
    metrics: tuple[str, ...],
    size: int | None,
    inception_weights: str | None,
    device: str | None,
    as_json: bool,
) -> None:
    """Translate a test split with a checkpoint and score it with metric plugins, beside the identity baseline
    (the untouched source images scored the same way)."""
    from i2i_core.evaluation import evaluate, set_inception_weights

    set_inception_weights(inception_weights)
    result = evaluate(
        checkpoint,
        data=data,
        split=split,
        direction=direction,
        metrics=list(metrics) or None,
        size=size,
        which=pick,
        device=None if device in (None, "auto") else device,
    )
    if as_json:
        click.echo(json.dumps(result.to_json(), indent=1))
    else:
        print_evaluation(result)
