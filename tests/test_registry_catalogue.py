"""``registry.toml``, the catalogue of first-party plugins, equals what i2i discovers."""

from __future__ import annotations

import tomllib
from pathlib import Path

import i2i_core
from i2i_core.host.plugins import get_plugin_host

CATALOGUE = tomllib.loads((Path(__file__).parents[1] / "registry.toml").read_text())["plugins"]


def test_catalogue_lists_exactly_the_first_party_plugins():
    discovered = {name: info for name, info in get_plugin_host().plugins.items() if info.distribution == "i2i"}
    assert set(discovered) == set(CATALOGUE)
    for name, entry in CATALOGUE.items():
        assert discovered[name].module == entry["module"]
        assert discovered[name].error is None


def test_catalogue_components_equal_discovered_components():
    discovered = {(c.plugin, c.kind, c.name, c.summary) for c in i2i_core.list_components() if c.distribution == "i2i"}
    catalogued = {
        (plugin, c["kind"], c["name"], c["summary"]) for plugin, e in CATALOGUE.items() for c in e["components"]
    }
    assert discovered == catalogued
