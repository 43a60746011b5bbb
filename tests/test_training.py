"""The training engine: schedule, run folder, checkpoints, exact resume, signals, the ``i2i run`` command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from i2i_cyclegan import CycleGAN
from PIL import Image
from safetensors.torch import load_file

import i2i_core
import i2i_core.importers
from i2i_core.checkpoint import list_checkpoints
from i2i_core.cli import cli
from i2i_core.training.schedule import Schedule, linear_decay

TINY = Path(__file__).parent / "recipes" / "tiny.toml"


def tiny(tmp_path: Path, *overrides: str) -> i2i_core.Recipe:
    return i2i_core.load_recipe(TINY, [f"output.dir='{tmp_path / 'run'}'", *overrides])


def weights(run_dir: Path, step: int) -> dict[str, torch.Tensor]:
    folder = run_dir / "checkpoints" / f"step_{step:07d}"
    return {
        f"{n}.{k}": v for n in ("G_A", "G_B", "D_A", "D_B") for k, v in load_file(folder / f"{n}.safetensors").items()
    }


def test_linear_schedule_equals_reference(golden_nets):
    golden = golden_nets["lr_linear_schedule_epoch_to_lr"]
    for epoch, lr in golden.items():
        if not epoch.isdigit():  # a note on what the reference does after its last epoch
            continue
        assert 2e-4 * linear_decay(int(epoch), 100, 100) == pytest.approx(lr, rel=1e-12)


def test_schedule_by_epochs_and_by_steps():
    r = i2i_core.load_recipe(TINY, ["train.steps=0", "train.epochs=2", "train.decay_epochs=2"])
    s = Schedule.from_recipe(r, dataset_size=5)
    assert (s.steps_per_epoch, s.total_steps) == (5, 20)
    assert [s.lr_at(i) for i in (0, 9, 10, 15, 19)] == pytest.approx([2e-4, 2e-4, 2e-4 * 2 / 3, 2e-4 / 3, 2e-4 / 3])
    s = Schedule.from_recipe(i2i_core.load_recipe(TINY, ["train.steps=10"]), dataset_size=5)
    assert s.total_steps == 10
    assert [s.lr_at(i) for i in (0, 4, 5, 9)] == pytest.approx([2e-4, 2e-4, 2e-4 * 5 / 6, 2e-4 / 6])


def test_build_trainer_exposes_networks_and_step(tmp_path):
    trainer = i2i_core.build_trainer(tiny(tmp_path))
    assert {type(trainer.G_A).__name__, type(trainer.D_B).__name__} == {"ResnetGenerator", "PatchDiscriminator"}
    losses = trainer.train_step({"A": torch.rand(1, 3, 32, 32) * 2 - 1, "B": torch.rand(1, 3, 32, 32) * 2 - 1})
    assert set(losses) == {"G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B"}
    assert all(isinstance(v, float) and v > 0 for v in losses.values())


def test_run_folder_contents(tmp_path):
    result = i2i_core.train(tiny(tmp_path), show_progress=False)
    run = result.run_dir
    assert result.steps == 8 and not result.interrupted and result.checkpoint == run / "checkpoints" / "step_0000008"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(1, 9))
    assert {"epoch", "lr", "steps_per_s", "G_A", "D_B", "cycle_A", "idt_B"} <= set(lines[0])
    assert [p.name for p in sorted((run / "samples").iterdir())] == ["step_0000004.png", "step_0000008.png"]
    grid = Image.open(run / "samples" / "step_0000008.png")
    assert grid.size == (6 * 34 + 2, 2 * 34 + 2)  # 6 columns x 2 test pairs of 32 px, 2 px padding
    assert [p.name for p in list_checkpoints(run / "checkpoints")] == ["step_0000004", "step_0000008"]
    assert i2i_core.load_recipe(run / "recipe.toml").values["train"] == tiny(tmp_path).values["train"]
    G_A = i2i_core.load_component(run / "checkpoints" / "step_0000008" / "G_A.safetensors")  # rebuilds alone
    assert G_A.model[1].out_channels == 8


def test_reporters_run_at_sample_time(tmp_path):
    run = i2i_core.train(tiny(tmp_path, "train.steps=4", "report.reporters=['fourier']"), show_progress=False).run_dir
    for direction, labels in (("AtoB", ["real_A", "fake_B"]), ("BtoA", ["real_B", "fake_A"])):
        folder = run / "reports" / "fourier" / "step_0000004" / direction
        assert {p.name for p in folder.iterdir()} == {"fourier.json", "spectra.png", "radial_power.png"}
        assert list(json.loads((folder / "fourier.json").read_text())["images"]) == labels


def test_unknown_reporter_is_a_recipe_error():
    with pytest.raises(i2i_core.I2IError, match=r"report\.reporters: unknown reporter 'fourrier'\. Did you mean"):
        i2i_core.load_recipe(TINY, ["report.reporters=['fourrier']"])


def test_keep_last_prunes_old_checkpoints(tmp_path):
    i2i_core.train(tiny(tmp_path, "output.checkpoint_every=2", "output.keep_last=2"), show_progress=False)
    assert [p.name for p in list_checkpoints(tmp_path / "run" / "checkpoints")] == ["step_0000006", "step_0000008"]


def interrupt_after(monkeypatch, steps: int) -> None:
    """Send this process a real SIGINT during training step ``steps``, as Ctrl-C would."""
    real_step = CycleGAN.train_step
    calls = []

    def step(self, batch):
        calls.append(1)
        if len(calls) == steps:
            signal.raise_signal(signal.SIGINT)
        return real_step(self, batch)

    monkeypatch.setattr(CycleGAN, "train_step", step)


@pytest.mark.parametrize(
    ("total", "stop_at", "overrides"),
    [
        (6, 3, []),
        # 32 images per epoch at batch 5: 7 steps per epoch; stop in the middle of epoch 2
        (10, 8, ["train.batch_size=5", "train.pool_size=2"]),
        # bf16 channels-last compute copies: resuming rebuilds them from the saved fp32 masters
        (6, 3, ["train.precision='bf16'"]),
        # evaluating the test split with the real metrics and keeping the best checkpoint changes nothing
        (6, 3, ["output.eval_every=2", "eval.metrics=['swd', 'content', 'lab']", "eval.best='swd'"]),
    ],
)
def test_interrupted_and_resumed_run_equals_uninterrupted(tmp_path, monkeypatch, total, stop_at, overrides):
    common = [f"train.steps={total}", "output.checkpoint_every=0", *overrides]
    straight = i2i_core.train(tiny(tmp_path / "a", *common), show_progress=False)
    with monkeypatch.context() as patch:
        interrupt_after(patch, stop_at)
        first = i2i_core.train(tiny(tmp_path / "b", *common), show_progress=False)
    assert first.interrupted and first.steps == stop_at
    assert [p.name for p in list_checkpoints(first.run_dir / "checkpoints")] == [f"step_{stop_at:07d}"]
    resumed = i2i_core.train(tiny(tmp_path / "b", *common), show_progress=False)
    assert resumed.steps == total and not resumed.interrupted
    a, b = weights(straight.run_dir, total), weights(resumed.run_dir, total)
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    lines = [json.loads(line) for line in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "eval" not in line] == list(range(1, total + 1))
    if "output.eval_every=2" in overrides:
        evals = [line for line in lines if "eval" in line]
        assert [line["step"] for line in evals] == [2, 4, 6]  # the resumed run evaluates where the first left off
        straight_lines = (straight.run_dir / "metrics.jsonl").read_text().splitlines()
        straight_evals = [json.loads(line)["eval"] for line in straight_lines if '"eval"' in line]
        assert [line["eval"] for line in evals] == straight_evals  # the same scores, to the last digit
        best = json.loads((resumed.run_dir / "checkpoints" / "best" / "state.json").read_text())["eval_best"]
        assert best["score"] == min(scores["swd"] for scores in straight_evals)


def test_changed_recipe_warns_on_resume(tmp_path):
    i2i_core.train(tiny(tmp_path, "train.steps=2"), show_progress=False)
    with pytest.warns(UserWarning, match="recipe differs"):
        assert i2i_core.train(tiny(tmp_path, "train.steps=3"), show_progress=False).steps == 3


def test_restart_starts_over(tmp_path):
    i2i_core.train(tiny(tmp_path, "train.steps=2"), show_progress=False)
    result = i2i_core.train(tiny(tmp_path, "train.steps=2"), restart=True, show_progress=False)
    lines = (result.run_dir / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(line)["step"] for line in lines] == [1, 2]


def test_crash_while_writing_a_checkpoint_keeps_the_last_complete_one(tmp_path, monkeypatch):
    i2i_core.train(tiny(tmp_path, "train.steps=4"), show_progress=False)
    import i2i_core.training.state as tc

    real_save = tc.save_component
    calls = []

    def crash_on_third(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 3:
            raise OSError("power cut")
        return real_save(path, *args, **kwargs)

    monkeypatch.setattr(tc, "save_component", crash_on_third)
    with pytest.warns(UserWarning), pytest.raises(i2i_core.CheckpointError, match=r"step_0000006: .*power cut"):
        i2i_core.train(tiny(tmp_path, "train.steps=8", "output.checkpoint_every=2"), show_progress=False)
    monkeypatch.undo()
    folder = tmp_path / "run" / "checkpoints"
    assert [p.name for p in list_checkpoints(folder)] == ["step_0000004"]  # the half-written one is not taken
    assert sorted(os.listdir(folder)) == ["step_0000004"]  # and its temporary folder is gone
    with pytest.warns(UserWarning):
        result = i2i_core.train(tiny(tmp_path, "train.steps=8"), show_progress=False)
    assert result.steps == 8


def test_bad_images_stop_before_training(tmp_path):
    for domain in ("trainA", "trainB", "testA", "testB"):
        (tmp_path / "data" / domain).mkdir(parents=True)
        Image.new("RGB", (40, 40), (200, 30, 30)).save(tmp_path / "data" / domain / "ok.png")
    (tmp_path / "data" / "trainA" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    recipe = tiny(tmp_path, f"data.root='{tmp_path / 'data'}'")
    with pytest.raises(i2i_core.I2IError, match=r"(?s)1 unreadable image.*broken\.jpg"):
        i2i_core.train(recipe, show_progress=False)
    assert not (tmp_path / "run" / "checkpoints").exists()
    skipping = tiny(tmp_path, f"data.root='{tmp_path / 'data'}'", "data.on_bad_image='skip'", "train.steps=1")
    with pytest.warns(UserWarning, match="skipping 1 unreadable image"):
        assert i2i_core.train(skipping, show_progress=False).steps == 1


def test_cli_run_end_to_end_and_dry_run(tmp_path):
    runner = CliRunner()
    args = [
        "run",
        str(Path(__file__).parents[1] / "recipes" / "quickstart.toml"),
        "--set",
        "data.load_size=72",
        "--set",
        "data.crop_size=64",
        "--set",
        "model.generator.ngf=8",
        "--set",
        "model.discriminator.ndf=8",
        "--set",
        "train.steps=3",
        "--set",
        f"output.dir='{tmp_path / 'q'}'",
    ]
    dry = runner.invoke(cli, [*args, "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "crop_size = 64" in dry.output and "# model.generator: generator 'resnet6'" in dry.output
    assert not (tmp_path / "q").exists()
    result = runner.invoke(cli, args)
    assert result.exit_code == 0, result.output
    assert "Finished at step 3" in result.output
    assert (tmp_path / "q" / "checkpoints" / "step_0000003" / "state.json").is_file()


def test_cli_run_reports_recipe_errors_in_one_line(tmp_path):
    result = CliRunner().invoke(cli, ["run", str(TINY), "--set", "train.lrr=1"])
    assert result.exit_code == 1
    assert result.output.count("\n") == 1 and "Did you mean 'lr'?" in result.output


def test_sigint_saves_a_checkpoint_and_exits_130(tmp_path):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    cmd = [
        sys.executable,
        "-m",
        "i2i_core",
        "run",
        str(TINY),
        "--set",
        "train.steps=100000",
        "--set",
        f"output.dir='{tmp_path / 'run'}'",
        "--set",
        "output.checkpoint_every=0",
        "--no-progress",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    metrics = tmp_path / "run" / "metrics.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and not (metrics.is_file() and metrics.read_text().count("\n") >= 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err  # 128 + SIGINT, as a shell reports it: `i2i run ... && next` stops
    assert "Stopped by a signal at step" in out
    (checkpoint,) = list_checkpoints(tmp_path / "run" / "checkpoints")
    step = json.loads((checkpoint / "state.json").read_text())["step"]
    assert step >= 3 and f"at step {step}" in out


def test_discriminator_pretraining_trains_only_the_discriminators(tmp_path):
    recipe = tiny(tmp_path, "train.d_pretrain_steps=3", "train.steps=2", "output.checkpoint_every=3")
    result = i2i_core.train(recipe, show_progress=False)
    assert result.steps == 5
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [m.get("phase") for m in lines] == ["d_pretrain"] * 3 + [None, None]
    assert set(lines[0]) >= {"D_A", "D_B"} and "G_A" not in lines[0] and "G_A" in lines[3]
    untouched = i2i_core.build_trainer(recipe)  # the same seed: the generators' initial weights
    after_pretraining = weights(result.run_dir, 3)
    for name, value in untouched.G_A.state_dict().items():
        assert torch.equal(after_pretraining[f"G_A.{name}"], value)
    assert not torch.equal(after_pretraining["D_A.model.0.weight"], untouched.D_A.state_dict()["model.0.weight"])
    assert lines[3]["lr"] == 2e-4  # the adversarial schedule starts after pretraining


def test_init_from_a_reference_checkpoint_fine_tunes(tmp_path):
    reference = i2i_core.create("generator", "resnet6", ngf=8)
    torch.save({f"module.{k}": v for k, v in reference.state_dict().items()}, tmp_path / "zoo.pth")
    imported = tmp_path / "zoo_G.safetensors"
    i2i_core.importers.import_weights(tmp_path / "zoo.pth", imported, arch="resnet6", options={"ngf": 8})
    recipe = tiny(tmp_path, f"model.generator.init_from='{imported}'", "train.steps=1")
    trainer = i2i_core.build_trainer(recipe)
    for name, value in reference.state_dict().items():
        assert torch.equal(trainer.G_A.state_dict()[name], value) and torch.equal(trainer.G_B.state_dict()[name], value)
    assert i2i_core.train(recipe, show_progress=False).steps == 1


def test_init_from_an_earlier_run_per_network(tmp_path):
    earlier = i2i_core.train(tiny(tmp_path / "old", "train.steps=2"), show_progress=False).run_dir
    recipe = tiny(tmp_path, f"model.D_B.init_from='{earlier}'", f"model.G_A.init_from='{earlier}'")
    trainer = i2i_core.build_trainer(recipe)
    old = weights(earlier, 2)
    assert torch.equal(trainer.D_B.state_dict()["model.0.weight"], old["D_B.model.0.weight"])
    assert torch.equal(trainer.G_A.state_dict()["model.1.weight"], old["G_A.model.1.weight"])
    assert not torch.equal(trainer.G_B.state_dict()["model.1.weight"], old["G_B.model.1.weight"])


def test_init_from_mismatch_is_a_clear_error_before_training(tmp_path):
    other = i2i_core.save_component(
        tmp_path / "g.safetensors", i2i_core.create("generator", "resnet6", ngf=16), "generator", "resnet6", {"ngf": 16}
    )
    with pytest.raises(i2i_core.I2IError, match=r"holds generator 'resnet6' with options \{'ngf': 16\}.*'ngf': 8"):
        i2i_core.train(tiny(tmp_path, f"model.generator.init_from='{other}'"), show_progress=False)
    with pytest.raises(i2i_core.CheckpointError, match="no such checkpoint"):
        i2i_core.build_trainer(tiny(tmp_path, f"model.generator.init_from='{tmp_path / 'missing'}'"))
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_figure4_recipes():
    fast = i2i_core.load_recipe(Path(__file__).parents[1] / "recipes" / "figure4-fast.toml")
    slow = i2i_core.load_recipe(Path(__file__).parents[1] / "recipes" / "figure4-slow.toml")
    assert (fast["train.lr"], fast["loss.cycle.weight"]) == (1e-3, 10.0)
    assert (slow["train.lr"], slow["loss.cycle.weight"]) == (1e-4, 25.0)
    assert fast["model.generator.name"] == slow["model.generator.name"] == "resnet9"


def test_collapse_warning_reaches_the_log(tmp_path, monkeypatch):
    real_translate = CycleGAN.sample_images

    calls = []

    def collapsing_from_the_second_sample(self, batch):
        images = real_translate(self, batch)
        calls.append(1)
        if len(calls) >= 2:
            images["fake_B"] = images["fake_B"].mean(0, keepdim=True).expand_as(images["fake_B"]).clone()
        return images

    monkeypatch.setattr(CycleGAN, "sample_images", collapsing_from_the_second_sample)
    with pytest.warns(RuntimeWarning, match="step 4: generator G_A may have collapsed"):
        run = i2i_core.train(tiny(tmp_path, "train.steps=6", "output.sample_every=2"), show_progress=False).run_dir
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines if "warning" in m] == [4]  # once
