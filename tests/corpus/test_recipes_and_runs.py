"""Bad recipes, run folders and signals: each case fails with one line naming the file or key at fault (or stops
with the signal's exit code), without a traceback, and changes nothing it was not asked to."""

from __future__ import annotations

import errno
import fcntl
import json
import os
import shutil
import signal
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from i2i_cyclegan import CycleGAN

import i2i_core.training.state
from corpus.conftest import Outcome, expect_error, i2i, snapshot
from i2i_core.checkpoint import list_checkpoints
from i2i_core.cli import cli
from i2i_core.training.state import read_training_checkpoint

TINY = Path(__file__).parents[1] / "recipes" / "tiny.toml"


@pytest.fixture(autouse=True)
def _keep_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line routes warnings to its own printer: put the test process's back afterwards."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)


def run(*args: str | Path) -> Outcome:
    """``i2i run ARGS`` in this process; an exception that escapes the command line fails the test."""
    result = CliRunner().invoke(cli, ["run", *map(str, args), "--no-progress"])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return Outcome(result.exit_code, result.output)


def tiny(run_dir: Path, *overrides: str) -> list[str]:
    """The arguments of ``i2i run`` for the tiny recipe in ``run_dir``."""
    args = [str(TINY), "--set", f"output.dir='{run_dir}'"]
    for override in overrides:
        args += ["--set", override]
    return args


def at_step(monkeypatch: pytest.MonkeyPatch, step: int, *signals: signal.Signals) -> None:
    """Send this process ``signals``, in order, during training step ``step``, as a user would."""
    real_step, calls = CycleGAN.train_step, []

    def train_step(self, batch):
        calls.append(1)
        if len(calls) == step:
            for sig in signals:
                signal.raise_signal(sig)
        return real_step(self, batch)

    monkeypatch.setattr(CycleGAN, "train_step", train_step)


def steps_of(run_dir: Path) -> list[int]:
    return [int(p.name.removeprefix("step_")) for p in list_checkpoints(run_dir / "checkpoints")]


# -- bad recipes ----------------------------------------------------------------------------------------------

EXTENDS_TINY = f'extends = "{TINY}"\n'
BAD_RECIPES = {
    # id: (the files, the one to run, the names its error line must hold)
    "toml-syntax": ({"r.toml": EXTENDS_TINY + "[train]\nsteps = \n"}, "r.toml", ["r.toml", "line 3"]),
    "unknown-key": ({"r.toml": EXTENDS_TINY + "[train]\nlrr = 1\n"}, "r.toml", ["r.toml", "train.lrr", "'lr'"]),
    "wrong-type": ({"r.toml": EXTENDS_TINY + '[train]\nsteps = "ten"\n'}, "r.toml", ["r.toml", "train.steps"]),
    "bad-value": ({"r.toml": EXTENDS_TINY + '[train]\nprecision = "fp64"\n'}, "r.toml", ["r.toml", "train.precision"]),
    "missing-extends": ({"r.toml": 'extends = "gone.toml"\n'}, "r.toml", ["gone.toml", "r.toml"]),
    "extends-cycle": (
        {"a.toml": 'extends = "b.toml"\n', "b.toml": 'extends = "a.toml"\n'},
        "a.toml",
        ["a.toml", "b.toml", "cycle"],
    ),
    "unknown-method": ({"r.toml": EXTENDS_TINY + 'method = "cyclegann"\n'}, "r.toml", ["r.toml", "'cyclegan'"]),
    "unknown-generator": (
        {"r.toml": EXTENDS_TINY + '[model.generator]\nname = "resnet7"\n'},
        "r.toml",
        ["r.toml", "model.generator.name", "'resnet7'"],
    ),
    "not-utf8": ({"r.toml": b"\xff\xfe x\n"}, "r.toml", ["r.toml", "UTF-8"]),
    "extends-not-utf8": (
        {"r.toml": 'extends = "base.toml"\n', "base.toml": b"# caf\xe9\n[train]\nsteps = 2\n"},
        "r.toml",
        ["base.toml", "UTF-8", "r.toml"],
    ),
}


@pytest.mark.parametrize(("files", "chosen", "names"), BAD_RECIPES.values(), ids=BAD_RECIPES)
def test_a_bad_recipe_is_one_line_naming_it(tmp_path, files, chosen, names):
    for name, content in files.items():
        path = tmp_path / name
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = snapshot(tmp_path)
    expect_error(run(tmp_path / chosen, "--set", f"output.dir='{tmp_path / 'run'}'"), *names)
    assert snapshot(tmp_path) == before


@pytest.mark.slow  # a fresh process: the in-process case above runs by default
def test_a_recipe_that_is_not_utf8_in_a_fresh_process(tmp_path):
    """The command of the report, as typed: ``printf '\\xff\\xfe x\\n' > b.toml; i2i run b.toml``."""
    (tmp_path / "b.toml").write_bytes(b"\xff\xfe x\n")
    expect_error(i2i("run", "b.toml", cwd=tmp_path), "b.toml", "UTF-8")
    assert [p.name for p in tmp_path.iterdir()] == ["b.toml"]


# -- output.dir that i2i must not write -----------------------------------------------------------------------


def _a_file(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "notes.txt").write_text("mine\n")
    return tmp_path / "notes.txt", tmp_path / "notes.txt"


def _under_a_file(tmp_path: Path) -> tuple[Path, Path]:
    (tmp_path / "notes.txt").write_text("mine\n")
    return tmp_path / "notes.txt" / "run", tmp_path / "notes.txt"


def _not_a_run(tmp_path: Path) -> tuple[Path, Path]:
    folder = tmp_path / "measurements"
    folder.mkdir()
    (folder / "metrics.jsonl").write_text("my own notes, not JSON\n")
    (folder / "holiday.jpg").write_bytes(b"not mine to delete")
    return folder, folder


FOLDERS = {"a-file": _a_file, "under-a-file": _under_a_file, "not-a-run-folder": _not_a_run}


@pytest.mark.parametrize("restart", [False, True], ids=["run", "restart"])
@pytest.mark.parametrize("make", FOLDERS.values(), ids=FOLDERS)
def test_an_output_dir_i2i_must_not_write_is_refused(tmp_path, make, restart):
    output_dir, culprit = make(tmp_path)
    before, paths = snapshot(tmp_path), sorted(tmp_path.rglob("*"))
    line = expect_error(run(*tiny(output_dir, "train.steps=1"), *(["--restart"] if restart else [])), "output.dir")
    assert str(culprit) in line and ("is a file" in line) == culprit.is_file()
    assert snapshot(tmp_path) == before and sorted(tmp_path.rglob("*")) == paths  # nothing added either


def test_an_output_dir_in_a_read_only_folder_is_refused(tmp_path, monkeypatch):
    locked = tmp_path / "locked"
    locked.mkdir()
    (locked / "keep.txt").write_text("mine\n")
    real_mkdir = Path.mkdir

    def mkdir(self, *args, **kwargs):  # as the kernel answers in a read-only folder (root would be let in)
        if self.is_relative_to(locked):
            raise PermissionError(errno.EACCES, "Permission denied", str(self))
        return real_mkdir(self, *args, **kwargs)

    monkeypatch.setattr(Path, "mkdir", mkdir)
    before = snapshot(tmp_path)
    expect_error(run(*tiny(locked / "run", "train.steps=1")), "output.dir", str(locked / "run"), "Permission denied")
    assert snapshot(tmp_path) == before and [p.name for p in locked.iterdir()] == ["keep.txt"]


def test_an_empty_folder_is_a_fine_output_dir(tmp_path):
    (tmp_path / "empty").mkdir()
    outcome = run(*tiny(tmp_path / "empty", "train.steps=1"))
    assert outcome.code == 0, outcome.output
    assert steps_of(tmp_path / "empty") == [1]


def test_a_run_folder_in_use_is_refused_naming_the_pid(tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    with open(folder / "run.lock", "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        holder.write("4242\n")
        holder.flush()
        before = snapshot(tmp_path)
        expect_error(run(*tiny(folder, "train.steps=1")), str(folder), "pid 4242")
        assert snapshot(tmp_path) == before


# -- a run folder moved elsewhere ---------------------------------------------------------------------------


def test_a_moved_run_folder_resumes_without_a_recipe_warning(tmp_path):
    assert run(*tiny(tmp_path / "first", "train.steps=1")).code == 0
    shutil.move(tmp_path / "first", tmp_path / "moved")
    outcome = run(*tiny(tmp_path / "moved", "train.steps=2"))
    assert outcome.code == 0, outcome.output
    assert "Resuming" in outcome.output and "differs" in outcome.output  # train.steps did change
    shutil.copytree(tmp_path / "moved", tmp_path / "copy")
    outcome = run(*tiny(tmp_path / "copy", "train.steps=2"))
    assert outcome.code == 0 and "Resuming" in outcome.output, outcome.output
    assert "Warning" not in outcome.output  # only output.dir changed
    stored = (tmp_path / "copy" / "recipe.toml").read_text()
    assert f'dir = "{tmp_path / "copy"}"' in stored  # the stored recipe says where the run now is


# -- signals --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_with_a_checkpoint_and_the_run_resumes(tmp_path, monkeypatch, sig):
    args = tiny(tmp_path / "run", "train.steps=2", "output.checkpoint_every=0")
    with monkeypatch.context() as patch:
        at_step(patch, 1, sig)
        outcome = run(*args)
    assert outcome.code == 128 + sig, outcome.output
    assert "Stopped by a signal at step 1" in outcome.output and "Traceback" not in outcome.output
    assert steps_of(tmp_path / "run") == [1]
    outcome = run(*args)
    assert outcome.code == 0 and "Resuming" in outcome.output, outcome.output
    assert steps_of(tmp_path / "run") == [1, 2]
    assert [json.loads(line)["step"] for line in (tmp_path / "run" / "metrics.jsonl").open()] == [1, 2]


def test_a_second_ctrl_c_while_saving_lets_the_checkpoint_finish(tmp_path, monkeypatch):
    real_save, calls = i2i_core.training.state.save_component, []

    def save_component(*args, **kwargs):  # the second Ctrl-C comes once the first network file is written
        real_save(*args, **kwargs)
        calls.append(1)
        if len(calls) == 1:
            signal.raise_signal(signal.SIGINT)

    monkeypatch.setattr(i2i_core.training.state, "save_component", save_component)
    at_step(monkeypatch, 1, signal.SIGINT)
    outcome = run(*tiny(tmp_path / "run", "train.steps=2", "output.checkpoint_every=0"))
    assert outcome.code == 130, outcome.output
    assert "Aborted" not in outcome.output and "Traceback" not in outcome.output
    assert "finishing it" in outcome.output and "Stopped by a signal at step 1" in outcome.output
    checkpoint = tmp_path / "run" / "checkpoints" / "step_0000001"
    assert os.listdir(checkpoint.parent) == [checkpoint.name]  # no temporary folder left
    trainer = i2i_core.build_trainer(i2i_core.load_recipe(TINY))
    assert read_training_checkpoint(checkpoint, trainer).progress.step == 1  # complete: every file reads back


def test_a_second_ctrl_c_during_a_step_stops_at_once_with_130(tmp_path, monkeypatch):
    at_step(monkeypatch, 2, signal.SIGINT, signal.SIGINT)
    outcome = run(*tiny(tmp_path / "run", "train.steps=3", "output.checkpoint_every=1"))
    assert outcome.code == 130, outcome.output
    assert "Aborted" not in outcome.output and "Traceback" not in outcome.output
    (line,) = [line for line in outcome.lines if "at once" in line]
    assert str(tmp_path / "run") in line and "step_0000001" in line
    assert steps_of(tmp_path / "run") == [1]
