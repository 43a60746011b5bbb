"""The documentation stays true: every hook is documented, and the examples of docs/api.md run."""

from __future__ import annotations

import re
from pathlib import Path

import pluggy
import pytest

from i2i_core.host import hookspecs
from i2i_core.host.plugins import get_plugin_host

DOCS = Path(__file__).parents[1] / "docs"


def hook_names() -> list[str]:
    """Every hook declared in :mod:`i2i_core.host.hookspecs`, as pluggy sees it."""
    pm = pluggy.PluginManager("i2i")
    pm.add_hookspecs(hookspecs)
    return sorted(name for name, caller in vars(pm.hook).items() if isinstance(caller, pluggy.HookCaller))


def python_blocks(path: Path) -> list[tuple[int, str]]:
    """(first line number, code) of every ```python block of a Markdown file."""
    text = path.read_text()
    return [
        (text.count("\n", 0, m.start(1)) + 1, m.group(1))
        for m in re.finditer(r"^```python\n(.*?)^```$", text, re.S | re.M)
    ]


def test_hookspecs_are_found():
    assert {"register_generators", "register_discriminators", "register_commands"} <= set(hook_names())


@pytest.mark.parametrize("hook", hook_names())
def test_every_hook_is_documented(hook):
    text = (DOCS / "plugins.md").read_text()
    as_heading = re.search(rf"^#+ .*\b{hook}\b", text, re.M)
    assert as_heading or f"`{hook}(" in text or f"`{hook}`" in text, f"docs/plugins.md does not document {hook}"


def test_api_examples_run(tmp_path, monkeypatch):
    """Every ```python block of docs/api.md, in order, in one namespace, in an empty folder."""
    path = DOCS / "api.md"
    blocks = python_blocks(path)
    assert blocks
    monkeypatch.chdir(tmp_path)
    host = get_plugin_host()
    plugins_before = set(host.plugins)
    namespace: dict = {"__name__": "docs_api"}
    try:
        for line, code in blocks:
            # pad so that tracebacks give the line numbers of docs/api.md
            exec(compile("\n" * (line - 1) + code, str(path), "exec"), namespace)
    finally:
        for name in set(host.plugins) - plugins_before:
            host.unregister(name)
