"""Training steps as CUDA graphs (:mod:`i2i_core.cuda_graphs`).

On any machine: when a run may capture its steps and the line that says why not; and that the graph-safe steps
(CycleGAN's and CUT's, their random choices on the device) read nothing on the host, so a capture cannot stop,
with a learning rate a capture reads. With a CUDA device: 20 replayed steps against eager ones, in fp32 and bf16,
and exact resume.
"""

from __future__ import annotations

import json

import pytest
import torch
from conftest import checkpoint_tensors, train_interrupted
from i2i_cartoon import Cartoon
from i2i_cut import FastCUT
from i2i_cyclegan import CycleGAN, ImagePool

import i2i_core
import i2i_core.method
from i2i_core.cuda_graphs import choose_graphs, host_syncs
from i2i_core.errors import I2IError
from i2i_core.precision import Layout
from i2i_core.recipe import recipe_from_dict

CUDA = torch.device("cuda")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
SMALL = {
    "data": {"load_size": 32, "crop_size": 32},
    "model": {"generator": {"name": "resnet6", "ngf": 8}, "discriminator": {"name": "patchgan", "ndf": 8}},
    "train": {"seed": 5, "pool_size": 3},
}


def small(method: str, **train) -> i2i_core.Recipe:
    values = json.loads(json.dumps(SMALL))
    if method != "cyclegan":
        del values["train"]["pool_size"]
    values["train"].update(train)
    return recipe_from_dict({"method": method, **values})


def batches(n: int, side: int = 32) -> list[dict[str, torch.Tensor]]:
    g = torch.Generator().manual_seed(11)
    return [{d: torch.rand(1, 3, side, side, generator=g) * 2 - 1 for d in "AB"} for _ in range(n)]


@pytest.mark.parametrize(
    ("method", "device", "precision", "augment", "world", "reason"),
    [
        (CycleGAN, "cpu", "fp32", False, 1, "CUDA graphs need a CUDA device, and this run trains on cpu"),
        (Cartoon, "cuda", "bf16", False, 1, "method Cartoon does not declare its step graph-safe"),
        (FastCUT, "cuda", "fp16", False, 1, "fp16's loss scaling decides on the host whether to step"),
        (CycleGAN, "cuda", "bf16", True, 1, "the discriminator augmentation adapts its probability on the host"),
        (CycleGAN, "cuda", "bf16", False, 2, "torchrun's gradient averaging (DistributedDataParallel)"),
    ],
)
def test_auto_falls_back_to_eager_steps_and_says_why(method, device, precision, augment, world, reason):
    graphs, line = choose_graphs("auto", method, torch.device(device), precision, augment, world)
    assert not graphs and line.startswith("steps run eagerly, not as CUDA graphs: ") and reason in line
    with pytest.raises(I2IError, match='train.cuda_graphs is "on", but ' + reason.split("(")[0]):
        choose_graphs("on", method, torch.device(device), precision, augment, world)


def test_auto_captures_on_cuda_and_off_turns_graphs_off():
    assert choose_graphs("auto", CycleGAN, CUDA, "bf16", False, 1) == (
        True,
        "each training step is replayed from one CUDA graph",
    )
    assert choose_graphs("auto", FastCUT, CUDA, "fp32", False, 1)[0]
    assert choose_graphs("off", CycleGAN, CUDA, "bf16", False, 1) == (
        False,
        'steps run eagerly: train.cuda_graphs = "off"',
    )
    assert small("cyclegan")["train.cuda_graphs"] == "off"  # until a GPU has measured them
    with pytest.raises(
        I2IError, match=r"train.cuda_graphs must be one of auto, on, off, got 'of'\. Did you mean 'off'\?"
    ):
        small("cyclegan", cuda_graphs="of")


def test_host_syncs_finds_reads_of_tensors_and_tensors_from_host_data():
    assert host_syncs(lambda x: x * 2 + torch.zeros(()), torch.ones(3)) == []
    assert host_syncs(lambda x: bool(x.sum() > 0), torch.ones(3)) == ["aten._local_scalar_dense.default"]
    assert host_syncs(lambda x: x + torch.tensor([1.0, 2.0, 3.0]), torch.ones(3)) == ["aten.lift_fresh.default"]
    assert host_syncs(lambda x: x[x > 0], torch.ones(3)) == ["aten.index.Tensor"]


@pytest.fixture
def graph_mode(monkeypatch):
    """Methods built here take their graph-mode code paths (device draws, capturable optimisers) on the CPU,
    stepping eagerly."""
    monkeypatch.setattr(i2i_core.method, "choose_graphs", lambda *args: (True, "forced for the test"))
    monkeypatch.setattr(i2i_core.method, "StepGraphs", lambda method: None)


@pytest.mark.parametrize("name", ["cyclegan", "fastcut", "cut"])
def test_graph_safe_steps_read_nothing_on_the_host(graph_mode, name):
    recipe = small(name)
    torch.manual_seed(0)
    method = recipe.method.from_recipe(recipe, torch.device("cpu"), Layout("bf16", True))
    assert method.graphs and method.graph_safe
    data = batches(6)
    steps = 0
    while method.graph_phase() is None:  # CycleGAN: its pools fill eagerly
        method.run_step(data[steps])
        steps += 1
    assert steps == (3 if name == "cyclegan" else 0)
    lr = method.optimizers["G"].param_groups[0]["lr"]
    method.set_lr(1e-4)
    assert method.optimizers["G"].param_groups[0]["lr"] is lr and lr.item() == pytest.approx(1e-4)
    method.run_step(data[steps])  # the eager warm-up step of the phase
    with method.capturing():
        found = host_syncs(method.train_step, data[steps + 1])
        losses = method.train_step(data[steps + 2])
    assert found == []
    assert all(isinstance(v, torch.Tensor) and v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    assert not method._capturing
    _, state = method.state_dict()  # a tensor learning rate is saved as a number
    assert json.loads(json.dumps(state))["opt_G.param_groups"][0]["lr"] == pytest.approx(1e-4)


def test_a_full_device_pool_returns_its_input_or_swaps_it_for_a_stored_image():
    pool = ImagePool(3, on_device=True)
    for i in range(3):
        image = torch.full((1, 2, 1, 1), float(i))
        assert torch.equal(pool.query(image), image)  # filling: stored and returned
    assert pool.full
    torch.manual_seed(0)
    swaps = 0
    for i in range(3, 43):
        before = sorted(float(img[0, 0, 0, 0]) for img in pool.images)
        out = float(pool.query(torch.full((1, 2, 1, 1), float(i)))[0, 0, 0, 0])
        after = sorted(float(img[0, 0, 0, 0]) for img in pool.images)
        if out == i:  # its input back, the pool unchanged
            assert after == before
        else:  # a stored image back, the input stored in its place
            assert out in before and after == sorted([*(x for x in before if x != out), float(i)])
            swaps += 1
    assert 10 < swaps < 30  # half the time
    tensors, state = pool.state_dict()
    assert state["count"] == 3 and torch.equal(torch.cat([tensors[str(i)] for i in range(3)]), torch.cat(pool.images))


# -- with a CUDA device ----------------------------------------------------------------------------------------


def _run(recipe: i2i_core.Recipe, data: list, graphs: bool) -> tuple[list[dict[str, float]], i2i_core.method.Method]:
    """Losses of one step per batch: replayed from graphs, or (``graphs`` false) the same graph-mode step run
    eagerly. Both draw from the device's generator, seeded alike."""
    method = i2i_core.build_trainer(recipe, CUDA)
    assert method.graphs, method.graphs_note
    losses = [(method.run_step if graphs else method.train_step)(b) for b in data]
    return losses, method


def _close(a: list[dict[str, float]], b: list[dict[str, float]], rtol: float, atol: float) -> None:
    for step, (x, y) in enumerate(zip(a, b, strict=True)):
        for name in x:
            assert y[name] == pytest.approx(x[name], rel=rtol, abs=atol), f"step {step + 1}: {name}"


@needs_cuda
@pytest.mark.parametrize("name", ["cyclegan", "fastcut"])
def test_twenty_replayed_steps_equal_eager_ones(name):
    data = batches(20, side=64)
    recipe = small(name, precision="fp32", cuda_graphs="on")
    eager, _ = _run(recipe, data, graphs=False)
    replayed, method = _run(recipe, data, graphs=True)
    assert list(method.step_graphs.graphs) == [("train", (1, 3, 64, 64), (1, 3, 64, 64))]
    _close(eager, replayed, rtol=1e-3, atol=1e-5)
    bf16, _ = _run(small(name, precision="bf16", cuda_graphs="on"), data, graphs=True)
    _close(eager, bf16, rtol=0.1, atol=0.02)  # bf16's noise


@needs_cuda
def test_replayed_steps_resume_exactly(tmp_path, monkeypatch):
    values = {**SMALL, "output": {"dir": str(tmp_path / "run"), "checkpoint_every": 6, "sample_every": 0}}
    values["train"] = {**SMALL["train"], "steps": 14, "precision": "bf16", "device": "cuda", "cuda_graphs": "on"}
    values["data"] = {**SMALL["data"], "root": "builtin:mini-photo2cartoon"}
    whole = recipe_from_dict(
        {"method": "cyclegan", **values, "output": {**values["output"], "dir": str(tmp_path / "w")}}
    )
    done = i2i_core.train(whole, show_progress=False)
    recipe = recipe_from_dict({"method": "cyclegan", **values})
    assert train_interrupted(recipe, monkeypatch, CycleGAN, at=9).interrupted
    resumed = i2i_core.train(recipe, show_progress=False)
    a, b = checkpoint_tensors(done.checkpoint), checkpoint_tensors(resumed.checkpoint)
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-3, atol=1e-5), key
