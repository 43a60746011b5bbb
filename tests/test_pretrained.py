"""Shipped models: ``builtin:<name>`` wherever a checkpoint is accepted, and the default model of ``i2i translate``."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from i2i_core.checkpoint import read_metadata, select_checkpoint
from i2i_core.cli import cli
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.host.hookspecs import hookimpl
from i2i_core.infer.translate import load_generator
from i2i_core.pretrained import default_checkpoint, resolve_checkpoint

PHOTO = sorted((Path(__file__).parents[1] / "plugins/i2i_datasets/data/mini-photo2cartoon/testA").glob("*.jpg"))[0]


class ShippedModel:
    """A plugin shipping one generator file as a pretrained model."""

    def __init__(self, name: str, file: Path, default: bool = False) -> None:
        self.name, self.file, self.default = name, file, default

    @hookimpl
    def register_pretrained(self, register):
        register(self.name, lambda: self.file, summary="A test model.", default=self.default)


def test_builtin_names_resolve_to_the_plugin_file(i2i_plugin, generator_file):
    i2i_plugin(ShippedModel("tiny", generator_file), "tiny-model")
    assert resolve_checkpoint("builtin:tiny") == generator_file
    assert select_checkpoint("builtin:tiny") == generator_file
    assert resolve_checkpoint("runs/x") == Path("runs/x")
    torch.testing.assert_close(load_generator("builtin:tiny").state_dict(), load_generator(generator_file).state_dict())


def test_a_builtin_model_is_read_only_in_its_direction(i2i_plugin, generator_file):
    i2i_plugin(ShippedModel("tiny", generator_file), "tiny-model")
    with pytest.raises(CheckpointError, match="builtin:tiny translates AtoB only, not BtoA"):
        load_generator("builtin:tiny", "BtoA")


def test_unknown_or_missing_builtin_models_are_named(i2i_plugin, tmp_path):
    with pytest.raises(CheckpointError, match=r"builtin:photo2carton: .*Did you mean 'photo2cartoon'"):
        resolve_checkpoint("builtin:photo2carton")
    i2i_plugin(ShippedModel("gone", tmp_path / "missing.safetensors"), "gone-model")
    with pytest.raises(CheckpointError, match=r"plugin 'gone-model' ships it as .*missing\.safetensors.*reinstall"):
        resolve_checkpoint("builtin:gone")


def test_translate_without_a_checkpoint_uses_the_default_model_and_says_so(tmp_path):
    host_default = default_checkpoint()
    assert host_default == "builtin:photo2cartoon"
    result = CliRunner().invoke(cli, ["translate", str(PHOTO), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert result.output.count("using the shipped model builtin:photo2cartoon") == 1
    translated = Image.open(tmp_path / "out" / PHOTO.name)
    assert translated.size == Image.open(PHOTO).size


def test_two_default_models_are_an_error_naming_them(i2i_plugin, generator_file):
    i2i_plugin(ShippedModel("other", generator_file, default=True), "other-model")
    with pytest.raises(I2IError, match=r"several plugins mark a default model: .*builtin:other \(other-model\)"):
        default_checkpoint()


def test_the_shipped_model_is_small_half_precision_and_documented():
    file = resolve_checkpoint("builtin:photo2cartoon")
    assert file.stat().st_size <= 25 * 2**20
    metadata = read_metadata(file)
    assert metadata["kind"] == "generator"
    assert {"recipe", "steps", "dataset", "licence"} <= set(metadata)
    from safetensors import safe_open

    with safe_open(str(file), framework="pt") as f:
        dtypes = {f.get_slice(k).get_dtype() for k in f.keys()}  # noqa: SIM118 (not a dict)
    assert dtypes <= {"F16", "BF16"}
    card = file.parent / "README.md"
    assert "builtin:photo2cartoon" in card.read_text()
