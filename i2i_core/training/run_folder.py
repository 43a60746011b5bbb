"""The run folder: where a run is, the lock a running ``i2i run`` holds on it, ``--restart``, resuming from its
latest complete checkpoint, the stored recipe and the metric lines kept on resume."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import tomllib
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from i2i_core.checkpoint import atomic_write_bytes, list_checkpoints
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.method import Method
from i2i_core.recipe import Recipe, with_defaults
from i2i_core.training import distributed
from i2i_core.training.state import (
    Progress,
    read_training_checkpoint,
    recover_checkpoints,
    restore_training_checkpoint,
    set_aside,
)

#: The file of a run folder that a running ``i2i run`` holds locked.
LOCK_FILE = "run.lock"
#: What ``--restart`` deletes from a run folder.
RESULTS = ("checkpoints", "samples", "reports", "tensorboard", "metrics.jsonl")


def run_dir_of(recipe: Recipe) -> Path:
    return Path(recipe["output.dir"] or Path("runs") / recipe.name)


def _is_run_folder(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a recipe that i2i stored (a TOML file with the recipe's tables) and checkpoints/."""
    try:
        stored = tomllib.loads((run_dir / "recipe.toml").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return {"data", "model", "train", "output"} <= set(stored) and (run_dir / "checkpoints").is_dir()


def _file_in_the_way(run_dir: Path) -> Path | None:
    """The file at ``run_dir`` or at one of the folders above it, if any: no run folder can be made there."""
    for path in (run_dir, *run_dir.parents):
        if path.is_dir():
            return None
        if path.exists() or path.is_symlink():
            return path
    return None


def _check_run_folder(run_dir: Path, restart: bool) -> None:
    """Refuse, before writing anything, a run folder that cannot be one (a file is in the way) or that holds files
    but is not an i2i run folder: a run would rewrite its ``metrics.jsonl``, ``--restart`` delete its results."""
    if (file := _file_in_the_way(run_dir)) is not None:
        where = "" if file == run_dir else f": {file}"
        raise I2IError(f"output.dir {run_dir}{where} is a file, not a folder; set output.dir to a folder for the run")
    if not run_dir.is_dir() or _is_run_folder(run_dir) or all(p.name == LOCK_FILE for p in run_dir.iterdir()):
        return
    what = "no recipe.toml and checkpoints/ of a run"
    if restart:
        raise I2IError(
            f"--restart would delete {', '.join(RESULTS)} in {run_dir}, which is not an i2i run folder ({what}); "
            "choose another output.dir, or clear it yourself"
        )
    raise I2IError(
        f"output.dir {run_dir} is not an i2i run folder ({what}) and is not empty: a run would write its "
        "checkpoints, samples and metrics.jsonl among its files; choose a new or empty folder"
    )


class RunFolderLock:
    """An exclusive ``fcntl.flock`` on the run folder's ``run.lock`` (which names the holder's pid), held for a
    whole run: a second ``i2i run`` on the same folder fails at once."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / LOCK_FILE
        self.file: IO[str] | None = None

    def __enter__(self) -> RunFolderLock:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            file = open(self.path, "a+")  # closed by __exit__, which releases the lock
        except OSError as exc:
            problem = f"{exc.strerror or exc}: {exc.filename}" if exc.filename else (exc.strerror or str(exc))
            raise I2IError(f"output.dir {self.path.parent}: cannot write the run folder ({problem})") from None
        try:
            fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            file.seek(0)
            holder = file.read().strip()
            file.close()
            raise I2IError(
                f"run folder {self.path.parent} is in use by {f'pid {holder}' if holder else 'another process'}: "
                "wait for that run to end, or stop it"
            ) from None
        file.truncate(0)
        file.write(f"{os.getpid()}\n")
        file.flush()
        self.file = file
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.file is not None:
            self.file.close()


@contextlib.contextmanager
def hold_run_folder(run_dir: Path, restart: bool, job: distributed.Distributed) -> Iterator[None]:
    """Hold the run folder for a run (rank 0 locks it): checked, locked, emptied of results with ``restart``,
    and tidied of what a run that died while saving left."""
    if not job.is_main:
        job.barrier()
        yield
        return
    _check_run_folder(run_dir, restart)
    with RunFolderLock(run_dir):
        if restart:
            for name in RESULTS:
                path = run_dir / name
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
        recover_checkpoints(run_dir / "checkpoints")
        job.barrier()
        yield


def resume(run_dir: Path, trainer: Method, method: str, job: distributed.Distributed) -> tuple[Progress, Path | None]:
    """Restore the latest checkpoint that reads back whole into ``trainer``: its progress and path (``Progress()``
    and None without checkpoints).

    A newer checkpoint that does not read back (a torn or corrupt file) is renamed ``step_XXXXXXX.corrupt``,
    with a warning. When none reads back, the error names the newest and nothing is changed.
    """
    corrupt: dict[Path, CheckpointError] = {}
    found = None
    for path in reversed(list_checkpoints(run_dir / "checkpoints")):
        try:
            found = read_training_checkpoint(path, trainer, method)
            break
        except CheckpointError as exc:
            corrupt[path] = exc
    if found is None and corrupt:
        raise CheckpointError(
            f"{next(iter(corrupt.values()))} (and no earlier checkpoint in {run_dir / 'checkpoints'} reads back): "
            "repair it, or start over with --restart"
        )
    job.barrier()  # every process has read its checkpoint before a corrupt one is renamed
    if job.is_main:
        for path, exc in corrupt.items():
            kept = set_aside(path, ".corrupt")
            warnings.warn(f"{exc}; kept as {kept.name}, resuming from {found.path.name}", stacklevel=3)
    if found is None:
        return Progress(), None
    return restore_training_checkpoint(found, trainer), found.path


def start_run_folder(run_dir: Path, recipe: Recipe, step: int, resumed: bool) -> None:
    """Once a run is built and resumed: store its recipe (warning when it changed), make the output folders and
    drop the metric lines after ``step``."""
    stored = run_dir / "recipe.toml"
    if resumed and stored.is_file() and not _same_recipe(stored, recipe):
        warnings.warn(
            f"the recipe differs from the one {run_dir} was started with; resuming with the new one "
            "(use --restart to start over)",
            stacklevel=3,
        )
    atomic_write_bytes(stored, recipe.to_toml().encode())
    for folder in ("checkpoints", "samples"):
        (run_dir / folder).mkdir(exist_ok=True)
    _truncate_metrics(run_dir / "metrics.jsonl", step)


def _same_recipe(stored: Path, recipe: Recipe) -> bool:
    """Whether the recipe stored in a run folder resolves to ``recipe`` but for ``output.dir`` (a run folder moved
    or copied elsewhere is the same run; one stored before a default was added, such as ``method``, still is)."""
    try:
        text = stored.read_text(encoding="utf-8")
        if text == recipe.to_toml():
            return True
        return _without_run_dir(with_defaults(tomllib.loads(text), str(stored))) == _without_run_dir(recipe.values)
    except (ValueError, I2IError):
        return False


def _without_run_dir(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` without ``output.dir``, which says where a run folder is, not what the run does."""
    output = values.get("output")
    if not isinstance(output, dict):
        return values
    return {**values, "output": {key: value for key, value in output.items() if key != "dir"}}


def _truncate_metrics(path: Path, step: int) -> None:
    """Keep the metric lines up to ``step``, the step a run resumes from (0 when it starts afresh), so that no
    step is logged twice; a torn line (a run killed while writing it) is dropped with a warning."""
    if not path.is_file():
        return
    kept = []
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        try:
            line_step = json.loads(line)["step"] if line else None
        except (ValueError, KeyError, TypeError):
            warnings.warn(f"{path}: line {number} is torn or not a metric line; dropped", stacklevel=4)
            continue
        if line_step is not None and line_step <= step:
            kept.append(line + "\n")
    atomic_write_bytes(path, "".join(kept).encode())
