"""TOML recipes: defaults, ``extends`` inheritance, ``--set`` overrides and validation before any work starts.

A recipe names components by their registered names; the other keys of a component's table are its options.
Dotted keys (``train.lr``, ``model.generator.name``, ``loss.cycle.weight``...) address any value.
"""

from __future__ import annotations

import copy
import json
import os
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import tomli_w
import torch

from i2i_core.assignments import parse_assignment
from i2i_core.augment import AUGMENT_DEFAULTS, check_augment
from i2i_core.errors import I2IError, did_you_mean
from i2i_core.host.registry import Component, create, get_component, list_components

if TYPE_CHECKING:
    from i2i_core.method import Method

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DECAYS = ("linear", "none")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")

#: The method a recipe without ``method`` trains.
DEFAULT_METHOD = "cyclegan"

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
        "metrics": ["swd", "lab", "psnr", "ssim", "content"],
        "best": "",
    },
    "report": {"reporters": []},
}

#: Keys of component tables that i2i reads itself; every other key is an option passed to the component.
OWN_KEYS = {"name", "dataset", "weight", "init_from"}

#: The core's tables naming a component (kind, key holding its name): their other keys are that component's
#: options. Methods add theirs (:attr:`Method.component_tables`).
COMPONENT_TABLES = {
    ("data",): ("dataset", "dataset"),
    ("model", "generator"): ("generator", "name"),
}


@dataclass(frozen=True)
class Schema:
    """What a recipe may hold once its method is known: keys and defaults, component tables, loss roles and
    network tables, the core's and the method's together."""

    method: type[Method]
    defaults: dict[str, Any]
    component_tables: dict[tuple[str, ...], tuple[str, str]]
    loss_roles: dict[tuple[str, ...], str]
    network_tables: tuple[tuple[str, ...], ...]

    def fixed_keys(self, table: tuple[str, ...]) -> dict[str, Any]:
        """i2i's own keys of a component table, with their defaults."""
        node: Any = self.defaults
        for part in table:
            node = node[part]
        return node


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
        defaults=_merge_defaults(DEFAULTS, method.recipe_defaults),
        component_tables={**COMPONENT_TABLES, **method.component_tables},
        loss_roles=dict(method.loss_roles),
        network_tables=(("model", "generator"), *method.network_tables),
    )


def _merge_defaults(base: Mapping[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(dict(base))
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge_defaults(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


@dataclass
class Recipe:
    """A resolved, validated recipe. ``recipe["train.lr"]`` reads a dotted key.

    ``notes`` says what resolving did that the files do not show (options dropped by a ``--set`` name change).
    """

    values: dict[str, Any]
    path: Path | None = None
    overrides: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def __getitem__(self, dotted: str) -> Any:
        node: Any = self.values
        for part in dotted.split("."):
            node = node[part]
        return node

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
        return schema_of(self.values, str(self.path or self.name))

    @property
    def method(self) -> type[Method]:
        """The class of the recipe's training method."""
        return self.schema.method

    def component_options(self, *table: str) -> dict[str, Any]:
        """The options of the component named in ``table``: its table minus i2i's own keys (name, weight...)."""
        own = OWN_KEYS & set(self.schema.fixed_keys(table))
        return {k: v for k, v in self[".".join(table)].items() if k not in own}

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
        """Build the generator and the method's other networks on the ``meta`` device (no memory, no weights): an
        option they cannot take fails now, naming its table, as it would when a run builds them."""
        with torch.device("meta"):
            for table in self.schema.network_tables:
                self.create(*table)

    def to_toml(self) -> str:
        return tomli_w.dumps(self.values)


def with_defaults(values: Mapping[str, Any], source: str = "recipe") -> dict[str, Any]:
    """``values`` over the defaults of the core and of its method, i2i's own keys filled in every component
    table."""
    schema = schema_of(values, source)
    merged = _merge(schema.defaults, values)
    for table in schema.component_tables:
        node = merged
        for part in table:
            node = node.get(part) if isinstance(node, dict) else None
        if isinstance(node, dict):  # anything else is reported by validation
            for key, default in schema.fixed_keys(table).items():
                node.setdefault(key, copy.deepcopy(default))
    return merged


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    """Deep merge: tables merge, other values replace. A component table whose name changes starts afresh."""
    out = copy.deepcopy(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            same_component = all(value.get(k, out[key].get(k)) == out[key].get(k) for k in ("name", "dataset"))
            out[key] = _merge(out[key] if same_component else {}, value)
        else:
            out[key] = copy.deepcopy(value)
    return out


def _read_toml(path: Path, notes: list[str], chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """Read a recipe file, resolving ``extends`` (relative to the file) recursively. A file naming another
    method than the one it extends drops the keys only that one reads (a note in ``notes`` says which)."""
    path = path.resolve()
    if path in chain:
        raise I2IError(f"{path}: 'extends' forms a cycle: {' -> '.join(str(p) for p in (*chain, path))}")
    if not path.is_file():
        raise I2IError(f"{path}: no such recipe file")
    try:
        values = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise I2IError(f"{path}: invalid TOML: {exc}") from None
    parent = values.pop("extends", None)
    if parent is None:
        return values
    if not isinstance(parent, str):
        raise I2IError(f"{path}: 'extends' must be a file name, got {parent!r}")
    inherited = _read_toml(path.parent / parent, notes, (*chain, path))
    if "method" in values:
        notes += _change_method(inherited, method_name(values, str(path)), f"{path.name} (extends {parent})", str(path))
    return _merge(inherited, values)


def _table_of(values: dict[str, Any], table: tuple[str, ...]) -> dict[str, Any] | None:
    """The table at ``table`` in ``values``, or ``None`` when it is absent or not a table."""
    node: Any = values
    for part in table:
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


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
        node = _table_of(values, table)
        if not names or node is None:
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


def _set_dotted(values: dict[str, Any], dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = values
    for i, part in enumerate(parts[:-1]):
        child = node.setdefault(part, {})
        if not isinstance(child, dict):
            table = ".".join(parts[: i + 1])
            raise I2IError(f"--set {dotted}: '{table}' is a value, not a table")
        node = child
    node[parts[-1]] = value


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
        _set_dotted(user, key, value)
    values = with_defaults(user, str(path))
    if not values["name"]:
        values["name"] = path.stem
    validate(values, source=str(path))
    return Recipe(values=values, path=path, overrides=texts, notes=notes)


def recipe_from_dict(values: Mapping[str, Any], name: str = "recipe") -> Recipe:
    """A validated recipe from a mapping (defaults fill what is missing)."""
    merged = with_defaults(values, name)
    merged["name"] = merged["name"] or name
    validate(merged, source=name)
    return Recipe(values=merged)


# -- validation ---------------------------------------------------------------------------------------------


def _type_error(key: str, value: Any, expected: Any) -> I2IError:
    return I2IError(f"{key} must be {_type_name(expected)}, got {value!r} ({type(value).__name__})")


def _type_name(example: Any) -> str:
    if isinstance(example, bool):
        return "true or false"
    if isinstance(example, int):
        return "an integer"
    if isinstance(example, float):
        return "a number"
    if isinstance(example, str):
        return "a string"
    if isinstance(example, list | tuple):
        return "a list"
    return type(example).__name__


def _check_type(key: str, value: Any, example: Any) -> None:
    if example is None or isinstance(example, dict):
        return
    if isinstance(example, bool):
        ok = isinstance(value, bool)
    elif isinstance(example, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(example, float):
        ok = isinstance(value, int | float) and not isinstance(value, bool)
    elif isinstance(example, list | tuple):
        ok = isinstance(value, list | tuple)  # TOML and JSON arrays are lists
    else:
        ok = isinstance(value, type(example))
    if not ok:
        raise _type_error(key, value, example)


def _component_of(
    values: dict[str, Any], schema: Schema, table: tuple[str, ...], source: str
) -> tuple[Component, dict[str, Any]]:
    kind, name_key = schema.component_tables[table]
    node = values
    for part in table:
        node = node[part]
    dotted = ".".join(table)
    name = node.get(name_key)
    if not isinstance(name, str):
        raise I2IError(f"{source}: {dotted}.{name_key} must name a {kind}, got {name!r}")
    try:
        component = get_component(kind, name)
    except I2IError as exc:
        raise I2IError(f"{source}: {dotted}.{name_key}: {exc}") from None
    return component, node


def validate(values: dict[str, Any], source: str) -> None:
    """Check every key, type and value; raise one clear :class:`I2IError` for the first problem."""
    schema = schema_of(values, source)
    _check_keys(values, schema, schema.defaults, (), source)
    for table, (kind, _) in schema.component_tables.items():
        component, node = _component_of(values, schema, table, source)
        fixed = schema.fixed_keys(table)
        options = component.options()
        dotted = ".".join(table)
        for key in node:
            if key not in fixed and key not in options:
                known = sorted(set(fixed) | set(options))
                raise I2IError(
                    f"{source}: unknown key '{dotted}.{key}' for {kind} '{component.name}'."
                    f"{did_you_mean(key, known)} Valid keys: {', '.join(known)}."
                )
        check_option_types(component, {k: v for k, v in node.items() if k not in fixed}, f"{source}: {dotted}.")
        wanted = schema.loss_roles.get(table)
        role = component.metadata.get("role")
        if wanted and role not in (None, wanted):
            raise I2IError(f"{source}: {dotted}.name: loss '{component.name}' is a {role} loss, not a {wanted} loss")
    _check_values(values, schema, source)


def check_option_types(component: Component, options: Mapping[str, Any], prefix: str) -> None:
    """Refuse an option whose value's type differs from its default's; ``prefix`` starts the key in messages."""
    defaults = component.options()
    for key, value in options.items():
        if key in defaults:
            _check_type(f"{prefix}{key}", value, defaults[key])


def _check_keys(
    values: Mapping[str, Any], schema: Schema, defaults: Mapping[str, Any], prefix: tuple[str, ...], source: str
) -> None:
    open_table = prefix in schema.component_tables
    for key, value in values.items():
        dotted = ".".join((*prefix, key))
        if key not in defaults:
            if open_table:
                continue  # a component option, checked against the component
            raise I2IError(
                f"{source}: unknown key '{dotted}'.{did_you_mean(key, defaults)}{_owner_hint(dotted, schema)} "
                f"Valid keys{' in [' + '.'.join(prefix) + ']' if prefix else ''}: {', '.join(defaults)}."
            )
        expected = defaults[key]
        if isinstance(expected, dict):
            if not isinstance(value, Mapping):
                raise I2IError(f"{source}: '{dotted}' must be a table, got {value!r}")
            _check_keys(value, schema, expected, (*prefix, key), source)
        else:
            _check_type(f"{source}: {dotted}", value, expected)


def _owner_hint(dotted: str, schema: Schema) -> str:
    """`` It is a key of method 'cyclegan' (this recipe trains 'cut').`` when another method reads ``dotted``."""
    owners = []
    for component in list_components("method"):
        node: Any = component.factory.recipe_defaults
        for part in dotted.split("."):
            node = node.get(part) if isinstance(node, Mapping) else None
        if node is not None and component.factory is not schema.method:
            owners.append(f"'{component.name}'")
    if not owners:
        return ""
    return f" It is a key of method {' and '.join(owners)}; this recipe's method has none (see `method`)."


def _check_eval(values: dict[str, Any], schema: Schema, fail: Callable[[str, str], None]) -> None:
    """The ``eval`` table: metrics that exist (when the run evaluates), a best metric among them, a direction the
    method translates."""
    evaluation = values["eval"]
    names = evaluation["metrics"]
    if not all(isinstance(name, str) for name in names):
        fail("eval.metrics", f"must be a list of metric names, got {names!r}")
    for name in names if values["output"]["eval_every"] else ():  # else read only by ``i2i eval``, which checks
        try:
            get_component("metric", name)
        except I2IError as exc:
            fail("eval.metrics:", str(exc))
    if evaluation["best"] and evaluation["best"] not in names:
        fail("eval.best", f"must be one of eval.metrics ({', '.join(names) or 'none'}), got {evaluation['best']!r}")
    if evaluation["best"] and not values["output"]["eval_every"]:
        fail("eval.best", "keeps the best checkpoint by evaluations during training: set output.eval_every too")
    directions = tuple(schema.method.translations)
    if evaluation["direction"] not in directions:
        fail(
            "eval.direction",
            f"must be a direction the method '{values['method']}' translates ({', '.join(directions)}), "
            f"got {evaluation['direction']!r}",
        )
    if evaluation["size"] < 0:
        fail("eval.size", f"must be >= 0 (0: data.crop_size), got {evaluation['size']}")


def _check_values(values: dict[str, Any], schema: Schema, source: str) -> None:
    train, data, output = values["train"], values["data"], values["output"]

    def fail(key: str, message: str) -> None:
        raise I2IError(f"{source}: {key} {message}")

    name = values["name"]
    if "/" in name or "\\" in name or name in ("", ".", ".."):
        fail(
            "name",
            f"must be a plain folder name (no '/' or '\\', not '.' or '..'), got {name!r}: the run folder is "
            "runs/<name>; set output.dir to put it anywhere else",
        )
    for key in ("epochs", "decay_epochs", "steps", "d_pretrain_steps", "num_workers", "seed"):
        if train[key] < 0:
            fail(f"train.{key}", f"must be >= 0, got {train[key]}")
    if train["steps"] == 0 and train["epochs"] + train["decay_epochs"] == 0:
        fail("train.epochs", "and train.decay_epochs are both 0: set one of them, or train.steps")
    if train["batch_size"] < 1:
        fail("train.batch_size", f"must be >= 1, got {train['batch_size']}")
    if train["lr"] <= 0:
        fail("train.lr", f"must be > 0, got {train['lr']}")
    betas = train["betas"]
    if len(betas) != 2 or not all(isinstance(b, int | float) and 0 <= b < 1 for b in betas):
        fail("train.betas", f"must be two numbers in [0, 1), got {betas!r}")
    for key, choices in (("precision", PRECISIONS), ("memory_format", MEMORY_FORMATS), ("decay", DECAYS)):
        if train[key] not in choices:
            fail(
                f"train.{key}",
                f"must be one of {', '.join(choices)}, got {train[key]!r}.{did_you_mean(train[key], choices)}",
            )
    if train["minutes"] < 0:
        fail("train.minutes", f"must be >= 0 (0: no time budget), got {train['minutes']}")
    _check_eval(values, schema, fail)
    check_augment(values["augment"], fail)
    for key in ("checkpoint_every", "sample_every", "log_every", "keep_last", "eval_every"):
        if output[key] < 0:
            fail(f"output.{key}", f"must be >= 0, got {output[key]}")
    if train["d_pretrain_steps"] and not schema.method.can_pretrain():
        fail("train.d_pretrain_steps", f"must be 0: method '{values['method']}' has no discriminator pre-training")
    schema.method.check_recipe(values, fail)
    reporters = values["report"]["reporters"]
    if not all(isinstance(name, str) for name in reporters):
        fail("report.reporters", f"must be a list of reporter names, got {reporters!r}")
    for name in reporters:
        try:
            get_component("reporter", name)
        except I2IError as exc:
            fail("report.reporters:", str(exc))
    load, crop = data.get("load_size"), data.get("crop_size")
    if isinstance(load, int) and isinstance(crop, int):
        if crop > load:
            fail("data.crop_size", f"({crop}) is larger than data.load_size ({load}); crop_size must be <= load_size")
        generator = get_component("generator", values["model"]["generator"]["name"])
        multiple = generator.metadata.get("size_multiple")
        for key, side in (("data.crop_size", crop), ("eval.size", values["eval"]["size"])):
            if multiple and side % multiple:
                fail(
                    key,
                    f"({side}) is not a multiple of {multiple}, which generator '{generator.name}' needs; "
                    f"try {max(multiple, side - side % multiple)}",
                )
