"""Validation of a resolved recipe: every key, type and value checked before any work starts, the first problem
one clear :class:`I2IError` naming the recipe and the key."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from i2i_core.augment import check_augment
from i2i_core.errors import I2IError, did_you_mean
from i2i_core.host.registry import Component, check_option_types, check_type, get_component, list_components
from i2i_core.tables import find_nested, nested

if TYPE_CHECKING:
    from i2i_core.recipe import Schema

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
DECAYS = ("linear", "none")
MEMORY_FORMATS = ("auto", "channels_last", "contiguous")
CUDA_GRAPHS = ("auto", "on", "off")


def validate(values: dict[str, Any], schema: Schema, source: str) -> None:
    """Check every key, type and value of ``values`` (a recipe with its defaults, of the method ``schema``
    describes); raise one clear :class:`I2IError`, starting with ``source``, for the first problem."""
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


def _component_of(
    values: dict[str, Any], schema: Schema, table: tuple[str, ...], source: str
) -> tuple[Component, dict[str, Any]]:
    kind, name_key = schema.component_tables[table]
    node = nested(values, table)
    dotted = ".".join(table)
    name = node.get(name_key)
    if not isinstance(name, str):
        raise I2IError(f"{source}: {dotted}.{name_key} must name a {kind}, got {name!r}")
    try:
        component = get_component(kind, name)
    except I2IError as exc:
        raise I2IError(f"{source}: {dotted}.{name_key}: {exc}") from None
    return component, node


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
            check_type(f"{source}: {dotted}", value, expected)


def _owner_hint(dotted: str, schema: Schema) -> str:
    """`` It is a key of method 'cyclegan' (this recipe trains 'cut').`` when another method reads ``dotted``."""
    owners = []
    for component in list_components("method"):
        if (
            find_nested(component.factory.recipe_defaults, dotted) is not None
            and component.factory is not schema.method
        ):
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
    choosing = (
        ("precision", PRECISIONS),
        ("memory_format", MEMORY_FORMATS),
        ("cuda_graphs", CUDA_GRAPHS),
        ("decay", DECAYS),
    )
    for key, choices in choosing:
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
