"""The run folder keeps what it holds: restart rules, crash recovery, corrupt files, the lock, exit codes."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import re
import signal
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from i2i_cyclegan import CycleGAN
from safetensors.torch import load_file

import i2i_core
import i2i_core.training.loop
from i2i_core.checkpoint import list_checkpoints
from i2i_core.cli import cli
from i2i_core.training.state import (
    Progress,
    read_training_checkpoint,
    restore_training_checkpoint,
    save_training_checkpoint,
)

TINY = Path(__file__).parent / "recipes" / "tiny.toml"


def tiny(run_dir: Path, *overrides: str) -> i2i_core.Recipe:
    return i2i_core.load_recipe(TINY, [f"output.dir='{run_dir}'", *overrides])


def logged_steps(run_dir: Path) -> list[int]:
    return [json.loads(line)["step"] for line in (run_dir / "metrics.jsonl").read_text().splitlines()]


def at_step(monkeypatch: pytest.MonkeyPatch, steps: int, action) -> None:
    """Call ``action()`` during training step ``steps`` (before the step's computation)."""
    real_step = CycleGAN.train_step
    calls = []

    def step(self, batch):
        calls.append(1)
        if len(calls) == steps:
            action()
        return real_step(self, batch)

    monkeypatch.setattr(CycleGAN, "train_step", step)


def killed() -> None:
    raise RuntimeError("killed")


def train_until_killed(monkeypatch: pytest.MonkeyPatch, recipe: i2i_core.Recipe, step: int) -> None:
    """Train ``recipe`` until a crash during step ``step``."""
    with monkeypatch.context() as patch:
        at_step(patch, step, killed)
        with pytest.raises(RuntimeError, match="killed"):
            i2i_core.train(recipe, show_progress=False)


def snapshot(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` and its content."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# -- --restart and failed starts ----------------------------------------------------------------------------


def test_restart_refuses_a_folder_that_is_not_a_run(tmp_path):
    folder = tmp_path / "photos"
    (folder / "samples").mkdir(parents=True)
    (folder / "holiday.jpg").write_bytes(b"not mine to delete")
    (folder / "metrics.jsonl").write_text("my own notes\n")
    before = snapshot(folder)
    message = rf"--restart would delete .* in {re.escape(str(folder))}, which is not an i2i run folder"
    with pytest.raises(i2i_core.I2IError, match=message):
        i2i_core.train(tiny(folder, "train.steps=1"), restart=True, show_progress=False)
    assert snapshot(folder) == before and sorted(os.listdir(folder)) == ["holiday.jpg", "metrics.jsonl", "samples"]


def test_a_start_that_fails_deletes_and_overwrites_nothing(tmp_path):
    run = tmp_path / "run"
    i2i_core.train(tiny(run, "train.steps=2"), show_progress=False)
    before = snapshot(run)
    missing = tmp_path / "missing.safetensors"
    with pytest.raises(i2i_core.CheckpointError, match="no such checkpoint"):  # fails while building
        i2i_core.train(tiny(run, "train.steps=2", f"model.generator.init_from='{missing}'"), restart=True)
    with pytest.raises(i2i_core.CheckpointError, match="weights do not fit"):  # fails while resuming
        i2i_core.train(tiny(run, "train.steps=2", "model.generator.ngf=16"), show_progress=False)
    assert snapshot(run) == before  # checkpoints, metrics and the recipe the run was started with


# -- checkpoints that a crash or a corrupt file must not cost -------------------------------------------------


@pytest.mark.parametrize("failing_moves", [{2}, {2, 3}], ids=["rename-fails", "power-cut-after-moving-aside"])
def test_crash_while_replacing_a_checkpoint_keeps_a_complete_one(tmp_path, monkeypatch, failing_moves):
    recipe = tiny(tmp_path / "run", "train.steps=4", "output.keep_last=1")
    run = i2i_core.train(recipe, show_progress=False).run_dir
    folder = run / "checkpoints"
    trainer = i2i_core.build_trainer(recipe)
    progress = restore_training_checkpoint(read_training_checkpoint(folder / "step_0000004", trainer), trainer)
    saved = load_file(folder / "step_0000004" / "G_A.safetensors")
    real_replace, moves = os.replace, []

    def replace(src, dst):  # folder moves: 1 the old checkpoint aside, 2 the new one in, 3 the old one back
        if Path(src).is_dir():
            moves.append(src)
            if len(moves) in failing_moves:
                raise OSError("power cut")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(i2i_core.CheckpointError, match=r"step_0000004: checkpoint not saved \(power cut\)"):
        save_training_checkpoint(folder, trainer, progress)
    monkeypatch.undo()
    if failing_moves == {2}:
        assert [p.name for p in list_checkpoints(folder)] == ["step_0000004"]  # put back at once
    with pytest.warns(UserWarning, match="recovered") if 3 in failing_moves else contextlib.nullcontext():
        result = i2i_core.train(recipe, show_progress=False)
    assert result.steps == 4 and result.checkpoint == folder / "step_0000004"
    assert sorted(os.listdir(folder)) == ["step_0000004"]
    assert logged_steps(run) == [1, 2, 3, 4]
    for key, value in load_file(folder / "step_0000004" / "G_A.safetensors").items():
        assert torch.equal(value, saved[key]), key


def test_a_complete_checkpoint_left_in_a_temporary_folder_is_recovered(tmp_path):
    """What a crash between deleting the old checkpoint and renaming the new one left with earlier versions."""
    recipe = tiny(tmp_path / "run", "train.steps=4")
    run = i2i_core.train(recipe, show_progress=False).run_dir
    folder = run / "checkpoints"
    os.replace(folder / "step_0000004", folder / ".step_0000004.tmp")
    (folder / ".step_0000008.123-abcd.tmp").mkdir()  # an incomplete one
    with pytest.warns(UserWarning, match=r"step_0000004: recovered from \.step_0000004\.tmp"):
        result = i2i_core.train(recipe, show_progress=False)
    assert result.steps == 4 and sorted(os.listdir(folder)) == ["step_0000004"]
    assert logged_steps(run) == [1, 2, 3, 4]  # resumed, not started over


def test_rerunning_a_finished_run_rewrites_nothing(tmp_path, monkeypatch):
    recipe = tiny(tmp_path / "run", "train.steps=2")
    run = i2i_core.train(recipe, show_progress=False).run_dir

    def no_save(*args, **kwargs):
        raise AssertionError("a finished run saved its checkpoint again")

    monkeypatch.setattr(i2i_core.training.loop, "save_training_checkpoint", no_save)
    result = i2i_core.train(recipe, show_progress=False)
    assert result.steps == 2 and result.checkpoint == run / "checkpoints" / "step_0000002"
    assert logged_steps(run) == [1, 2]


def test_corrupt_checkpoint_falls_back_to_the_previous_one(tmp_path):
    recipe = tiny(tmp_path / "run")  # 8 steps, checkpoints at 4 and 8
    run = i2i_core.train(recipe, show_progress=False).run_dir
    folder = run / "checkpoints"
    expected = load_file(folder / "step_0000008" / "G_A.safetensors")
    state = folder / "step_0000008" / "state.safetensors"
    state.write_bytes(state.read_bytes()[:100])  # torn
    weights = folder / "step_0000004" / "G_A.safetensors"
    intact = weights.read_bytes()
    weights.write_bytes(b"\0" * 64)
    with pytest.raises(i2i_core.CheckpointError, match=r"step_0000008/state\.safetensors: .*--restart"):
        i2i_core.train(recipe, show_progress=False)  # nothing reads back: refuse, change nothing
    assert [p.name for p in list_checkpoints(folder)] == ["step_0000004", "step_0000008"]
    weights.write_bytes(intact)
    warning = (
        r"step_0000008/state\.safetensors: cannot read .* kept as step_0000008\.corrupt, resuming from step_0000004"
    )
    with pytest.warns(UserWarning, match=warning):
        result = i2i_core.train(recipe, show_progress=False)
    assert result.steps == 8 and logged_steps(run) == list(range(1, 9))
    assert sorted(os.listdir(folder)) == ["step_0000004", "step_0000008", "step_0000008.corrupt"]
    for key, value in load_file(folder / "step_0000008" / "G_A.safetensors").items():
        assert torch.equal(value, expected[key]), key  # resumed exactly


# -- metrics.jsonl ------------------------------------------------------------------------------------------


def test_a_run_killed_before_its_first_checkpoint_logs_each_step_once(tmp_path, monkeypatch):
    recipe = tiny(tmp_path / "run", "train.steps=4", "output.checkpoint_every=0")
    train_until_killed(monkeypatch, recipe, 3)
    assert logged_steps(tmp_path / "run") == [1, 2] and not list_checkpoints(tmp_path / "run" / "checkpoints")
    i2i_core.train(recipe, show_progress=False)
    assert logged_steps(tmp_path / "run") == [1, 2, 3, 4]


def test_a_torn_metric_line_is_dropped_with_a_warning(tmp_path, monkeypatch):
    recipe = tiny(tmp_path / "run", "train.steps=3", "output.checkpoint_every=2")
    train_until_killed(monkeypatch, recipe, 3)
    run = tmp_path / "run"
    with open(run / "metrics.jsonl", "a") as f:
        f.write('{"step": 3, "epoch": 1, "G_A": 0.')  # as if killed while writing step 3's line
    with pytest.warns(UserWarning, match=r"metrics\.jsonl: line 3 is torn"):
        i2i_core.train(recipe, show_progress=False)  # resumes from step 2
    assert logged_steps(run) == [1, 2, 3]


# -- one run at a time --------------------------------------------------------------------------------------


def test_a_run_folder_in_use_is_refused(tmp_path, monkeypatch):
    run = tmp_path / "run"
    run.mkdir()
    with open(run / "run.lock", "w") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        holder.write("4242\n")
        holder.flush()
        with pytest.raises(i2i_core.I2IError, match=rf"run folder {re.escape(str(run))} is in use by pid 4242"):
            i2i_core.train(tiny(run, "train.steps=1"), show_progress=False)
    assert os.listdir(run) == ["run.lock"]
    held = []

    def try_to_lock():
        with open(run / "run.lock") as other:
            try:
                fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held.append((run / "run.lock").read_text().strip())

    at_step(monkeypatch, 1, try_to_lock)
    i2i_core.train(tiny(run, "train.steps=1"), show_progress=False)
    assert held == [str(os.getpid())]  # locked during the run, by this process


# -- exit codes and full disks ------------------------------------------------------------------------------


def test_sigterm_stops_with_exit_code_143(tmp_path, monkeypatch):
    at_step(monkeypatch, 2, lambda: signal.raise_signal(signal.SIGTERM))
    args = ["run", str(TINY), "--set", f"output.dir='{tmp_path / 'run'}'", "--set", "train.steps=6", "--no-progress"]
    result = CliRunner().invoke(cli, args)
    assert result.exit_code == 143, result.output  # 128 + SIGTERM: `i2i run ... && next` does not go on
    assert "Stopped by a signal at step 2" in result.output
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step_0000002"]


def test_no_space_left_while_saving_a_checkpoint(tmp_path, monkeypatch):
    recipe = tiny(tmp_path / "run")
    trainer = i2i_core.build_trainer(recipe)
    folder = tmp_path / "run" / "checkpoints"

    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    message = r"step_0000001: checkpoint not saved \(\[Errno 28\] No space left on device: '.*G_A\.safetensors'\)"
    with pytest.raises(i2i_core.CheckpointError, match=message):
        save_training_checkpoint(folder, trainer, Progress(step=1))
    assert os.listdir(folder) == []  # no temporary folder left behind
