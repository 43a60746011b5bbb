"""Differentiable augmentation of the discriminators' inputs (``augment`` recipe table): the ops' known answers,
their gradients and random draws, the adaptive probability, the table's checks, and CycleGAN and FastCUT
training with it."""

from __future__ import annotations

import doctest
import json
import math
from pathlib import Path

import pytest
import torch
from conftest import checkpoint_tensors, train_interrupted
from i2i_cut import CUT
from i2i_cut.method import LOSS_NAMES as CUT_LOSS_NAMES
from i2i_cyclegan import LOSS_NAMES, CycleGAN

import i2i_core
import i2i_core.augment as augment_module
from i2i_core.augment import (
    AUGMENT_DEFAULTS,
    OPS,
    DiscriminatorAugment,
    adjust_contrast,
    adjust_saturation,
    check_augment,
    color,
    cut_out,
    cutout,
    diff_augment,
    gan_threshold,
    parse_policy,
    translate,
    translation,
)
from i2i_core.precision import Layout
from i2i_core.recipe import recipe_from_dict

FULL = "color,translation,cutout"


pytestmark = pytest.mark.usefixtures("one_thread")


def images(*shape: int, seed: int = 0) -> torch.Tensor:
    """Images in [-1, 1] with no pixel equal to 0 (so that zero-filled pixels are told apart)."""
    x = torch.rand(*shape, generator=torch.Generator().manual_seed(seed)) * 1.8 - 0.9
    return torch.where(x.abs() < 1e-3, torch.full_like(x, 0.5), x)


def test_the_module_examples_run():
    assert doctest.testmod(augment_module).failed == 0


# -- ops -------------------------------------------------------------------------------------------------------


def test_translate_moves_every_pixel_by_the_shift_and_zero_fills():
    x = torch.arange(1.0, 1 + 2 * 6 * 8).view(1, 2, 6, 8)
    out = translate(x, torch.tensor([2]), torch.tensor([-3]))  # 2 down, 3 left
    expected = torch.zeros_like(x)
    expected[:, :, 2:, :5] = x[:, :, :4, 3:]
    assert torch.equal(out, expected)
    assert torch.equal(translate(x, torch.tensor([0]), torch.tensor([0])), x)


def test_translation_draws_one_shift_per_image_within_an_eighth(monkeypatch):
    x = images(6, 3, 16, 24)
    out = translation(x, torch.Generator().manual_seed(1))
    shifts = []
    for b in range(len(x)):
        found = [
            (dy, dx)
            for dy in range(-2, 3)  # 16 / 8
            for dx in range(-3, 4)  # 24 / 8
            if torch.equal(out[b : b + 1], translate(x[b : b + 1], torch.tensor([dy]), torch.tensor([dx])))
        ]
        assert len(found) == 1, b
        shifts.append(found[0])
    assert len(set(shifts)) > 1
    # with the draws fixed, the op is translate() of them
    fixed = iter([torch.tensor([1, -2, 0, 2, -1, 0]), torch.tensor([3, 0, -3, 1, -1, 2])])
    monkeypatch.setattr(augment_module, "_integers", lambda x, low, high, generator: next(fixed))
    out = translation(x)
    assert torch.equal(out, translate(x, torch.tensor([1, -2, 0, 2, -1, 0]), torch.tensor([3, 0, -3, 1, -1, 2])))
    assert torch.equal(out[0, :, 1:, 3:], x[0, :, :-1, :-3]) and not out[0, :, :1].any() and not out[0, :, :, :3].any()


def test_cut_out_zeroes_exactly_the_rectangle():
    x = images(2, 3, 8, 8)
    out = cut_out(x, torch.tensor([0, 3]), torch.tensor([4, 1]), 4, 4)
    expected = x.clone()
    expected[0, :, 0:4, 4:8] = 0
    expected[1, :, 3:7, 1:5] = 0
    assert torch.equal(out, expected)


@pytest.mark.parametrize(("height", "width"), [(16, 16), (16, 24), (9, 9)])
def test_cutout_zeroes_a_half_side_rectangle_inside_each_image(height, width):
    x = images(20, 3, height, width)
    out = cutout(x, torch.Generator().manual_seed(2))
    h, w = round(height / 2), round(width / 2)
    corners = set()
    for b in range(len(x)):
        zero = out[b] == 0
        assert torch.equal(zero[0], zero[1]) and torch.equal(zero[0], zero[2])  # every channel alike
        rows, cols = zero[0].any(1).nonzero().flatten(), zero[0].any(0).nonzero().flatten()
        assert len(rows) == h and len(cols) == w and int(zero[0].sum()) == h * w  # one full h x w rectangle
        assert rows[-1] - rows[0] == h - 1 and cols[-1] - cols[0] == w - 1
        assert torch.equal(out[b][~zero], x[b][~zero])  # the rest untouched
        corners.add((int(rows[0]), int(cols[0])))
    assert len(corners) > 1


def test_color_keeps_the_shape_and_each_adjustment_does_what_it_says(monkeypatch):
    x = images(4, 3, 8, 8)
    assert color(x).shape == x.shape
    grey = adjust_saturation(x, torch.zeros(4, 1, 1, 1))
    assert torch.allclose(grey, x.mean(1, keepdim=True).expand_as(x))
    flat = adjust_contrast(x, torch.zeros(4, 1, 1, 1))
    assert torch.allclose(flat, x.mean((1, 2, 3), keepdim=True).expand_as(x))
    torch.testing.assert_close(adjust_contrast(x, torch.full((4, 1, 1, 1), 2.0)).std((1, 2, 3)), 2 * x.std((1, 2, 3)))

    # brightness alone (saturation and contrast factors 1): a constant added to each image, in [-0.5, 0.5]
    real_uniform = augment_module._uniform

    def brightness_only(x, low, high, generator):
        return real_uniform(x, low, high, generator) if (low, high) == (-0.5, 0.5) else torch.ones(len(x), 1, 1, 1)

    monkeypatch.setattr(augment_module, "_uniform", brightness_only)
    offsets = (color(x) - x).flatten(1)
    torch.testing.assert_close(offsets, offsets[:, :1].expand_as(offsets))
    assert offsets.abs().max() <= 0.5 and len(set(offsets[:, 0].tolist())) == 4


def test_color_draws_its_factors_in_their_ranges(monkeypatch):
    drawn = []
    real_uniform = augment_module._uniform

    def recording(x, low, high, generator):
        value = real_uniform(x, low, high, generator)
        drawn.append((low, high, value))
        return value

    monkeypatch.setattr(augment_module, "_uniform", recording)
    color(images(64, 3, 4, 4))
    assert [(low, high) for low, high, _ in drawn] == [(-0.5, 0.5), (0.0, 2.0), (0.5, 1.5)]
    for low, high, value in drawn:
        assert value.shape == (64, 1, 1, 1) and low <= value.min() and value.max() <= high
        assert value.max() - value.min() > (high - low) / 2


def test_p_zero_and_an_empty_policy_are_the_identity_and_draw_nothing():
    x = images(3, 3, 8, 8)
    state = torch.get_rng_state()
    assert diff_augment(x, FULL, p=0.0) is x
    assert diff_augment(x, "", p=1.0) is x
    assert DiscriminatorAugment("")(x) is x
    assert DiscriminatorAugment(FULL, probability=0.0)(x) is x
    assert DiscriminatorAugment(FULL, ada_target=0.6)(x) is x  # ADA starts at p = 0
    assert torch.equal(torch.get_rng_state(), state)
    assert not torch.equal(diff_augment(x, FULL, p=1.0), x)
    assert not torch.equal(torch.get_rng_state(), state)


def test_each_op_applies_to_each_image_with_probability_p():
    x = images(400, 1, 8, 8)
    out = diff_augment(x, "cutout", p=0.25, generator=torch.Generator().manual_seed(3))
    changed = (out != x).flatten(1).any(1).float().mean().item()
    assert 0.17 < changed < 0.33
    # a seeded generator repeats the draws; the global generator is used by default
    g = torch.Generator().manual_seed(4)
    a = diff_augment(x, FULL, p=0.5, generator=g)
    assert torch.equal(a, diff_augment(x, FULL, p=0.5, generator=g.manual_seed(4)))
    torch.manual_seed(4)
    assert torch.equal(a, diff_augment(x, FULL, p=0.5))


@pytest.mark.parametrize("policy", [*OPS, FULL])
def test_gradients_flow_through_every_op(policy):
    x = images(4, 3, 16, 16).requires_grad_()
    weights = images(4, 3, 16, 16, seed=1)
    (diff_augment(x, policy, p=1.0) * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    if policy == "cutout":  # the cut pixels get no gradient, the others all of it
        assert 0 < (x.grad == 0).float().mean() < 1


def test_low_precision_inputs_keep_their_dtype_and_layout_through_the_controller():
    x = images(2, 3, 16, 16).to(torch.bfloat16).contiguous(memory_format=torch.channels_last).requires_grad_()
    out = DiscriminatorAugment(FULL)(x)
    assert out.dtype == torch.bfloat16 and out.shape == x.shape
    out.float().sum().backward()
    assert x.grad.dtype == torch.bfloat16 and torch.isfinite(x.grad.float()).all()


def test_parse_policy():
    assert parse_policy(" color , cutout ") == ("color", "cutout") and parse_policy("") == ()
    with pytest.raises(ValueError, match=r"unknown augmentation 'colour'\. Did you mean 'color'"):
        parse_policy("colour")


# -- the adaptive probability ----------------------------------------------------------------------------------


def ada(**options) -> DiscriminatorAugment:
    return DiscriminatorAugment(FULL, **{"ada_target": 0.6, "ada_interval": 4, "ada_steps": 500, **options})


def feed(augment: DiscriminatorAugment, value: float, steps: int, batch_size: int = 2) -> list[float]:
    """``steps`` steps whose discriminator outputs on reals are all ``value``; the p after each."""
    ps = []
    for _ in range(steps):
        augment.observe(torch.full((batch_size, 1, 3, 3), value))
        augment.step(batch_size)
        ps.append(augment.p)
    return ps


def test_ada_raises_p_while_the_discriminator_is_sure_of_reals_and_lowers_it_otherwise():
    augment = ada(threshold=0.5)  # lsgan
    assert augment.p == 0.0
    step = 8 / 500  # 4 steps of 2 images
    assert feed(augment, 0.9, 8) == [0.0, 0.0, 0.0, step, step, step, step, 2 * step]
    assert feed(augment, 0.1, 4) == [2 * step] * 3 + [step]
    assert feed(augment, 0.1, 8)[-1] == 0.0  # clamped at 0
    assert feed(ada(ada_steps=5), 0.9, 8)[-1] == 1.0  # clamped at 1


def test_ada_compares_the_mean_sign_with_the_target():
    augment = ada(ada_interval=1, ada_steps=10, ada_target=0.5)
    outputs = torch.tensor([3.0, 2.0, 1.0, -1.0])  # bce logits: threshold 0, r = (3 - 1) / 4 = 0.5: no move
    augment.observe(outputs)
    augment.step(1)
    assert augment.p == 0.0 and augment.ada_r is None
    augment.observe(torch.tensor([3.0, 2.0, 1.0, 0.5, -1.0]))  # r = 0.6
    assert augment.ada_r == pytest.approx(0.6)
    augment.step(1)
    assert augment.p == 0.1
    augment.observe(torch.tensor([0.5, -2.0]))  # r = 0 < 0.5
    augment.step(1)
    assert augment.p == 0.0


def test_ada_threshold_comes_from_the_gan_loss():
    assert gan_threshold(i2i_core.create("loss", "lsgan")) == 0.5
    assert gan_threshold(i2i_core.create("loss", "bce")) == 0.0
    assert gan_threshold(lambda prediction, target_is_real: prediction.mean()) == 0.0  # declares none


def test_ada_state_round_trips_exactly_through_json():
    augment = ada(threshold=0.5)
    feed(augment, 0.9, 5)
    augment.observe(torch.tensor([0.2, 0.7, 0.8]))  # mid-interval
    state = json.loads(json.dumps(augment.state_dict()))
    restored = ada(threshold=0.5)
    restored.load_state_dict(state)
    assert restored.state_dict() == augment.state_dict() and restored.p == augment.p == 8 / 500
    assert feed(restored, 0.9, 6) == feed(augment, 0.9, 6)
    with pytest.raises(ValueError, match=r"in \[0, 1\]"):
        restored.load_state_dict({**state, "p": 1.5})


def test_without_ada_p_is_the_probability_and_never_moves():
    augment = DiscriminatorAugment(FULL, probability=0.3)
    assert feed(augment, 0.9, 8) == [0.3] * 8
    augment.load_state_dict({"p": 0.9})  # a checkpoint's p does not replace the recipe's probability
    assert augment.p == 0.3


# -- the recipe table ----------------------------------------------------------------------------------------


def failing(key: str, message: str) -> None:
    raise ValueError(f"{key} {message}")


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"policy": "color,cutot"}, r"augment\.policy has an unknown op 'cutot'\. Did you mean 'cutout'\?"),
        ({"policy": "translate"}, r"augment\.policy .*'translate'\. Did you mean 'translation'\?"),
        ({"policy": "color,"}, r"augment\.policy has an empty op"),
        ({"probability": 1.5}, r"augment\.probability must be in \[0, 1\], got 1\.5"),
        ({"probability": -0.1}, r"augment\.probability must be in \[0, 1\]"),
        ({"ada_target": 1.0}, r"augment\.ada_target must be in \[0, 1\)"),
        ({"ada_target": -0.5}, r"augment\.ada_target must be in \[0, 1\)"),
        ({"ada_interval": 0}, r"augment\.ada_interval must be an integer >= 1, got 0"),
        ({"ada_steps": 0}, r"augment\.ada_steps must be an integer >= 1, got 0"),
    ],
)
def test_check_augment_refuses_bad_values_naming_the_key(table, match):
    with pytest.raises(ValueError, match=match):
        check_augment({**AUGMENT_DEFAULTS, **table}, failing)
    with pytest.raises(ValueError, match=match):  # and so does the controller
        DiscriminatorAugment.from_recipe(table)


def test_check_augment_accepts_good_tables():
    for table in ({}, {"policy": FULL, "probability": 0.0, "ada_target": 0.6}, {"policy": " color ", "ada_steps": 1}):
        check_augment({**AUGMENT_DEFAULTS, **table}, failing)
    assert not DiscriminatorAugment.from_recipe(None).enabled
    assert DiscriminatorAugment.from_recipe({"policy": FULL, "ada_target": 0.6}).adaptive


# -- the methods ---------------------------------------------------------------------------------------------

SMALL = {
    "data": {"load_size": 32, "crop_size": 32},
    "model": {"generator": {"name": "resnet6", "ngf": 4}, "discriminator": {"name": "patchgan", "ndf": 4}},
}
METHOD_LOSSES = {"cyclegan": LOSS_NAMES, "fastcut": CUT_LOSS_NAMES}


def small(method: str, augment: dict | None = None) -> i2i_core.Recipe:
    values = json.loads(json.dumps({"method": method, **SMALL}))
    if method == "cyclegan":
        values["train"] = {"pool_size": 2}
    if augment is not None:
        values["augment"] = augment
    return recipe_from_dict(values)


FP32 = Layout("fp32", False)


def build(recipe: i2i_core.Recipe, layout: Layout = FP32) -> CycleGAN | CUT:
    torch.manual_seed(0)
    return recipe.method.from_recipe(recipe, torch.device("cpu"), layout)


def batch(seed: int, n: int = 1) -> dict[str, torch.Tensor]:
    return {domain: images(n, 3, 32, 32, seed=seed * 2 + i) for i, domain in enumerate("AB")}


def weights(method) -> dict[str, torch.Tensor]:
    return {f"{n}.{k}": v.clone() for n, net in method.networks.items() for k, v in net.state_dict().items()}


@pytest.mark.parametrize("method", ["cyclegan", "fastcut"])
def test_an_empty_policy_changes_nothing(method):
    plain = build(small(method))
    off = build(small(method, {"policy": "", "probability": 0.5, "ada_target": 0.6}))
    assert off.augment is None
    torch.manual_seed(1)
    a = plain.train_step(batch(1))
    state = torch.get_rng_state()
    torch.manual_seed(1)
    b = off.train_step(batch(1))
    assert a == b and list(b) == list(METHOD_LOSSES[method])
    assert torch.equal(torch.get_rng_state(), state)
    wa, wb = weights(plain), weights(off)
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    assert "augment" not in off.state_dict()[1]


@pytest.mark.parametrize("method", ["cyclegan", "fastcut"])
def test_every_discriminator_input_is_augmented_and_the_generator_gradient_goes_through(method, monkeypatch):
    trainer = build(small(method, {"policy": FULL, "probability": 1.0}))
    augmented, seen = [], []
    real_call = DiscriminatorAugment.__call__

    def recording(self, x):
        out = real_call(self, x)
        augmented.append(out)
        return out

    monkeypatch.setattr(DiscriminatorAugment, "__call__", recording)
    discriminators = [c.module for name, c in trainer.copies.items() if name.startswith("D")]
    for D in discriminators:
        D.register_forward_pre_hook(lambda module, args: seen.append(args[0]))
    losses = trainer.train_step(batch(2))
    # CycleGAN: each D once in G's step, twice in its own; FastCUT's D: once in G's step, twice in its own
    assert len(seen) == 3 * len(discriminators)
    assert all(any(x is out for out in augmented) for x in seen)
    assert sum(x.requires_grad for x in seen) == len(discriminators)  # the fakes of G's step carry G's graph
    assert losses["aug_p"] == 1.0 and all(math.isfinite(v) for v in losses.values())
    assert list(losses) == [*METHOD_LOSSES[method], "aug_p"]
    unaugmented = build(small(method)).train_step(batch(2))
    assert unaugmented["G_A" if method == "cyclegan" else "G_GAN"] != losses["G_A" if method == "cyclegan" else "G_GAN"]


@pytest.mark.parametrize("method", ["cyclegan", "fastcut"])
def test_ada_state_resumes_exactly(method):
    """Three steps straight equal one, a save and load into a fresh method (inside an interval), and two more."""
    recipe = small(method, {"policy": FULL, "ada_target": 0.6, "ada_interval": 2, "ada_steps": 4})

    def made():
        trainer = build(recipe)
        trainer.augment.threshold = -1e9  # every output counts as sure of a real: p rises by 2 / 4 per interval
        trainer.augment.p = 0.25  # and starts where each op draws its coins
        return trainer

    straight = made()
    torch.manual_seed(5)
    assert [straight.train_step(batch(step))["aug_p"] for step in range(3)] == [0.25, 0.25, 0.75]

    first = made()
    torch.manual_seed(5)
    first.train_step(batch(0))
    rng, (tensors, state) = torch.get_rng_state(), first.state_dict()
    state = json.loads(json.dumps(state))
    saved = state["augment"]
    assert (saved["p"], saved["steps"], saved["images"]) == (0.25, 1, 1)
    assert saved["count"] > 0 and saved["sign_sum"] == saved["count"]

    resumed = made()
    for name, net in resumed.networks.items():
        net.load_state_dict(first.networks[name].state_dict())
    resumed.load_state_dict(tensors, state)
    assert resumed.augment.state_dict() == first.augment.state_dict()
    torch.set_rng_state(rng)
    assert [resumed.train_step(batch(step))["aug_p"] for step in (1, 2)] == [0.25, 0.75]
    a, b = weights(straight), weights(resumed)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert resumed.augment.state_dict() == straight.augment.state_dict()


@pytest.mark.parametrize("method", ["cyclegan", "fastcut"])
def test_a_checkpoint_from_before_augmentation_loads(method):
    old = build(small(method))
    tensors, state = old.state_dict()
    trainer = build(small(method, {"policy": FULL, "ada_target": 0.6}))
    trainer.load_state_dict(tensors, state)
    assert trainer.augment.p == 0.0 and trainer.augment.count == 0


def test_bf16_compute_copies_train_with_augmentation():
    trainer = build(small("fastcut", {"policy": FULL}), Layout("bf16", True))
    losses = trainer.train_step(batch(6))
    assert losses["aug_p"] == 1.0 and all(math.isfinite(v) for v in losses.values())


def test_distributed_processes_move_p_together(tmp_path):
    """Under a (one-process) process group the interval's sums go through all_reduce: p moves as without it."""
    import torch.distributed as dist

    recipe = small("cyclegan", {"policy": FULL, "ada_target": 0.6, "ada_interval": 1, "ada_steps": 4})
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'pg'}", rank=0, world_size=1)
    try:
        method, plain = build(recipe), build(recipe)
        method.distribute()
        assert method.augment.distributed and not plain.augment.distributed
        method.augment.p = plain.augment.p = 0.5
        torch.manual_seed(1)
        a = method.train_step(batch(1))
        torch.manual_seed(1)
        b = plain.train_step(batch(1))
        for name in a:
            assert a[name] == pytest.approx(b[name], rel=1e-5, abs=1e-6), name
        assert method.augment.p == plain.augment.p != 0.5
    finally:
        dist.destroy_process_group()


def _rank_of_two(rank: int, folder: str) -> None:
    """One of two processes: its own discriminator outputs, the interval's sums over both."""
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"file://{folder}/pg", rank=rank, world_size=2)
    try:
        augment = DiscriminatorAugment(FULL, ada_target=0.6, ada_interval=2, ada_steps=10)
        augment.distributed = True
        # rank 0 is sure of its reals, rank 1 half sure: r = (2 * 4 + 0) / (2 * 4 + 2 * 2) = 2/3 over both
        outputs = torch.ones(4) if rank == 0 else torch.tensor([1.0, -1.0])
        for _ in range(2):
            augment.observe(outputs)
            augment.step(2)
        Path(folder, f"rank{rank}.json").write_text(json.dumps(augment.state_dict()))
    finally:
        dist.destroy_process_group()


def test_two_processes_move_p_on_their_summed_outputs(tmp_path):
    torch.multiprocessing.spawn(_rank_of_two, args=(str(tmp_path),), nprocs=2)
    states = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in (0, 1)]
    # both rise by the 8 images of both processes over ada_steps (rank 1 alone, at r = 0, would fall)
    assert states[0] == states[1] == {"p": 8 / 10, "sign_sum": 0.0, "count": 0, "images": 0, "steps": 0}


@pytest.mark.parametrize("method", ["cyclegan", "fastcut"])
def test_tiny_runs_train_with_adaptive_augmentation_and_log_p(i2i_tiny_recipe, method):
    overrides = {"method": method, "augment.policy": FULL, "augment.ada_target": 0.6, "augment.ada_interval": 1}
    recipe = i2i_tiny_recipe(overrides=overrides)
    result = i2i_core.train(recipe, show_progress=False)
    assert result.steps == 2
    lines = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    logged = [line for line in lines if "aug_p" in line]
    assert [line["step"] for line in logged] == [1, 2] and logged[0]["aug_p"] == 0.0
    for line in logged:
        assert all(math.isfinite(line[name]) for name in METHOD_LOSSES[method])
    assert "aug_p" in result.metrics
    state = json.loads((result.checkpoint / "state.json").read_text())
    # one image per step, ada_steps = 500: p moves by 1/500 after each step
    assert logged[1]["aug_p"] in (0.0, 1 / 500)
    assert round((state["augment"]["p"] - logged[1]["aug_p"]) * 500) in (-1, 0, 1)


def test_an_interrupted_augmented_run_resumes_exactly(i2i_tiny_recipe, monkeypatch):
    """Through the engine: the probability, the interval's sums and the draws resume where they stopped (the
    method-level test above covers FastCUT's state)."""
    monkeypatch.setattr("i2i_core.method.gan_threshold", lambda loss: -1e9)  # sure of every real: p rises
    overrides = {
        "train.steps": 4,
        "output.checkpoint_every": 0,
        "augment.policy": FULL,
        "augment.ada_target": 0.6,
        "augment.ada_interval": 2,
        "augment.ada_steps": 4,
    }
    straight = i2i_core.train(i2i_tiny_recipe(overrides=overrides), show_progress=False)
    interrupted = i2i_tiny_recipe(overrides=overrides)
    # stopped in the first step of the second interval
    assert train_interrupted(interrupted, monkeypatch, CycleGAN, at=3).steps == 3
    resumed = i2i_core.train(interrupted, show_progress=False)
    assert resumed.steps == 4
    for run in (straight, resumed):
        logged = [json.loads(line) for line in (run.run_dir / "metrics.jsonl").read_text().splitlines()]
        assert [line["aug_p"] for line in logged if "aug_p" in line] == [0.0, 0.0, 0.5, 0.5]
    a, b = (checkpoint_tensors(run.checkpoint) for run in (straight, resumed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    states = [json.loads((run.checkpoint / "state.json").read_text())["augment"] for run in (straight, resumed)]
    assert states[0] == states[1] and states[0]["p"] == 1.0
