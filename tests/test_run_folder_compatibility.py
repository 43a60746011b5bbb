"""A run folder written before training methods were plugins (no ``method`` in its recipe or checkpoint)
resumes as the CycleGAN run it is, and its checkpoints translate.

``tests/data/run-before-methods`` was written by that version: ``tests/recipes/tiny.toml`` with ``ngf = 2``,
``ndf = 2``, 4 steps and a checkpoint every 2 (the step-4 checkpoint removed); ``metrics.jsonl`` holds that
version's losses of all 4 steps.
"""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

import i2i_core

OLD_RUN = Path(__file__).parent / "data" / "run-before-methods"
LOSSES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")


@pytest.fixture
def old_run(tmp_path: Path) -> Path:
    run = tmp_path / "old-run"
    shutil.copytree(OLD_RUN, run)
    recipe = run / "recipe.toml"
    recipe.write_text(recipe.read_text().replace('dir = "/tmp/oldrun"', f'dir = "{run}"'))
    return run


def _losses(run: Path) -> list[dict[str, float]]:
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{name: line[name] for name in LOSSES} for line in lines]


def test_an_old_run_folder_resumes_where_it_stopped(old_run):
    before = _losses(old_run)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no "the recipe differs" warning: the stored recipe is the same one
        result = i2i_core.train(i2i_core.load_recipe(old_run / "recipe.toml"), show_progress=False)
    assert result.steps == 4 and result.checkpoint.name == "step_0000004"
    after = _losses(old_run)
    assert after[:2] == before[:2]  # steps 1-2 kept as they were
    # step 3 starts from the checkpoint's weights, so only rounding differs; step 4 after one more Adam update
    for step, tolerance in ((2, 1e-4), (3, 1e-2)):
        for name in LOSSES:
            assert after[step][name] == pytest.approx(before[step][name], rel=tolerance), (step + 1, name)
    state = json.loads((result.checkpoint / "state.json").read_text())
    assert state["method"] == "cyclegan" and state["exports"] == {"AtoB": "G_A", "BtoA": "G_B"}


def test_an_old_checkpoint_translates_in_both_directions(old_run):
    checkpoint = old_run / "checkpoints" / "step_0000002"
    for direction, network in (("AtoB", "G_A"), ("BtoA", "G_B")):
        translator = i2i_core.load_translator(checkpoint, direction=direction, precision="fp32")
        expected = i2i_core.load_component(checkpoint / f"{network}.safetensors")
        for (key, value), saved in zip(
            translator.net.state_dict().items(), expected.state_dict().values(), strict=True
        ):
            assert value.equal(saved), (direction, key)
