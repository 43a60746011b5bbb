"""The ``cartoon`` method and its representations: known answers, what each discriminator is shown, exact resume,
training and translation through the engine."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from conftest import checkpoint_tensors, train_interrupted
from i2i_cartoon import (
    Cartoon,
    edge_mask,
    edge_smoothed,
    quantize_colours,
    random_gray,
    superpixel_flatten,
    surface,
)
from i2i_cartoon.method import LOSS_NAMES
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

import i2i_core
from i2i_core.errors import I2IError
from i2i_core.precision import Layout
from i2i_core.recipe import recipe_from_dict

PHOTO = Path(__file__).parents[2] / "plugins/i2i_datasets/data/mini-photo2cartoon/testA/sklearn-china.jpg"
SMALL = {
    "method": "cartoon",
    "data": {"load_size": 32, "crop_size": 32},
    "model": {"generator": {"name": "resnet6", "ngf": 4, "upsample": "antialias"}, "discriminator": {"ndf": 4}},
    "cartoon": {"segments": 16},
}


def photo(side: int = 64) -> torch.Tensor:
    image = pil_to_tensor(Image.open(PHOTO).convert("RGB")).float()[None] / 127.5 - 1
    return F.interpolate(image, size=(side, side), mode="area")


def small(**cartoon) -> Cartoon:
    values = json.loads(json.dumps(SMALL))
    values["cartoon"].update(cartoon)
    torch.manual_seed(0)
    return recipe_from_dict(values).method.from_recipe(
        recipe_from_dict(values), torch.device("cpu"), Layout("fp32", False)
    )


def batch(seed: int) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    return {domain: torch.rand(1, 3, 32, 32, generator=generator) * 2 - 1 for domain in "AB"}


# -- representations ------------------------------------------------------------------------------------------


def test_surface_flattens_texture_and_keeps_a_flat_image():
    flat = torch.full((1, 3, 32, 32), 0.3)
    torch.testing.assert_close(surface(flat), flat)
    x = photo()
    detail = (x - F.avg_pool2d(x, 3, 1, 1, count_include_pad=False)).abs().mean()
    assert (surface(x) - F.avg_pool2d(surface(x), 3, 1, 1, count_include_pad=False)).abs().mean() < 0.5 * detail


def test_random_gray_is_a_weighted_mean_of_the_channels_on_all_three():
    x = photo()
    gray = random_gray(x, torch.tensor([0.3, 0.6, 0.1]))
    torch.testing.assert_close(gray[:, 0], 0.3 * x[:, 0] + 0.6 * x[:, 1] + 0.1 * x[:, 2])
    assert torch.equal(gray[:, 0], gray[:, 2])


def test_edge_smoothing_blurs_only_near_edges():
    x = -torch.ones(1, 3, 32, 32)
    x[..., 16:] = 1  # a sharp vertical edge between columns 15 and 16
    mask = edge_mask(x)
    assert mask[0, 0, 0].nonzero().flatten().tolist() == [13, 14, 15, 16, 17, 18]  # the edge, dilated by 5
    y = edge_smoothed(x)
    assert torch.equal(y[..., :13], x[..., :13]) and torch.equal(y[..., 19:], x[..., 19:])
    assert -1 < y[0, 0, 0, 15] < 0 < y[0, 0, 0, 16] < 1


def test_superpixels_paint_each_region_its_mean_colour():
    x = -torch.ones(1, 3, 32, 32)
    x[:, 0, :, 16:] = 1  # red right half
    assert torch.equal(superpixel_flatten(x, segments=4), x)
    noisy = x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    flat = superpixel_flatten(noisy, segments=4)
    assert (flat - x).abs().max() < 0.1 and len(flat[0, 1].unique()) <= 4  # the noise averaged away
    real = superpixel_flatten(photo(64), segments=50)
    assert len(torch.unique(real.flatten(2), dim=2)[0].T) <= 50


def test_colour_quantisation_keeps_a_small_palette_and_leaves_one_alone():
    x = photo(64)
    quantized = quantize_colours(x, 8)
    assert len(torch.unique(quantized.flatten(2), dim=2)[0].T) <= 8
    assert (quantized - x).abs().mean() < 0.15  # the nearest of 8 colours fitted to this photo
    four = quantize_colours(x, 4)
    torch.testing.assert_close(quantize_colours(four, 4), four)  # already on 4 colours: unchanged


# -- the method -----------------------------------------------------------------------------------------------


def test_each_discriminator_is_shown_its_representation_and_the_extra_fakes(monkeypatch):
    method = small()
    seen: dict[str, list[torch.Tensor]] = {"D_surface": [], "D_texture": []}
    for name in seen:
        method.copies[name].module.register_forward_pre_hook(lambda m, args, name=name: seen[name].append(args[0]))
    losses = method.train_step(batch(1))
    assert list(losses) == list(LOSS_NAMES) and all(math.isfinite(v) for v in losses.values())
    # D step: real, its translation and one extra fake each; G step: the translation once more
    assert len(seen["D_surface"]) == len(seen["D_texture"]) == 4
    texture_inputs = seen["D_texture"]
    assert all(torch.equal(x[:, 0], x[:, 1]) for x in texture_inputs)  # grayscale
    assert not torch.equal(seen["D_surface"][0][:, 0], seen["D_surface"][0][:, 1])  # colour
    plain = small(gray_fakes=False, edge_fakes=False)
    counts = {"D_surface": 0, "D_texture": 0}
    for name in counts:
        plain.copies[name].module.register_forward_pre_hook(
            lambda m, a, name=name: counts.__setitem__(name, counts[name] + 1)
        )
    plain.train_step(batch(1))
    assert counts == {"D_surface": 3, "D_texture": 3}


def test_a_drawing_generator_is_judged_drawn_and_compared_with_the_photo_before_drawing(monkeypatch):
    """With outlines and posterization on the generator, the discriminators see the drawn output and the losses
    that compare with the photo see the network's colours before the ink and the rounding."""
    values = json.loads(json.dumps(SMALL))
    values["model"]["generator"].update(residual=True, outline_strength=0.8, outline_threshold=0.02, posterize_levels=6)
    torch.manual_seed(0)
    recipe = recipe_from_dict(values)
    method = recipe.method.from_recipe(recipe, torch.device("cpu"), Layout("fp32", False))
    real = {"A": photo(32), "B": photo(32).flip(-1)}
    with torch.no_grad():
        colours = method.networks["G"](real["A"], draw=False)  # the identity: residual, untrained
        drawn = method.networks["G"](real["A"])
    assert not torch.allclose(colours, drawn, atol=0.05)  # the drawing changes the image
    seen = {}
    for role in ("content", "tv"):
        loss = method.losses[role]
        monkeypatch.setattr(
            method.losses[role],
            "forward",
            lambda x, y, role=role, f=loss.forward: (seen.__setitem__(role, x.detach()), f(x, y))[1],
        )
    fakes = []
    method.copies["D_surface"].module.register_forward_pre_hook(lambda m, args: fakes.append(args[0]))
    method.train_step(real)
    torch.testing.assert_close(seen["content"], colours, atol=1e-5, rtol=0)
    torch.testing.assert_close(seen["tv"], colours, atol=1e-5, rtol=0)
    torch.testing.assert_close(fakes[1], surface(drawn, 5, 0.2), atol=1e-5, rtol=0)  # after the real cartoons


def test_the_warm_up_trains_only_the_generator_to_reproduce_its_input():
    method = small(warmup_steps=1)
    D = {k: v.clone() for k, v in method.networks["D_surface"].state_dict().items()}
    first = method.train_step(batch(2))
    assert set(first) == {"warmup"} and first["warmup"] > 0
    assert all(torch.equal(v, method.networks["D_surface"].state_dict()[k]) for k, v in D.items())
    assert set(method.train_step(batch(3))) == set(LOSS_NAMES)


def test_state_resumes_exactly():
    """Three steps straight equal one warm-up step and a step, a save and load into a fresh method, one more."""
    straight = small(warmup_steps=1)
    for step in (1, 2, 3):
        straight.train_step(batch(step))
    first = small(warmup_steps=1)
    for step in (1, 2):
        first.train_step(batch(step))
    tensors, state = first.state_dict()
    json.dumps(state)
    assert state["steps"] == 2 and {"gray_draws", "opt_G.0.exp_avg", "opt_D.0.exp_avg"} <= set(tensors)
    resumed = small(warmup_steps=1)
    for name, net in resumed.networks.items():
        net.load_state_dict(first.networks[name].state_dict())
    resumed.load_state_dict(tensors, state)
    resumed.train_step(batch(3))
    for name, net in straight.networks.items():
        for (key, a), b in zip(net.state_dict().items(), resumed.networks[name].state_dict().values(), strict=True):
            assert torch.equal(a, b), f"{name}.{key}"


def test_bad_values_are_refused_by_key():
    for key, value, message in (
        ("cartoon.surface_weight", -1.0, "cartoon.surface_weight must be >= 0"),
        ("cartoon.segments", 1, "cartoon.segments must be >= 2"),
        ("loss.structure.weight", -0.5, "loss.structure.weight must be >= 0"),
        ("cartoon.colours", 1, "cartoon.colours must be 0 .* or >= 2, got 1"),
    ):
        values = json.loads(json.dumps(SMALL))
        section, name = key.rsplit(".", 1)
        node = values
        for part in section.split("."):
            node = node.setdefault(part, {})
        node[name] = value
        with pytest.raises(I2IError, match=message):
            recipe_from_dict(values)


def test_the_engine_trains_resumes_exactly_evaluates_and_translates(i2i_tiny_recipe, monkeypatch, tmp_path):
    overrides = {
        "method": "cartoon",
        "train.steps": 4,
        "output.checkpoint_every": 0,
        "cartoon.segments": 16,
        "model.generator.guided_radius": 1,
    }
    straight = i2i_core.train(i2i_tiny_recipe(overrides=overrides), show_progress=False)
    interrupted = i2i_tiny_recipe(overrides=overrides)
    assert train_interrupted(interrupted, monkeypatch, Cartoon, at=2).steps == 2
    resumed = i2i_core.train(interrupted, show_progress=False)
    assert resumed.steps == 4
    a, b = checkpoint_tensors(straight.checkpoint), checkpoint_tensors(resumed.checkpoint)
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    state = json.loads((resumed.checkpoint / "state.json").read_text())
    assert state["method"] == "cartoon" and state["exports"] == {"AtoB": "G"}
    translator = i2i_core.load_translator(resumed.run_dir)
    out = translator.translate(torch.zeros(3, 32, 32))
    assert out.shape == (3, 32, 32) and out.abs().max() <= 1
    assert (resumed.run_dir / "samples" / "step_0000004.png").is_file()


# -- the cartoon's losses (i2i_losses) ------------------------------------------------------------------------


def test_lowpass_l1_ignores_texture_and_sees_colour():
    x = photo()
    texture = x + 0.2 * torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(32, 32)  # zero mean over 2 x 2 blocks
    content = i2i_core.create("loss", "lowpass-l1", factor=2)
    assert content(x, texture) < 1e-6 < float(torch.nn.functional.l1_loss(x, texture))
    assert float(content(x, x + 0.1)) == pytest.approx(0.1, abs=1e-6)


def test_yuv_colour_separates_luma_from_chroma():
    colour = i2i_core.create("loss", "yuv")
    x = photo()
    brighter = x + 0.2  # luma only: +0.1 on a 0-1 scale, chroma unchanged
    assert float(colour(x, brighter)) == pytest.approx(0.1, abs=1e-5)
    swapped = x[:, [2, 1, 0]]  # red and blue exchanged: mostly chroma
    chroma_only = i2i_core.create("loss", "yuv", luma_weight=0.0)
    assert float(chroma_only(x, swapped)) > 0 and float(chroma_only(x, brighter)) == pytest.approx(0.0, abs=1e-6)


def test_total_variation_of_a_checkerboard_and_a_flat_image():
    tv = i2i_core.create("loss", "tv")
    assert float(tv(torch.zeros(1, 3, 8, 8), None)) == 0
    board = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(4, 4).expand(1, 3, 8, 8)
    assert float(tv(board, None)) == 4.0  # every neighbour differs by 2, both directions
