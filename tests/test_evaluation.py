"""Evaluation: the image streams, the identity baseline, ``i2i eval``, evaluation during training and the best
checkpoint, the time budget. The metrics here are a test plugin's, with answers known by hand."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from click.testing import CliRunner
from PIL import Image
from safetensors.torch import load_file

import i2i_core
from i2i_core import hookimpl
from i2i_core.checkpoint import select_checkpoint
from i2i_core.cli import cli
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.evaluation import EvalSet, build_metrics, evaluate, score
from i2i_core.metric import Metric


class TruthGap(Metric):
    """Mean absolute difference to the ground truth."""

    reads, paired, higher_is_better = ("output", "truth"), True, False

    def __call__(self, x, y):
        return float((x - y).abs().mean())


class MeanGap(Metric):
    """Difference of the mean values of the output and the target sets."""

    reads = ("output", "target")

    def __call__(self, x, y):
        return float((x.mean() - y.mean()).abs())


class Kept(Metric):
    """How close the output stays to its input (1: unchanged)."""

    reads, paired, higher_is_better = ("output", "source"), True, True

    def __call__(self, x, y):
        return 1 - float((x - y).abs().mean()) / 2


class CycleGap(Metric):
    reads, paired = ("cycled", "source"), True

    def __call__(self, x, y):
        return float((x - y).abs().mean())


class ToyMetrics:
    @hookimpl
    def register_metrics(self, register):
        for name, cls in (("truth-gap", TruthGap), ("mean-gap", MeanGap), ("kept", Kept), ("cycle-gap", CycleGap)):
            register(name, cls, summary=cls.__doc__ or name)


@pytest.fixture
def toy_metrics(i2i_plugin):
    i2i_plugin(ToyMetrics(), "toy-metrics")
    return ["truth-gap", "mean-gap", "kept", "cycle-gap"]


def with_truth(root):
    """Give the tiny dataset a testGT folder: each testA image, mirrored, as its 'ground truth'."""
    (root / "testGT").mkdir()
    for file in sorted((root / "testA").iterdir()):
        Image.open(file).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(root / "testGT" / f"{file.stem}.png")
    return root


def test_score_of_known_translations(toy_metrics):
    source = torch.linspace(-1, 1, 2 * 3 * 8 * 8).reshape(2, 3, 8, 8)
    data = EvalSet("test", "AtoB", source, torch.full((3, 3, 8, 8), 0.5), truth=source.flip(-1))
    result = score(build_metrics(toy_metrics), data, translate=lambda x: torch.zeros_like(x), translate_back=None)
    assert result.images == 2
    assert result.scores["truth-gap"] == pytest.approx(float(source.abs().mean()))
    assert result.scores["mean-gap"] == pytest.approx(0.5)
    assert result.scores["kept"] == pytest.approx(1 - float(source.abs().mean()) / 2)
    # the identity: the source taken as the output
    assert result.identity["truth-gap"] == pytest.approx(float((source - source.flip(-1)).abs().mean()))
    assert result.identity["mean-gap"] == pytest.approx(0.5 - float(source.mean()), abs=1e-6)
    assert result.identity["kept"] is None  # the source against itself says nothing
    assert result.higher_is_better == {"truth-gap": False, "mean-gap": False, "kept": True}
    assert result.notes == [
        "cycle-gap: left out, nothing translates the outputs back (no generator of the other direction)"
    ]


def test_a_metric_that_cannot_score_is_named(toy_metrics, i2i_plugin):
    class Picky(Metric):
        def __call__(self, x, y):
            raise ValueError("needs at least 2 images per set")

    class PickyPlugin:
        @hookimpl
        def register_metrics(self, register):
            register("picky", Picky, summary="Refuses small sets.")

    i2i_plugin(PickyPlugin(), "picky-metric")
    data = EvalSet("test", "AtoB", torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8), truth=None)
    with pytest.raises(I2IError, match=r"metric 'picky' cannot score split 'test' \(1 images\): needs at least 2"):
        score(build_metrics(["picky"]), data, lambda x: x)


def test_score_clamps_outputs_and_reads_the_way_back(toy_metrics):
    source = torch.rand(3, 3, 8, 8) * 2 - 1
    data = EvalSet("test", "AtoB", source, source, truth=None)
    result = score(build_metrics(toy_metrics), data, lambda x: x * 10, translate_back=lambda x: x / 10)
    assert result.scores["cycle-gap"] == pytest.approx(float((source.clamp(-0.1, 0.1) - source).abs().mean()))
    assert "truth-gap: left out, the dataset gives no ground truth (A_truth) for split 'test'" in result.notes


def test_eval_set_takes_each_test_image_once_with_its_truth(i2i_tiny_dataset, i2i_tiny_recipe):
    recipe = i2i_tiny_recipe(overrides={"data.root": str(with_truth(i2i_tiny_dataset))})
    data = EvalSet.from_recipe(recipe, "AtoB")
    assert data.source.shape == (2, 3, 32, 32) and data.target.shape == (2, 3, 32, 32)
    assert torch.allclose(data.truth, data.source.flip(-1), atol=0.05)  # mirrored, up to resampling
    back = EvalSet.from_recipe(recipe, "BtoA", size=16)
    assert back.source.shape == (2, 3, 16, 16) and back.truth is None


def test_missing_ground_truth_names_the_images(i2i_tiny_dataset, i2i_tiny_recipe):
    root = with_truth(i2i_tiny_dataset)
    missing = sorted((root / "testGT").iterdir())[0]
    missing.unlink()
    with pytest.raises(I2IError, match=rf"testGT: no ground truth for 1 of the 2 images of testA \({missing.stem}"):
        EvalSet.from_recipe(i2i_tiny_recipe(overrides={"data.root": str(root)}), "AtoB")


@pytest.fixture
def trained(toy_metrics, i2i_tiny_dataset, i2i_tiny_recipe):
    """A tiny CycleGAN run that evaluated at every step and kept its best checkpoint by truth-gap."""
    overrides = {
        "data.root": str(with_truth(i2i_tiny_dataset)),
        "train.steps": 3,
        "output.eval_every": 1,
        "eval.metrics": toy_metrics,
        "eval.best": "truth-gap",
    }
    return i2i_core.train(i2i_tiny_recipe(overrides=overrides), show_progress=False)


def test_evaluation_during_training_logs_scores_and_keeps_the_best(trained):
    lines = [json.loads(line) for line in (trained.run_dir / "metrics.jsonl").read_text().splitlines()]
    evals = [line for line in lines if "eval" in line]
    assert [line["step"] for line in evals] == [1, 2, 3]
    assert all(set(line["eval"]) == {"truth-gap", "mean-gap", "kept", "cycle-gap"} for line in evals)
    assert "identity" in evals[0] and all("identity" not in line for line in evals[1:])
    assert 0 < evals[0]["minutes"] <= evals[1]["minutes"] <= evals[2]["minutes"]
    best_step = min(evals, key=lambda line: line["eval"]["truth-gap"])["step"]
    best = select_checkpoint(trained.run_dir, "best")
    state = json.loads((best / "state.json").read_text())
    assert state["step"] == best_step and state["eval_best"]["metric"] == "truth-gap"
    assert state["eval_best"]["score"] == min(line["eval"]["truth-gap"] for line in evals)
    # the best checkpoint is a complete training checkpoint, but never taken as the latest
    assert set(p.name for p in best.glob("*.safetensors")) >= {"G_A.safetensors", "G_B.safetensors"}
    assert select_checkpoint(trained.run_dir, "latest").name == "step_0000003"


def test_eval_command_scores_a_run_and_its_best_checkpoint(trained):
    run = CliRunner().invoke(cli, ["eval", "-c", str(trained.run_dir), "--pick", "best", "--json"])
    assert run.exit_code == 0, run.output
    result = json.loads(run.output)
    state = json.loads((trained.run_dir / "checkpoints" / "best" / "state.json").read_text())
    assert result["step"] == state["step"] and result["images"] == 2
    assert result["scores"] == pytest.approx(state["eval"], rel=1e-5)  # the same scores as during training
    assert result["identity"]["kept"] is None and result["higher_is_better"]["kept"] is True
    table = CliRunner().invoke(cli, ["eval", "-c", str(trained.run_dir), "--metric", "kept", "--metric", "mean-gap"])
    assert table.exit_code == 0, table.output
    assert "mean-gap" in table.output and "than identity; lower is better" in table.output
    assert "truth-gap" not in table.output


def test_eval_of_a_generator_file_needs_data(trained, i2i_tiny_dataset):
    generator = trained.run_dir / "checkpoints" / "step_0000003" / "G_A.safetensors"
    with pytest.raises(I2IError, match="carries no recipe, so name the data to score it on: --data ROOT"):
        evaluate(generator, metrics=["mean-gap"])
    result = evaluate(generator, data=str(i2i_tiny_dataset), metrics=["mean-gap", "cycle-gap"], size=32)
    assert set(result.scores) == {"mean-gap"} and result.step is None
    assert result.notes[0].startswith("cycle-gap: left out")


def test_pick_names_the_checkpoints_a_run_has(trained, tmp_path):
    with pytest.raises(CheckpointError, match=r"no checkpoint 'step_9'; its checkpoints: step_0000003, best, or"):
        select_checkpoint(trained.run_dir, "step_9")
    assert select_checkpoint(trained.run_dir, "3").name == "step_0000003"
    shutil.rmtree(trained.run_dir / "checkpoints" / "best")
    with pytest.raises(CheckpointError, match=r"a run keeps one when eval\.best and output\.eval_every are set"):
        select_checkpoint(trained.run_dir, "best")
    with pytest.raises(CheckpointError, match="not a run folder"):
        select_checkpoint(trained.run_dir / "checkpoints" / "step_0000003", "best")


def test_translate_pick_best(trained, i2i_tiny_dataset, tmp_path):
    image = sorted((i2i_tiny_dataset / "testA").iterdir())[0]
    args = ["translate", str(image), "-o", str(tmp_path / "out"), "-c", str(trained.run_dir), "--pick", "best"]
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0, run.output
    assert (tmp_path / "out" / image.name).is_file()


def test_evaluation_leaves_training_exactly_as_without_it(toy_metrics, i2i_tiny_recipe):
    plain = i2i_core.train(i2i_tiny_recipe(overrides={"train.steps": 3}), show_progress=False)
    evaluated = i2i_core.train(
        i2i_tiny_recipe(overrides={"train.steps": 3, "output.eval_every": 1, "eval.metrics": ["mean-gap"]}),
        show_progress=False,
    )
    a, b = (load_file(r.checkpoint / "G_A.safetensors") for r in (plain, evaluated))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_time_budget_stops_training_and_is_kept_on_resume(i2i_tiny_recipe, monkeypatch):
    recipe = i2i_tiny_recipe(overrides={"train.steps": 50, "train.minutes": 1e-9})
    first = i2i_core.train(recipe, show_progress=False)
    assert first.out_of_time and not first.interrupted and first.steps == 1
    state = json.loads((first.checkpoint / "state.json").read_text())
    assert state["train_seconds"] > 0
    again = i2i_core.train(recipe, show_progress=False)  # the budget is spent: nothing more to train
    assert again.steps == 1 and again.out_of_time
    run = CliRunner().invoke(cli, ["run", str(recipe.path), "--set", "train.minutes=1e-9"])
    assert run.exit_code == 0, run.output
    assert "Stopped at the time budget (train.minutes = 1e-09) at step 1" in run.output


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"eval.best": "kept"}, "eval.best must be one of eval.metrics"),
        ({"eval.metrics": ["kept"], "eval.best": "kept"}, "set output.eval_every too"),
        ({"output.eval_every": 1, "eval.metrics": ["kep"]}, "Did you mean 'kept'"),
        ({"eval.direction": "BtoB"}, r"eval\.direction must be a direction the method 'cyclegan' translates"),
        ({"eval.size": 30}, r"eval.size \(30\) is not a multiple of 4"),
        ({"train.minutes": -1}, "train.minutes must be >= 0"),
    ],
)
def test_eval_keys_are_checked(toy_metrics, i2i_tiny_recipe, overrides, message):
    with pytest.raises(I2IError, match=message):
        i2i_tiny_recipe(overrides=overrides)


def test_eval_command_with_the_first_party_metrics(trained, i2i_tiny_dataset):
    """Every weight-free first-party metric through ``i2i eval``, the identity scored as computed directly."""
    names = ["psnr", "ssim", "content", "cycle-psnr", "swd", "lab"]
    args = ["eval", "-c", str(trained.run_dir), "--json", *(a for n in names for a in ("--metric", n))]
    run = CliRunner().invoke(cli, args)
    assert run.exit_code == 0, run.output
    result = json.loads(run.output)
    assert list(result["scores"]) == names and result["notes"] == []
    recipe = i2i_core.load_recipe(trained.run_dir / "recipe.toml")
    data = EvalSet.from_recipe(recipe, "AtoB")
    for name in ("psnr", "ssim"):
        assert result["identity"][name] == pytest.approx(i2i_core.create("metric", name)(data.source, data.truth))
    for name in ("swd", "lab"):
        assert result["identity"][name] == pytest.approx(i2i_core.create("metric", name)(data.source, data.target))
    assert result["identity"]["content"] is None and result["identity"]["cycle-psnr"] is None
    assert result["higher_is_better"] == {
        "psnr": True, "ssim": True, "content": True, "cycle-psnr": True, "swd": False, "lab": False
    }  # fmt: skip
    assert 0 < result["scores"]["ssim"] < 1 and 0 < result["scores"]["content"] < 1


def test_kid_without_weights_says_how_to_get_them(trained, monkeypatch):
    monkeypatch.delenv("I2I_INCEPTION_WEIGHTS", raising=False)
    run = CliRunner().invoke(cli, ["eval", "-c", str(trained.run_dir), "--metric", "kid"])
    assert run.exit_code != 0
    assert "metric 'kid'" in run.output and "I2I_INCEPTION_WEIGHTS" in run.output
    assert "--inception-weights" in run.output
    missing = CliRunner().invoke(cli, ["eval", "-c", str(trained.run_dir), "--inception-weights", "/no/such.pth"])
    assert missing.exit_code != 0 and "--inception-weights: no such file: /no/such.pth" in missing.output


def test_fastcut_evaluates_one_way_and_keeps_its_best(i2i_tiny_dataset, i2i_tiny_recipe):
    """A method that learns one direction: evaluation during training and ``i2i eval``, no cycle to score."""
    overrides = {
        "method": "fastcut",
        "data.root": str(with_truth(i2i_tiny_dataset)),
        "nce.num_patches": 16,
        "model.head.nc": 16,
        "output.eval_every": 2,
        "eval.metrics": ["psnr", "cycle-psnr"],
        "eval.best": "psnr",
    }
    result = i2i_core.train(i2i_tiny_recipe(overrides=overrides), show_progress=False)
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [set(line["eval"]) for line in lines if "eval" in line] == [{"psnr"}]  # step 2 of 2
    assert select_checkpoint(result.run_dir, "best").is_dir()
    scored = evaluate(result.run_dir, metrics=["psnr", "cycle-psnr"], which="best")
    assert set(scored.scores) == {"psnr"} and scored.notes[0].startswith("cycle-psnr: left out, nothing translates")
    with pytest.raises(I2IError, match="translates only AtoB, not BtoA"):
        evaluate(result.run_dir, direction="BtoA", metrics=["psnr"])
    with pytest.raises(I2IError, match=r"eval\.direction must be a direction the method 'fastcut' translates"):
        i2i_tiny_recipe(overrides={**overrides, "eval.direction": "BtoA"})
