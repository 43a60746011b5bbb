"""The ``timm-unet`` generator: any timm backbone as a U-Net encoder, offline-safe pretrained loading."""

from __future__ import annotations

import socket
from pathlib import Path

import huggingface_hub.constants
import pytest
import timm
import torch
from i2i_timm import TimmUnetGenerator, create_encoder

import i2i_core
from i2i_core.errors import I2IError

TINY = Path(__file__).parents[1] / "recipes" / "tiny.toml"
# Small encoders of different families: levels at 1/2..1/32 (batch norm), and 1/4..1/32 (layer norm).
ENCODERS = ["resnet18", "efficientnet_b0", "convnext_atto", "mobilenetv3_small_050"]


@pytest.fixture
def offline(monkeypatch, tmp_path):
    """No network and empty weight caches: timm can neither download nor find weights."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path / "hf"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))

    def no_network(*args, **kwargs):
        raise OSError("network access in a test")

    monkeypatch.setattr(socket.socket, "connect", no_network)


@pytest.mark.parametrize("encoder", ENCODERS)
def test_shapes_range_and_size_multiple(encoder):
    torch.manual_seed(0)
    net = i2i_core.create("generator", "timm-unet", encoder=encoder, ngf=8)
    assert isinstance(net, TimmUnetGenerator) and net.size_multiple == 32
    x = torch.rand(2, 3, 32, 64) * 2 - 1
    y = net(x)
    assert y.shape == x.shape
    assert y.min() >= -1 and y.max() <= 1
    with pytest.raises(ValueError, match="multiples of 32"):
        net(torch.zeros(1, 3, 32, 48))


def test_decoder_follows_the_feature_levels():
    net = i2i_core.create("generator", "timm-unet", encoder="convnext_atto", ngf=8)
    assert net.encoder.feature_info.reduction() == [4, 8, 16, 32]
    assert len(net.decoder) == 4  # levels at 1/16, 1/8, 1/4, then the full-resolution stem
    assert [b.convs[-1][0].out_channels for b in net.decoder] == [32, 16, 8, 8]
    assert not any(k in net.state_dict() for k in ("mean", "std"))  # normalisation is not a weight


def test_encoder_keeps_timm_init():
    torch.manual_seed(0)
    net = i2i_core.create("generator", "timm-unet", encoder="resnet18", ngf=8)
    torch.manual_seed(0)
    reference = timm.create_model("resnet18", features_only=True)
    for (k, a), (k2, b) in zip(net.encoder.state_dict().items(), reference.state_dict().items(), strict=True):
        assert k == k2 and torch.equal(a, b)


def test_unknown_encoder_suggests_close_names():
    with pytest.raises(I2IError, match=r"unknown timm encoder 'resnet181'\. Did you mean 'resnet18'"):
        i2i_core.create("generator", "timm-unet", encoder="resnet181")
    with pytest.raises(I2IError, match="Did you mean 'convnext_atto'"):
        i2i_core.create("generator", "timm-unet", encoder="convnxt_atto")


def test_fixed_size_encoder_is_refused():
    with pytest.raises(I2IError, match="'vit_tiny_patch16_224' only takes 224x224 inputs"):
        create_encoder("vit_tiny_patch16_224")


def test_encoder_without_features_only_gets_a_clear_error(monkeypatch):
    def no_features(*args, **kwargs):
        raise RuntimeError("features_only not implemented for Foo models")

    monkeypatch.setattr(timm, "create_model", no_features)
    with pytest.raises(I2IError, match=r"'resnet18' cannot be built with features_only=True.*not implemented"):
        create_encoder("resnet18")


def test_pretrained_offline_fails_clearly(offline):
    with pytest.raises(I2IError) as info:
        i2i_core.create("generator", "timm-unet", encoder="resnet18", pretrained=True)
    message = str(info.value)
    assert "pretrained weights of timm encoder 'resnet18'" in message
    assert "could not be downloaded and are not in the local cache" in message
    assert "HF_HUB_CACHE" in message and "pretrained = false" in message


def test_pretrained_needs_an_encoder_with_weights(offline):
    with pytest.raises(I2IError, match=r"'coatnet_0_224' has no pretrained weights.*Did you mean 'coatnet_0_rw_224'"):
        create_encoder("coatnet_0_224", pretrained=True)


@pytest.mark.parametrize("encoder", ["mobilenetv3_small_050", "convnext_atto"])
def test_trains_a_few_steps_and_reloads(encoder, tmp_path, offline):
    recipe = i2i_core.load_recipe(
        TINY,
        [
            f"output.dir='{tmp_path / 'run'}'",
            "model.generator.name='timm-unet'",
            f"model.generator.encoder='{encoder}'",
            "model.generator.pretrained=false",
            "model.generator.ngf=8",
            "data.load_size=72",  # batch norm (mobilenet) needs more than the 1x1 features of 32x32 at stride 32
            "data.crop_size=64",
            "train.steps=2",
            "output.checkpoint_every=2",
            "output.sample_every=2",
            "output.num_samples=1",
            "report.reporters=[]",
        ],
    )
    i2i_core.train(recipe, show_progress=False)
    path = tmp_path / "run" / "checkpoints" / "step_0000002" / "G_A.safetensors"
    assert path.is_file()
    net = i2i_core.load_component(path)
    assert isinstance(net, TimmUnetGenerator) and net.encoder.pretrained_cfg["architecture"] == encoder
    with torch.no_grad():
        y = net(torch.rand(1, 3, 64, 64) * 2 - 1)
    assert y.shape == (1, 3, 64, 64) and torch.isfinite(y).all()
