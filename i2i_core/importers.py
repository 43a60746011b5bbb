"""Importing weights written by other tools into i2i component checkpoints."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file

from i2i_core.checkpoint import load_state_dict_checked, save_component
from i2i_core.errors import CheckpointError, I2IError, did_you_mean
from i2i_core.registry import create

#: Reference CycleGAN architectures (its --netG / --netD names in i2i's spelling) and their component kind.
REFERENCE_ARCHS = {
    "resnet9": "generator",
    "resnet6": "generator",
    "unet128": "generator",
    "unet256": "generator",
    "patchgan": "discriminator",
    "pixel": "discriminator",
}
SOURCES = ("cyclegan-reference",)
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")


def read_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Tensors of a ``.pth`` state dict (unpickled with ``weights_only=True``) or a ``.safetensors`` file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    try:
        if path.suffix == ".safetensors":
            state: Any = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(
            f"{path}: cannot be read as a state dict (corrupt, truncated, or holding more than tensors; "
            f"only weights are loaded, never code): {type(exc).__name__}: {str(exc).splitlines()[0]}"
        ) from None
    if isinstance(state, Mapping) and "state_dict" in state and isinstance(state["state_dict"], Mapping):
        state = state["state_dict"]
    if not isinstance(state, Mapping) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{path}: expected a mapping of parameter names to tensors")
    return dict(state)


def clean_reference_state(state: Mapping[str, torch.Tensor], expected: Mapping[str, Any]) -> dict[str, torch.Tensor]:
    """Drop ``module.`` prefixes (DataParallel) and the instance-norm running statistics of old zoo files."""
    cleaned = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.rsplit(".", 1)[-1] in _NORM_STATS and key not in expected:
            continue
        cleaned[key] = value
    return cleaned


def import_weights(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    arch: str,
    source: str = "cyclegan-reference",
    options: Mapping[str, Any] | None = None,
) -> Path:
    """Convert a checkpoint of another tool into an i2i component checkpoint at ``dst``.

    Example:
        >>> import_weights("latest_net_G.pth", "generator.safetensors", arch="resnet9")  # doctest: +SKIP
    """
    if source not in SOURCES:
        raise I2IError(
            f"unknown weights source '{source}'.{did_you_mean(source, SOURCES)} Sources: {', '.join(SOURCES)}"
        )
    if arch not in REFERENCE_ARCHS:
        raise I2IError(
            f"unknown reference architecture '{arch}'.{did_you_mean(arch, REFERENCE_ARCHS)} "
            f"Architectures: {', '.join(REFERENCE_ARCHS)}"
        )
    kind, options = REFERENCE_ARCHS[arch], dict(options or {})
    module = create(kind, arch, **options)
    state = clean_reference_state(read_state_dict(src), module.state_dict())
    load_state_dict_checked(module, state, source=f"{src} (as {kind} '{arch}', options {options or 'default'})")
    return save_component(dst, module, kind=kind, name=arch, options=options)
