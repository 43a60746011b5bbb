"""The ``pix2pix`` method in i2i: recipes, what the discriminator is shown, both directions, state and exact resume,
translation as the reference's test.py or in eval mode, bf16, DistributedDataParallel, and runs through the engine
and the command line on paired data (its golden vectors: test_pix2pix.py)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import tomli_w
import torch
from click.testing import CliRunner
from conftest import checkpoint_tensors, train_interrupted
from i2i_pix2pix import LOSS_NAMES, Pix2Pix
from PIL import Image, ImageOps
from pix2pix_golden import masks_from

import i2i_core
from i2i_core.cli import cli
from i2i_core.errors import I2IError
from i2i_core.infer.export import export_component, export_onnx
from i2i_core.precision import Layout
from i2i_core.recipe import load_recipe, recipe_from_dict

REPO = Path(__file__).parents[2]
PHOTOS = REPO / "plugins" / "i2i_datasets" / "data" / "mini-photo2cartoon" / "trainA"
FP32 = Layout("fp32", False)
SIDE = 128  # pix2pix-unet128 takes multiples of 128
SMALL = {
    "method": "pix2pix",
    "data": {"load_size": SIDE, "crop_size": SIDE},
    "model": {
        "generator": {"name": "pix2pix-unet128", "ngf": 4},
        "discriminator": {"name": "patchgan", "ndf": 4, "norm": "batch"},
    },
}


def small(**tables) -> i2i_core.Recipe:
    values = json.loads(json.dumps(SMALL))
    for key, value in tables.items():
        node = values
        *parents, last = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return recipe_from_dict(values)


def build(recipe: i2i_core.Recipe, layout: Layout = FP32) -> Pix2Pix:
    torch.manual_seed(0)
    return recipe.method.from_recipe(recipe, torch.device("cpu"), layout)


def batch(seed: int, n: int = 1) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {domain: torch.rand(n, 3, SIDE, SIDE, generator=g) * 2 - 1 for domain in "AB"}


def paired_data(root: Path) -> Path:
    """``trainA``/``testA``: shipped photos at 136 px; ``trainB``/``testB``: the same photos posterized (pairs)."""
    photos = sorted(PHOTOS.glob("*.jpg"))[:5]
    for split, chosen in (("train", photos[:3]), ("test", photos[3:])):
        for domain in "AB":
            (root / f"{split}{domain}").mkdir(parents=True)
        for path in chosen:
            with Image.open(path) as image:
                photo = ImageOps.fit(image.convert("RGB"), (136, 136))
            photo.save(root / f"{split}A" / f"{path.stem}.png")
            ImageOps.posterize(photo, 2).save(root / f"{split}B" / f"{path.stem}.png")
    return root


@pytest.fixture
def paired_recipe(tmp_path):
    """``paired_recipe(**overrides)``: a tiny pix2pix recipe file on paired data, into its own run folder."""
    root, count = paired_data(tmp_path / "pairs"), [0]

    def make(**overrides) -> Path:
        count[0] += 1
        name = f"p2p-{count[0]}"
        values = {
            "name": name,
            "method": "pix2pix",
            "data": {"dataset": "paired-folder", "root": str(root), "load_size": 136, "crop_size": SIDE},
            "model": SMALL["model"],
            "train": {"steps": 4, "precision": "fp32", "device": "cpu", "seed": 0},
            "output": {
                "dir": str(tmp_path / name),
                "checkpoint_every": 0,
                "sample_every": 2,
                "log_every": 1,
                "num_samples": 2,
                "eval_every": 2,
            },
            "eval": {"metrics": ["flat"]},
        }
        for key, value in overrides.items():
            node = values
            *parents, last = key.split("__")
            for part in parents:
                node = node.setdefault(part, {})
            node[last] = value
        path = tmp_path / f"{name}.toml"
        path.write_text(tomli_w.dumps(values))
        return path

    return make


# -- recipes ----------------------------------------------------------------------------------------------------


def test_recipe_defaults_are_the_reference_ones():
    recipe = recipe_from_dict({"method": "pix2pix"})
    assert recipe.method is Pix2Pix
    assert (recipe["loss.gan.name"], recipe["loss.gan.weight"]) == ("bce", 1.0)  # the vanilla GAN loss
    assert (recipe["loss.l1.name"], recipe["loss.l1.weight"]) == ("l1", 100.0)  # lambda_L1
    assert (recipe["train.lr"], recipe["train.betas"], recipe["train.batch_size"]) == (2e-4, [0.5, 0.999], 1)
    assert (recipe["train.epochs"], recipe["train.decay_epochs"], recipe["train.decay"]) == (100, 100, "linear")
    assert (recipe["pix2pix.direction"], recipe["pix2pix.eval_mode"]) == ("AtoB", False)
    assert recipe["data.dataset"] == "paired-folder" and "pool_size" not in recipe["train"]
    with torch.device("meta"):
        networks, specs = Pix2Pix.build_networks(recipe)
    assert specs["G"] == ("generator", "pix2pix-unet256", {"eval_mode": False})
    assert specs["D"] == ("discriminator", "patchgan", {"in_channels": 6})
    G = networks["G"]
    assert G.size_multiple == 256 and sum(isinstance(m, torch.nn.Dropout) for m in G.modules()) == 3
    assert all(isinstance(m, torch.nn.BatchNorm2d) for m in G.modules() if "Norm" in type(m).__name__)


@pytest.mark.parametrize("name", ["pix2pix-reference", "pix2pix-quality"])
def test_recipe_files_load_and_build(name):
    recipe = load_recipe(REPO / "recipes" / f"{name}.toml")
    assert recipe["method"] == "pix2pix" and recipe.notes == []
    assert recipe["model.discriminator.norm"] == "batch" and recipe["model.discriminator.n_layers"] == 3
    assert recipe["model.generator.norm"] == "batch" and recipe["model.generator.dropout"]
    assert recipe["data.crop_size"] % int(recipe["model.generator.name"][-3:]) == 0
    recipe.check_networks()


def test_the_reference_recipe_is_the_reference_configuration():
    recipe = load_recipe(REPO / "recipes" / "pix2pix-reference.toml")
    defaults = recipe_from_dict({"method": "pix2pix"})
    for key in (
        "loss.gan.name",
        "loss.l1.weight",
        "train.lr",
        "train.epochs",
        "train.decay_epochs",
        "pix2pix.eval_mode",
    ):
        assert recipe[key] == defaults[key], key
    assert (recipe["data.dataset"], recipe["data.load_size"], recipe["data.crop_size"]) == ("aligned", 286, 256)
    assert recipe.component_options("model", "generator") == {"ngf": 64, "norm": "batch", "dropout": True}


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.l1.weight=-1", r"loss\.l1\.weight must be >= 0, got -1"),
        ("pix2pix.direction='CtoD'", r"pix2pix\.direction must be AtoB or BtoA, got 'CtoD'"),
        ("eval.direction='BtoA'", r"eval\.direction is 'BtoA' but pix2pix learns AtoB"),
        ("data.dataset='unpaired-folder'", r"data\.dataset is 'unpaired-folder', whose A and B images are not pairs"),
        ("model.discriminator.in_channels=3", r"model\.discriminator\.in_channels is set by the method"),
        ("model.generator.eval_mode=true", r"model\.generator\.eval_mode is set by the method from pix2pix\.eval_mode"),
        ("augment.policy='color,translation'", r"augment\.policy .* 'color' would mix the channels of a pair"),
        ("train.pool_size=10", r"unknown key 'train\.pool_size'\. It is a key of method 'cyclegan'"),
        ("loss.gan.name='l1'", r"loss 'l1' is a reconstruction loss, not a gan loss"),
    ],
)
def test_recipe_errors(override, message):
    with pytest.raises(I2IError, match=message):
        load_recipe(REPO / "recipes" / "pix2pix-quality.toml", [override])


def test_both_weights_zero_is_refused():
    with pytest.raises(I2IError, match="both 0: nothing would train the generator"):
        load_recipe(REPO / "recipes" / "pix2pix-quality.toml", ["loss.gan.weight=0", "loss.l1.weight=0"])


def test_components_without_the_options_are_refused_naming_them():
    with pytest.raises(I2IError, match=r"discriminator 'vanilla' cannot judge pix2pix's pairs.*no in_channels"):
        small(model__discriminator={"name": "vanilla", "ndf": 4}).check_networks()
    plain = small(model__generator={"name": "unet128", "ngf": 4, "norm": "batch", "dropout": True})
    with pytest.raises(I2IError, match=r"generator 'unet128' translates in eval mode only: set pix2pix\.eval_mode"):
        plain.check_networks()
    recipe = small(model__generator={"name": "unet128", "ngf": 4}, pix2pix={"eval_mode": True})
    assert build(recipe).network_specs["G"] == ("generator", "unet128", {"ngf": 4})


# -- the step ---------------------------------------------------------------------------------------------------


def test_the_discriminator_judges_pairs_and_the_step_reports_its_losses():
    method = build(small())
    seen: list[torch.Tensor] = []
    method.copies["D"].module.register_forward_pre_hook(lambda m, args: seen.append(args[0].detach().clone()))
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in method.networks.items()}
    data = batch(1)
    losses = method.train_step(data)
    assert list(losses) == list(LOSS_NAMES) and all(math.isfinite(v) for v in losses.values())
    assert losses["G"] == pytest.approx(losses["G_GAN"] + losses["G_L1"], rel=1e-6)
    assert losses["D"] == pytest.approx((losses["D_real"] + losses["D_fake"]) / 2, rel=1e-6)
    # D's step: (A, G(A)) then (A, B); G's step: (A, G(A)) again, against the updated D
    assert len(seen) == 3 and all(x.shape == (1, 6, SIDE, SIDE) for x in seen)
    assert all(torch.equal(x[:, :3], data["A"]) for x in seen)
    assert torch.equal(seen[1][:, 3:], data["B"]) and torch.equal(seen[0], seen[2])
    for name, net in method.networks.items():
        assert all(not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)), name
    images = method.sample_images(batch(2, n=2))
    assert set(images) == {"fake_B"} and images["fake_B"].shape == (2, 3, SIDE, SIDE)


def test_l1_pulls_the_output_to_the_paired_target():
    """With the GAN term off, a few steps on one pair bring G(A) closer to B."""
    method, data = build(small(loss__gan={"name": "bce", "weight": 0.0})), batch(3)
    first = [method.train_step(data)["G_L1"] for _ in range(5)]
    assert first[-1] < first[0] and method.train_step(data)["G_GAN"] == 0.0


def test_direction_BtoA_translates_B():
    recipe = small(pix2pix={"direction": "BtoA"}, eval={"direction": "BtoA"})
    method, data = build(recipe), batch(4)
    assert set(method.translations) == {"BtoA"} and method.sample_columns == ("real_B", "fake_A", "real_A")
    seen: list[torch.Tensor] = []
    method.copies["G"].module.register_forward_pre_hook(lambda m, args: seen.append(args[0]))
    method.train_step(data)
    assert torch.equal(seen[0], data["B"])
    assert set(method.sample_images(data)) == {"fake_A"}


def test_pretraining_trains_only_the_discriminator():
    """G makes its fakes as in training (its batch norms' running statistics move), its weights stay."""
    method = build(small())
    G = {k: v.clone() for k, v in method.G.named_parameters()}
    assert set(method.pretrain_step(batch(5))) == {"D_real", "D_fake", "D"}
    assert all(torch.equal(v, dict(method.G.named_parameters())[k]) for k, v in G.items())


def test_state_resumes_exactly():
    """Two steps straight equal one step, a save and load into a fresh method (the global RNG, which draws the
    dropout masks, restored as the engine restores it), and one more step."""
    straight = build(small())
    straight.train_step(batch(1))
    straight.train_step(batch(2))
    first = build(small())
    first.train_step(batch(1))
    rng = torch.get_rng_state()
    tensors, state = first.state_dict()
    json.dumps(state)
    assert {"opt_G.0.exp_avg", "opt_D.0.exp_avg"} <= set(tensors)
    resumed = build(small())
    for name, net in resumed.networks.items():
        net.load_state_dict(first.networks[name].state_dict())  # running statistics included
    resumed.load_state_dict(tensors, state)
    torch.set_rng_state(rng)
    resumed.train_step(batch(2))
    for name, net in straight.networks.items():
        for (key, a), b in zip(net.state_dict().items(), resumed.networks[name].state_dict().values(), strict=True):
            assert torch.equal(a, b), f"{name}.{key}"


def test_sample_images_draw_nothing_from_the_training_random_numbers():
    method = build(small())
    state = torch.get_rng_state()
    assert method.sample_images(batch(6))["fake_B"].shape == (1, 3, SIDE, SIDE)
    assert torch.equal(torch.get_rng_state(), state)
    assert method.G.training and all(m.track_running_stats for m in method.G.modules() if hasattr(m, "momentum"))


def test_bf16_step_is_close_to_fp32_with_fp32_master_weights():
    fp32, bf16 = build(small()), build(small(), Layout("bf16", True))
    with torch.random.fork_rng(devices=[]):
        a = fp32.train_step(batch(7))
    b = bf16.train_step(batch(7))
    for name in ("G_GAN", "G_L1", "D"):
        assert b[name] == pytest.approx(a[name], rel=5e-2, abs=5e-2), name
    for name, net in bf16.networks.items():
        assert all(p.dtype == torch.float32 for p in net.parameters()), name
        assert all(b.dtype != torch.bfloat16 for b in net.buffers()), name  # running statistics stay fp32


def test_distributed_data_parallel_step(tmp_path):
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        method, plain = build(small()), build(small())
        method.distribute()
        with torch.random.fork_rng(devices=[]):
            a = method.train_step(batch(8))
        b = plain.train_step(batch(8))
        for name in a:
            assert a[name] == pytest.approx(b[name], rel=1e-5, abs=1e-6), name
    finally:
        dist.destroy_process_group()


# -- the generator at test time ---------------------------------------------------------------------------------


def test_eval_mode_false_translates_as_in_training_without_touching_the_running_statistics():
    """In eval mode each image is normalised on its own statistics and dropout stays on: what training mode
    computes one image at a time; the running statistics stay as they were."""
    torch.manual_seed(0)
    net = i2i_core.create("generator", "pix2pix-unet128", ngf=4, eval_mode=False)
    x = torch.rand(2, 3, SIDE, SIDE, generator=torch.Generator().manual_seed(9)) * 2 - 1
    count = "model.model.1.model.2.num_batches_tracked"
    with torch.no_grad():
        net.train()(x[:1])  # running statistics away from where they start
        stats = {k: v.clone() for k, v in net.state_dict().items() if "running" in k or "batches" in k}
        net.eval()
        with masks_from(3) as masks:
            tested = net(x)
        assert len(masks.shapes) == 4 and all(shape[0] == 1 for shape in masks.shapes)  # one image at a time
        assert all(torch.equal(v, net.state_dict()[k]) for k, v in stats.items())  # not updated at test time
        assert not torch.equal(net(x), net(x))  # dropout on
        net.train()
        with masks_from(3):
            trained = torch.cat([net(x[:1]), net(x[1:])])
    torch.testing.assert_close(tested, trained, rtol=0, atol=0)
    assert net.state_dict()[count] == stats[count] + 2  # training mode counts batches again


def test_eval_mode_true_is_plain_eval_mode():
    torch.manual_seed(0)
    net = i2i_core.create("generator", "pix2pix-unet128", ngf=4, eval_mode=True)
    torch.manual_seed(0)
    plain = i2i_core.create("generator", "unet128", ngf=4, norm="batch", dropout=True)
    assert list(net.state_dict()) == list(plain.state_dict())
    plain.load_state_dict(net.state_dict())
    x = torch.rand(2, 3, SIDE, SIDE) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(net.eval()(x), plain.eval()(x), rtol=0, atol=0)
        torch.testing.assert_close(net(x), net(x), rtol=0, atol=0)


# -- through the engine and the command line --------------------------------------------------------------------


def test_the_engine_trains_resumes_exactly_evaluates_translates_and_exports(paired_recipe, monkeypatch, tmp_path):
    path = paired_recipe()
    straight = i2i_core.train(load_recipe(path), show_progress=False)
    interrupted = load_recipe(paired_recipe())
    assert train_interrupted(interrupted, monkeypatch, Pix2Pix, at=2).steps == 2
    resumed = i2i_core.train(interrupted, show_progress=False)
    assert resumed.steps == 4
    a, b = checkpoint_tensors(straight.checkpoint), checkpoint_tensors(resumed.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert any(k.endswith("running_mean") for k in a)  # batch norm's running statistics are checkpointed
    state = json.loads((resumed.checkpoint / "state.json").read_text())
    assert state["method"] == "pix2pix" and state["exports"] == {"AtoB": "G"}
    lines = [json.loads(line) for line in (resumed.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if "eval" in line] == [2, 4] and "flat" in lines[-1]["eval"]
    assert (resumed.run_dir / "samples" / "step_0000004.png").is_file()
    translator = i2i_core.load_translator(resumed.run_dir, device="cpu", precision="fp32")
    out = translator.translate(torch.zeros(3, SIDE, SIDE))
    assert out.shape == (3, SIDE, SIDE) and out.abs().max() <= 1


def test_exports_a_generator_translating_as_test_py_to_safetensors_and_one_in_eval_mode_to_onnx(tmp_path):
    torch.manual_seed(0)
    net = i2i_core.create("generator", "pix2pix-unet128", ngf=4, eval_mode=False)
    options = {"ngf": 4, "eval_mode": False}
    src = i2i_core.save_component(tmp_path / "G.safetensors", net, "generator", "pix2pix-unet128", options)
    shipped = export_component(src, tmp_path / "G16.safetensors")
    assert i2i_core.load_component(shipped).eval_mode is False
    with pytest.raises(
        I2IError, match=r"ONNX cannot check.*--arch pix2pix-unet128 --option ngf=4 --option eval_mode=true"
    ):
        export_onnx(src, tmp_path / "G.onnx", size=SIDE)
    assert not (tmp_path / "G.onnx").exists()
    evaluated = tmp_path / "G-eval.safetensors"
    args = ["import-weights", str(src), "-o", str(evaluated), "--from", "pix2pix-reference", "--arch", "unet128"]
    result = CliRunner().invoke(cli, [*args, "--option", "ngf=4", "--option", "eval_mode=true"])
    assert result.exit_code == 0, result.output
    assert "Wrote generator 'pix2pix-unet128'" in result.output
    exported = export_onnx(evaluated, tmp_path / "G.onnx", size=SIDE)
    assert exported.max_abs_diff is None or exported.max_abs_diff < 1e-4


def test_i2i_run_trains_on_paired_data_and_i2i_translate_and_eval_read_it(paired_recipe, tmp_path):
    path = paired_recipe(train__steps=2, output__eval_every=0, pix2pix={"eval_mode": True})
    runner = CliRunner()
    result = runner.invoke(cli, ["run", str(path), "--no-progress"])
    assert result.exit_code == 0, result.output
    run = tmp_path / "p2p-1"
    photos = tmp_path / "pairs" / "testA"
    result = runner.invoke(cli, ["translate", str(photos), "-c", str(run), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == sorted(p.name for p in photos.iterdir())
    result = runner.invoke(cli, ["eval", "-c", str(run), "--metric", "flat", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["scores"]["flat"] >= 0
