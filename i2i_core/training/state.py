"""Training checkpoints: everything needed to resume a run exactly, with no executable pickle.

A checkpoint is a folder ``checkpoints/step_XXXXXXX/`` holding the method's networks as component checkpoints
(``<network>.safetensors``, each loadable alone with :func:`i2i_core.load_component`), ``state.safetensors``
(the method's tensors: optimisers, image pools...; RNG states) and ``state.json`` (step, epoch, learning rate,
the method's name and JSON state, the rest). Each file records its own SHA-256 (``sha256``, see
:func:`i2i_core.checkpoint.sealed`), checked when it is read back: a changed byte makes it corrupt. It is
written into a temporary folder (``.step_XXXXXXX.<pid>-<random>.tmp``), fsync'ed, then renamed: a crash at any
instant leaves the last complete checkpoint intact, and a folder without ``state.json`` is never taken as
complete. A checkpoint of the same step is renamed aside (``.step_XXXXXXX.old``) before the new one is renamed
in and deleted after; :func:`recover_checkpoints` puts it back when a crash came in between.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from i2i_core.checkpoint import (
    BEST,
    CHECKSUM_KEY,
    UNSEALED,
    atomic_write_bytes,
    checkpoint_name,
    corrupt_checkpoint,
    fsync_folder,
    list_checkpoints,
    load_state_dict_checked,
    read_checkpoint_state,
    read_tensors,
    save_component,
    sealed,
    sealed_safetensors,
)
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.host.registry import DEFAULT_METHOD
from i2i_core.method import Method

STATE_FORMAT = "i2i-training/1"


@dataclass
class Progress:
    """Where training stands: optimisation steps done, the epoch and batch they end in, and the seconds spent
    training them (over every session of the run, evaluation excluded)."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    train_seconds: float = 0.0

    def advance(self, steps_per_epoch: int) -> None:
        """Count one step done, moving on to the next epoch after its ``steps_per_epoch``-th batch."""
        self.step += 1
        self.batch_in_epoch += 1
        if self.batch_in_epoch == steps_per_epoch:
            self.epoch, self.batch_in_epoch = self.epoch + 1, 0


def save_training_checkpoint(
    folder: str | os.PathLike,
    trainer: Method,
    progress: Progress,
    extra: dict[str, Any] | None = None,
    name: str | None = None,
) -> Path:
    """Write ``folder/step_XXXXXXX`` (or ``folder/<name>``) atomically and return its path.

    Each network is saved with its (kind, name, options) from ``trainer.network_specs``, so a checkpoint alone
    rebuilds its networks. On failure the temporary folder is removed and the error names what was written.
    """
    folder = Path(folder)
    final = folder / (name or checkpoint_name(progress.step))
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{final.name}.{os.getpid()}-{secrets.token_hex(4)}.tmp"  # unique: never another's
    try:
        tmp.mkdir()
        _write_checkpoint_files(tmp, trainer, progress, extra)
        _move_into_place(tmp, final)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):
            raise CheckpointError(f"{final}: checkpoint not saved ({exc}); the earlier checkpoints are intact") from exc
        raise
    return final


def _write_checkpoint_files(
    tmp: Path,
    trainer: Method,
    progress: Progress,
    extra: dict[str, Any] | None,
) -> None:
    """The files of a checkpoint, into ``tmp``; ``state.json``, which makes it complete, last."""
    for net_name, net in trainer.networks.items():
        kind, name, options = trainer.network_specs[net_name]
        save_component(tmp / f"{net_name}.safetensors", net, kind, name, options)
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    method_tensors, method_state = trainer.state_dict()
    engine_keys = {"format", CHECKSUM_KEY, *progress.__dict__}
    if clash := (set(method_tensors) & set(tensors)) | (set(method_state) & engine_keys):
        raise ValueError(f"the method's state uses the engine's keys {sorted(clash)}")
    tensors.update(method_tensors)
    exports = {direction: t.network for direction, t in trainer.translations.items()}
    json_state: dict[str, Any] = {"format": STATE_FORMAT, **progress.__dict__, "exports": exports, **(extra or {})}
    json_state.update(method_state)
    json_state[CHECKSUM_KEY] = UNSEALED
    atomic_write_bytes(tmp / "state.safetensors", sealed_safetensors(tensors))
    atomic_write_bytes(tmp / "state.json", sealed(json.dumps(json_state, indent=1).encode()))  # written last


def _move_into_place(tmp: Path, final: Path) -> None:
    """Rename ``tmp`` to ``final``. A folder already at ``final`` is renamed aside first and deleted only once
    the new one is in place, so that a complete checkpoint exists at every instant; one without ``state.json``
    (not a checkpoint i2i wrote whole) is renamed ``<name>.incomplete`` instead, with a warning."""
    aside = final.with_name(f".{final.name}.old")
    if final.exists() and not (final / "state.json").is_file():  # damaged by hand: not i2i's to delete
        kept = set_aside(final, ".incomplete")
        warnings.warn(f"{final}: not a complete checkpoint (no state.json); kept as {kept.name}", stacklevel=3)
    moved_aside = final.exists()
    if moved_aside:
        os.replace(final, aside)
    try:
        os.replace(tmp, final)
    except BaseException:
        if moved_aside:
            os.replace(aside, final)
        raise
    fsync_folder(final.parent)
    if moved_aside:
        shutil.rmtree(aside, ignore_errors=True)  # the new one is in place; a leftover goes on the next start


def recover_checkpoints(folder: str | os.PathLike) -> None:
    """Tidy ``folder`` after a run that died while saving (only while no run writes it: under the run lock).

    A left-over temporary folder or checkpoint renamed aside is deleted, unless it is complete and its step has
    no complete checkpoint: then it becomes that checkpoint again (with a warning).
    """
    folder = Path(folder)
    if not folder.is_dir():
        return
    leftovers = (p for p in folder.glob(".*") if p.is_dir() and p.name.startswith((".step_", f".{BEST}.")))
    for leftover in sorted(leftovers):
        final = folder / leftover.name[1:].split(".")[0]
        if (final / "state.json").is_file() or not (leftover / "state.json").is_file():
            shutil.rmtree(leftover)
            continue
        if final.exists():
            shutil.rmtree(final)  # an incomplete folder
        os.replace(leftover, final)
        warnings.warn(f"{final}: recovered from {leftover.name}, left by a run that stopped while saving", stacklevel=2)


def set_aside(path: str | os.PathLike, suffix: str) -> Path:
    """Rename checkpoint ``path`` to ``<path><suffix>`` (``<path><suffix>2``... when taken) and return the new
    path; it is no longer a checkpoint, but nothing in it is lost."""
    path = Path(path)
    target, number = path.with_name(path.name + suffix), 1
    while target.exists():
        number += 1
        target = path.with_name(f"{path.name}{suffix}{number}")
    os.replace(path, target)
    return target


def prune_checkpoints(folder: str | os.PathLike, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` complete checkpoints (0 keeps every one)."""
    if keep_last > 0:
        for old in list_checkpoints(folder)[:-keep_last]:
            shutil.rmtree(old)


@dataclass
class TrainingCheckpoint:
    """A training checkpoint read back whole, not yet restored into a trainer."""

    path: Path
    progress: Progress
    state: dict[str, Any]
    tensors: dict[str, torch.Tensor]
    weights: dict[str, dict[str, torch.Tensor]]


def read_training_checkpoint(path: str | os.PathLike, trainer: Method, method: str | None = None) -> TrainingCheckpoint:
    """Read every file of a checkpoint folder for ``trainer`` (which is left unchanged): a
    :class:`CheckpointError` naming the file when one is missing, torn or corrupt, or its checksum differs. With
    ``method`` (the recipe's), a checkpoint another method wrote is refused (an :class:`I2IError`, not a corrupt
    checkpoint)."""
    path = Path(path)
    state = read_checkpoint_state(path)
    try:
        progress = Progress(
            step=state["step"],
            epoch=state["epoch"],
            batch_in_epoch=state["batch_in_epoch"],
            train_seconds=float(state.get("train_seconds", 0.0)),  # not kept by checkpoints before train.minutes
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise corrupt_checkpoint(path, exc) from None
    if state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an i2i training checkpoint (format {state.get('format')!r})")
    saved = state.get("method", DEFAULT_METHOD)  # checkpoints from before methods: CycleGAN's
    if method is not None and saved != method:
        raise I2IError(
            f"{path}: a checkpoint of method '{saved}', but the recipe trains '{method}': set output.dir to "
            "another folder, or start over with --restart"
        )
    tensors = read_tensors(path / "state.safetensors")
    weights = {net: read_tensors(path / f"{net}.safetensors", trainer.device) for net in trainer.networks}
    return TrainingCheckpoint(path, progress, state, tensors, weights)


def restore_training_checkpoint(checkpoint: TrainingCheckpoint, trainer: Method) -> Progress:
    """Restore the networks, the method's state and the RNG states from a checkpoint read back; return its
    progress."""
    state, tensors = checkpoint.state, checkpoint.tensors
    for net_name, net in trainer.networks.items():
        load_state_dict_checked(
            net, checkpoint.weights[net_name], source=str(checkpoint.path / f"{net_name}.safetensors")
        )
    trainer.load_state_dict(tensors, state)
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    return checkpoint.progress
