"""i2i's pytest plugin: fixtures for testing i2i plugins, loaded automatically wherever i2i is installed.

It is registered as the ``pytest11`` entry point ``i2i`` (``pytest -p no:i2i`` turns it off). Fixtures:

- ``i2i_plugin(plugin, name)``: register a plugin object (a module, a class instance with ``@hookimpl``
  methods) for the duration of one test; returns its :class:`~i2i_core.host.plugins.PluginInfo`.
- ``i2i_tiny_dataset``: a folder with ``trainA``, ``trainB``, ``testA`` and ``testB`` holding a few small real
  images from the shipped mini-photo2cartoon data.
- ``i2i_tiny_recipe(generator=None, *, discriminator=None, overrides=None, **options)``: a
  :class:`~i2i_core.Recipe` for a two-step, 32-pixel CPU run on the tiny dataset, into the test's ``tmp_path``;
  ``options`` are the generator's options, ``overrides`` any dotted recipe keys (``{"train.steps": 4}``).

``check_generator`` and ``check_discriminator`` (from :mod:`i2i_core.testing`) are importable from here too.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Mapping
from importlib import resources
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from PIL import Image

from i2i_core.host.plugins import PluginHost, PluginInfo, get_plugin_host
from i2i_core.recipe import Recipe, load_recipe
from i2i_core.testing import check_discriminator, check_generator

__all__ = ["check_discriminator", "check_generator", "i2i_plugin", "i2i_tiny_dataset", "i2i_tiny_recipe"]

#: Images taken from the shipped data for each folder of the tiny dataset, and their largest side.
TINY_COUNTS = {"trainA": 3, "trainB": 3, "testA": 2, "testB": 2}
TINY_SIDE = 48


@pytest.fixture
def i2i_plugin() -> Iterator[Callable[[object, str], PluginInfo]]:
    """``i2i_plugin(plugin, name)`` registers a plugin object until the end of the test."""
    registered: list[tuple[PluginHost, str]] = []

    def register(plugin: object, name: str) -> PluginInfo:
        host = get_plugin_host()
        registered.append((host, name))
        return host.register(plugin, name)

    yield register
    for host, name in reversed(registered):
        host.unregister(name)


@pytest.fixture
def i2i_tiny_dataset(tmp_path: Path) -> Path:
    """A CycleGAN folder (trainA/trainB/testA/testB) of a few real images at most 48 pixels a side."""
    source = resources.files("i2i_datasets") / "data" / "mini-photo2cartoon"
    root = tmp_path / "i2i-tiny-data"
    for folder, count in TINY_COUNTS.items():
        (root / folder).mkdir(parents=True)
        files = sorted((f for f in (source / folder).iterdir() if f.name.endswith(".jpg")), key=lambda f: f.name)
        for file in files[:count]:
            with file.open("rb") as stream, Image.open(stream) as image:
                small = image.convert("RGB")
                small.thumbnail((TINY_SIDE, TINY_SIDE))
                small.save(root / folder / f"{Path(file.name).stem}.png")
    return root


def _tiny_values(data_root: Path, run_dir: Path) -> dict[str, Any]:
    """A recipe small enough for a test: 32-pixel crops, narrow networks, two fp32 steps on the CPU."""
    return {
        "name": run_dir.name,
        "data": {"root": str(data_root), "load_size": 36, "crop_size": 32},
        "model": {"generator": {"name": "resnet6", "ngf": 8}, "discriminator": {"name": "patchgan", "ndf": 8}},
        "train": {"steps": 2, "precision": "fp32", "device": "cpu", "seed": 0, "pool_size": 2},
        "output": {"dir": str(run_dir), "checkpoint_every": 0, "sample_every": 2, "log_every": 1, "num_samples": 2},
    }


@pytest.fixture
def i2i_tiny_recipe(i2i_tiny_dataset: Path, tmp_path: Path) -> Callable[..., Recipe]:
    """``i2i_tiny_recipe(generator=None, *, discriminator=None, overrides=None, **options)`` -> a tiny Recipe.

    ``generator`` replaces the default (``resnet6`` with ``ngf=8``) and ``options`` are its options;
    ``discriminator`` replaces ``patchgan`` (``ndf=8``); ``overrides`` maps dotted keys to values. Each call
    gets its own run folder under ``tmp_path`` (``result.run_dir`` after :func:`i2i_core.train`).
    """
    numbers = itertools.count(1)

    def make(
        generator: str | None = None,
        *,
        discriminator: str | None = None,
        overrides: Mapping[str, Any] | None = None,
        **options: Any,
    ) -> Recipe:
        name = f"i2i-tiny-{next(numbers)}"
        values = _tiny_values(i2i_tiny_dataset, tmp_path / name)
        model = values["model"]
        if generator is not None:
            model["generator"] = {"name": generator}
        model["generator"].update(options)
        if discriminator is not None:
            model["discriminator"] = {"name": discriminator}
        path = tmp_path / f"{name}.toml"
        path.write_text(tomli_w.dumps(values))
        return load_recipe(path, overrides)

    return make
