"""One suite run over every registered generator and discriminator, as timm tests every model."""

from __future__ import annotations

import pytest
import torch

import i2i_core


def _small(component: i2i_core.Component) -> dict:
    options = component.options()
    return {k: v for k, v in {"ngf": 8, "ndf": 8}.items() if k in options}


def _build(component):
    torch.manual_seed(0)
    return component.create(**_small(component))


GENERATORS = [c.name for c in i2i_core.list_components("generator")]
DISCRIMINATORS = [c.name for c in i2i_core.list_components("discriminator")]


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_contract(name):
    component = i2i_core.get_component("generator", name)
    net = _build(component)
    m = net.size_multiple
    assert isinstance(m, int) and m >= 1
    assert component.metadata.get("size_multiple", m) == m
    side = m * max(1, 32 // m)  # the smallest multiple of at least 32 pixels
    x = torch.rand(2, 3, side, 2 * side) * 2 - 1
    y = net(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1
    y.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_rejects_sizes_off_its_multiple(name):
    net = _build(i2i_core.get_component("generator", name))
    m = net.size_multiple
    with pytest.raises(ValueError, match=f"multiples of {m}"):
        net(torch.zeros(1, 3, m + 2, m))


@pytest.mark.parametrize("name", DISCRIMINATORS)
def test_discriminator_contract(name):
    net = _build(i2i_core.get_component("discriminator", name))
    for size in (64, 96):
        logits = net(torch.rand(2, 3, size, size) * 2 - 1)
        assert logits.shape[0] == 2 and logits.is_floating_point()
    logits.mean().backward()
    assert all(p.grad is not None for p in net.parameters())
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        net(torch.zeros(1, 4, 64, 64))


@pytest.mark.parametrize("name", GENERATORS + DISCRIMINATORS)
def test_state_dict_round_trip(name, tmp_path):
    kind = "generator" if name in GENERATORS else "discriminator"
    component = i2i_core.get_component(kind, name)
    net = _build(component)
    path = i2i_core.save_component(tmp_path / f"{name}.safetensors", net, kind, name, _small(component))
    loaded = i2i_core.load_component(path)
    for (k, a), (k2, b) in zip(net.state_dict().items(), loaded.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)
    assert not loaded.training
