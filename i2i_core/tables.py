"""Nested tables (a recipe's, TOML's, JSON's): the value at a path of keys, setting one, and deep merging.

A path is dotted (``"train.lr"``) or a tuple of keys (``("train", "lr")``).
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any


def keys_of(path: str | Iterable[str]) -> tuple[str, ...]:
    """The keys of ``path``: ``"model.generator"`` -> ``("model", "generator")``."""
    return tuple(path.split(".")) if isinstance(path, str) else tuple(path)


def nested(values: Mapping[str, Any], path: str | Iterable[str]) -> Any:
    """The value at ``path`` in ``values``: a ``KeyError`` when a key is absent, a ``TypeError`` when a value on
    the way is not a table.

    Example:
        >>> nested({"train": {"lr": 0.1}}, "train.lr")
        0.1
    """
    node: Any = values
    for key in keys_of(path):
        node = node[key]
    return node


def find_nested(values: Mapping[str, Any], path: str | Iterable[str]) -> Any:
    """The value at ``path`` in ``values``, or None when a key is absent or a value on the way is not a table.

    Example:
        >>> find_nested({"train": {"lr": 0.1}}, ("train", "lr", "x")) is None
        True
    """
    node: Any = values
    for key in keys_of(path):
        node = node.get(key) if isinstance(node, Mapping) else None
    return node


def set_nested(values: dict[str, Any], path: str | Iterable[str], value: Any) -> None:
    """Set the value at ``path`` in ``values``, adding the tables missing on the way; a ``ValueError`` (naming
    ``path`` and the value) when a value on the way is not a table."""
    keys = keys_of(path)
    node = values
    for i, key in enumerate(keys[:-1]):
        child = node.setdefault(key, {})
        if not isinstance(child, dict):
            raise ValueError(f"{'.'.join(keys)}: '{'.'.join(keys[: i + 1])}' is a value, not a table")
        node = child
    node[keys[-1]] = value


def merge(base: Mapping[str, Any], update: Mapping[str, Any], identity_keys: Iterable[str] = ()) -> dict[str, Any]:
    """``update`` deep-merged over a copy of ``base``: tables merge, other values replace them.

    ``identity_keys`` name what a table is (a component's ``name``): a table whose value for one of them
    ``update`` changes does not merge but starts afresh.
    """
    identity_keys = tuple(identity_keys)
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            old = out[key]
            same = all(value.get(k, old.get(k)) == old.get(k) for k in identity_keys)
            out[key] = merge(old if same else {}, value, identity_keys)
        else:
            out[key] = copy.deepcopy(value)
    return out
