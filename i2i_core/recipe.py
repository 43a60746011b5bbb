"""TOML recipes: defaults, ``extends`` inheritance, ``--set`` overrides and validation before any work starts.

A recipe names components by their registered names; the other keys of a component's table are its options.
Dotted keys (``train.lr``, ``model.generator.name``, ``loss.cycle.weight``...) address any value.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
import torch

from i2i_core.assignments import parse_assignment
from i2i_core.augment import AUGMENT_DEFAULTS
from i2i_core.errors import I2IError
from i2i_core.host.registry import DEFAULT_METHOD, create, get_component
from i2i_core.recipe_checks import validate
from i2i_core.tables import find_nested, keys_of, merge, nested, set_nested

if TYPE_CHECKING:
    from i2i_core.method import Method

#: Every fixed key of the core with its default. The method adds its own (:attr:`Method.recipe_defaults`), and
#: component tables also take the component's own options.
DEFAULTS: dict[str, Any] = {
    "name": "",
    "description": "",
    "method": DEFAULT_METHOD,
    "data": {
        "dataset": "unpaired-folder",
        "root": "builtin:mini-photo2cartoon",
        "load_size": 286,
        "crop_size": 256,
    },
    "model": {
        "generator": {"name": "resnet9", "init_from": ""},
    },
    "train": {
        "epochs": 100,
        "decay_epochs": 100,
        "steps": 0,
        "lr": 2e-4,
        "betas": [0.5, 0.999],
        "batch_size": 1,
        "d_pretrain_steps": 0,
        "decay": "linear",
        "precision": "auto",
        "memory_format": "auto",
        "cuda_graphs": "off",  # "auto" once measured on a GPU: see docs/benchmarks.md
        "seed": 0,
        "device": "auto",
        "num_workers": 0,
        "minutes": 0.0,
    },
    "augment": dict(AUGMENT_DEFAULTS),
    "output": {
        "dir": "",
        "checkpoint_every": 500,
        "sample_every": 100,
        "log_every": 10,
        "keep_last": 3,
        "num_samples": 4,
        "eval_every": 0,
    },
    "eval": {
        "split": "test",
        "direction": "AtoB",
        "size": 0,
        "metrics": ["swd", "lab", "psnr", "ssim", "content", "palette", "flat", "checker"],
        "best": "",
    },
    "report": {"reporters": []},
}

#: Keys of component tables that i2i reads itself; every other key is an option passed to the component.
OWN_KEYS = {"name", "dataset", "weight", "init_from"}

#: The core's tables naming a component (kind, key holding its name): their other keys are that component's
#: options. Methods add theirs (:meth:`Method.component_kinds`).
COMPONENT_TABLES = {
    ("data",): ("dataset", "dataset"),
    ("model", "generator"): ("generator", "name"),
}
#: The keys naming the component of a table: a recipe that changes one starts the table afresh (:func:`merge`).
NAME_KEYS = ("name", "dataset")


@dataclass(frozen=True)
class Schema:
    """What a recipe may hold once its method is known: keys and defaults, component tables and loss roles, the
    core's and the method's together."""

    method: type[Method]
    defaults: dict[str, Any]
    component_tables: dict[tuple[str, ...], tuple[str, str]]
    loss_roles: dict[tuple[str, ...], str]

    def fixed_keys(self, table: tuple[str, ...]) -> dict[str, Any]:
        """i2i's own keys of a component table, with their defaults."""
        return nested(self.defaults, table)


def method_name(values: Mapping[str, Any], source: str) -> str:
    name = values.get("method", DEFAULT_METHOD)
    if not isinstance(name, str):
        raise I2IError(f"{source}: method must name a training method, got {name!r}")
    return name


def schema_of(values: Mapping[str, Any], source: str = "recipe") -> Schema:
    """The :class:`Schema` of the method ``values`` names (:data:`DEFAULT_METHOD` when none); an unknown method
    fails with a suggestion."""
    name = method_name(values, source)
    try:
        method = get_component("method", name).factory
    except I2IError as exc:
        raise I2IError(f"{source}: method: {exc}") from None
    return Schema(
        method=method,
        defaults=merge(DEFAULTS, method.recipe_defaults),
        component_tables={
            **COMPONENT_TABLES,
            **{keys_of(table): (kind, "name") for table, kind in method.component_kinds().items()},
        },
        loss_roles={keys_of(table): role for table, role in method.loss_roles.items()},
    )


@dataclass
class Recipe:
    """A resolved, validated recipe. ``recipe["train.lr"]`` reads a dotted key.

    ``notes`` says what resolving did that the files do not show (options dropped by a ``--set`` name change).
    """

    values: dict[str, Any]
    path: Path | None = None
    overrides: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: The method name and :class:`Schema` of the last :attr:`schema` read, computed again if ``method`` changes.
    _schema: tuple[Any, Schema] | None = field(default=None, init=False, repr=False, compare=False)

    def __getitem__(self, dotted: str) -> Any:
        return nested(self.values, dotted)

    def get(self, dotted: str, default: Any = None) -> Any:
        """``recipe[dotted]``, or ``default`` when the recipe has no such key (a key of another method)."""
        try:
            return self[dotted]
        except (KeyError, TypeError):
            return default

    @property
    def name(self) -> str:
        return self.values["name"]

    @property
    def schema(self) -> Schema:
        """The keys, component tables and networks of this recipe's method."""
        method = self.values.get("method")
        if self._schema is None or self._schema[0] != method:
            self._schema = (method, schema_of(self.values, str(self.path or self.name)))
        return self._schema[1]

    @property
    def method(self) -> type[Method]:
        """The class of the recipe's training method."""
        return self.schema.method

    def component_options(self, *table: str) -> dict[str, Any]:
        """The options of the component named in ``table``: its table minus i2i's own keys (name, weight...)."""
        own = OWN_KEYS & set(self.schema.fixed_keys(table))
        return {k: v for k, v in nested(self.values, table).items() if k not in own}

    def create(self, *table: str) -> Any:
        """Build the component named in ``table`` (``"model", "generator"``) with its options.

        A failure names the recipe and the table: ``r.toml: model.generator: generator 'resnet6' with options ...``.
        """
        kind, name_key = self.schema.component_tables[table]
        dotted = ".".join(table)
        try:
            return create(kind, self[f"{dotted}.{name_key}"], **self.component_options(*table))
        except I2IError as exc:
            raise I2IError(f"{self.path or self.name}: {dotted}: {exc}") from exc

    def check_networks(self) -> None:
        """Build the method's networks on the ``meta`` device (no memory, no weights): an option they cannot take
        fails now, naming its table, as it would when a run builds them."""
        with torch.device("meta"):
            self.method.build_networks(self)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.values)


def with_defaults(values: Mapping[str, Any], source: str = "recipe") -> dict[str, Any]:
    """``values`` over the defaults of the core and of its method, i2i's own keys filled in every component
    table."""
    schema = schema_of(values, source)
    merged = merge(schema.defaults, values, NAME_KEYS)
    for table in schema.component_tables:
        node = find_nested(merged, table)
        if isinstance(node, dict):  # anything else is reported by validation
            for key, default in schema.fixed_keys(table).items():
                node.setdefault(key, copy.deepcopy(default))
    return merged


def _read_toml(path: Path, notes: list[str], chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a recipe file, resolving ``extends`` (relative to the file) recursively. A file naming another
    method than the one it extends drops the keys only that one reads (a note in ``notes`` says which)."""
    path = path.resolve()
    if path in chain:
        raise I2IError(f"{path}: 'extends' forms a cycle: {' -> '.join(str(p) for p in (*chain, path))}")
    named_by = f" (named by 'extends' in {chain[-1]})" if chain else ""
    if not path.is_file():
        raise I2IError(f"{path}: no such recipe file{named_by}")
    try:
        values = tomllib.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise I2IError(
            f"{path}: not a UTF-8 text file (byte {exc.start} is {exc.object[exc.start]:#04x}){named_by}; "
            "save the recipe as UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as exc:
        raise I2IError(f"{path}: invalid TOML: {exc}{named_by}") from None
    parent = values.pop("extends", None)
    if parent is None:
        return values
    if not isinstance(parent, str):
        raise I2IError(f"{path}: 'extends' must be a file name, got {parent!r}")
    inherited = _read_toml(path.parent / parent, notes, (*chain, path))
    if "method" in values:
        notes += _change_method(inherited, method_name(values, str(path)), f"{path.name} (extends {parent})", str(path))
    return merge(inherited, values, NAME_KEYS)


def _drop_renamed_options(values: dict[str, Any], pairs: list[tuple[str, Any]], source: str) -> list[str]:
    """Drop the options of each component that ``pairs`` (``--set``) renames, as ``extends`` does, except
    options ``pairs`` set too; and when ``pairs`` change the method, the keys only the old method reads.
    Returns one note per table whose options were dropped."""
    methods = [value for key, value in pairs if key == "method"]
    notes = _change_method(values, methods[-1], "--set", source) if methods else []
    schema = schema_of(values, source)
    for table, (_, name_key) in schema.component_tables.items():
        dotted = ".".join(table)
        names = [value for key, value in pairs if key == f"{dotted}.{name_key}"]
        node = find_nested(values, table)
        if not names or not isinstance(node, dict):
            continue
        old, new = node.get(name_key, schema.fixed_keys(table)[name_key]), names[-1]
        if new == old:
            continue
        set_too = {key.removeprefix(f"{dotted}.").split(".")[0] for key, _ in pairs if key.startswith(f"{dotted}.")}
        own = OWN_KEYS & set(schema.fixed_keys(table))
        dropped = {key: node.pop(key) for key in list(node) if key not in own and key not in set_too}
        if dropped:
            listed = ", ".join(f"{key}={json.dumps(value)}" for key, value in dropped.items())
            notes.append(f"{dotted}: {name_key} changed from {old} to {new} by --set; dropped its options {listed}")
    return notes


def _change_method(values: dict[str, Any], new: Any, by: str, source: str) -> list[str]:
    """Make ``values`` (a recipe of its own method) a recipe of method ``new``: set it, and drop the keys only
    the old method reads. Returns notes on what was dropped, and on kept values the new method's defaults
    differ from (``cut`` to ``fastcut`` keeps a recipe's ``nce.idt = true``)."""
    old_name = method_name(values, source)
    old, schema = schema_of(values, source), schema_of({"method": new}, source)
    values["method"] = new
    if schema.method is old.method:
        return []
    notes = []
    if dropped := _drop_unknown(values, old.defaults, schema.defaults, ()):
        notes.append(
            f"method: changed from {old_name} to {new} by {by}; dropped the keys only {old_name} reads: "
            f"{', '.join(dropped)}"
        )
    kept = [
        f"{key}={json.dumps(value)} ({new}'s default: {json.dumps(default)})"
        for key, value, default in _differing(values, schema.defaults, old.defaults, ())
    ]
    if kept and by == "--set":  # a file that extends another sets what it wants itself
        notes.append(f"method: changed from {old_name} to {new} by {by}; kept the recipe's {', '.join(kept)}")
    return notes


def _differing(
    values: Mapping[str, Any], defaults: Mapping[str, Any], old: Mapping[str, Any], prefix: tuple[str, ...]
) -> list[tuple]:
    """(dotted key, value, default) of the plain values in ``values`` whose default in ``defaults`` differs from
    the one in ``old`` and from the value itself."""
    found = []
    for key, value in values.items():
        if key not in defaults or key not in old or key == "method":
            continue
        default = defaults[key]
        if isinstance(value, Mapping) and isinstance(default, Mapping) and isinstance(old[key], Mapping):
            found += _differing(value, default, old[key], (*prefix, key))
        elif not isinstance(default, Mapping) and value != default and default != old[key]:
            found.append((".".join((*prefix, key)), value, default))
    return found


def _drop_unknown(
    values: dict[str, Any], old: Mapping[str, Any], new: Mapping[str, Any], prefix: tuple[str, ...]
) -> list[str]:
    """Remove from ``values`` the keys that ``old`` defaults have and ``new`` ones lack; their dotted names."""
    dropped = []
    for key in list(values):
        if key not in old:
            continue
        if key not in new:
            del values[key]
            dropped.append(".".join((*prefix, key)))
        elif isinstance(values[key], dict) and isinstance(old[key], dict) and isinstance(new[key], dict):
            dropped += _drop_unknown(values[key], old[key], new[key], (*prefix, key))
    return dropped


def load_recipe(path: str | os.PathLike, overrides: Iterable[str] | Mapping[str, Any] | None = None) -> Recipe:
    """Read, resolve and validate a recipe.

    Args:
        path: the TOML file; ``extends = "other.toml"`` inherits from another (relative to this file).
        overrides: ``["train.lr=1e-4", ...]`` or ``{"train.lr": 1e-4}``, applied last.

    Example:
        >>> recipe = load_recipe("recipes/quickstart.toml", ["train.steps=10"])  # doctest: +SKIP
        >>> recipe["train.steps"]  # doctest: +SKIP
        10
    """
    path = Path(path)
    notes: list[str] = []
    user = _read_toml(path, notes)
    if isinstance(overrides, Mapping):
        pairs = list(overrides.items())
        texts = [f"{k}={v!r}" for k, v in pairs]
    else:
        texts = list(overrides or [])
        pairs = [parse_assignment(t) for t in texts]
    notes += _drop_renamed_options(user, pairs, str(path))
    for key, value in pairs:
        try:
            set_nested(user, key, value)
        except ValueError as exc:
            raise I2IError(f"--set {exc}") from None
    values = with_defaults(user, str(path))
    if not values["name"]:
        values["name"] = path.stem
    validate(values, schema_of(values, str(path)), str(path))
    return Recipe(values=values, path=path, overrides=texts, notes=notes)


def recipe_from_dict(values: Mapping[str, Any], name: str = "recipe") -> Recipe:
    """A validated recipe from a mapping (defaults fill what is missing)."""
    merged = with_defaults(values, name)
    merged["name"] = merged["name"] or name
    validate(merged, schema_of(merged, name), name)
    return Recipe(values=merged)
