"""The ``cut`` and ``fastcut`` methods in i2i: recipes, the generator feature contract, state and exact resume,
bf16, DistributedDataParallel and a run through the engine."""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import train_interrupted
from i2i_cut import CUT, FastCUT
from i2i_cut.method import LOSS_NAMES
from safetensors.torch import load_file
from torch import nn

import i2i_core
from i2i_core import hookimpl
from i2i_core.errors import I2IError
from i2i_core.precision import Layout
from i2i_core.recipe import load_recipe, recipe_from_dict

RECIPES = Path(__file__).parents[2] / "recipes"
FP32 = Layout("fp32", False)
SMALL = {
    "data": {"load_size": 32, "crop_size": 32},
    "model": {"generator": {"name": "resnet6", "ngf": 4}, "discriminator": {"name": "patchgan", "ndf": 4}},
}


def small(method: str = "cut", **tables) -> i2i_core.Recipe:
    values = json.loads(json.dumps(SMALL))
    for key, value in tables.items():
        node = values
        *parents, last = key.split("__")
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    return recipe_from_dict({"method": method, **values})


def build(recipe: i2i_core.Recipe, layout: Layout = FP32) -> CUT:
    torch.manual_seed(0)
    return recipe.method.from_recipe(recipe, torch.device("cpu"), layout)


def batch(seed: int, n: int = 1, side: int = 32) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return {domain: torch.rand(n, 3, side, side, generator=g) * 2 - 1 for domain in "AB"}


def test_recipe_defaults_are_the_reference_ones():
    cut, fast = recipe_from_dict({"method": "cut"}), recipe_from_dict({"method": "fastcut"})
    assert cut.method is CUT and fast.method is FastCUT
    assert (cut["loss.nce.weight"], cut["nce.idt"], cut["nce.flip_equivariance"]) == (1.0, True, False)
    assert (fast["loss.nce.weight"], fast["nce.idt"], fast["nce.flip_equivariance"]) == (10.0, False, True)
    assert (cut["train.epochs"], cut["train.decay_epochs"], fast["train.epochs"], fast["train.decay_epochs"]) == (
        200,
        200,
        150,
        50,
    )
    for recipe in (cut, fast):
        assert recipe["nce.num_patches"] == 256 and recipe["loss.gan.name"] == "lsgan"
        assert recipe["model.head.name"] == "patch-mlp" and recipe["loss.nce.name"] == "patchnce"
        assert "pool_size" not in recipe["train"]


@pytest.mark.parametrize("mode", ["cut", "fastcut"])
def test_recipe_files_are_the_reference_configuration(mode):
    recipe = load_recipe(RECIPES / f"photo2anime-{mode}.toml")
    assert recipe["method"] == mode and recipe.notes == []
    assert recipe.component_options("model", "generator") == {
        "ngf": 64,
        "norm": "instance",
        "antialias": True,
        "antialias_up": True,
    }
    assert recipe["model.discriminator.antialias"] and recipe["nce.layers"] == [0, 4, 8, 12, 16]
    assert (recipe["data.load_size"], recipe["data.crop_size"], recipe["loss.nce.temperature"]) == (286, 256, 0.07)
    defaults = recipe_from_dict({"method": mode})
    for key in ("loss.nce.weight", "nce.idt", "nce.flip_equivariance", "train.epochs", "train.decay_epochs"):
        assert recipe[key] == defaults[key], key
    recipe.check_networks()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("loss.nce.weight=-1", r"loss\.nce\.weight must be >= 0, got -1"),
        ("loss.gan.weight=-0.5", r"loss\.gan\.weight must be >= 0"),
        ("nce.num_patches=0", r"nce\.num_patches must be >= 1, got 0"),
        ("nce.layers=[0, -4]", r"nce\.layers must be feature layer numbers"),
        ("nce.layers=[4, 4]", r"nce\.layers names a layer twice"),
        ("model.head.channels=[3]", r"model\.head\.channels is set by the method"),
        ("init.type='kaiming'", r"init\.type must be one of xavier, component"),
        ("loss.nce.name='l1'", r"loss 'l1' is a reconstruction loss, not a contrastive loss"),
        ("train.pool_size=10", r"unknown key 'train\.pool_size'\. It is a key of method 'cyclegan'"),
    ],
)
def test_recipe_errors(override, message):
    with pytest.raises(I2IError, match=message):
        load_recipe(RECIPES / "photo2anime-cut.toml", [override])


def test_both_weights_zero_is_refused():
    with pytest.raises(I2IError, match="both 0: nothing would train the generator"):
        load_recipe(RECIPES / "photo2anime-fastcut.toml", ["loss.gan.weight=0", "loss.nce.weight=0"])


def test_networks_specs_and_feature_widths():
    method = build(small(nce__layers=[0, 4, 12]))
    assert set(method.networks) == {"G", "D", "F"}
    assert method.network_specs["F"] == ("head", "patch-mlp", {"channels": [3, 8, 16]})
    assert method.network_specs["G"] == ("generator", "resnet6", {"ngf": 4})
    assert [method.F.mlp_0[0].in_features, method.F.mlp_2[0].in_features] == [3, 16]
    assert build(small()).layers == [0, 4, 7, 10, 14]  # the generator's own feature_layers
    with pytest.raises(
        I2IError, match=r"nce\.layers: generator 'resnet6': feature layers must be indices.*got \[0, 99\]"
    ):
        build(small(nce__layers=[0, 99]))


def test_xavier_initialisation_keeps_the_blur_buffers():
    recipe = small(model__generator={"name": "resnet6", "ngf": 4, "antialias": True, "antialias_up": True})
    method = build(recipe)
    assert method.G.model[7].filt.sum().item() == 8  # one [1,2,1]^2/16 kernel per channel
    for net in method.networks.values():
        weights = [m.weight for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear)]
        assert all(m.bias is None or not m.bias.any() for m in net.modules() if isinstance(m, nn.Conv2d | nn.Linear))
        fan = [(w.shape[0] + w.shape[1]) * w[0, 0].numel() for w in weights]
        stds = [w.std().item() / (0.02 * (2 / f) ** 0.5) for w, f in zip(weights, fan, strict=True) if w.numel() > 400]
        assert all(0.8 < s < 1.2 for s in stds), stds
    kept = build(small(init__type="component"))
    torch.manual_seed(0)
    assert torch.equal(kept.G.model[1].weight, i2i_core.create("generator", "resnet6", ngf=4).model[1].weight)


class PlainGenerator(nn.Module):
    """A generator without the feature contract."""

    size_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.conv(x))


class PlainPlugin:
    @hookimpl
    def register_generators(self, register):
        register("plain", PlainGenerator)


def test_a_generator_without_features_is_refused_naming_it(i2i_plugin):
    i2i_plugin(PlainPlugin(), "plain-plugin")
    recipe = small(model__generator={"name": "plain"})
    with pytest.raises(I2IError, match=r"generator 'plain' cannot train with CUT: .*no feature_layers.*docs/cut\.md"):
        build(recipe)


def test_trains_with_a_unet_generator():
    recipe = small(
        model__generator={"name": "unet128", "ngf": 2}, data={"load_size": 128, "crop_size": 128}, nce__num_patches=16
    )
    method = build(recipe)
    assert method.layers == [0, 1, 2, 3, 4] and method.network_specs["F"][2]["channels"] == [3, 2, 4, 8, 16]
    losses = method.train_step(batch(0, side=128))
    assert set(losses) == set(LOSS_NAMES) and all(math.isfinite(v) for v in losses.values())


def test_step_order_and_reported_losses():
    method = build(small())
    before = {name: [p.detach().clone() for p in net.parameters()] for name, net in method.networks.items()}
    losses = method.train_step(batch(1, n=2))
    assert list(losses) == list(LOSS_NAMES)
    assert losses["G"] == pytest.approx(losses["G_GAN"] + (losses["NCE"] + losses["NCE_Y"]) / 2, rel=1e-6)
    assert losses["D"] == pytest.approx((losses["D_real"] + losses["D_fake"]) / 2, rel=1e-6)
    for name, net in method.networks.items():
        assert all(not torch.equal(a, b) for a, b in zip(before[name], net.parameters(), strict=True)), name
    fast = build(small("fastcut"))
    losses = fast.train_step(batch(1))
    assert losses["NCE_Y"] == 0.0 and losses["G"] == pytest.approx(losses["G_GAN"] + losses["NCE"], rel=1e-6)
    images = fast.sample_images(batch(2, n=2))
    assert set(images) == set(CUT.sample_columns) - {"real_A", "real_B"}
    assert all(v.shape == (2, 3, 32, 32) and v.dtype == torch.float32 for v in images.values())


def test_pretraining_trains_only_the_discriminator():
    method = build(small())
    G, F = (dict(net.state_dict()) for net in (method.G, method.F))
    G, F = ({k: v.clone() for k, v in s.items()} for s in (G, F))
    losses = method.pretrain_step(batch(3))
    assert set(losses) == {"D_real", "D_fake", "D"}
    assert all(torch.equal(v, method.G.state_dict()[k]) for k, v in G.items())
    assert all(torch.equal(v, method.F.state_dict()[k]) for k, v in F.items())


@pytest.mark.parametrize("mode", ["cut", "fastcut"])
def test_state_resumes_exactly(mode):
    """Two steps straight equal one step, a save and load into a fresh method, and one more step."""
    straight = build(small(mode))
    for step in (1, 2):
        straight.train_step(batch(step))
    first = build(small(mode))
    first.train_step(batch(1))
    tensors, state = first.state_dict()
    json.dumps(state)
    assert {"draws", "opt_G.0.exp_avg", "opt_D.0.exp_avg", "opt_F.0.exp_avg"} <= set(tensors)
    resumed = build(small(mode))
    resumed.draws.seed(12345)  # the saved draw state replaces it
    for name, net in resumed.networks.items():
        net.load_state_dict(first.networks[name].state_dict())
    resumed.load_state_dict(tensors, state)
    resumed.train_step(batch(2))
    for name, net in straight.networks.items():
        for (key, a), b in zip(net.state_dict().items(), resumed.networks[name].state_dict().values(), strict=True):
            assert torch.equal(a, b), f"{name}.{key}"


def test_reseed_gives_each_process_its_draws():
    method = build(small("fastcut"))
    method.reseed(0, rank=0, step=0)
    rank0 = method.draws.permutation(50)
    method.reseed(0, rank=1, step=0)
    assert not torch.equal(rank0, method.draws.permutation(50))
    method.reseed(0, rank=0, step=0)
    assert torch.equal(rank0, method.draws.permutation(50))


def test_bf16_step_is_close_to_fp32_with_fp32_master_weights():
    recipe = small(model__generator={"name": "resnet6", "ngf": 4, "antialias": True, "antialias_up": True})
    fp32, bf16 = build(recipe), build(recipe, Layout("bf16", True))
    a, b = fp32.train_step(batch(4)), bf16.train_step(batch(4))
    for name in ("G_GAN", "NCE", "NCE_Y", "D"):
        assert b[name] == pytest.approx(a[name], rel=5e-2, abs=5e-2), name
    for name, net in bf16.networks.items():
        assert all(p.dtype == torch.float32 for p in net.parameters()), name
        assert bf16.copies[name].module is not net


def test_distributed_data_parallel_step(tmp_path):
    """Under a (one-process) process group, both generator passes and the head run through DDP."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        method, plain = build(small()), build(small())
        method.distribute()
        a, b = method.train_step(batch(5)), plain.train_step(batch(5))
        for name in a:
            assert a[name] == pytest.approx(b[name], rel=1e-5, abs=1e-6), name
        for name, net in method.networks.items():
            for x, y in zip(net.parameters(), plain.networks[name].parameters(), strict=True):
                torch.testing.assert_close(x, y, atol=1e-6, rtol=1e-5)
    finally:
        dist.destroy_process_group()


def _weights(checkpoint: Path) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v for n in "GDF" for k, v in load_file(checkpoint / f"{n}.safetensors").items()}


def test_engine_run_is_interrupted_and_resumes_exactly(i2i_tiny_recipe, monkeypatch, tmp_path):
    overrides = {"method": "fastcut", "train.steps": 4, "output.checkpoint_every": 0}
    straight = i2i_core.train(i2i_tiny_recipe(overrides=overrides), show_progress=False)
    interrupted = i2i_tiny_recipe(overrides=overrides)
    first = train_interrupted(interrupted, monkeypatch, FastCUT, at=2)
    assert first.interrupted and first.steps == 2
    resumed = i2i_core.train(interrupted, show_progress=False)
    assert resumed.steps == 4
    a, b = _weights(straight.checkpoint), _weights(resumed.checkpoint)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[key], b[key]) for key in a)
    state = json.loads((resumed.checkpoint / "state.json").read_text())
    assert state["method"] == "fastcut" and state["exports"] == {"AtoB": "G"}
    head = i2i_core.load_component(resumed.checkpoint / "F.safetensors")  # rebuilds from its recorded widths
    assert head.channels == (3, 16, 32, 32, 32)


def test_the_documented_feature_contract_trains(i2i_plugin):
    """docs/cut.md's example generator, registered by a plugin, trains with CUT."""
    text = (Path(__file__).parents[2] / "docs" / "cut.md").read_text()
    (code,) = re.findall(r"^```python\n(# the feature contract.*?)^```$", text, re.S | re.M)
    namespace: dict = {}
    exec(code, namespace)

    class Plugin:
        @hookimpl
        def register_generators(self, register):
            register("tiny", namespace["TinyGenerator"], size_multiple=2)

    i2i_plugin(Plugin(), "tiny-plugin")
    method = build(small(model__generator={"name": "tiny", "width": 8}))
    assert method.layers == [0, 1, 2] and method.network_specs["F"][2]["channels"] == [3, 8, 8]
    losses = method.train_step(batch(6))
    assert all(math.isfinite(v) for v in losses.values())


@pytest.mark.slow
def test_two_processes_train_and_the_run_resumes_on_one(i2i_tiny_recipe, tmp_path):
    """``i2i run --nproc 2``: both generator passes and the head through DistributedDataParallel, gradients
    averaged over two processes (gloo)."""
    recipe = i2i_tiny_recipe(overrides={"method": "cut", "train.steps": 2, "output.checkpoint_every": 0})
    path = tmp_path / "cut.toml"
    path.write_text(recipe.to_toml())
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "i2i_core", "run", str(path), "--nproc", "2", "--no-progress"]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    state = json.loads((Path(recipe["output.dir"]) / "checkpoints" / "step_0000002" / "state.json").read_text())
    assert state["world_size"] == 2 and state["method"] == "cut"
    with pytest.warns(UserWarning, match="recipe differs"):
        resumed = i2i_core.train(load_recipe(path, ["train.steps=3"]), show_progress=False)
    assert resumed.steps == 3
