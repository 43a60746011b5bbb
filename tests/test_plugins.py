"""Plugin discovery through the ``i2i`` entry-point group: third-party packages, broken ones, allow-list."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import i2i_core
from i2i_core.host.plugins import PluginHost, reset_plugins

THIRD_PARTY_GENERATOR = '''
"""A third-party i2i plugin providing a generator."""
import torch
from i2i_core import hookimpl


class Doubler(torch.nn.Module):
    size_multiple = 2

    def __init__(self, gain: float = 0.5):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.tensor(gain))

    def forward(self, x):
        return torch.tanh(self.gain * x)


def doubler(gain: float = 0.5):
    """Squashes its input: a third-party generator."""
    return Doubler(gain)


@hookimpl
def register_generators(register):
    register("doubler", doubler, size_multiple=2)
'''


def make_distribution(root: Path, dist: str, module: str, source: str, entry_point: str | None = None) -> Path:
    """Lay out an installed distribution (module + dist-info with an ``i2i`` entry point) under ``root``."""
    (root / f"{module}.py").write_text(textwrap.dedent(source))
    info = root / f"{dist.replace('-', '_')}-1.2.3.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 1.2.3\n")
    (info / "entry_points.txt").write_text(f"[i2i]\n{entry_point or dist} = {module}\n")
    return root


@pytest.fixture
def site(tmp_path, monkeypatch):
    """A directory on sys.path where test distributions are "installed"; plugins are rediscovered."""
    monkeypatch.syspath_prepend(str(tmp_path))
    reset_plugins()
    yield tmp_path
    for name in list(sys.modules):
        if name.startswith("thirdparty_"):
            del sys.modules[name]
    monkeypatch.undo()
    reset_plugins()


def run_cli(*args: str, env_extra: dict | None = None, pythonpath: Path | None = None):
    env = {**os.environ, **(env_extra or {})}
    if pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(pythonpath), env.get("PYTHONPATH")]))
    return subprocess.run([sys.executable, "-m", "i2i_core", *args], capture_output=True, text=True, env=env)


def test_third_party_distribution_is_discovered_and_built(site):
    make_distribution(site, "i2i-doubler", "thirdparty_doubler", THIRD_PARTY_GENERATOR)
    component = i2i_core.get_component("generator", "doubler")
    assert (component.plugin, component.distribution, component.version) == ("i2i-doubler", "i2i-doubler", "1.2.3")
    net = i2i_core.create("generator", "doubler", gain=2.0)
    assert net.size_multiple == 2 and net.gain.item() == 2.0
    assert i2i_core.create("generator", "resnet9") is not None  # first-party plugins load alongside


def test_third_party_distribution_in_cli_json(site):
    make_distribution(site, "i2i-doubler", "thirdparty_doubler", THIRD_PARTY_GENERATOR)
    result = run_cli("plugins", "--json", pythonpath=site)
    assert result.returncode == 0, result.stderr
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert rows["doubler"] == {
        "name": "doubler",
        "kind": "generator",
        "plugin": "i2i-doubler",
        "distribution": "i2i-doubler",
        "version": "1.2.3",
        "summary": "Squashes its input: a third-party generator.",
        "size_multiple": 2,
    }
    assert rows["resnet9"]["distribution"] == "i2i"


@pytest.mark.slow
def test_pip_installed_plugin_distribution_is_listed_and_built(tmp_path):
    """A throwaway plugin package with its own pyproject, installed by pip, works with no change to i2i."""
    project = tmp_path / "i2i-doubler"
    (project / "thirdparty_doubler_pkg").mkdir(parents=True)
    (project / "thirdparty_doubler_pkg" / "__init__.py").write_text(THIRD_PARTY_GENERATOR)
    (project / "pyproject.toml").write_text(
        textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=61"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "i2i-doubler"
        version = "0.3.0"

        [project.entry-points.i2i]
        doubler = "thirdparty_doubler_pkg"
        """)
    )
    target = tmp_path / "site"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index"]
    subprocess.run([*install, "--target", str(target), str(project)], check=True, capture_output=True)
    listing = run_cli("plugins", "--json", pythonpath=target)
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert (rows["doubler"]["plugin"], rows["doubler"]["distribution"], rows["doubler"]["version"]) == (
        "doubler",
        "i2i-doubler",
        "0.3.0",
    )
    code = "import i2i_core; print(i2i_core.create('generator', 'doubler', gain=3.0).gain.item())"
    built = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(target)},
    )
    assert built.stdout.strip() == "3.0", built.stderr


def test_plugin_raising_on_import_is_reported_and_others_load(site):
    make_distribution(site, "i2i-broken", "thirdparty_broken", "raise ImportError('needs libfoo')\n")
    with pytest.warns(RuntimeWarning, match=r"i2i plugin 'i2i-broken': failed to import thirdparty_broken"):
        host = PluginHost()
    assert "needs libfoo" in host.errors["i2i-broken"]
    assert "resnet" in host.plugins and host.plugins["resnet"].error is None
    result = run_cli("plugins", pythonpath=site)
    assert result.returncode == 0
    assert "resnet9" in result.stdout
    assert "Plugin 'i2i-broken' failed to load: failed to import thirdparty_broken: ImportError: needs libfoo" in (
        result.stderr
    )


def test_allow_list_loads_only_named_plugins(monkeypatch):
    monkeypatch.setenv("I2I_PLUGINS", "losses, resnet")
    assert set(PluginHost().plugins) == {"losses", "resnet"}
    monkeypatch.setenv("I2I_PLUGINS", "")
    assert PluginHost().plugins == {}


def test_allow_list_in_cli():
    result = run_cli("plugins", "--json", env_extra={"I2I_PLUGINS": "losses"})
    assert {row["kind"] for row in json.loads(result.stdout)} == {"loss"}


EXITING_PLUGIN = """
import sys
import warnings

warnings.warn("libfoo is old")
sys.exit(7)
"""


def test_plugin_calling_sys_exit_on_import_is_reported_and_others_load(site):
    make_distribution(site, "i2i-exits", "thirdparty_exits", EXITING_PLUGIN)
    with pytest.warns(Warning) as caught:
        host = PluginHost()
    assert host.errors["i2i-exits"] == "failed to import thirdparty_exits: SystemExit: 7"
    assert "resnet" in host.plugins and host.plugins["resnet"].error is None
    assert [str(w.message) for w in caught if "i2i-exits" in str(w.message)] == [
        "i2i plugin 'i2i-exits': libfoo is old",
        "i2i plugin 'i2i-exits': failed to import thirdparty_exits: SystemExit: 7",
    ]


def test_cli_survives_a_plugin_calling_sys_exit_and_prints_its_warnings_as_messages(site):
    make_distribution(site, "i2i-exits", "thirdparty_exits", EXITING_PLUGIN)
    result = run_cli("plugins", pythonpath=site)
    assert result.returncode == 0, result.stderr
    assert "resnet9" in result.stdout
    lines = result.stderr.splitlines()
    assert lines[-3:] == [
        "Warning: i2i plugin 'i2i-exits': libfoo is old",
        "Warning: i2i plugin 'i2i-exits': failed to import thirdparty_exits: SystemExit: 7",
        "Plugin 'i2i-exits' failed to load: failed to import thirdparty_exits: SystemExit: 7",
    ]
    assert "UserWarning" not in result.stderr and "RuntimeWarning" not in result.stderr  # not Python's raw format
    debug = run_cli("--debug", "plugins", "--kind", "loss", pythonpath=site)
    assert debug.returncode == 0 and "RuntimeWarning: i2i plugin 'i2i-exits'" in debug.stderr  # Python's own format


def test_ctrl_c_while_a_plugin_imports_still_interrupts(site):
    make_distribution(site, "i2i-interrupted", "thirdparty_interrupted", "raise KeyboardInterrupt\n")
    with pytest.raises(KeyboardInterrupt):
        PluginHost()
