"""Training checkpoints: everything needed to resume a run exactly, with no executable pickle.

A checkpoint is a folder ``checkpoints/step_XXXXXXX/`` holding the four networks as component checkpoints
(``G_A.safetensors``... each loadable alone with :func:`i2i_core.load_component`), ``state.safetensors`` (both
optimisers, the image pools, RNG states) and ``state.json`` (step, epoch, learning rate, the rest). It is
written into a temporary folder, fsync'ed, then renamed: a crash at any instant leaves the last complete
checkpoint intact, and a folder without ``state.json`` is never taken as complete.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as safetensors_bytes

from i2i_core.checkpoint import atomic_write_bytes, load_state_dict_checked, save_component
from i2i_core.cyclegan import CycleGAN
from i2i_core.errors import CheckpointError

STATE_FORMAT = "i2i-training/1"


@dataclass
class Progress:
    """Where training stands: optimisation steps done, and the epoch and batch they end in."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _optimizer_tensors(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    state = optimizer.state_dict()
    tensors = {
        f"{prefix}.{index}.{name}": value.detach().cpu().contiguous()
        for index, slots in state["state"].items()
        for name, value in slots.items()
    }
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, groups


def _load_optimizer(prefix: str, optimizer: torch.optim.Optimizer, tensors: dict, groups: list) -> None:
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def save_training_checkpoint(
    folder: str | os.PathLike,
    trainer: CycleGAN,
    progress: Progress,
    components: dict[str, tuple[str, str, dict[str, Any]]],
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``folder/step_XXXXXXX`` atomically and return its path.

    ``components`` maps each network name (``G_A``...) to its (kind, name, options), so a checkpoint alone
    rebuilds its networks.
    """
    folder = Path(folder)
    final = folder / f"step_{progress.step:07d}"
    tmp = folder / f".{final.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for net_name, net in trainer.networks.items():
        kind, name, options = components[net_name]
        save_component(tmp / f"{net_name}.safetensors", net, kind, name, options)
    tensors: dict[str, torch.Tensor] = {"rng.torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        tensors.update({f"rng.cuda.{i}": s for i, s in enumerate(torch.cuda.get_rng_state_all())})
    json_state: dict[str, Any] = {"format": STATE_FORMAT, **progress.__dict__, **(extra or {})}
    for prefix, optimizer in (("opt_G", trainer.opt_G), ("opt_D", trainer.opt_D)):
        opt_tensors, groups = _optimizer_tensors(prefix, optimizer)
        tensors.update(opt_tensors)
        json_state[f"{prefix}.param_groups"] = groups
    for prefix, pool in (("pool_A", trainer.pool_A), ("pool_B", trainer.pool_B)):
        pool_tensors, pool_state = pool.state_dict()
        tensors.update({f"{prefix}.{k}": v.cpu() for k, v in pool_tensors.items()})
        json_state[prefix] = pool_state
    json_state["scaler"] = trainer.scaler.state_dict()
    atomic_write_bytes(tmp / "state.safetensors", safetensors_bytes(tensors))
    atomic_write_bytes(tmp / "state.json", json.dumps(json_state, indent=1).encode())  # written last
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync_dir(folder)
    return final


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Complete checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step_*") if p.is_dir() and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


def prune_checkpoints(folder: str | os.PathLike, keep_last: int) -> None:
    """Delete all but the newest ``keep_last`` complete checkpoints (0 keeps every one)."""
    if keep_last > 0:
        for old in list_checkpoints(folder)[:-keep_last]:
            shutil.rmtree(old)


def network_file(path: str | os.PathLike, network: str) -> Path:
    """The file of ``network`` (``G_A``, ``G_B``, ``D_A``, ``D_B``) that ``path`` stands for: a component
    checkpoint file itself, a checkpoint folder's ``<network>.safetensors``, or that of a run folder's latest
    complete checkpoint."""
    path = Path(path)
    if not path.exists():
        raise CheckpointError(f"{path}: no such checkpoint (a run folder, a checkpoint folder or a .safetensors file)")
    if not path.is_dir():
        return path
    if not (path / "state.json").is_file():
        checkpoints = list_checkpoints(path / "checkpoints")
        if not checkpoints:
            raise CheckpointError(f"{path}: no complete checkpoint in {path / 'checkpoints'}")
        path = checkpoints[-1]
    return path / f"{network}.safetensors"


def load_training_checkpoint(path: str | os.PathLike, trainer: CycleGAN) -> tuple[Progress, dict[str, Any]]:
    """Restore networks, optimisers, pools and RNG states from a checkpoint folder; return progress and state."""
    path = Path(path)
    try:
        state = json.loads((path / "state.json").read_text())
        tensors = load_file(str(path / "state.safetensors"))
    except (OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: incomplete or corrupt training checkpoint: {exc}") from None
    if state.get("format") != STATE_FORMAT:
        raise CheckpointError(f"{path}: not an i2i training checkpoint (format {state.get('format')!r})")
    for net_name, net in trainer.networks.items():
        file = path / f"{net_name}.safetensors"
        try:
            weights = load_file(str(file), device=str(trainer.device))
        except Exception as exc:
            raise CheckpointError(f"{file}: cannot read weights (corrupt or truncated?): {exc}") from None
        load_state_dict_checked(net, weights, source=str(file))
    for prefix, optimizer in (("opt_G", trainer.opt_G), ("opt_D", trainer.opt_D)):
        _load_optimizer(prefix, optimizer, tensors, state[f"{prefix}.param_groups"])
    for prefix, pool in (("pool_A", trainer.pool_A), ("pool_B", trainer.pool_B)):
        pool_tensors = {
            k[len(prefix) + 1 :]: v.to(trainer.device) for k, v in tensors.items() if k.startswith(prefix + ".")
        }
        pool.load_state_dict(pool_tensors, state[prefix])
    if state.get("scaler"):
        trainer.scaler.load_state_dict(state["scaler"])
    torch.set_rng_state(tensors["rng.torch"])
    cuda_states = [tensors[k] for k in sorted(k for k in tensors if k.startswith("rng.cuda."))]
    if cuda_states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda_states)
    progress = Progress(step=state["step"], epoch=state["epoch"], batch_in_epoch=state["batch_in_epoch"])
    return progress, state
