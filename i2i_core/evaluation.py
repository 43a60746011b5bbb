"""Scoring a translation: translate a test split and run metric plugins on the image streams it gives.

The streams (see :mod:`i2i_core.metric`) come from the dataset's items for a split: the unique ``<src>`` images
(``source``) with their ground truth ``<src>_truth`` when the dataset gives one (``truth``), the unique ``<dst>``
images (``target``), the translations (``output``) and, when the other direction can be translated too, the
outputs translated back (``cycled``). Every score comes with that of doing nothing (the ``identity``: the source
images taken as the output), the baseline a translation must beat.
"""

from __future__ import annotations

import contextlib
import math
import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import Dataset

from i2i_core.checkpoint import select_checkpoint, step_of
from i2i_core.directions import check_direction, reverse
from i2i_core.errors import I2IError
from i2i_core.host.registry import create
from i2i_core.infer.translate import load_translator
from i2i_core.metric import Metric
from i2i_core.recipe import Recipe, load_recipe, recipe_from_dict

#: Images per generator pass.
BATCH = 8

Translate = Callable[[torch.Tensor], torch.Tensor]


def domains(direction: str) -> tuple[str, str]:
    """The (source, target) domains of a direction: ``AtoB`` -> ``("A", "B")``."""
    check_direction(direction)
    return direction[0], direction[-1]


@dataclass(frozen=True)
class EvalSet:
    """The fixed images of a split for one direction: (N, 3, H, W) ``source``, (M, 3, H, W) ``target`` and the
    (N, 3, H, W) ``truth`` of the source images, or None."""

    split: str
    direction: str
    source: torch.Tensor
    target: torch.Tensor
    truth: torch.Tensor | None

    @classmethod
    def from_dataset(cls, dataset: Dataset, split: str, direction: str) -> EvalSet:
        """The unique images of ``dataset``'s items (by their ``<domain>_path``), in the order first seen."""
        src, dst = domains(direction)
        sources: dict[str, tuple[torch.Tensor, torch.Tensor | None]] = {}
        targets: dict[str, torch.Tensor] = {}
        for index in range(len(dataset)):
            item = dataset[index]
            sources.setdefault(str(item.get(f"{src}_path", f"{src}{index}")), (item[src], item.get(f"{src}_truth")))
            targets.setdefault(str(item.get(f"{dst}_path", f"{dst}{index}")), item[dst])
        images = [image for image, _ in sources.values()]
        truths = [truth for _, truth in sources.values()]
        try:
            source, target = torch.stack(images), torch.stack(list(targets.values()))
            truth = torch.stack(truths) if all(t is not None for t in truths) else None
        except RuntimeError as exc:
            raise I2IError(
                f"split '{split}': evaluation needs images of one size, and the dataset gives several ({exc}); "
                "set eval.size"
            ) from None
        return cls(split, direction, source.float(), target.float(), truth.float() if truth is not None else None)

    @classmethod
    def from_recipe(cls, recipe: Recipe, direction: str, split: str | None = None, size: int | None = None) -> EvalSet:
        """The recipe's dataset for ``split`` (default ``eval.split``), its images resized to ``size`` (default
        ``eval.size``, and ``data.crop_size`` when that is 0)."""
        split = split or recipe["eval.split"]
        options = recipe.component_options("data")
        if size := size or recipe["eval.size"]:
            options.update(crop_size=size, load_size=max(size, options.get("load_size", size)))
        try:
            dataset = create("dataset", recipe["data.dataset"], split=split, **options)
        except I2IError as exc:
            raise I2IError(f"evaluation on split '{split}': {exc}") from None
        return cls.from_dataset(dataset, split, direction)


def build_metrics(names: Iterable[str]) -> dict[str, Metric]:
    """The metric components ``names`` names, built with their defaults."""
    metrics = {}
    for name in names:
        try:
            metrics[name] = create("metric", name)
        except I2IError as exc:
            raise I2IError(f"metric '{name}': {exc}") from None
    return metrics


def translate_all(translate: Translate, images: torch.Tensor) -> torch.Tensor:
    """``translate`` over ``images`` in batches of :data:`BATCH`, without gradients, clamped to [-1, 1]."""
    with torch.no_grad():
        return torch.cat([translate(images[i : i + BATCH]).float().clamp(-1, 1) for i in range(0, len(images), BATCH)])


@dataclass
class Evaluation:
    """Scores of a translation and of the identity, by metric name (None where a metric cannot score the
    identity: it compares the source with itself)."""

    direction: str
    split: str
    images: int
    scores: dict[str, float] = field(default_factory=dict)
    identity: dict[str, float | None] = field(default_factory=dict)
    higher_is_better: dict[str, bool] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    checkpoint: str | None = None
    step: int | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (non-finite scores, such as the PSNR of identical images, as strings)."""
        data = asdict(self)
        for key in ("scores", "identity"):
            data[key] = {k: _json_number(v) for k, v in data[key].items()}
        return data


def _json_number(value: float | None) -> float | str | None:
    return value if value is None or math.isfinite(value) else str(value)


def score(
    metrics: Mapping[str, Metric],
    data: EvalSet,
    translate: Translate,
    translate_back: Translate | None = None,
) -> Evaluation:
    """Translate ``data.source`` (and back, with ``translate_back``) and score it with each metric.

    A metric reading a stream the data or the checkpoint cannot give (no ground truth, no way back) is left out,
    with a note saying why.
    """
    output = translate_all(translate, data.source)
    streams = {"source": data.source, "output": output, "target": data.target}
    if data.truth is not None:
        streams["truth"] = data.truth
    if translate_back is not None:
        streams["cycled"] = translate_all(translate_back, output)
    as_is = {**streams, "output": data.source, "cycled": data.source}
    result = Evaluation(data.direction, data.split, len(data.source))
    src, _ = domains(data.direction)
    missing = {
        "truth": f"the dataset gives no ground truth ({src}_truth) for split '{data.split}'",
        "cycled": "nothing translates the outputs back (no generator of the other direction)",
    }
    for name, metric in metrics.items():
        x, y = metric.reads
        if absent := [s for s in (x, y) if s not in streams]:
            result.notes.append(f"{name}: left out, {'; '.join(missing.get(s, f'no {s} images') for s in absent)}")
            continue
        try:
            result.scores[name] = float(metric(streams[x], streams[y]))
            result.identity[name] = None if as_is[x] is as_is[y] else float(metric(as_is[x], as_is[y]))
        except (ValueError, RuntimeError) as exc:  # e.g. too few images for the metric, or images too small
            raise I2IError(f"metric '{name}' cannot score split '{data.split}' ({len(output)} images): {exc}") from exc
        result.higher_is_better[name] = bool(metric.higher_is_better)
    return result


def set_inception_weights(path: str | os.PathLike | None) -> None:
    """Point metrics that need InceptionV3 weights (KID, FID) at a local file (``I2I_INCEPTION_WEIGHTS``)."""
    if path is not None:
        file = Path(path).expanduser()
        if not file.is_file():
            raise I2IError(f"--inception-weights: no such file: {file}")
        os.environ["I2I_INCEPTION_WEIGHTS"] = str(file)


def recipe_of(checkpoint: Path) -> Path | None:
    """The ``recipe.toml`` of the run a checkpoint path belongs to (a run folder or one of its checkpoint
    folders), or None (a component checkpoint file carries no recipe)."""
    for folder in (checkpoint, checkpoint.parent.parent):
        if checkpoint.is_dir() and (folder / "recipe.toml").is_file():
            return folder / "recipe.toml"
    return None


def evaluate(
    checkpoint: str | os.PathLike,
    data: str | None = None,
    split: str | None = None,
    direction: str = "AtoB",
    metrics: Iterable[str] | None = None,
    size: int | None = None,
    which: str | None = None,
    device: str | torch.device | None = None,
) -> Evaluation:
    """Score the generator of ``direction`` in ``checkpoint`` on a test split.

    The data, split, image size and metrics are those of the run's recipe (``data.*``, ``eval.*``) unless given;
    a component checkpoint file has no recipe, so it needs ``data`` (a dataset root). The generators run in fp32,
    as evaluations during training do, so that scores do not depend on the CPU's bf16 units.

    Example:
        >>> result = evaluate("runs/quickstart", metrics=["psnr", "swd"])  # doctest: +SKIP
        >>> result.scores["swd"], result.identity["swd"]  # doctest: +SKIP
    """
    path = select_checkpoint(checkpoint, which)
    recipe_file = recipe_of(path)
    if recipe_file is None and data is None:
        raise I2IError(f"{path}: a checkpoint file carries no recipe, so name the data to score it on: --data ROOT")
    overrides = {"data.root": data} if data is not None else {}
    recipe = load_recipe(recipe_file, overrides) if recipe_file else recipe_from_dict({"data": {"root": data}})
    eval_set = EvalSet.from_recipe(recipe, direction, split, size)
    translator = load_translator(path, direction, device=device, precision="fp32")
    back = reverse(direction)
    translate_back = None
    if path.is_dir():  # a generator file translates one way, whichever direction is asked for
        with contextlib.suppress(I2IError):  # a method that learns one direction has no way back
            translate_back = load_translator(path, back, device=device, precision="fp32").translate_tensor
    device = translator.device
    result = score(
        build_metrics(metrics if metrics is not None else recipe["eval.metrics"]),
        EvalSet(
            eval_set.split,
            direction,
            eval_set.source.to(device),
            eval_set.target.to(device),
            eval_set.truth.to(device) if eval_set.truth is not None else None,
        ),
        translator.translate_tensor,
        translate_back,
    )
    result.checkpoint, result.step = str(path), step_of(path)
    return result
