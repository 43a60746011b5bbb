"""A third party's training method, as docs/plugins.md writes it, trains and translates through the engine."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import i2i_core
from i2i_core.cli import cli
from i2i_core.errors import I2IError
from i2i_core.precision import Layout

DOCS = Path(__file__).parents[1] / "docs" / "plugins.md"


def docs_block(first_line: str) -> str:
    """The ```python or ```toml block of docs/plugins.md that starts with ``first_line``."""
    for match in re.finditer(r"^```(?:python|toml)\n(.*?)^```$", DOCS.read_text(), re.S | re.M):
        if match.group(1).startswith(first_line + "\n"):
            return match.group(1)
    raise AssertionError(f"docs/plugins.md has no block starting with {first_line!r}")


@pytest.fixture
def onesided(i2i_plugin, tmp_path):
    """The tutorial's method plugin, registered for one test."""
    path = tmp_path / "i2i_onesided.py"
    path.write_text(docs_block("# src/i2i_onesided/__init__.py"))
    spec = importlib.util.spec_from_file_location("i2i_onesided", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    info = i2i_plugin(module, "onesided")
    assert info.error is None and info.hooks == ["register_methods"]
    return module


def test_the_tutorial_method_trains_resumes_and_translates_through_the_cli(onesided, i2i_tiny_recipe, tmp_path):
    recipe = i2i_tiny_recipe(overrides={"method": "onesided", "loss.content.weight": 5.0})
    assert recipe["method"] == "onesided" and "pool_size" not in recipe["train"]
    assert recipe.notes == [
        "method: changed from cyclegan to onesided by --set; dropped the keys only cyclegan reads: train.pool_size"
    ]
    path = tmp_path / "onesided.toml"
    path.write_text(recipe.to_toml())
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    run = Path(recipe["output.dir"])
    checkpoint = run / "checkpoints" / "step_0000002"
    assert sorted(p.name for p in checkpoint.iterdir()) == [
        "D.safetensors",
        "G.safetensors",
        "state.json",
        "state.safetensors",
    ]
    state = json.loads((checkpoint / "state.json").read_text())
    assert state["method"] == "onesided" and state["exports"] == {"AtoB": "G"}
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert {"G", "content", "D"} <= set(lines[-1])

    resumed = runner.invoke(cli, ["run", str(path), "--no-progress", "--set", "train.steps=3"])
    assert resumed.exit_code == 0 and "Resuming" in resumed.output and "at step 3" in resumed.output, resumed.output

    out = tmp_path / "out"
    photo = next((Path(recipe["data.root"]) / "testA").iterdir())
    translated = runner.invoke(cli, ["translate", str(photo), "-c", str(run), "-o", str(out)])
    assert translated.exit_code == 0, translated.output
    assert len(list(out.iterdir())) == 1
    refused = runner.invoke(
        cli, ["translate", str(photo), "-c", str(run), "-o", str(tmp_path / "out2"), "--direction", "BtoA"]
    )
    assert refused.exit_code != 0 and "translates only AtoB, not BtoA" in refused.output


def test_the_tutorial_test_passes(onesided, i2i_tiny_recipe):
    namespace: dict = {}
    exec(docs_block("# tests/test_onesided.py"), namespace)
    namespace["test_trains_and_translates"](i2i_tiny_recipe)


def test_a_key_of_another_method_is_refused_naming_it(onesided, i2i_tiny_recipe):
    with pytest.raises(I2IError, match=r"unknown key 'loss.cycle'.*It is a key of method 'cyclegan'"):
        i2i_tiny_recipe(overrides={"method": "onesided", "loss.cycle.weight": 1.0})


def test_an_unknown_method_gets_a_suggestion(i2i_tiny_recipe):
    with pytest.raises(I2IError, match=r"method: unknown method 'cyclegna'\. Did you mean 'cyclegan'\?"):
        i2i_tiny_recipe(overrides={"method": "cyclegna"})


def test_a_run_folder_of_another_method_is_refused_and_kept(onesided, i2i_tiny_recipe):
    first = i2i_core.train(i2i_tiny_recipe(), show_progress=False)
    other = i2i_tiny_recipe(overrides={"method": "onesided", "output.dir": str(first.run_dir)})
    with pytest.raises(I2IError, match=r"a checkpoint of method 'cyclegan', but the recipe trains 'onesided'"):
        i2i_core.train(other, show_progress=False)
    assert [p.name for p in (first.run_dir / "checkpoints").iterdir()] == ["step_0000002"]  # nothing set aside


def test_pretraining_is_refused_for_a_method_without_it(onesided, i2i_tiny_recipe):
    with pytest.raises(I2IError, match=r"train.d_pretrain_steps must be 0: method 'onesided' has no discriminator"):
        i2i_tiny_recipe(overrides={"method": "onesided", "train.d_pretrain_steps": 2})


def installed_onesided(dataset: Path, tmp_path: Path) -> tuple[Path, dict[str, str]]:
    """The tutorial's module installed as a distribution of its own (dist-info with an ``i2i`` entry point), and
    its recipe on ``dataset``: the recipe's path and the environment that finds the distribution."""
    site = tmp_path / "site"
    site.mkdir()
    (site / "thirdparty_onesided.py").write_text(docs_block("# src/i2i_onesided/__init__.py"))
    info = site / "i2i_onesided-0.1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: i2i-onesided\nVersion: 0.1.0\n")
    (info / "entry_points.txt").write_text("[i2i]\nonesided = thirdparty_onesided\n")
    recipe = tmp_path / "onesided.toml"
    recipe.write_text(
        docs_block("# onesided.toml")
        + f'\n[data]\nroot = "{dataset}"\nload_size = 36\ncrop_size = 32\n'
        + f'\n[output]\ndir = "{tmp_path / "run"}"\nsample_every = 2\n'
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    return recipe, env


def test_an_installed_method_distribution_trains_through_i2i_run(i2i_tiny_dataset, tmp_path):
    """``i2i run`` in a fresh process finds the installed tutorial method, trains it 2 steps and lists it in
    ``i2i plugins``."""
    recipe, env = installed_onesided(i2i_tiny_dataset, tmp_path)
    command = [sys.executable, "-m", "i2i_core", "run", str(recipe), "--set", "train.steps=2", "--no-progress"]
    done = subprocess.run(command, capture_output=True, text=True, env=env)
    assert done.returncode == 0, done.stderr
    assert "Finished at step 2" in done.stdout
    assert (tmp_path / "run" / "checkpoints" / "step_0000002" / "G.safetensors").is_file()
    listing = subprocess.run(
        [sys.executable, "-m", "i2i_core", "plugins", "--json"], capture_output=True, text=True, env=env
    )
    rows = {row["name"]: row for row in json.loads(listing.stdout)}
    assert (rows["onesided"]["kind"], rows["onesided"]["distribution"]) == ("method", "i2i-onesided")


@pytest.mark.slow
def test_the_installed_tutorial_method_trains_under_torchrun(i2i_tiny_dataset, tmp_path):
    """The tutorial method has no code of its own for torchrun: ``i2i run --nproc 2`` trains it 2 steps on two
    processes, which end with the same weights (rank 0's are saved; every rank reports its own here)."""
    recipe, env = installed_onesided(i2i_tiny_dataset, tmp_path)
    env["OMP_NUM_THREADS"] = "1"
    command = [sys.executable, "-m", "i2i_core", "run", str(recipe), "--nproc", "2", "--no-progress"]
    command += ["--set", "train.steps=2", "--set", "train.precision=fp32"]
    done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.count("Finished at step 2") == 1  # rank 0 reports
    state = json.loads((tmp_path / "run" / "checkpoints" / "step_0000002" / "state.json").read_text())
    assert state["world_size"] == 2 and state["method"] == "onesided"


def test_the_tutorial_method_trains_in_bf16_with_fp32_master_weights(onesided, i2i_tiny_recipe):
    """bf16 compute copies and fp32 master weights that the steps change, first-step losses close to fp32's,
    with no precision code in the tutorial; then 2 steps through the engine in bf16."""
    recipe = i2i_tiny_recipe(overrides={"method": "onesided"})
    batch = {"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1}
    first = {}
    for precision in ("fp32", "bf16"):
        torch.manual_seed(0)
        method = recipe.method.from_recipe(recipe, torch.device("cpu"), Layout(precision, precision == "bf16"))
        start = torch.cat([p.detach().flatten() for p in method.networks["G"].parameters()])
        first[precision] = method.train_step(batch)
        assert all(math.isfinite(v) for v in method.train_step(batch).values())
        end = torch.cat([p.detach().flatten() for p in method.networks["G"].parameters()])
        assert end.dtype == torch.float32 and not torch.equal(start, end)
        wanted = torch.bfloat16 if precision == "bf16" else torch.float32
        assert all(p.dtype == wanted for c in method.copies.values() for p in c.module.parameters())
    assert set(first["bf16"]) == {"G", "content", "D"}
    for name, value in first["bf16"].items():
        assert value == pytest.approx(first["fp32"][name], rel=0.05), name
    result = i2i_core.train(i2i_tiny_recipe(overrides={"method": "onesided", "train.precision": "bf16"}))
    assert result.steps == 2 and set(result.metrics) == {"G", "content", "D"}


def test_init_from_a_run_of_another_method_names_the_networks_it_holds(onesided, i2i_tiny_recipe):
    other = i2i_core.train(i2i_tiny_recipe(overrides={"method": "onesided"}), show_progress=False)
    recipe = i2i_tiny_recipe(overrides={"model.generator.init_from": str(other.run_dir)})
    with pytest.raises(I2IError, match=r"model.generator.init_from = .*holds no network G_A \(its networks: D, G\)"):
        i2i_core.train(recipe, show_progress=False)


def test_a_recipe_extending_one_of_another_method_drops_the_keys_only_that_method_reads(onesided, tmp_path):
    (tmp_path / "child.toml").write_text('extends = "parent.toml"\nmethod = "onesided"\n')
    (tmp_path / "parent.toml").write_text("[loss.cycle]\nweight = 3.0\n[train]\npool_size = 4\nsteps = 5\n")
    recipe = i2i_core.load_recipe(tmp_path / "child.toml")
    assert (recipe["method"], recipe["train.steps"], recipe.get("train.pool_size")) == ("onesided", 5, None)
    assert recipe.notes == [
        "method: changed from cyclegan to onesided by child.toml (extends parent.toml); dropped the keys only "
        "cyclegan reads: loss.cycle, train.pool_size"
    ]


def test_changing_method_by_set_says_which_recipe_values_differ_from_the_new_methods_defaults():
    recipe = i2i_core.load_recipe(Path(__file__).parents[1] / "recipes" / "photo2anime-cut.toml", ["method='fastcut'"])
    assert recipe["method"] == "fastcut" and recipe["nce.idt"] is True  # the recipe's value, kept
    (note,) = recipe.notes
    assert note.startswith("method: changed from cut to fastcut by --set; kept the recipe's loss.nce.weight=1.0 ")
    assert "nce.idt=true (fastcut's default: false)" in note
