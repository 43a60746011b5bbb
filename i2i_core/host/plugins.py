"""Plugin discovery: every plugin, first-party or not, is an ``i2i`` entry point loaded by pluggy.

``I2I_PLUGINS`` is an allow-list of entry-point names (comma separated) for debugging; set to the empty
string it loads no plugin at all; a name no installed plugin has is warned about, naming the installed ones.
A plugin that fails to import (even by calling ``sys.exit``) or implements an unknown hook is reported with its
name and error, and the other plugins still load.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from importlib import metadata

import pluggy

from i2i_core.host import hookspecs

ENTRY_POINT_GROUP = "i2i"
ALLOW_LIST_ENV = "I2I_PLUGINS"


@dataclass
class PluginInfo:
    """What is known about one plugin: where it comes from and whether it loaded."""

    name: str
    module: str
    distribution: str | None = None
    version: str | None = None
    hooks: list[str] = field(default_factory=list)
    error: str | None = None

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "module": self.module,
            "distribution": self.distribution,
            "version": self.version,
            "hooks": self.hooks,
            "error": self.error,
        }


def allow_list() -> set[str] | None:
    """Plugin names allowed by ``I2I_PLUGINS``, or ``None`` when every plugin may load."""
    value = os.environ.get(ALLOW_LIST_ENV)
    if value is None:
        return None
    return {name.strip() for name in value.split(",") if name.strip()}


def check_allow_list(allowed: set[str], installed: set[str]) -> None:
    """Warn once about names in ``I2I_PLUGINS`` that no installed plugin has, naming the installed ones."""
    unknown = sorted(allowed - installed)
    if unknown:
        warnings.warn(
            f"{ALLOW_LIST_ENV} names {len(unknown)} plugin(s) that are not installed: {', '.join(unknown)}. "
            f"Installed plugins: {', '.join(sorted(installed)) or 'none'}.",
            RuntimeWarning,
            stacklevel=4,
        )


def allow_list_note() -> str:
    """A sentence saying that ``I2I_PLUGINS`` limits the plugins loaded, or ``""`` when it is not set."""
    value = os.environ.get(ALLOW_LIST_ENV)
    if value is None:
        return ""
    return f" {ALLOW_LIST_ENV}={value!r} limits the plugins loaded: unset it to load every installed one."


class PluginHost:
    """A pluggy ``PluginManager`` for the ``i2i`` project plus what was learnt while loading plugins."""

    def __init__(self, load_entry_points: bool = True) -> None:
        self.pm = pluggy.PluginManager("i2i")
        self.pm.add_hookspecs(hookspecs)
        self.plugins: dict[str, PluginInfo] = {}
        self.generation = 0  # bumped on every (un)registration so cached registries know to rebuild
        if load_entry_points:
            self._load_entry_points(allow_list())

    def _load_entry_points(self, allowed: set[str] | None) -> None:
        entry_points = metadata.entry_points(group=ENTRY_POINT_GROUP)
        if allowed:
            check_allow_list(allowed, {entry_point.name for entry_point in entry_points})
        for entry_point in entry_points:
            if allowed is not None and entry_point.name not in allowed:
                continue
            dist = entry_point.dist
            info = PluginInfo(
                name=entry_point.name,
                module=entry_point.value,
                distribution=dist.metadata["Name"] if dist else None,
                version=dist.version if dist else None,
            )
            if entry_point.name in self.plugins:
                first = self.plugins[entry_point.name]
                self._fail(
                    info,
                    f"the entry-point name '{info.name}' is already used by {first.module} "
                    f"(distribution {first.distribution})",
                    key=f"{info.name} ({info.distribution})",
                )
                continue
            plugin = self._import(entry_point, info)
            if plugin is not None:
                self.register(plugin, info)

    def _import(self, entry_point: metadata.EntryPoint, info: PluginInfo) -> object | None:
        """Import a plugin's module, or ``None`` when that fails: even ``sys.exit()`` there is that plugin's error.
        Warnings issued while importing it are issued again under its name."""
        plugin, error = None, None
        with warnings.catch_warnings(record=True) as caught:
            try:
                plugin = entry_point.load()
            except KeyboardInterrupt:
                raise
            except BaseException as exc:  # a broken plugin must not take the others (or the CLI) down
                error = f"failed to import {info.module}: {type(exc).__name__}: {exc}"
        for warning in caught:
            warnings.warn(f"i2i plugin '{info.name}': {warning.message}", warning.category, stacklevel=3)
        if error is not None:
            self._fail(info, error)
        return plugin

    def register(self, plugin: object, info: PluginInfo | str) -> PluginInfo:
        """Register a plugin object (a module or any object with hook implementations)."""
        if isinstance(info, str):
            info = PluginInfo(name=info, module=getattr(plugin, "__name__", type(plugin).__name__))
        try:
            self.pm.register(plugin, name=info.name)
            self.pm.check_pending()
        except (pluggy.PluginValidationError, ValueError) as exc:
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(info, str(exc))
            return info
        info.hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or [])
        self.plugins[info.name] = info
        self.generation += 1
        return info

    def unregister(self, name: str) -> None:
        """Remove a plugin by name (used by tests registering temporary plugins)."""
        plugin = self.pm.get_plugin(name)
        if plugin is not None:
            self.pm.unregister(plugin)
        self.plugins.pop(name, None)
        self.generation += 1

    def _fail(self, info: PluginInfo, message: str, key: str | None = None) -> None:
        info.error = message
        self.plugins[key or info.name] = info
        warnings.warn(f"i2i plugin '{info.name}': {message}", RuntimeWarning, stacklevel=3)

    @property
    def errors(self) -> dict[str, str]:
        """Plugin name -> error message, for every plugin that failed to load."""
        return {name: info.error for name, info in self.plugins.items() if info.error}


_host: PluginHost | None = None


def get_plugin_host() -> PluginHost:
    """The process-wide plugin host, created (and every plugin loaded) on first use."""
    global _host
    if _host is None:
        _host = PluginHost()
    return _host


def reset_plugins() -> None:
    """Forget loaded plugins; the next use rediscovers them (after installing a plugin, or in tests)."""
    global _host
    _host = None
