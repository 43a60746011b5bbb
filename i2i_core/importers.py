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
from i2i_core.host.registry import create

#: Architectures of other tools' checkpoints (the reference tools' --netG / --netD names, in i2i's spelling) and
#: their component kind.
REFERENCE_ARCHS = {
    "resnet9": "generator",
    "resnet6": "generator",
    "unet128": "generator",
    "unet256": "generator",
    "patchgan": "discriminator",
    "pixel": "discriminator",
    "animegan2": "generator",
    "pix2pix-unet256": "generator",
    "pix2pix-unet128": "generator",
}
#: The reference CycleGAN's architectures (its --netG and --netD).
CYCLEGAN_ARCHS = ("resnet9", "resnet6", "unet128", "unet256", "patchgan", "pixel")
#: Each source's architectures, with the options its checkpoints need by default (reference CUT's networks are
#: anti-aliased unless it was run with --no_antialias / --no_antialias_up; reference pix2pix's use batch norm and
#: dropout, its discriminator reads an input and an output together, and its U-Nets translate as its test.py
#: does, without --eval). ``animegan2``: the released generators of AnimeGANv2's PyTorch port
#: (``face_paint_512_v2.pt``, ``paprika.pt``...).
SOURCE_ARCHS: dict[str, dict[str, dict[str, Any]]] = {
    "cyclegan-reference": {arch: {} for arch in CYCLEGAN_ARCHS},
    "cut-reference": {
        "resnet9": {"antialias": True, "antialias_up": True},
        "resnet6": {"antialias": True, "antialias_up": True},
        "patchgan": {"antialias": True},
    },
    "pix2pix-reference": {
        "pix2pix-unet256": {"eval_mode": False},
        "pix2pix-unet128": {"eval_mode": False},
        "resnet9": {"norm": "batch", "dropout": True},
        "resnet6": {"norm": "batch", "dropout": True},
        "patchgan": {"norm": "batch", "in_channels": 6},
        "pixel": {"norm": "batch", "in_channels": 6},
    },
    "animegan2": {"animegan2": {}},
}
SOURCES = tuple(SOURCE_ARCHS)
#: The architecture of a source's files when --arch is not given: its only one, or the one its model zoo uses.
DEFAULT_ARCHS = {"pix2pix-reference": "pix2pix-unet256"}
#: A source's names for its architectures (the reference's --netG) that are i2i components of other names.
ARCH_ALIASES = {"pix2pix-reference": {"unet256": "pix2pix-unet256", "unet128": "pix2pix-unet128"}}
_NORM_STATS = ("running_mean", "running_var", "num_batches_tracked")
#: The state-dict name of the fixed blur kernels of anti-aliased networks.
_BLUR = ".filt"


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
    """Drop ``module.`` prefixes (DataParallel) and the instance-norm running statistics of old zoo files; give
    batch norms of files written before PyTorch counted batches (no ``num_batches_tracked``) a count of 0."""
    cleaned = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        if key.rsplit(".", 1)[-1] in _NORM_STATS and key not in expected:
            continue
        cleaned[key] = value
    for key in expected:
        layer, _, name = key.rpartition(".")
        if name == "num_batches_tracked" and key not in cleaned and f"{layer}.running_mean" in cleaned:
            cleaned[key] = torch.tensor(0, dtype=torch.long)
    return cleaned


def _antialias_hint(state: Mapping[str, torch.Tensor], expected: Mapping[str, Any], source: str) -> str:
    """What to change when the checkpoint and the network disagree about anti-aliasing (blur-kernel buffers)."""
    theirs, ours = any(k.endswith(_BLUR) for k in state), any(k.endswith(_BLUR) for k in expected)
    if theirs and not ours:
        if source == "cut-reference":
            return " The checkpoint is anti-aliased: set the options antialias=true (and antialias_up=true)."
        return " The checkpoint is anti-aliased, as reference CUT writes them: use --from cut-reference."
    if ours and not theirs:
        return " The checkpoint is not anti-aliased (CUT run with --no_antialias): set the option antialias=false."
    return ""


def import_weights(
    src: str | os.PathLike,
    dst: str | os.PathLike,
    arch: str | None = None,
    source: str = "cyclegan-reference",
    options: Mapping[str, Any] | None = None,
) -> Path:
    """Convert a checkpoint of another tool into an i2i component checkpoint at ``dst``.

    ``options`` go over the source's defaults for ``arch`` (``cut-reference``: anti-aliased networks;
    ``pix2pix-reference``: batch norm and dropout); ``arch`` may be left out for a source of one architecture
    (``animegan2``) and for ``pix2pix-reference`` (its model zoo's U-Net 256, ``pix2pix-unet256``, which
    ``unet256`` also names there).

    Example:
        >>> import_weights("latest_net_G.pth", "generator.safetensors", arch="resnet9")  # doctest: +SKIP
        >>> import_weights("latest_net_G.pth", "cut.safetensors", arch="resnet9", source="cut-reference")  # doctest: +SKIP
        >>> import_weights("facades_label2photo.pth", "facades.safetensors", source="pix2pix-reference")  # doctest: +SKIP
        >>> import_weights("paprika.pt", "paprika.safetensors", source="animegan2")  # doctest: +SKIP
    """
    if source not in SOURCES:
        raise I2IError(
            f"unknown weights source '{source}'.{did_you_mean(source, SOURCES)} Sources: {', '.join(SOURCES)}"
        )
    archs = SOURCE_ARCHS[source]
    arch = ARCH_ALIASES.get(source, {}).get(arch, arch) if arch is not None else DEFAULT_ARCHS.get(source)
    if arch is None:
        if len(archs) > 1:
            raise I2IError(
                f"{source} checkpoints come in several architectures: name one with --arch ({', '.join(archs)})"
            )
        (arch,) = archs
    if arch not in archs:
        raise I2IError(
            f"unknown {source} architecture '{arch}'.{did_you_mean(arch, archs)} Architectures: {', '.join(archs)}"
        )
    kind, options = REFERENCE_ARCHS[arch], {**archs[arch], **(options or {})}
    module = create(kind, arch, **options)
    expected = module.state_dict()
    state = clean_reference_state(read_state_dict(src), expected)
    try:
        load_state_dict_checked(module, state, source=f"{src} (as {kind} '{arch}', options {options or 'default'})")
    except CheckpointError as exc:
        raise CheckpointError(f"{exc}{_antialias_hint(state, expected, source)}") from None
    return save_component(dst, module, kind=kind, name=arch, options=options)
