"""Component checkpoints: safetensors weights plus the metadata (kind, name, options) that rebuilds them; and
where a run folder's checkpoints are (:func:`list_checkpoints`, :func:`network_file`, :func:`generator_file`).

Writes are atomic (temp file, fsync, rename): a crash leaves either the old file or the new one, never half.
Every file is sealed with its SHA-256 (:func:`sealed`), checked whenever it is read back (:func:`check_sealed`):
a byte changed on disk or in a copy is refused as a corrupt file, never loaded.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load as safetensors_load
from safetensors.torch import save as safetensors_bytes
from torch import nn

from i2i_core.errors import CheckpointError, I2IError, UnknownComponentError
from i2i_core.host.registry import DEFAULT_METHOD, check_option_types, create, get_component
from i2i_core.pretrained import check_direction, is_builtin, resolve_checkpoint
from i2i_core.version import __version__

COMPONENT_FORMAT = "i2i-component/1"
#: Bounds on what a checkpoint's metadata may hold, checked before anything is built from it.
MAX_NAME_CHARS = 200
MAX_OPTIONS_CHARS = 1 << 16
_CHECKPOINT_NAME = re.compile(r"step_\d+")
#: The key (a safetensors metadata key, a ``state.json`` key) that records a file's SHA-256.
CHECKSUM_KEY = "sha256"
#: What a file holds in place of its checksum before :func:`sealed` writes it in (a JSON string of 64 zeros).
UNSEALED = "0" * 64
_UNSEALED_BYTES = f'"{UNSEALED}"'.encode()
_SHA256 = re.compile(r"[0-9a-f]{64}")
#: How PyTorch's pickles start: a zip archive (``torch.save``) or a pickle of protocol 2 to 5 (older ones).
_PICKLE_START = re.compile(rb"PK\x03\x04|\x80[\x02-\x05][^\x00]", re.DOTALL)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder, fsync'ed, then renamed.

    On failure the temporary file is removed and the ``OSError`` names ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes files private; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno is not None and exc.filename is None:
            exc.filename = str(path)  # write() and fsync() do not say which file ("No space left on device")
        raise
    fsync_folder(path.parent)


def fsync_folder(folder: str | os.PathLike) -> None:
    """Make the renames and links made in ``folder`` durable."""
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def sealed(data: bytes) -> bytes:
    """``data``, which holds the JSON string :data:`UNSEALED` once (its checksum's place), with the SHA-256 of
    ``data`` written in its place: :func:`check_sealed` then tells whether any byte changed."""
    if data.count(_UNSEALED_BYTES) != 1:
        raise ValueError(f"the data must hold the unsealed checksum {UNSEALED!r} exactly once")
    return data.replace(_UNSEALED_BYTES, f'"{hashlib.sha256(data).hexdigest()}"'.encode())


def check_sealed(path: str | os.PathLike, data: bytes, recorded: object) -> None:
    """Refuse ``data``, the bytes of ``path``, unless they are those :func:`sealed` wrote with checksum
    ``recorded`` (a :class:`CheckpointError`, as for a corrupt file). A file that records no checksum (written by
    an earlier i2i, or shipped without one) passes."""
    if recorded is None:
        return
    if not (isinstance(recorded, str) and _SHA256.fullmatch(recorded) and _unsealed_digest(data, recorded) == recorded):
        raise CheckpointError(
            f"{path}: checksum mismatch: the file changed after it was written (damaged on disk or in a copy)"
        )


def _unsealed_digest(data: bytes, recorded: str) -> str | None:
    """The SHA-256 of ``data`` with its checksum ``recorded`` put back to :data:`UNSEALED`; None without it."""
    quoted = f'"{recorded}"'.encode()
    return hashlib.sha256(data.replace(quoted, _UNSEALED_BYTES, 1)).hexdigest() if quoted in data else None


def sealed_safetensors(tensors: Mapping[str, torch.Tensor], metadata: Mapping[str, str] | None = None) -> bytes:
    """The bytes of a safetensors file of ``tensors`` and ``metadata``, sealed with its checksum."""
    return sealed(safetensors_bytes(dict(tensors), metadata={**dict(metadata or {}), CHECKSUM_KEY: UNSEALED}))


def save_component(
    path: str | os.PathLike,
    module: nn.Module,
    kind: str,
    name: str,
    options: Mapping[str, Any] | None = None,
    *,
    dtype: torch.dtype | None = None,
    extra: Mapping[str, str] | None = None,
) -> Path:
    """Save ``module``'s weights with what rebuilds it: ``load_component(path)`` returns an equal module.

    ``dtype`` stores floating-point tensors in another precision (fp16 or bf16 halve the file; loading
    returns them in the network's own); ``extra`` adds metadata (a model card's facts: recipe, steps...)."""
    tensors = {k: _stored(v, dtype) for k, v in module.state_dict().items()}
    metadata = {
        **dict(extra or {}),
        "format": COMPONENT_FORMAT,
        "kind": kind,
        "name": name,
        "options": json.dumps(dict(options or {}), sort_keys=True),
        "i2i_version": __version__,
    }
    atomic_write_bytes(path, sealed_safetensors(tensors, metadata))
    return Path(path)


def _stored(tensor: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    tensor = tensor.detach().cpu()
    if dtype is not None and tensor.is_floating_point():
        tensor = tensor.to(dtype)
    return tensor.contiguous()


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The metadata of a safetensors file; a clear error when it is missing or not safetensors."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as exc:
        raise _unreadable(
            path, f"not a readable safetensors file (corrupt or truncated?): {type(exc).__name__}: {exc}"
        ) from None


def read_tensors(path: str | os.PathLike, device: str | torch.device = "cpu") -> dict[str, torch.Tensor]:
    """The tensors of safetensors file ``path`` on ``device``, once its checksum is checked: a
    :class:`CheckpointError` naming it when it cannot be read, is torn or corrupt, or its bytes changed."""
    try:
        data = Path(path).read_bytes()
        tensors = safetensors_load(data)
    except Exception as exc:  # OSError, or safetensors' own error for a torn or corrupt file
        raise _unreadable(path, f"cannot read the checkpoint (corrupt or truncated?): {exc}") from None
    check_sealed(path, data, _header_metadata(data).get(CHECKSUM_KEY))
    return {key: value.to(device) for key, value in tensors.items()}


def _header_metadata(data: bytes) -> dict[str, Any]:
    """The metadata in the header of safetensors bytes ``data`` (which safetensors has read, so well formed)."""
    size = int.from_bytes(data[:8], "little")
    metadata = json.loads(data[8 : 8 + size]).get("__metadata__")
    return metadata if isinstance(metadata, dict) else {}


def _unreadable(path: str | os.PathLike, problem: str) -> CheckpointError:
    """The error for a file that safetensors cannot read (``problem`` says why), or that is a PyTorch pickle."""
    try:
        with open(path, "rb") as f:
            start = f.read(4)
    except OSError:
        start = b""
    if _PICKLE_START.match(start):
        return CheckpointError(
            f"{path}: a PyTorch pickle (.pth/.pt), not a safetensors file; i2i never unpickles: convert it with "
            "`i2i import-weights`"
        )
    return CheckpointError(f"{path}: {problem}")


def load_component(path: str | os.PathLike, device: str | torch.device = "cpu") -> nn.Module:
    """Rebuild the component saved at ``path`` and load its weights; returned in eval mode.

    The metadata is checked first, then the file's checksum as its tensors are read; the network its options
    describe is built on the ``meta`` device (no memory) and compared with the tensor shapes, so metadata that
    does not fit the weights (a crafted ``ngf = 200000``) is refused before the network is allocated.

    Example:
        >>> net = load_component("generator.safetensors")  # doctest: +SKIP
    """
    kind, name, options = _component_spec(path)
    if options.get("pretrained"):
        options["pretrained"] = False  # the checkpoint's weights replace them: do not fetch pretrained ones
    state = read_tensors(path)
    with torch.device("meta"):
        skeleton = _build(path, kind, name, options)
    load_state_dict_checked(skeleton, _meta_tensors(state), source=str(path))
    module = _build(path, kind, name, options)
    load_state_dict_checked(module, state, source=str(path))
    return module.to(device).eval()


def _component_spec(path: str | os.PathLike) -> tuple[str, str, dict[str, Any]]:
    """The kind, name and options an i2i component checkpoint records, type-checked and size-bounded."""
    metadata = read_metadata(path)
    if metadata.get("format") != COMPONENT_FORMAT:
        raise CheckpointError(
            f"{path}: not an i2i component checkpoint (format {_shown(metadata.get('format'))}). "
            "A reference CycleGAN .pth file is converted with `i2i import-weights`."
        )
    kind, name = metadata.get("kind"), metadata.get("name")
    for key, value in (("kind", kind), ("name", name)):
        if not value or len(value) > MAX_NAME_CHARS:
            raise CheckpointError(f"{path}: metadata '{key}' must name a component, got {_shown(value)}")
    options = _options_of(path, metadata.get("options", "{}"))
    _check_option_types(path, kind, name, options)
    return kind, name, options


def _options_of(path: str | os.PathLike, text: str) -> dict[str, Any]:
    """The ``options`` metadata: a JSON object of scalars and lists of scalars, at most MAX_OPTIONS_CHARS long."""
    if len(text) > MAX_OPTIONS_CHARS:
        raise CheckpointError(f"{path}: metadata 'options' is {len(text)} characters, more than {MAX_OPTIONS_CHARS}")
    try:
        options = json.loads(text)
    except ValueError as exc:
        raise CheckpointError(f"{path}: metadata 'options' is not JSON ({exc}): {_shown(text)}") from None
    if not isinstance(options, dict):
        raise CheckpointError(f"{path}: metadata 'options' must be a JSON object, got {_shown(text)}")
    for key, value in options.items():
        values = value if isinstance(value, list) else [value]
        if not all(v is None or isinstance(v, str | int | float) for v in values):
            raise CheckpointError(
                f"{path}: metadata option '{key}' must be a number, string, boolean or a list of them, got "
                f"{_shown(json.dumps(value))}"
            )
    return options


def _check_option_types(path: str | os.PathLike, kind: str, name: str, options: dict[str, Any]) -> None:
    """Refuse options whose types differ from the defaults of the component's factory."""
    try:
        component = get_component(kind, name)
    except UnknownComponentError as exc:
        raise UnknownComponentError(f"{path}: {exc}") from None
    except I2IError as exc:  # an unknown kind
        raise CheckpointError(f"{path}: {exc}") from None
    try:
        check_option_types(component, options, f"{path}: metadata option ")
    except I2IError as exc:
        raise CheckpointError(str(exc)) from None


def _shown(value: str | None, limit: int = 80) -> str:
    """``value`` quoted for an error message, cut to ``limit`` characters."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}..."


def _build(path: str | os.PathLike, kind: str, name: str, options: dict[str, Any]) -> nn.Module:
    """``create(kind, name, **options)``, with errors naming the checkpoint; refuses what is not a network."""
    try:
        module = create(kind, name, **options)
    except I2IError as exc:
        raise CheckpointError(f"{path}: {exc}") from exc
    if not isinstance(module, nn.Module):
        raise CheckpointError(f"{path}: {kind} '{name}' builds a {type(module).__name__}, not a network")
    return module


def _meta_tensors(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` as ``meta`` tensors of the same shapes, to check them against a network built on ``meta``."""
    return {key: torch.empty(value.shape, device="meta") for key, value in state.items()}


def load_state_dict_checked(module: nn.Module, state: Mapping[str, torch.Tensor], source: str) -> None:
    """``module.load_state_dict(state)``, strict, with an error that names the first offending keys."""
    expected = module.state_dict()
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    shapes = [
        f"{k}: checkpoint {tuple(state[k].shape)} vs network {tuple(v.shape)}"
        for k, v in expected.items()
        if k in state and tuple(state[k].shape) != tuple(v.shape)
    ]
    if missing or unexpected or shapes:
        raise CheckpointError(
            f"{source}: weights do not fit the network. " + describe_mismatch(missing, unexpected, shapes)
        )
    module.load_state_dict(state, strict=True)


def describe_mismatch(missing: list[str], unexpected: list[str], shapes: list[str]) -> str:
    """A human explanation of a state-dict mismatch, with a hint for the classic dropout confusion."""
    parts = []
    if missing:
        parts.append(f"missing keys ({len(missing)}): {', '.join(missing[:3])}")
    if unexpected:
        parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected[:3])}")
    if shapes:
        parts.append(f"shape mismatches ({len(shapes)}): {'; '.join(shapes[:3])}")
    message = "; ".join(parts) + "."
    if any(".conv_block.6." in k for k in unexpected) and any(".conv_block.5." in k for k in missing):
        message += " The checkpoint was trained with dropout: set the generator option dropout=true."
    elif any(".conv_block.5." in k for k in unexpected) and any(".conv_block.6." in k for k in missing):
        message += " The checkpoint was trained without dropout: set the generator option dropout=false."
    elif shapes:
        message += " Check the architecture and its options (ngf/ndf, n_layers, norm)."
    return message


# -- checkpoints of a run folder --------------------------------------------------------------------------------


def checkpoint_name(step: int) -> str:
    """The folder name of the training checkpoint of ``step``: ``step_XXXXXXX``."""
    return f"step_{step:07d}"


def list_checkpoints(folder: str | os.PathLike) -> list[Path]:
    """Complete training checkpoints in ``folder``, oldest first."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("step_*") if _CHECKPOINT_NAME.fullmatch(p.name) and (p / "state.json").is_file()]
    return sorted(found, key=lambda p: p.name)


#: The folder under a run's ``checkpoints/`` holding its best checkpoint by ``eval.best``.
BEST = "best"


def select_checkpoint(path: str | os.PathLike, which: str | None = None) -> Path:
    """``path`` itself, or with ``which`` the checkpoint of run folder ``path`` it names: ``latest``, ``best``
    (kept by ``eval.best``), ``step_XXXXXXX`` or a step number."""
    path = _existing(path)
    if which is None:
        return path
    folder = path / "checkpoints"
    if not folder.is_dir():
        raise CheckpointError(f"{path}: not a run folder (no checkpoints/), so --checkpoint {which} names nothing")
    if which == "latest":
        return _checkpoint_folder(path)
    chosen = folder / (checkpoint_name(int(which)) if which.isdigit() else which)
    if not (chosen / "state.json").is_file():
        known = [p.name for p in list_checkpoints(folder)] + (
            [BEST] if (folder / BEST / "state.json").is_file() else []
        )
        hint = " (a run keeps one when eval.best and output.eval_every are set)" if which == BEST else ""
        raise CheckpointError(
            f"{path}: no checkpoint '{which}'{hint}; its checkpoints: {', '.join(known) or 'none'}, or latest"
        )
    return chosen


def step_of(path: str | os.PathLike) -> int | None:
    """The training step of a checkpoint folder, or of a run folder's latest checkpoint; None for a file."""
    path = _existing(path)
    if not path.is_dir():
        return None
    folder = _checkpoint_folder(path)
    state = read_checkpoint_state(folder)
    try:
        return int(state["step"])
    except (ValueError, KeyError, TypeError) as exc:
        raise corrupt_checkpoint(folder, exc) from None


def read_checkpoint_state(folder: str | os.PathLike) -> dict[str, Any]:
    """The ``state.json`` of training checkpoint ``folder``: a :class:`CheckpointError` naming it when it is
    missing, torn or not a JSON object."""
    folder = Path(folder)
    try:
        data = (folder / "state.json").read_bytes()
        state = json.loads(data)
    except (OSError, ValueError) as exc:
        raise corrupt_checkpoint(folder, exc) from None
    if not isinstance(state, dict):
        raise corrupt_checkpoint(folder, f"not a JSON object: {_shown(json.dumps(state))}")
    check_sealed(folder / "state.json", data, state.get(CHECKSUM_KEY))
    return state


def corrupt_checkpoint(folder: str | os.PathLike, problem: Exception | str) -> CheckpointError:
    """The error for a training checkpoint whose ``state.json`` does not read back (``problem`` says why)."""
    return CheckpointError(f"{Path(folder) / 'state.json'}: incomplete or corrupt training checkpoint: {problem}")


def _existing(path: str | os.PathLike) -> Path:
    """``path``, which must exist: a run folder, a checkpoint folder, a component checkpoint file or a shipped
    model (``builtin:<name>``, resolved to its file)."""
    path = resolve_checkpoint(path)
    if not path.exists():
        raise CheckpointError(
            f"{path}: no such checkpoint (a run folder, a checkpoint folder, a .safetensors file or builtin:NAME)"
        )
    return path


def _checkpoint_folder(path: Path) -> Path:
    """``path`` if it is a training checkpoint folder, else its run folder's latest complete checkpoint."""
    if (path / "state.json").is_file():
        return path
    if _CHECKPOINT_NAME.fullmatch(path.name) or path.name == BEST:
        raise corrupt_checkpoint(path, "no such file")
    checkpoints = list_checkpoints(path / "checkpoints")
    if not checkpoints:
        raise CheckpointError(f"{path}: no complete checkpoint in {path / 'checkpoints'}")
    return checkpoints[-1]


def network_file(path: str | os.PathLike, network: str) -> Path:
    """The file of ``network`` (a name of the method's networks) that ``path`` stands for: a component
    checkpoint file itself, a checkpoint folder's ``<network>.safetensors``, or that of a run folder's latest
    complete checkpoint."""
    path = _existing(path)
    if not path.is_dir():
        return path
    folder = _checkpoint_folder(path)
    file = folder / f"{network}.safetensors"
    if not file.is_file():
        held = sorted(p.stem for p in folder.glob("*.safetensors") if p.name != "state.safetensors")
        raise CheckpointError(
            f"{folder}: holds no network {network} (its networks: {', '.join(held) or 'none'}); name one of its "
            ".safetensors files instead of the folder"
        )
    return file


def generator_file(path: str | os.PathLike, direction: str) -> Path:
    """The generator file that translates in ``direction`` (``AtoB``, ``BtoA``) for ``path``: a component
    checkpoint file itself, or the network a checkpoint folder (or a run folder's latest one) exports for it,
    as its ``state.json`` records (checkpoints from before methods record none: CycleGAN's); a shipped model in
    the direction it is registered for."""
    if is_builtin(path):
        check_direction(path, direction)
    path = _existing(path)
    if not path.is_dir():
        return path
    folder = _checkpoint_folder(path)
    state = read_checkpoint_state(folder)
    exports = state.get("exports")
    if not isinstance(exports, dict):
        method = get_component("method", state.get("method", DEFAULT_METHOD)).factory
        exports = {d: t.network for d, t in method.translations.items()}
    if direction not in exports:
        raise I2IError(
            f"{folder}: method {state.get('method', DEFAULT_METHOD)} translates only "
            f"{', '.join(exports) or 'in no direction'}, not {direction}; use --direction {next(iter(exports), 'AtoB')}"
        )
    return folder / f"{exports[direction]}.safetensors"
