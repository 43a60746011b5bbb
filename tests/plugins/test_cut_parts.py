"""CUT's parts, by known answers: the blur layers, the patch head, the PatchNCE loss, patch sampling, and the
encoder features each first-party generator declares."""

from __future__ import annotations

import math

import pytest
import torch
from cut_golden import LAYERS, portable_parameters, record
from i2i_cut.features import sample_patches
from i2i_cut.head import PatchMLP
from i2i_cut.patchnce import patchnce_loss
from i2i_resnet.antialias import Downsample, Upsample

import i2i_core


def test_blur_pool_known_answer():
    # a ramp 4i + j, reflect-padded: row 0 averages rows 1, 0, 1, so (4 + 0 + 4) / 4 = 2, plus (1 + 0 + 1) / 4
    x = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(Downsample(1)(x), torch.tensor([[[[2.5, 4.0], [8.5, 10.0]]]]))


def test_blurred_upsampling_known_answer():
    # separable: [a, b] -> [a, (3a + b) / 4, (a + 3b) / 4, b]
    x = torch.tensor([[[[0.0, 1.0], [2.0, 3.0]]]])
    expected = [[0.0, 0.25, 0.75, 1.0], [0.5, 0.75, 1.25, 1.5], [1.5, 1.75, 2.25, 2.5], [2.0, 2.25, 2.75, 3.0]]
    torch.testing.assert_close(Upsample(1)(x), torch.tensor([[expected]]))


def test_blurred_upsampling_is_the_transposed_blur_of_its_buffer():
    """It runs as bilinear interpolation; the reference computes the transposed blur with the kernel it keeps."""
    up, x = Upsample(5), torch.randn(2, 5, 7, 9)
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="replicate")
    blurred = torch.nn.functional.conv_transpose2d(padded, up.filt, stride=2, padding=2, groups=5)[..., 1:-1, 1:-1]
    torch.testing.assert_close(up(x), blurred, rtol=0, atol=2e-6)


def test_blur_kernels_are_state_dict_buffers_and_channelwise():
    down, up = Downsample(3), Upsample(3)
    assert list(down.state_dict()) == ["filt"] and not list(down.parameters())
    assert down.filt.shape == (3, 1, 3, 3) and down.filt.sum().item() == 3.0
    assert up.filt.shape == (3, 1, 4, 4) and up.filt.sum().item() == 12.0  # each sums to stride ** 2
    x = torch.rand(1, 3, 6, 6)
    for layer in (down, up):  # each channel blurred on its own
        torch.testing.assert_close(layer(x)[:, 1:2], type(layer)(1)(x[:, 1:2]))


def test_blur_layers_keep_a_channels_last_bf16_input_working():
    x = torch.rand(1, 4, 8, 8).to(torch.bfloat16, memory_format=torch.channels_last)
    for layer in (Downsample(4), Upsample(4)):
        y = layer.to(torch.bfloat16)(x)
        assert y.dtype == torch.bfloat16 and torch.isfinite(y.float()).all()


def test_patch_head_known_answer_and_epsilon():
    head = PatchMLP([2], nc=2)
    with torch.no_grad():
        for linear in (head.mlp_0[0], head.mlp_0[2]):
            linear.weight.copy_(torch.eye(2))
            linear.bias.zero_()
    # ReLU keeps the positive row; its norm 5e-7 plus 1e-7 divides it
    (out,) = head([torch.tensor([[3e-7, 4e-7], [-1.0, 2.0]])])
    torch.testing.assert_close(out, torch.tensor([[0.5, 4 / 6], [0.0, 2 / (2 + 1e-7)]]))


def test_patch_head_layout_is_the_reference_one():
    golden = record("cut")
    head = i2i_core.create("head", "patch-mlp", channels=[3, 128, 256, 256, 256])
    portable_parameters(head, golden["F_manifest"], golden["seeds"]["F"])
    assert sum(p.numel() for p in head.parameters()) == golden["initial_weights"]["F"]["numel"]
    with pytest.raises(ValueError, match="2 feature layers, got 1"):
        PatchMLP([3, 4])([torch.rand(2, 3)])


def _nce_by_hand(q: list[list[float]], k: list[list[float]], t: float) -> float:
    """Mean over patches of -log softmax([q_i.k_i, q_i.k_j (j != i), -10 for j == i] / t)[0]."""
    losses = []
    for i, qi in enumerate(q):
        dots = [sum(a * b for a, b in zip(qi, kj, strict=True)) for kj in k]
        logits = [dots[i]] + [-10.0 if j == i else d for j, d in enumerate(dots)]
        losses.append(math.log(sum(math.exp(v / t) for v in logits)) - logits[0] / t)
    return sum(losses) / len(losses)


def test_patchnce_known_answers():
    e = torch.eye(2)
    # positives 1, the other patch 0, the diagonal -10: log(e + 1 + e^-10) - 1
    assert patchnce_loss(e, e, temperature=1.0).item() == pytest.approx(math.log(math.e + 1 + math.exp(-10)) - 1)
    q, k = [[0.6, 0.8], [1.0, 0.0], [0.0, -1.0]], [[0.8, 0.6], [0.6, -0.8], [0.0, 1.0]]
    loss = patchnce_loss(torch.tensor(q), torch.tensor(k))  # temperature 0.07
    assert loss.item() == pytest.approx(_nce_by_hand(q, k, 0.07), rel=1e-5)
    assert i2i_core.create("loss", "patchnce", temperature=0.5)(
        torch.tensor(q), torch.tensor(k)
    ).item() == pytest.approx(_nce_by_hand(q, k, 0.5), rel=1e-6)


def test_patchnce_negatives_come_from_the_same_image_and_keys_are_constants():
    q = torch.nn.functional.normalize(torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(0)), dim=-1)
    k = torch.nn.functional.normalize(torch.randn(2, 5, 8, generator=torch.Generator().manual_seed(1)), dim=-1)
    per_image = (patchnce_loss(q[0], k[0]) + patchnce_loss(q[1], k[1])) / 2
    torch.testing.assert_close(patchnce_loss(q, k), per_image)
    q.requires_grad_(True)
    k.requires_grad_(True)
    patchnce_loss(q, k).backward()
    assert q.grad is not None and k.grad is None
    with pytest.raises(ValueError, match="query and key"):
        patchnce_loss(q, k[:, :4])
    with pytest.raises(Exception, match="temperature must be > 0"):
        i2i_core.create("loss", "patchnce", temperature=0.0)


def test_patches_are_sampled_at_the_same_positions_of_every_image():
    x = torch.arange(2 * 3 * 2 * 2.0).view(2, 3, 2, 2)  # (B, C, H, W)
    patches = sample_patches(x, torch.tensor([2, 1]))
    assert patches.shape == (4, 3)
    torch.testing.assert_close(patches[0], x[0, :, 1, 0])
    torch.testing.assert_close(patches[3], x[1, :, 0, 1])


# -- the generator feature contract ----------------------------------------------------------------------------


def _recorded_outputs(net: torch.nn.Module, x: torch.Tensor) -> list[torch.Tensor]:
    """Every layer's output of ``net.model`` in a plain forward, copied before the next layer runs."""
    outputs = []
    for layer in net.model:
        x = layer(x)
        outputs.append(x.clone())
    return outputs


@pytest.mark.parametrize("options", [{}, {"antialias": True, "antialias_up": True}])
def test_resnet_features_are_its_layers_outputs(options):
    net = i2i_core.create("generator", "resnet6", ngf=4, **options).eval()
    x = torch.rand(2, 3, 16, 16) * 2 - 1
    with torch.no_grad():
        expected = _recorded_outputs(net, x)
        every = list(range(len(net.model)))
        features = net.features(x, every)
        # 2 (a norm, then an in-place ReLU) keeps its negative values
        assert (net.features(x, [3, 2])[1] < 0).any()
    assert net.feature_channels(every) == [f.shape[1] for f in features]
    for i, (feature, output) in enumerate(zip(features, expected, strict=True)):
        torch.testing.assert_close(feature, output, msg=f"layer {i}")
    assert net.feature_layers == (tuple(LAYERS) if options else (0, 4, 7, 10, 14))
    assert [type(net.model[i]).__name__ for i in net.feature_layers] == ["ReflectionPad2d", "Conv2d", "Conv2d"] + [
        "ResnetBlock"
    ] * 2
    depth = len(net.model)
    assert depth == (29 if options else 25)
    with pytest.raises(ValueError, match=f"0 to {depth - 1}"):
        net.feature_channels([0, depth])


def test_unet_features_are_its_down_path():
    net = i2i_core.create("generator", "unet128", ngf=4).eval()
    x = torch.rand(1, 3, 128, 128) * 2 - 1
    layers = list(range(8))
    with torch.no_grad():
        features = net.features(x, layers)
        out = net(x)
        again = net.features(x, [1])[0]
    assert [tuple(f.shape[1:]) for f in features] == [
        (c, 128 >> k, 128 >> k) for k, c in enumerate([3, 4, 8, 16, 32, 32, 32, 32])
    ]
    assert net.feature_channels(layers) == [3, 4, 8, 16, 32, 32, 32, 32]
    assert features[0] is x and (features[1] < 0).any()  # the next level's in-place LeakyReLU ran on a copy
    torch.testing.assert_close(again, net.model.model[0](x))
    assert out.shape == x.shape
    with pytest.raises(ValueError, match="0 \\(the input\\) to 7"):
        net.features(x, [8])


def test_timm_unet_features_are_the_encoder_maps():
    pytest.importorskip("timm")
    net = i2i_core.create("generator", "timm-unet", encoder="resnet18", ngf=8).eval()
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    with torch.no_grad():
        features = net.features(x, [0, 1, 5])
    assert net.feature_layers == (0, 1, 2, 3, 4)
    assert net.feature_channels([0, 1, 5]) == [f.shape[1] for f in features] == [3, 64, 512]
    assert features[0] is x and features[2].shape[-1] == 2
    with pytest.raises(ValueError, match="0 \\(the input\\) to 5"):
        net.feature_channels([6])


def test_antialias_off_keeps_the_cyclegan_layouts():
    assert "model.7.filt" not in i2i_core.create("generator", "resnet9").state_dict()
    assert "model.7.filt" in i2i_core.create("generator", "resnet9", antialias=True).state_dict()
    keys = list(i2i_core.create("discriminator", "patchgan", antialias=True).state_dict())
    assert keys == [entry[0] for entry in record("cut")["D_manifest"]]
