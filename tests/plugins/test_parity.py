"""First-party networks and losses compute exactly what the reference CycleGAN computes (golden vectors)."""

from __future__ import annotations

import pytest
import torch
from conftest import golden_tensors, portable_state_dict

import i2i_core

# golden record -> (kind, i2i component, golden tensors file)
NETWORKS = {
    "resnet9_G": ("generator", "resnet9", "resnet9_G.safetensors"),
    "unet128_G": ("generator", "unet128", "unet128_G.safetensors"),
    "nlayer3_D": ("discriminator", "patchgan", "nlayer3_D.safetensors"),
    "pixel_D": ("discriminator", "pixel", "pixel_D.safetensors"),
}


@pytest.mark.parametrize("record", NETWORKS)
def test_portable_weights_reproduce_reference_output(record, golden_nets):
    kind, name, file = NETWORKS[record]
    golden = golden_nets[record]
    manifest = golden["portable"]["state_dict_manifest"]
    net = i2i_core.create(kind, name).eval()
    assert list(net.state_dict()) == [m["key"] for m in manifest]  # same layout, same order as the reference
    net.load_state_dict(portable_state_dict(manifest, seed=1234))
    tensors = golden_tensors(file)
    assert tensors["input"].double().sum().item() == pytest.approx(golden["input_checksum"]["sum"], abs=1e-3)
    with torch.no_grad():
        out = net(tensors["input"])
    assert list(out.shape) == golden["output_shape"]
    torch.testing.assert_close(out, tensors["output_portable"], atol=1e-4, rtol=1e-4)


def test_pixel_discriminator_reference_initialisation_output():
    tensors = golden_tensors("pixel_D.safetensors")
    net = i2i_core.create("discriminator", "pixel").eval()
    net.load_state_dict({k.removeprefix("state_dict."): v for k, v in tensors.items() if k.startswith("state_dict.")})
    with torch.no_grad():
        torch.testing.assert_close(net(tensors["input"]), tensors["output"], atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize(
    ("kind", "name", "count"),
    [
        ("generator", "resnet9", 11_378_179),
        ("generator", "resnet6", 7_837_699),
        ("generator", "unet128", 41_825_667),
        ("generator", "unet256", 54_409_603),
        ("discriminator", "patchgan", 2_764_737),
        ("discriminator", "pixel", 8_705),
    ],
)
def test_parameter_counts_equal_reference(kind, name, count):
    net = i2i_core.create(kind, name)
    assert sum(p.numel() for p in net.parameters()) == count


def test_reference_initialisation_statistics():
    net = i2i_core.create("generator", "resnet6")
    weights = torch.cat([m.weight.flatten() for m in net.modules() if isinstance(m, torch.nn.Conv2d)])
    biases = torch.cat([m.bias for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None])
    assert weights.std().item() == pytest.approx(0.02, rel=0.01)
    assert weights.mean().abs().item() < 1e-4
    assert biases.abs().max().item() == 0.0


def test_resnet_dropout_layout_matches_reference_keys():
    keys = i2i_core.create("generator", "resnet6", dropout=True).state_dict()
    assert "model.10.conv_block.6.weight" in keys and "model.10.conv_block.5.weight" not in keys


@pytest.mark.parametrize("gan", ["lsgan", "bce"])
def test_gan_losses_equal_reference(gan, golden_nets):
    golden = golden_nets["ganloss_lsgan" if gan == "lsgan" else "ganloss_vanilla"]
    loss = i2i_core.create("loss", gan)
    pred = torch.tensor(golden["pred"])
    assert loss(pred, True).item() == pytest.approx(golden["loss_real"], abs=1e-6)
    assert loss(pred, False).item() == pytest.approx(golden["loss_fake"], abs=1e-6)


def test_reconstruction_losses_known_values():
    x, y = torch.zeros(1, 3, 2, 2), torch.full((1, 3, 2, 2), 2.0)
    y[0, 0, 0, 0] = 0.0  # 11 of 12 elements differ by 2
    assert i2i_core.create("loss", "l1")(x, y).item() == pytest.approx(22 / 12)
    assert i2i_core.create("loss", "l2")(x, y).item() == pytest.approx(44 / 12)
