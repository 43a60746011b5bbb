"""Tests of the template plugin, with the fixtures of i2i's pytest plugin (installed with i2i)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import i2i_core
from i2i_core.pytest_plugin import check_generator


def test_generator_meets_the_contract():
    check_generator("template-generator")
    check_generator("template-generator", width=4)


def test_generator_is_listed_with_its_distribution():
    component = i2i_core.get_component("generator", "template-generator")
    assert (component.plugin, component.distribution) == ("template", "i2i-plugin-template")
    assert component.metadata["size_multiple"] == 4
    assert component.options() == {"width": 16}


def test_trains_and_translates(i2i_tiny_recipe, i2i_tiny_dataset, tmp_path):
    recipe = i2i_tiny_recipe(generator="template-generator", width=8)
    result = i2i_core.train(recipe)
    assert result.steps == 2 and result.checkpoint is not None
    translator = i2i_core.load_translator(result.run_dir, device="cpu")
    written, failed = translator.translate_many(sorted((i2i_tiny_dataset / "testA").iterdir()), tmp_path / "out")
    assert len(written) == 2 and not failed


def test_trains_through_the_i2i_command(i2i_tiny_recipe):
    recipe = i2i_tiny_recipe(generator="template-generator", width=8)
    done = subprocess.run(
        [sys.executable, "-m", "i2i_core", "run", str(recipe.path), "--no-progress"], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "Finished at step 2" in done.stdout
    checkpoint = Path(recipe["output.dir"]) / "checkpoints" / "step_0000002" / "G_A.safetensors"
    assert i2i_core.load_component(checkpoint).__class__.__name__ == "TemplateGenerator"
