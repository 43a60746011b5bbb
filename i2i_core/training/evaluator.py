"""Evaluation during training: every ``output.eval_every`` steps, score the method's translation of the test split
with the recipe's metrics (``eval.*``), log the scores and say whether they are the best so far by ``eval.best``.

Scores go to ``metrics.jsonl`` as ``{"step", "minutes", "eval": {metric: score}}`` (the first such line of a session
also holds the identity's scores) and to TensorBoard as ``eval/<metric>``. The training loop keeps the best
checkpoint, a complete training checkpoint in ``checkpoints/best`` whose ``state.json`` records the scores that
made it best. Evaluating draws nothing from the RNGs and leaves the networks as they were, so a run evaluated as
it trains, interrupted and resumed, trains exactly as one that is not.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from i2i_core.checkpoint import BEST, read_checkpoint_state
from i2i_core.directions import reverse
from i2i_core.errors import CheckpointError
from i2i_core.evaluation import EvalSet, build_metrics, score
from i2i_core.method import Method
from i2i_core.recipe import Recipe
from i2i_core.training.log import RunLog
from i2i_core.training.state import Progress


@dataclass(frozen=True)
class EvalScores:
    """The scores of one evaluation during training; ``best`` (``{"metric", "score", "step"}``) when they are the
    best so far by ``eval.best``, which a run's ``checkpoints/best`` records."""

    scores: dict[str, float]
    best: dict[str, Any] | None = None


class Evaluator:
    """Scores a training method's translation of the recipe's evaluation split (on rank 0)."""

    def __init__(self, run_dir: Path, recipe: Recipe, trainer: Method, log: RunLog) -> None:
        self.every, self.recipe, self.trainer, self.log = recipe["output.eval_every"], recipe, trainer, log
        self.direction = recipe["eval.direction"]
        self.best_metric: str = recipe["eval.best"]
        self.data: EvalSet | None = None
        self.metrics = build_metrics(recipe["eval.metrics"]) if self.every else {}
        self.best_score = _saved_best(run_dir / "checkpoints" / BEST, self.best_metric)
        self.identity_logged = False

    def due(self, step: int, done: bool) -> bool:
        return bool(self.every) and (step % self.every == 0 or done)

    def run(self, progress: Progress) -> EvalScores:
        """Score the translation now, log it, and say whether it is the best so far."""
        if self.data is None:  # loaded at the first evaluation, so that a run that never evaluates never reads it
            data = EvalSet.from_recipe(self.recipe, self.direction)
            device = self.trainer.device
            truth = data.truth.to(device) if data.truth is not None else None
            self.data = EvalSet(data.split, data.direction, data.source.to(device), data.target.to(device), truth)
        translations = self.trainer.translations
        forward = self.trainer.networks[translations[self.direction].network]
        back_direction = reverse(self.direction)
        back = self.trainer.networks[translations[back_direction].network] if back_direction in translations else None
        modes = {net: net.training for net in (forward, back) if net is not None}
        with torch.random.fork_rng(devices=[self.trainer.device] if self.trainer.device.type == "cuda" else []):
            try:
                for net in modes:
                    net.eval()
                result = score(self.metrics, self.data, forward, back)
            finally:
                for net, mode in modes.items():
                    net.train(mode)
        record: dict[str, Any] = {
            "step": progress.step,
            "minutes": round(progress.train_seconds / 60, 4),
            "eval": result.scores,
        }
        if not self.identity_logged:
            record["identity"], self.identity_logged = result.identity, True
        self.log.metrics(record)
        if self.best_metric and self._improves(result.scores[self.best_metric]):
            self.best_score = result.scores[self.best_metric]
            best = {"metric": self.best_metric, "score": self.best_score, "step": progress.step}
            return EvalScores(result.scores, best)
        return EvalScores(result.scores)

    def _improves(self, value: float) -> bool:
        if not math.isfinite(value):
            return False
        if self.best_score is None:
            return True
        higher = self.metrics[self.best_metric].higher_is_better
        return value > self.best_score if higher else value < self.best_score


def _saved_best(folder: Path, metric: str) -> float | None:
    """The score that made ``folder`` (a run's best checkpoint) best, if it was chosen by ``metric``."""
    try:
        best = read_checkpoint_state(folder)["eval_best"]
    except (CheckpointError, KeyError, TypeError):
        return None
    return float(best["score"]) if best.get("metric") == metric else None
