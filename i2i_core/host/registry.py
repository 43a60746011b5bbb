"""The component registry: what plugins registered, by kind and name, and how to build it."""

from __future__ import annotations

import inspect
import json
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from i2i_core.errors import I2IError, PluginError, UnknownComponentError, did_you_mean
from i2i_core.host.plugins import PluginHost, allow_list_note, get_plugin_host

#: Component kinds and the hook that registers each.
HOOKS: dict[str, str] = {
    "generator": "register_generators",
    "discriminator": "register_discriminators",
    "loss": "register_losses",
    "head": "register_heads",
    "method": "register_methods",
    "dataset": "register_datasets",
    "metric": "register_metrics",
    "reporter": "register_reporters",
    "pretrained": "register_pretrained",
}
KINDS = tuple(HOOKS)

#: The method a recipe without ``method`` trains, and that checkpoints from before methods were trained with.
DEFAULT_METHOD = "cyclegan"

#: What a factory raises for option values it cannot build (torch raises RuntimeError for impossible sizes).
BUILD_ERRORS = (TypeError, ValueError, RuntimeError, AssertionError)


@dataclass(frozen=True)
class Component:
    """One registered component: ``factory(**options)`` builds it."""

    kind: str
    name: str
    factory: Callable[..., Any]
    plugin: str
    distribution: str | None = None
    version: str | None = None
    summary: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def options(self) -> dict[str, Any]:
        """The factory's keyword options and their defaults (``inspect.Parameter.empty`` when required)."""
        params = inspect.signature(self.factory).parameters.values()
        return {p.name: p.default for p in params if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}

    def create(self, **options: Any) -> Any:
        """Build the component, checking option names first so a typo gets a suggestion.

        The factory's own exceptions pass through (:func:`create` turns them into one clear :class:`I2IError`)."""
        params = inspect.signature(self.factory).parameters.values()
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            known = self.options()
            for key in options:
                if key not in known:
                    raise I2IError(
                        f"{self.kind} '{self.name}' has no option '{key}'.{did_you_mean(key, known)} "
                        f"Its options: {', '.join(known) or 'none'}."
                    )
        return self.factory(**options)

    def to_json(self) -> dict[str, Any]:
        data = {
            "name": self.name,
            "kind": self.kind,
            "plugin": self.plugin,
            "distribution": self.distribution,
            "version": self.version,
            "summary": self.summary,
        }
        data.update({k: v for k, v in self.metadata.items() if k not in data})
        return data


def _summary_of(factory: Callable[..., Any]) -> str:
    doc = inspect.getdoc(factory) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


class ComponentRegistry:
    """Every component the loaded plugins registered, collected by calling each plugin's hooks."""

    def __init__(self, host: PluginHost) -> None:
        self._components: dict[tuple[str, str], Component] = {}
        self._conflicts: dict[tuple[str, str], str] = {}
        for kind, hook_name in HOOKS.items():
            for impl in getattr(host.pm.hook, hook_name).get_hookimpls():
                self._collect(host, kind, impl.plugin_name, impl.function)

    def _collect(self, host: PluginHost, kind: str, plugin: str, hook: Callable[..., None]) -> None:
        info = host.plugins.get(plugin)

        def register(name: str, factory: Callable[..., Any], summary: str | None = None, **meta: Any) -> None:
            if not isinstance(name, str) or not name or not callable(factory):
                raise PluginError(f"register({name!r}, {factory!r}): needs a non-empty name and a callable")
            key = (kind, name)
            if key in self._components:
                other = self._components[key].plugin
                self._conflicts[key] = (
                    f"{kind} '{name}' is registered by two plugins, '{other}' and '{plugin}'; "
                    f"uninstall one or disable it with I2I_PLUGINS"
                )
                return
            self._components[key] = Component(
                kind=kind,
                name=name,
                factory=factory,
                plugin=plugin,
                distribution=info.distribution if info else None,
                version=info.version if info else None,
                summary=summary if summary is not None else _summary_of(factory),
                metadata=meta,
            )

        try:
            hook(register=register)
        except Exception as exc:  # one broken plugin must not hide the others' components
            message = f"{HOOKS[kind]} failed: {type(exc).__name__}: {exc}"
            if info is not None:
                info.error = message
            warnings.warn(f"i2i plugin '{plugin}': {message}", RuntimeWarning, stacklevel=2)

    @property
    def conflicts(self) -> list[str]:
        """Messages for names registered by more than one plugin."""
        return list(self._conflicts.values())

    def components(self, kind: str | None = None) -> list[Component]:
        if kind is not None:
            check_kind(kind)
        return sorted(
            (c for c in self._components.values() if kind is None or c.kind == kind),
            key=lambda c: (KINDS.index(c.kind), c.name),
        )

    def get(self, kind: str, name: str) -> Component:
        check_kind(kind)
        if (kind, name) in self._conflicts:
            raise PluginError(self._conflicts[(kind, name)])
        try:
            return self._components[(kind, name)]
        except KeyError:
            known = [c.name for c in self.components(kind)]
            raise UnknownComponentError(
                f"unknown {kind} '{name}'.{did_you_mean(name, known)} "
                f"Known {kind}s: {', '.join(known) or 'none'} (see `i2i plugins`).{allow_list_note()}"
            ) from None


def check_kind(kind: str) -> None:
    if kind not in HOOKS:
        raise I2IError(f"unknown component kind '{kind}'.{did_you_mean(kind, KINDS)} Kinds: {', '.join(KINDS)}.")


_cache: tuple[PluginHost, int, ComponentRegistry] | None = None


def get_registry() -> ComponentRegistry:
    """The registry of the process-wide plugin host, rebuilt whenever a plugin is (un)registered."""
    global _cache
    host = get_plugin_host()
    if _cache is None or _cache[0] is not host or _cache[1] != host.generation:
        _cache = (host, host.generation, ComponentRegistry(host))
    return _cache[2]


def list_components(kind: str | None = None) -> list[Component]:
    """Every registered component, or those of one kind, sorted by kind then name.

    Example:
        >>> [c.name for c in list_components("loss")]
        ['bce', 'l1', 'l2', 'lsgan']
    """
    return get_registry().components(kind)


def get_component(kind: str, name: str) -> Component:
    """The registered component ``name`` of ``kind``; unknown names fail with a suggestion."""
    return get_registry().get(kind, name)


def create(kind: str, name: str, **options: Any) -> Any:
    """Build the component ``name`` of ``kind`` with recipe ``options``.

    An option value the factory cannot build (it raises TypeError, ValueError, RuntimeError or AssertionError),
    or a network with empty parameters (a size option of 0), is an :class:`I2IError` naming the component and
    its options.

    Example:
        >>> net = create("generator", "resnet6", ngf=8)
        >>> net.size_multiple
        4
    """
    component = get_component(kind, name)
    try:
        built = component.create(**options)
    except BUILD_ERRORS as exc:
        raise I2IError(f"{_describe(component, options)}: {exc}") from exc
    if isinstance(built, nn.Module):
        _check_not_empty(built, component, options)
    return built


def _describe(component: Component, options: Mapping[str, Any]) -> str:
    """``generator 'resnet9' with options {"ngf": 32}``: what an error about building it names."""
    return f"{component.kind} '{component.name}' with options {json.dumps(dict(options), default=repr)}"


def _check_not_empty(module: nn.Module, component: Component, options: Mapping[str, Any]) -> None:
    """Refuse a network with a parameter of no elements: it cannot learn, and fails on its first input."""
    for key, param in module.named_parameters():
        if param.numel() == 0:
            raise I2IError(
                f"{_describe(component, options)}: parameter {key} has no elements (shape {tuple(param.shape)}); "
                "a size option is 0 or too small"
            )


def check_option_types(component: Component, options: Mapping[str, Any], prefix: str) -> None:
    """Refuse an option whose value's type differs from its default's; ``prefix`` starts the key in messages."""
    defaults = component.options()
    for key, value in options.items():
        if key in defaults:
            check_type(f"{prefix}{key}", value, defaults[key])


def check_type(key: str, value: Any, example: Any) -> None:
    """Refuse ``value`` (of ``key``, which starts the message) unless it has the type of ``example``, a default:
    an integer is a number, a tuple a list; no default or a table checks nothing."""
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
        raise I2IError(f"{key} must be {_type_name(example)}, got {value!r} ({type(value).__name__})")


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
