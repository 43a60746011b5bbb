"""``key=value`` assignments from the command line, with TOML-typed values."""

from __future__ import annotations

import tomllib
from typing import Any

from i2i_core.errors import I2IError


def parse_value(text: str) -> Any:
    """A TOML literal (``3``, ``0.5``, ``true``, ``"x"``, ``[1, 2]``), or the text itself as a string.

    Example:
        >>> parse_value("2e-4"), parse_value("true"), parse_value("runs/x")
        (0.0002, True, 'runs/x')
    """
    try:
        return tomllib.loads(f"value = {text}")["value"]
    except tomllib.TOMLDecodeError:
        return text


def parse_assignment(text: str) -> tuple[str, Any]:
    """Split ``"a.b=value"`` into ``("a.b", parsed value)``.

    Example:
        >>> parse_assignment("train.lr=1e-4")
        ('train.lr', 0.0001)
    """
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise I2IError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), parse_value(value.strip())
