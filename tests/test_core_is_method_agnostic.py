"""The engine runs any method: nothing in ``i2i_core`` names a method's networks, pools or optimisers, or imports a
first-party plugin (they are found through entry points, as a third party's are)."""

from __future__ import annotations

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
