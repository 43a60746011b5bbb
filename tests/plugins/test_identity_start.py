"""Generators built with ``residual=True`` start as the identity, keep it through re-initialisation, and train."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from i2i_cut.init import xavier_init
from PIL import Image
from torch import nn

import i2i_core
from i2i_core.checkpoint import load_component, read_metadata, save_component
from i2i_core.layers import init_reference_weights, restore_identity_init
from i2i_core.precision import Layout
from i2i_core.recipe import recipe_from_dict
from i2i_core.testing import check_generator

PHOTOS = Path(__file__).resolve().parents[2] / "plugins/i2i_datasets/data/mini-photo2cartoon/trainA"
EPS = 1e-3
#: name, small options, image side
GENERATORS = [
    ("resnet9", {"ngf": 8}, 32),
    ("resnet6", {"ngf": 8}, 64),
    ("resnet6", {"ngf": 8, "antialias": True, "antialias_up": True}, 32),
    ("unet128", {"ngf": 8}, 128),
]
IDS = ["resnet9", "resnet6", "resnet6-antialias", "unet128"]


def photo(side: int) -> torch.Tensor:
    """The first shipped photo, centre-cropped to a square, resized to ``side``, as (1, 3, side, side) in [-1, 1]."""
    image = Image.open(sorted(PHOTOS.glob("*.jpg"))[0]).convert("RGB")
    w, h = image.size
    s = min(w, h)
    image = image.crop(((w - s) // 2, (h - s) // 2, (w - s) // 2 + s, (h - s) // 2 + s))
    image = image.resize((side, side), Image.BICUBIC)
    x = torch.from_numpy(np.asarray(image, dtype=np.float32).copy()).permute(2, 0, 1)[None]
    return x / 127.5 - 1


def build(name: str, seed: int = 0, **options) -> nn.Module:
    torch.manual_seed(seed)
    return i2i_core.create("generator", name, **options)


def assert_identity(net: nn.Module, x: torch.Tensor) -> None:
    with torch.no_grad():
        y = net(x)
    assert y.shape == x.shape
    assert (y - x).abs().max().item() <= EPS + 1e-6
    torch.testing.assert_close(y, x.clamp(-1 + EPS, 1 - EPS), atol=1e-5, rtol=0)


@pytest.mark.parametrize(("name", "options", "side"), GENERATORS, ids=IDS)
def test_starts_as_the_identity_also_after_reinitialisation(name, options, side):
    x = photo(side)
    assert x.min() < -0.5 and x.max() > 0.8 and x.std() > 0.2  # a real image
    x[..., 0, :2] = torch.tensor([-1.0, 1.0])  # and both ends of the range, where the clamp shows
    net = build(name, **options, residual=True)
    assert not net.head.weight.any() and not net.head.bias.any()
    for mode in (net.train, net.eval):
        mode()
        assert_identity(net, x)
    first = next(net.parameters())
    before = first.clone()
    assert_identity(xavier_init(net), x)  # CUT's re-initialisation keeps the zero head ...
    assert not torch.equal(first, before)  # ... while it re-draws the other weights
    assert_identity(init_reference_weights(net), x)  # ... and so does the reference one
    # without the option, the same output convolution gets random weights and the output is no identity
    plain = xavier_init(build(name, **options))
    assert plain.head.weight.any()
    with torch.no_grad():
        assert (plain(x) - x).abs().max() > 0.1


def test_cut_recipe_with_xavier_init_starts_at_the_identity():
    recipe = recipe_from_dict(
        {
            "method": "cut",
            "data": {"load_size": 32, "crop_size": 32},
            "model": {
                "generator": {"name": "resnet6", "ngf": 4, "residual": True},
                "discriminator": {"name": "patchgan", "ndf": 4},
            },
        }
    )
    assert recipe["init.type"] == "xavier"
    torch.manual_seed(0)
    method = recipe.method.from_recipe(recipe, torch.device("cpu"), Layout("fp32", False))
    assert_identity(method.G, photo(32))


@pytest.mark.parametrize(("name", "options", "side"), GENERATORS, ids=IDS)
def test_gradients_reach_the_head_then_every_layer_and_a_step_changes_the_output(name, options, side):
    x = photo(side)
    target = -x  # any change will do
    net = build(name, **options, residual=True).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)

    def step() -> None:
        optimiser.zero_grad()
        nn.functional.l1_loss(net(x), target).backward()
        optimiser.step()

    step()
    assert net.head.weight.grad.abs().sum() > 0 and net.head.bias.grad.abs().sum() > 0
    # every parameter has a finite gradient; behind the zero head those of the first step are zero
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())
    with torch.no_grad():
        changed = net(x)
    assert (changed - x.clamp(-1 + EPS, 1 - EPS)).abs().max() > 1e-4
    first = next(p for p in net.parameters())
    step()  # the head is no longer zero: the gradient flows back to the first layer
    assert first.grad.abs().sum() > 0


@pytest.mark.parametrize(("name", "options", "side"), GENERATORS, ids=IDS)
def test_without_the_option_nothing_changes(name, options, side):
    x = photo(side)
    default, plain = build(name, **options), build(name, **options, residual=False)
    assert not plain.residual
    residual = build(name, **options, residual=True)
    default_state, plain_state, residual_state = default.state_dict(), plain.state_dict(), residual.state_dict()
    prefix = next(n for n, m in residual.named_modules() if m is residual.head)
    head = {f"{prefix}.weight", f"{prefix}.bias"}
    assert list(default_state) == list(plain_state) == list(residual_state)  # same layout, same keys
    for key, value in default_state.items():
        assert torch.equal(value, plain_state[key]), key
        if key not in head:
            assert torch.equal(value, residual_state[key]), key  # everything but the head initialises as usual
    # same seed, same random stream after building (the zero head draws nothing)
    build(name, seed=1, **options)
    after_plain = torch.rand(3)
    build(name, seed=1, **options, residual=True)
    assert torch.equal(torch.rand(3), after_plain)
    for net in (default, plain):
        net.eval()
    with torch.no_grad():
        expected = default.model(x)  # the forward before the option: the layers in order
        assert torch.equal(plain(x), expected) and torch.equal(default(x), expected)


@pytest.mark.parametrize(("name", "options", "side"), GENERATORS, ids=IDS)
def test_checkpoint_round_trip_keeps_the_option(tmp_path, name, options, side):
    x = photo(side)
    saved_options = {**options, "residual": True}
    net = build(name, **saved_options).train()
    optimiser = torch.optim.Adam(net.parameters(), lr=1e-3)
    for _ in range(2):  # train a little so the head is not zero
        optimiser.zero_grad()
        nn.functional.l1_loss(net(x), -x).backward()
        optimiser.step()
    net.eval()
    path = save_component(tmp_path / "G.safetensors", net, "generator", name, saved_options)
    assert '"residual": true' in read_metadata(path)["options"]
    loaded = load_component(path)
    assert loaded.residual and loaded.head.weight.any()  # loading restores the trained head, not the zero one
    with torch.no_grad():
        expected = net(x)
        assert torch.equal(loaded(x), expected)
        assert (expected - x).abs().max() > 1e-4
    # the weights alone, in a generator without the option, compute something else
    plain = build(name, **options).eval()
    plain.load_state_dict(net.state_dict())
    with torch.no_grad():
        assert not torch.allclose(plain(x), expected)


@pytest.mark.parametrize(
    ("name", "options"), [("resnet6", {"ngf": 8}), ("resnet6", {"ngf": 8, "antialias": True}), ("unet128", {"ngf": 8})]
)
def test_residual_generators_meet_the_generator_contract(name, options):
    """Forward, backward, bf16 channels-last (atanh runs in float32) and the save_component round trip."""
    check_generator(name, **options, residual=True)


def test_feature_contract_is_kept():
    x = photo(32)
    residual, plain = build("resnet6", ngf=8, residual=True), build("resnet6", ngf=8)
    assert residual.feature_layers == plain.feature_layers
    layers = list(residual.feature_layers)
    assert residual.feature_channels(layers) == plain.feature_channels(layers)
    with torch.no_grad():
        ours, theirs = residual.features(x, layers), plain.features(x, layers)
        for a, b in zip(ours, theirs, strict=True):
            assert torch.equal(a, b)  # the encoder is the same network with the same weights
        last = len(residual.model) - 1
        assert torch.equal(residual.features(x, [last])[0], residual(x))  # the last layer is the output
    unet = build("unet128", ngf=8, residual=True)
    assert unet.feature_channels([0, 1, 2]) == [3, 8, 16]
    with torch.no_grad():
        assert torch.equal(unet.features(photo(128), [0])[0], photo(128))


def test_restore_identity_init_calls_every_reset_identity():
    calls = []

    class Marked(nn.Conv2d):
        def reset_identity(self) -> None:
            calls.append(self)
            nn.init.zeros_(self.weight)

    net = nn.Sequential(nn.Conv2d(3, 3, 1), nn.Sequential(Marked(3, 3, 1)))
    xavier_init(net)
    assert calls == [net[1][0]] and not net[1][0].weight.any() and net[0].weight.any()
    assert restore_identity_init(nn.Linear(2, 2)).weight.any()  # nothing to restore: untouched
