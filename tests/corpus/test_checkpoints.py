"""Corrupt, damaged and crafted checkpoints: resuming (``i2i run``), ``i2i translate -c`` and ``i2i export`` each
fail with one line naming the file at fault, without a traceback, and change nothing; a damaged newest checkpoint
is set aside with a warning and the run resumes from the previous one."""

from __future__ import annotations

import io
import json
import os
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

import i2i_core
from corpus.conftest import Outcome, expect_error, snapshot
from i2i_core.checkpoint import (
    CHECKSUM_KEY,
    UNSEALED,
    list_checkpoints,
    read_metadata,
    sealed,
    sealed_safetensors,
    step_of,
)
from i2i_core.cli import cli

TINY = Path(__file__).parents[1] / "recipes" / "tiny.toml"
#: The tiny run, cut short: 2 steps, a checkpoint after each, no reports.
SHORT = ["train.steps=2", "output.checkpoint_every=1", "output.sample_every=2", "report.reporters=[]"]
LATEST, PREVIOUS = "step_0000002", "step_0000001"


@pytest.fixture(autouse=True)
def _keep_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line routes warnings to its own printer: put the test process's back afterwards."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)


def cli_run(*args: str | Path) -> Outcome:
    """``i2i ARGS`` in this process; an exception that escapes the command line fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("always")
        result = CliRunner().invoke(cli, list(map(str, args)))
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    return Outcome(result.exit_code, result.output)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A short tiny run, with checkpoints :data:`PREVIOUS` and :data:`LATEST`."""
    run = tmp_path_factory.mktemp("trained") / "run"
    i2i_core.train(i2i_core.load_recipe(TINY, [f"output.dir='{run}'", *SHORT]), show_progress=False)
    return run


@pytest.fixture
def run(trained: Path, tmp_path: Path) -> Path:
    """A copy of the tiny run, of its own."""
    copy = tmp_path / "run"
    shutil.copytree(trained, copy)
    recipe = copy / "recipe.toml"
    recipe.write_text(recipe.read_text().replace(str(trained), str(copy)))
    return copy


def resume(run: Path) -> Outcome:
    overrides = [arg for override in SHORT for arg in ("--set", override)]
    return cli_run("run", TINY, "--set", f"output.dir='{run}'", *overrides, "--no-progress")


# -- damage, as a disk, a copy or a person does it -------------------------------------------------------------


def flip_byte(path: Path, from_end: int = 100) -> None:
    """Change one byte of ``path`` (same size): one bit of a weight, ``from_end`` bytes before the end."""
    data = bytearray(path.read_bytes())
    data[-from_end] ^= 0x10
    path.write_bytes(bytes(data))


def change_a_digit(path: Path) -> None:
    """Change one digit of ``state.json``'s ``train_seconds`` (same size, still valid JSON)."""
    text = path.read_text()
    at = text.index('"train_seconds": ') + len('"train_seconds": ')
    path.write_text(text[:at] + ("1" if text[at] != "1" else "2") + text[at + 1 :])


def truncate(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


def random_bytes(path: Path) -> None:
    path.write_bytes(os.urandom(path.stat().st_size))


def huge_header(path: Path) -> None:
    """A header that claims to be 2**62 bytes long."""
    path.write_bytes((1 << 62).to_bytes(8, "little") + path.read_bytes()[8:])


def pytorch_pickle(path: Path) -> None:
    """The file's tensors as ``torch.save`` writes them (a zip of pickles), under the same name."""
    buffer = io.BytesIO()
    torch.save(load_file(path), buffer)
    path.write_bytes(buffer.getvalue())


def not_json(path: Path) -> None:
    path.write_text("{ step: 2,")


def delete(path: Path) -> None:
    path.unlink()


def rewrite_tensors(path: Path, change: Callable[[dict[str, torch.Tensor]], None]) -> None:
    """Rewrite component file ``path`` as i2i writes one (sealed), its tensors changed by ``change``."""
    tensors, metadata = load_file(path), read_metadata(path)
    change(tensors)
    metadata.pop(CHECKSUM_KEY, None)
    path.write_bytes(sealed_safetensors(tensors, metadata))


def missing_tensor(path: Path) -> None:
    rewrite_tensors(path, lambda t: t.pop(sorted(t)[-1]))


def extra_tensor(path: Path) -> None:
    rewrite_tensors(path, lambda t: t.update({"model.extra.weight": torch.zeros(3)}))


def wrong_shape(path: Path) -> None:
    rewrite_tensors(path, lambda t: t.update({(key := sorted(t)[0]): torch.zeros(*t[key].shape[:-1], 1)}))


def rewrite_state(path: Path, change: Callable[[dict], None]) -> None:
    """Rewrite ``state.json`` as i2i writes one (sealed), changed by ``change``."""
    state = json.loads(path.read_text())
    change(state)
    state[CHECKSUM_KEY] = UNSEALED
    path.write_bytes(sealed(json.dumps(state, indent=1).encode()))


def another_method(path: Path) -> None:
    rewrite_state(path, lambda s: s.update(method="cut"))


#: id: (the file of a checkpoint damaged, how, the words its error line holds besides the file)
DAMAGE = {
    "flipped-weight": ("G_A.safetensors", flip_byte, "checksum mismatch"),
    "flipped-state-tensors": ("state.safetensors", flip_byte, "checksum mismatch"),
    "changed-state-json": ("state.json", change_a_digit, "checksum mismatch"),
    "truncated": ("G_A.safetensors", truncate, "truncated"),
    "zero-bytes": ("G_A.safetensors", empty, "corrupt"),
    "random-bytes": ("G_B.safetensors", random_bytes, "corrupt"),
    "huge-header": ("G_A.safetensors", huge_header, "corrupt"),
    "pytorch-pickle": ("G_A.safetensors", pytorch_pickle, "i2i import-weights"),
    "state-json-not-json": ("state.json", not_json, "corrupt"),
    "missing-tensor": ("G_A.safetensors", missing_tensor, "missing keys"),
    "extra-tensor": ("G_A.safetensors", extra_tensor, "unexpected keys (1): model.extra.weight"),
    "wrong-shape": ("G_A.safetensors", wrong_shape, "shape mismatches"),
}
#: What translating and exporting read: the generator G_A and state.json (not state.safetensors, nor G_B).
READ_BY_TRANSLATE = [
    pytest.param(file, damage, words, id=case)
    for case, (file, damage, words) in DAMAGE.items()
    if file in ("G_A.safetensors", "state.json")
]


def damage_all(run: Path, file: str, damage: Callable[[Path], None]) -> Path:
    """Damage ``file`` in every checkpoint of ``run``; return the newest one's."""
    for checkpoint in list_checkpoints(run / "checkpoints"):
        damage(checkpoint / file)
    return run / "checkpoints" / LATEST / file


# -- resuming -------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "damage", "words"), DAMAGE.values(), ids=DAMAGE.keys())
def test_resume_refuses_when_no_checkpoint_reads_back(run, file, damage, words):
    culprit = damage_all(run, file, damage)
    before = snapshot(run)
    expect_error(resume(run), culprit, words)
    assert snapshot(run) == before


def test_resume_refuses_a_checkpoint_of_another_method(run):
    checkpoint = run / "checkpoints" / LATEST
    another_method(checkpoint / "state.json")
    before = snapshot(run)
    expect_error(resume(run), checkpoint, "method 'cut'", "--restart")
    assert snapshot(run) == before


@pytest.mark.parametrize(
    "file",
    [
        "G_A.safetensors",
        "state.json",
        *(pytest.param(file, marks=pytest.mark.slow) for file in ("D_B.safetensors", "state.safetensors")),
    ],
)
def test_a_damaged_checkpoint_is_set_aside_and_the_run_resumes_from_the_previous_one(run, file):
    latest = run / "checkpoints" / LATEST
    (change_a_digit if file == "state.json" else flip_byte)(latest / file)
    damaged = {path.replace(LATEST, f"{LATEST}.corrupt"): sha for path, sha in snapshot(latest).items()}
    outcome = resume(run)
    assert outcome.code == 0 and "Traceback" not in outcome.output, outcome.output
    warned = [line for line in outcome.lines if line.startswith("Warning:")]
    assert len(warned) == 1 and f"{latest / file}: checksum mismatch" in warned[0], outcome.output
    assert f"resuming from {PREVIOUS}" in warned[0]
    assert snapshot(latest.with_name(f"{LATEST}.corrupt")) == damaged  # kept as it was, for inspection
    assert step_of(run) == 2


def test_a_checkpoint_without_state_json_is_kept_when_its_step_is_saved_again(run):
    latest = run / "checkpoints" / LATEST
    (latest / "state.json").unlink()
    left = {path.replace(LATEST, f"{LATEST}.incomplete"): sha for path, sha in snapshot(latest).items()}
    outcome = resume(run)
    assert outcome.code == 0 and "Traceback" not in outcome.output, outcome.output
    warned = [line for line in outcome.lines if line.startswith("Warning:")]
    assert len(warned) == 1 and f"{latest}: not a complete checkpoint" in warned[0], outcome.output
    assert snapshot(latest.with_name(f"{LATEST}.incomplete")) == left  # nothing lost
    assert step_of(run) == 2


def test_checkpoints_without_checksums_still_resume_and_translate(run, photo, tmp_path):
    """Checkpoints written before checksums were recorded load as before."""
    for checkpoint in list_checkpoints(run / "checkpoints"):
        for file in checkpoint.glob("*.safetensors"):
            metadata = read_metadata(file)
            assert metadata.pop(CHECKSUM_KEY)
            file.write_bytes(safetensors_bytes(load_file(file), metadata=metadata or None))
        state = json.loads((checkpoint / "state.json").read_text())
        del state[CHECKSUM_KEY]
        (checkpoint / "state.json").write_text(json.dumps(state, indent=1))
    outcome = cli_run("translate", photo, "-c", run / "checkpoints" / LATEST, "-o", tmp_path / "out")
    assert outcome.code == 0 and (tmp_path / "out" / photo.name).is_file(), outcome.output
    outcome = resume(run)
    assert outcome.code == 0 and "Warning" not in outcome.output, outcome.output


# -- translating and exporting -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("file", "damage", "words"), READ_BY_TRANSLATE)
def test_translate_names_the_damaged_file(run, photo, tmp_path, file, damage, words):
    culprit = run / "checkpoints" / LATEST / file
    damage(culprit)
    before = snapshot(run, photo.parent)
    expect_error(cli_run("translate", photo, "-c", culprit.parent, "-o", tmp_path / "out"), culprit, words)
    assert snapshot(run, photo.parent) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("file", "damage", "words"), READ_BY_TRANSLATE)
def test_export_names_the_damaged_file(run, tmp_path, file, damage, words):
    culprit = run / "checkpoints" / LATEST / file
    damage(culprit)
    before = snapshot(run)
    out = tmp_path / "G.safetensors"
    expect_error(cli_run("export", "safetensors", "-c", culprit.parent, "-o", out), culprit, words)
    assert snapshot(run) == before and not out.exists()


@pytest.mark.parametrize("command", ["translate", "export"])
def test_a_checkpoint_folder_without_state_json_is_named(run, photo, tmp_path, command):
    checkpoint = run / "checkpoints" / LATEST
    (checkpoint / "state.json").unlink()
    before = snapshot(run, photo.parent)
    if command == "translate":
        outcome = cli_run("translate", photo, "-c", checkpoint, "-o", tmp_path / "out")
    else:
        outcome = cli_run("export", "safetensors", "-c", checkpoint, "-o", tmp_path / "out")
    expect_error(outcome, checkpoint / "state.json", "incomplete or corrupt")
    assert snapshot(run, photo.parent) == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize("suffix", [".pth", ".safetensors"])
@pytest.mark.parametrize("zipped", [True, False], ids=["zip", "legacy-pickle"])
def test_a_pytorch_pickle_is_never_unpickled_and_import_weights_is_suggested(run, photo, tmp_path, suffix, zipped):
    pickle = tmp_path / f"latest_net_G_A{suffix}"
    torch.save(
        load_file(run / "checkpoints" / LATEST / "G_A.safetensors"), pickle, _use_new_zipfile_serialization=zipped
    )
    before = snapshot(pickle, photo.parent)
    line = expect_error(
        cli_run("translate", photo, "-c", pickle, "-o", tmp_path / "out"),
        pickle,
        "PyTorch pickle",
        "i2i import-weights",
    )
    assert "corrupt" not in line
    assert snapshot(pickle, photo.parent) == before and not (tmp_path / "out").exists()


def test_an_exported_file_is_sealed_and_checked(run, photo, tmp_path):
    exported = tmp_path / "G.safetensors"
    assert cli_run("export", "safetensors", "-c", run, "-o", exported).code == 0
    outcome = cli_run("translate", photo, "-c", exported, "-o", tmp_path / "good")
    assert outcome.code == 0 and (tmp_path / "good" / photo.name).is_file(), outcome.output
    flip_byte(exported)
    before = snapshot(exported, photo.parent)
    expect_error(cli_run("translate", photo, "-c", exported, "-o", tmp_path / "out"), exported, "checksum mismatch")
    expect_error(cli_run("export", "onnx", "-c", exported, "-o", tmp_path / "G.onnx"), exported, "checksum mismatch")
    assert snapshot(exported, photo.parent) == before and not (tmp_path / "out").exists()
    assert not (tmp_path / "G.onnx").exists()


def test_a_model_exported_before_checksums_still_translates(photo, tmp_path):
    v1 = Path(__file__).parents[1] / "data/photo2cartoon-v1.safetensors"  # the first shipped model, unsealed
    assert CHECKSUM_KEY not in read_metadata(v1)
    outcome = cli_run("translate", photo, "-c", v1, "-o", tmp_path / "out")
    assert outcome.code == 0 and (tmp_path / "out" / photo.name).is_file(), outcome.output
