"""The core's architecture holds: nothing in ``i2i_core`` names a method's networks, pools or optimisers, or imports
a first-party plugin (they are found through entry points, as a third party's are), and inference does not import
the training engine."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import i2i_core

CORE = Path(i2i_core.__file__).parent
#: The names CycleGAN and CUT give their networks, optimisers and image pools.
METHOD_NAMES = re.compile(r"\b(G_A|G_B|D_A|D_B|pool_A|pool_B|opt_G|opt_D|opt_F)\b")
PLUGIN_IMPORT = re.compile(
    r"^\s*(from|import)\s+i2i_(cyclegan|cut|resnet|unet|discriminators|losses|datasets|fourier|timm)\b"
)


def _lines(pattern: re.Pattern[str]) -> list[str]:
    return [
        f"{path.relative_to(CORE.parent)}:{number}: {line.strip()}"
        for path in sorted(CORE.rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if pattern.search(line)
    ]


def test_the_core_names_no_network_of_a_method():
    assert _lines(METHOD_NAMES) == []


def test_the_core_imports_no_first_party_plugin():
    assert _lines(PLUGIN_IMPORT) == []


def test_the_checks_find_what_they_look_for():
    assert METHOD_NAMES.search("self.G_A(real_A)") and not METHOD_NAMES.search("G_AB or xG_A")
    assert PLUGIN_IMPORT.search("from i2i_cyclegan import CycleGAN") and not PLUGIN_IMPORT.search("# i2i_cyclegan")


def _runtime_nodes(node: ast.AST):
    """Every node below ``node`` but those under ``if TYPE_CHECKING:`` (imports for type hints only)."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING":
            continue
        yield child
        yield from _runtime_nodes(child)


def _imports_of(module: str) -> set[str]:
    """The ``i2i_core`` modules that ``module``'s source imports when it runs (not its package's ``__init__``)."""
    path = CORE.parent / (module.replace(".", "/") + ".py")
    if not path.is_file():
        path = path.with_suffix("") / "__init__.py"
    found = set()
    for node in _runtime_nodes(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("i2i_core"):
            found |= {f"{node.module}.{alias.name}" for alias in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("i2i_core")}
    return {name for name in found if (CORE.parent / (name.replace(".", "/") + ".py")).is_file()}


def _reached_from(modules: list[str]) -> set[str]:
    """The ``i2i_core`` modules that ``modules`` import when they run, transitively."""
    seen, todo = set(), list(modules)
    while todo:
        module = todo.pop()
        if module not in seen:
            seen.add(module)
            todo += _imports_of(module)
    return seen


def test_inference_does_not_import_training():
    """Translating needs checkpoints, not the training engine: what ``i2i_core.infer`` imports, and what that
    imports in turn, holds nothing of ``i2i_core.training``."""
    seen = _reached_from([f"i2i_core.infer.{p.stem}" for p in (CORE / "infer").glob("*.py") if p.stem != "__init__"])
    assert "i2i_core.infer.translate" in seen and "i2i_core.checkpoint" in seen
    assert sorted(m for m in seen if m.startswith("i2i_core.training")) == []


def test_methods_and_plugins_do_not_import_the_training_engine():
    """A method sees the plugin-author API (``i2i_core.method`` and what it imports), never ``i2i_core.training``;
    nor does any first-party plugin module."""
    plugin_imports = set()
    for path in sorted((CORE.parent / "plugins").rglob("*.py")):
        for node in _runtime_nodes(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("i2i_core"):
                plugin_imports |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    modules = [m for m in plugin_imports if (CORE.parent / m.replace(".", "/")).with_suffix(".py").is_file()]
    seen = _reached_from(["i2i_core.method", *sorted(modules)])
    assert "i2i_core.method" in seen and "i2i_core.compute_copy" in seen
    assert sorted(m for m in seen if m.startswith("i2i_core.training")) == []
