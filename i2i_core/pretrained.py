"""Trained models that plugins ship, named ``builtin:<name>`` wherever a checkpoint is accepted.

A plugin registers one with the ``register_pretrained`` hook; its factory returns the component checkpoint file.

Example:
    >>> from i2i_core.pretrained import resolve_checkpoint
    >>> resolve_checkpoint("runs/quickstart")
    PosixPath('runs/quickstart')
"""

from __future__ import annotations

import os
from pathlib import Path

from i2i_core.errors import CheckpointError, I2IError
from i2i_core.host.registry import Component, get_component, list_components

PREFIX = "builtin:"


def is_builtin(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a shipped model (``builtin:<name>``)."""
    return str(path).startswith(PREFIX)


def resolve_checkpoint(path: str | os.PathLike) -> Path:
    """The file ``builtin:<name>`` stands for; any other path as it is."""
    if not is_builtin(path):
        return Path(path)
    component = _shipped(path)
    file = Path(component.factory())
    if not file.is_file():
        raise CheckpointError(
            f"{path}: plugin '{component.plugin}' ships it as {file}, which does not exist; reinstall the plugin"
        )
    return file


def check_direction(path: str | os.PathLike, direction: str) -> None:
    """Refuse to read shipped model ``path`` in a direction it does not translate."""
    component = _shipped(path)
    translates = component.metadata.get("direction", "AtoB")
    if direction != translates:
        raise CheckpointError(f"{path} translates {translates} only, not {direction}: use --direction {translates}")


def _shipped(path: str | os.PathLike) -> Component:
    """The registered model ``builtin:<name>`` names; an unknown name is an error listing the shipped ones."""
    try:
        return get_component("pretrained", str(path).removeprefix(PREFIX))
    except I2IError as exc:
        known = ", ".join(PREFIX + c.name for c in list_components("pretrained")) or "none installed"
        raise CheckpointError(f"{path}: {exc} Shipped models: {known}.") from None


def default_pretrained() -> Component:
    """The shipped model that ``i2i translate`` uses when no checkpoint is given.

    Raises:
        I2IError: no installed plugin marks a model as the default, or more than one does.
    """
    defaults = [c for c in list_components("pretrained") if c.metadata.get("default")]
    if len(defaults) != 1:
        named = ", ".join(f"{PREFIX}{c.name} ({c.plugin})" for c in defaults)
        why = f"several plugins mark a default model: {named}" if defaults else "no installed plugin ships a model"
        raise I2IError(f"no checkpoint given and {why}: name one with -c (a run folder, a checkpoint or builtin:NAME)")
    return defaults[0]


def default_checkpoint() -> str:
    """``builtin:<name>`` of :func:`default_pretrained`."""
    return PREFIX + default_pretrained().name
