"""Train recipes for the same budget on the photo -> cartoon quality benchmark and score them.

    python benchmarks/quality/run.py --minutes 10 recipes/quickstart.toml recipes/photo2anime-cut.toml

builds the benchmark data if needed (``build.py``), then, for each recipe in turn (never in parallel, so that the
trainings do not share the machine), trains it through the ``i2i`` command line for the budget (``--minutes`` of
training time, evaluation excluded; or ``--steps``), evaluating the test split every ``--eval-every`` steps, and
scores the final checkpoint with ``i2i eval``. It prints a table (one row per recipe and one for the identity
baseline, best per column marked) and writes ``OUT/results.json`` (everything, with the evaluation curves),
``OUT/results.md`` and ``OUT/quality.png`` (score against training minutes). Run folders are ``OUT/<recipe name>``
(started over each time), the trainings' output ``OUT/logs/``.

With ``--minutes`` a recipe whose own schedule (``train.steps``) ends first stops there: raise it with
``--set train.steps=...`` to spend the whole budget.

A recipe of paired data (``data.dataset`` ``paired-folder`` or ``aligned``: pix2pix) trains on the paired variant
(``--paired-data``, default ``data-paired``, built by ``build.py --paired`` when missing or stale: the same training
photos and *their* filtered versions) and its last generator is scored on the same test images with ground truth as
the others; its row is marked ``(paired)``: the ceiling of the unpaired recipes at the same budget.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shlex
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_OUT = HERE / "runs"
DEFAULT_DATA = HERE / "data"
DEFAULT_PAIRED_DATA = HERE / "data-paired"
#: Datasets of pairs: a recipe reading one trains on the paired variant of the data.
PAIRED_DATASETS = ("paired-folder", "aligned")
#: What the dry run shows for the generator file a paired run is scored with, found once it has trained.
LATEST_GENERATOR = "checkpoints/LATEST/GENERATOR.safetensors"
#: Metrics that need no weights; kid and fid are added when InceptionV3 weights are given.
BASE_METRICS = ("psnr", "ssim", "content", "swd", "lab", "palette", "flat", "checker")
INCEPTION_METRICS = ("kid", "fid")
INCEPTION_ENV = "I2I_INCEPTION_WEIGHTS"
DEFAULT_EVAL_EVERY = 100  # steps, with --minutes; with --steps S: S // 5
#: Training crops and evaluation images of every recipe, in pixels a side (resized first to LOAD_RATIO x it).
DEFAULT_SIZE = 128
LOAD_RATIO = 286 / 256  # the reference's load_size / crop_size


def _sibling(name: str) -> ModuleType:
    """This folder's module ``name``, loaded from its file (the folder is no package)."""
    key = f"i2i_quality_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


def toml_string(value: str | os.PathLike) -> str:
    """``value`` as a TOML string literal (a JSON string is one), so that ``--set`` keeps it a string."""
    return json.dumps(str(value))


def metrics_for(inception_weights: str | None, chosen: Sequence[str] | None = None) -> list[str]:
    """The metrics to score: ``chosen`` or the weight-free ones, plus kid and fid when weights are given."""
    names = list(chosen) if chosen else list(BASE_METRICS)
    if inception_weights:
        names += [m for m in INCEPTION_METRICS if m not in names]
    else:
        names = [m for m in names if m not in INCEPTION_METRICS]
    return names


def commands(
    recipe: str | os.PathLike,
    run_dir: str | os.PathLike,
    data: str | os.PathLike,
    *,
    minutes: float | None = None,
    steps: int | None = None,
    eval_every: int,
    metrics: Sequence[str],
    size: int | None = DEFAULT_SIZE,
    overrides: Sequence[str] = (),
    inception_weights: str | None = None,
    python: str = sys.executable,
) -> dict[str, list[str]]:
    """The two command lines of one recipe: ``"train"`` (``i2i run``) and ``"eval"`` (``i2i eval --json``).

    Exactly one of ``minutes`` (sets ``train.minutes``) and ``steps`` (sets ``train.steps``, and ``train.minutes=0``
    so that no time budget of the recipe cuts it short) gives the budget. ``size`` sets the training crops and the
    evaluation images of every recipe alike (``data.crop_size``, ``data.load_size``, ``eval.size``; None keeps the
    recipe's), so that scores compare. ``overrides`` (``KEY=VALUE``) come last,
    so they win. The CLI runs as ``python -m i2i_core``: the ``i2i`` of this interpreter's environment.
    """
    if (minutes is None) == (steps is None):
        raise ValueError("give exactly one of minutes and steps")
    if eval_every < 1:
        raise ValueError(f"eval_every must be >= 1, got {eval_every}")
    cli = [python, "-m", "i2i_core"]
    budget = [f"train.minutes={minutes:g}"] if minutes is not None else [f"train.steps={steps}", "train.minutes=0"]
    sizes = (
        [f"data.load_size={round(size * LOAD_RATIO)}", f"data.crop_size={size}", f"eval.size={size}"] if size else []
    )
    sets = [
        f"output.dir={toml_string(run_dir)}",
        f"data.root={toml_string(data)}",
        *sizes,
        *budget,
        f"output.eval_every={eval_every}",
        f"eval.metrics={json.dumps(list(metrics))}",
        *overrides,
    ]
    train = [*cli, "run", str(recipe), "--restart", "--no-progress", *(a for s in sets for a in ("--set", s))]
    evaluate = eval_command(run_dir, data, metrics, inception_weights=inception_weights, python=python)
    return {"train": train, "eval": evaluate}


def eval_command(
    checkpoint: str | os.PathLike,
    data: str | os.PathLike,
    metrics: Sequence[str],
    *,
    size: int | None = None,
    inception_weights: str | None = None,
    python: str = sys.executable,
) -> list[str]:
    """``i2i eval --json`` of ``checkpoint`` on ``data``. A run folder brings its recipe (dataset, image size); a
    generator file is scored on ``data`` read as ``unpaired-folder`` (testA, testB and the ground truth testGT),
    at ``size``."""
    evaluate = [python, "-m", "i2i_core", "eval", "-c", str(checkpoint), "--data", str(data), "--json"]
    evaluate += ["--size", str(size)] if size else []
    evaluate += [a for m in metrics for a in ("--metric", m)]
    if inception_weights:
        evaluate += ["--inception-weights", str(inception_weights)]
    return evaluate


def paired_crop(recipe: str | os.PathLike, overrides: Sequence[str] = ()) -> int | None:
    """The training crop of ``recipe`` (with ``overrides``) when it reads paired data (:data:`PAIRED_DATASETS`),
    else None (also for a recipe that does not load: its training says why)."""
    from i2i_core.errors import I2IError
    from i2i_core.recipe import load_recipe

    try:
        loaded = load_recipe(recipe, list(overrides))
    except (I2IError, OSError):
        return None
    return int(loaded["data.crop_size"]) if loaded["data.dataset"] in PAIRED_DATASETS else None


def latest_generator(run_dir: str | os.PathLike, direction: str = "AtoB") -> Path:
    """The generator file of the last checkpoint of run folder ``run_dir`` for ``direction``."""
    from i2i_core.checkpoint import generator_file

    return generator_file(run_dir, direction)


def run_names(recipes: Sequence[str | os.PathLike]) -> list[str]:
    """A run folder name per recipe: its file stem, with ``-2``, ``-3``... for repeated stems."""
    names: list[str] = []
    for recipe in recipes:
        stem, name, n = Path(recipe).stem, Path(recipe).stem, 1
        while name in names:
            n += 1
            name = f"{stem}-{n}"
        names.append(name)
    return names


def parse_eval_output(text: str) -> dict[str, Any]:
    """The JSON object ``i2i eval --json`` printed (other text around it is ignored)."""
    decoder = json.JSONDecoder()
    for start in (i for i, ch in enumerate(text) if ch == "{"):
        try:
            value, _ = decoder.raw_decode(text, start)
        except ValueError:
            continue
        if isinstance(value, dict) and "scores" in value:
            return value
    raise ValueError("no JSON object with 'scores' in the output of i2i eval")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python benchmarks/quality/run.py",
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2].replace("``", ""),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("recipes", nargs="+", metavar="RECIPE", help="recipe TOML files, trained one after another")
    budget = parser.add_mutually_exclusive_group(required=True)
    budget.add_argument("--minutes", type=float, help="training minutes per recipe (evaluation time excluded)")
    budget.add_argument("--steps", type=int, help="training steps per recipe instead (quick checks)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    parser.add_argument(
        "--data",
        type=Path,
        default=DEFAULT_DATA,
        help=f"benchmark data, built when missing or stale (default {DEFAULT_DATA}); another dataset folder "
        "(e.g. builtin data without ground truth) is used as it is",
    )
    parser.add_argument(
        "--paired-data",
        type=Path,
        default=DEFAULT_PAIRED_DATA,
        help=f"data of the recipes that train on pairs (paired-folder, aligned), built when missing or stale "
        f"(default {DEFAULT_PAIRED_DATA}); another folder is used as it is",
    )
    parser.add_argument(
        "--eval-every",
        type=int,
        metavar="STEPS",
        help=f"evaluate every STEPS training steps (default {DEFAULT_EVAL_EVERY}; with --steps S: S/5)",
    )
    parser.add_argument(
        "--inception-weights",
        metavar="PATH",
        default=os.environ.get(INCEPTION_ENV) or None,
        help=f"local InceptionV3 weights: adds kid and fid (default: ${INCEPTION_ENV})",
    )
    parser.add_argument(
        "--metric",
        dest="metrics",
        action="append",
        metavar="NAME",
        help=f"metric to score (repeatable; default {', '.join(BASE_METRICS)}, plus kid, fid with weights)",
    )
    parser.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="recipe override passed to every recipe (repeatable; VALUE is TOML)",
    )
    parser.add_argument(
        "--size",
        type=int,
        default=DEFAULT_SIZE,
        help=f"training crop and evaluation side of every recipe (default {DEFAULT_SIZE}; 0 keeps each recipe's)",
    )
    parser.add_argument("--dry-run", action="store_true", help="print the command lines and stop")
    return parser


def _write_results(out: Path, results: dict[str, Any], report: ModuleType) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (out / "results.md").write_text(report.markdown_report(results))
    curves = {r["name"]: r.get("curves", {}) for r in results["recipes"]}
    higher = {**report.HIGHER_IS_BETTER, **results.get("higher_is_better", {})}
    report.plot_curves(curves, results["metrics"], out / "quality.png", results.get("identity"), higher)


def _run_recipe(
    name: str,
    recipe: str,
    lines: dict[str, list[str]],
    run_dir: Path,
    logs: Path,
    env: dict[str, str],
    scored: Any = None,
) -> dict[str, Any]:
    """Train and score one recipe; the result entry of ``results.json``. ``scored(generator)``, for a paired recipe,
    gives the eval command line of the run's last generator file (scored on the benchmark's ground truth)."""
    report = _sibling("report")
    entry: dict[str, Any] = {"name": name, "recipe": str(recipe), "run_dir": str(run_dir), "commands": lines}
    entry.update(steps=None, minutes=None, scores={}, identity={}, curves={}, notes=[], error=None)
    entry["paired"] = scored is not None
    logs.mkdir(parents=True, exist_ok=True)
    print(f"[{name}] training: {shlex.join(lines['train'])}", flush=True)
    start = time.perf_counter()
    with open(logs / f"{name}-train.log", "w") as log:
        code = subprocess.run(lines["train"], stdout=log, stderr=subprocess.STDOUT, env=env).returncode
    entry["train_wall_seconds"] = round(time.perf_counter() - start, 1)
    entry["train_returncode"] = code
    curves, identity = report.read_log(run_dir / "metrics.jsonl")
    entry["curves"], entry["identity"] = curves, identity
    entry["steps"], entry["minutes"] = report.last_point(curves)
    if code != 0:
        entry["error"] = f"training exited with code {code}; see {logs / f'{name}-train.log'}"
        print(f"[{name}] {entry['error']}", flush=True)
        return entry
    if scored is not None:
        try:
            lines["eval"] = scored(latest_generator(run_dir))
        except Exception as exc:  # no checkpoint: the training log says why
            entry["error"] = f"no generator to score in {run_dir}: {exc}"
            print(f"[{name}] {entry['error']}", flush=True)
            return entry
    print(f"[{name}] scoring: {shlex.join(lines['eval'])}", flush=True)
    done = subprocess.run(lines["eval"], capture_output=True, text=True, env=env)
    (logs / f"{name}-eval.log").write_text(done.stdout + done.stderr)
    try:
        if done.returncode != 0:
            raise ValueError(f"i2i eval exited with code {done.returncode}")
        result = parse_eval_output(done.stdout)
    except ValueError as exc:
        entry["error"] = f"{exc}; see {logs / f'{name}-eval.log'}"
        print(f"[{name}] {entry['error']}", flush=True)
        return entry
    entry["eval"] = result
    entry["scores"] = result.get("scores") or {}
    entry["identity"] = result.get("identity") or identity
    entry["notes"] = list(result.get("notes") or [])
    if result.get("step") is not None:
        entry["steps"] = result["step"]
    return entry


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.minutes is not None and args.minutes <= 0:
        raise SystemExit("--minutes must be positive")
    if args.steps is not None and args.steps < 1:
        raise SystemExit("--steps must be >= 1")
    eval_every = args.eval_every or (DEFAULT_EVAL_EVERY if args.steps is None else max(1, args.steps // 5))
    weights = args.inception_weights
    metrics = metrics_for(weights, args.metrics)
    out, data, paired_data = args.out.resolve(), args.data.resolve(), args.paired_data.resolve()
    names = run_names(args.recipes)
    crops = {name: paired_crop(recipe, args.overrides) for name, recipe in zip(names, args.recipes, strict=True)}
    plan = {
        name: commands(
            recipe,
            out / name,
            data if crops[name] is None else paired_data,
            minutes=args.minutes,
            steps=args.steps,
            eval_every=eval_every,
            metrics=metrics,
            size=args.size or None,
            overrides=args.overrides,
            inception_weights=weights,
        )
        for name, recipe in zip(names, args.recipes, strict=True)
    }

    def scorer(name: str) -> Any:
        """For a paired recipe: its last generator, scored on the paired data as unpaired-folder (ground truth)."""
        if crops[name] is None:
            return None
        size = args.size or crops[name]
        return lambda generator: eval_command(generator, paired_data, metrics, size=size, inception_weights=weights)

    if args.dry_run:
        for name, lines in plan.items():
            print(shlex.join(lines["train"]))
            evaluate = scorer(name)
            print(shlex.join(lines["eval"] if evaluate is None else evaluate(out / name / LATEST_GENERATOR)))
        return 0
    for recipe in args.recipes:
        if not Path(recipe).is_file():
            raise SystemExit(f"recipe not found: {recipe}")

    build, report = _sibling("build"), _sibling("report")
    if data == DEFAULT_DATA.resolve():
        build.build(data, quiet=False)
    elif not (data / "testA").is_dir():
        raise SystemExit(f"--data {data}: no testA/ folder (a dataset in the layout trainA, trainB, testA, testB)")
    if any(crop is not None for crop in crops.values()):
        if paired_data == DEFAULT_PAIRED_DATA.resolve():
            build.build_paired(paired_data, quiet=False)
        elif not (paired_data / "testA").is_dir():
            raise SystemExit(f"--paired-data {paired_data}: no testA/ folder (pairs in trainA, trainB, testA, testB)")
    env = dict(os.environ)
    if weights:
        env[INCEPTION_ENV] = str(Path(weights).resolve())
    results: dict[str, Any] = {
        "command": shlex.join(["python", *sys.argv]) if argv is None else shlex.join(["run.py", *argv]),
        "date": report.now(),
        "machine": report.machine_info(),
        "budget": {"minutes": args.minutes} if args.minutes is not None else {"steps": args.steps},
        "eval_every": eval_every,
        "size": args.size or None,
        "metrics": metrics,
        "images": len(list((data / "testA").iterdir())),
        "data": {
            "path": str(data),
            "version": (data / "VERSION").read_text().strip() if (data / "VERSION").is_file() else None,
        },
        "paired_data": str(paired_data) if any(crop is not None for crop in crops.values()) else None,
        "overrides": list(args.overrides),
        "recipes": [],
        "identity": {},
        "higher_is_better": {},
    }
    code = 0
    try:
        for name, recipe in zip(names, args.recipes, strict=True):
            entry = _run_recipe(name, recipe, plan[name], out / name, out / "logs", env, scorer(name))
            results["recipes"].append(entry)
            if entry.get("eval"):
                results["higher_is_better"].update(entry["eval"].get("higher_is_better") or {})
            if not results["identity"] and entry.get("identity"):
                results["identity"] = entry["identity"]
            if entry["error"]:
                code = 1
            _write_results(out, results, report)  # after every recipe: a stopped benchmark keeps what it did
    except KeyboardInterrupt:
        print("Interrupted: results so far are kept.", file=sys.stderr)
        code = 130
    higher = {**report.HIGHER_IS_BETTER, **results["higher_is_better"]}
    if results["recipes"]:
        _write_results(out, results, report)
        print()
        print(report.format_table(report.result_rows(results), metrics, higher))
        print(f"Results: {out / 'results.md'}, {out / 'results.json'}, {out / 'quality.png'}")
    return code


if __name__ == "__main__":
    sys.exit(main())
