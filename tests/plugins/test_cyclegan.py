"""The CycleGAN step against three full optimisation steps of the reference implementation."""

from __future__ import annotations

import json

import pytest
import torch
import torch.nn.functional as F
from conftest import GOLDEN, golden_tensors, portable_state_dict
from cyclegan_parity import Record, failures, run_steps
from i2i_cyclegan import LOSS_NAMES, CycleGAN

from i2i_core.precision import Layout
from i2i_core.recipe import recipe_from_dict

STEP = json.loads((GOLDEN / "golden_cyclegan_step.json").read_text())["portable_pool50"]


def reference_setup(golden_nets, channels_last: bool = False) -> CycleGAN:
    """The golden configuration: ResNet-9 generators, PatchGAN discriminators, portable weights 101..104."""
    g_manifest = golden_nets["resnet9_G"]["portable"]["state_dict_manifest"]
    d_manifest = golden_nets["nlayer3_D"]["portable"]["state_dict_manifest"]
    recipe = recipe_from_dict(
        {
            "model": {"generator": {"name": "resnet9"}, "discriminator": {"name": "patchgan"}},
            "loss": {"gan": {"name": "lsgan"}, "cycle": {"weight": 10.0}, "identity": {"weight": 5.0}},
            "train": {"lr": 2e-4, "betas": [0.5, 0.999], "pool_size": 50},
        }
    )
    trainer = CycleGAN(recipe, "cpu", Layout("fp32", channels_last))
    manifests = {"G_A": g_manifest, "G_B": g_manifest, "D_A": d_manifest, "D_B": d_manifest}
    for seed, (name, manifest) in enumerate(manifests.items(), start=101):
        trainer.networks[name].load_state_dict(portable_state_dict(manifest, seed))
    return trainer


@pytest.fixture(scope="module")
def three_steps(golden_nets) -> Record:
    torch.manual_seed(0)
    return run_steps(reference_setup(golden_nets), golden_tensors("cyclegan_step_tensors.safetensors"))


@pytest.fixture(scope="module")
def channels_last_gradients(golden_nets) -> dict:
    """Step-1 gradients of a second implementation that rounds differently (oneDNN's channels-last kernels)."""
    torch.manual_seed(0)
    trainer = reference_setup(golden_nets, channels_last=True)
    return run_steps(trainer, golden_tensors("cyclegan_step_tensors.safetensors"), steps=1).grads_step1


def test_initial_weights_are_the_golden_ones(golden_nets):
    for name, net in reference_setup(golden_nets).networks.items():
        flat = torch.cat([p.detach().double().flatten() for p in net.parameters()])
        assert flat.sum().item() == pytest.approx(STEP["initial_weights"][name]["sum"], abs=1e-6)
        assert flat.abs().sum().item() == pytest.approx(STEP["initial_weights"][name]["abs_sum"], rel=1e-9)


def test_three_steps_match_the_reference(three_steps, channels_last_gradients):
    """Losses, gradients, updates and weights of all three steps (see ``tests/cyclegan_parity.py``)."""
    assert failures(three_steps, channels_last_gradients) == []


def test_first_step_images_equal_reference(golden_nets):
    trainer = reference_setup(golden_nets)
    t = golden_tensors("cyclegan_step_tensors.safetensors")
    with torch.no_grad():
        fake_B = trainer.G_A(t["iter1.A"])
        fake_A = trainer.G_B(t["iter1.B"])
        images = {
            "fake_B": fake_B,
            "rec_A": trainer.G_B(fake_B),
            "fake_A": fake_A,
            "rec_B": trainer.G_A(fake_A),
            "idt_A": trainer.G_A(t["iter1.B"]),
            "idt_B": trainer.G_B(t["iter1.A"]),
        }
    for name, image in images.items():
        torch.testing.assert_close(image, t[f"iter1.{name}"], atol=1e-4, rtol=1e-4, msg=name)


def narrow_setup(precision: str, channels_last: bool | None = None) -> CycleGAN:
    """The golden configuration at half the width (ngf = ndf = 32), seeded: bf16 runs 8x slower than fp32
    on CPUs without bf16 units, and what is compared here is bf16 against fp32, not against the reference."""
    torch.manual_seed(0)
    recipe = recipe_from_dict(
        {"model": {"generator": {"name": "resnet9", "ngf": 32}, "discriminator": {"name": "patchgan", "ndf": 32}}}
    )
    layout = Layout(precision, precision == "bf16" if channels_last is None else channels_last)
    return CycleGAN(recipe, "cpu", layout)


def first_pair() -> tuple[torch.Tensor, torch.Tensor]:
    """The first golden pair, cropped to 48x48."""
    tensors = golden_tensors("cyclegan_step_tensors.safetensors")
    return tensors["iter1.A"][..., :48, :48], tensors["iter1.B"][..., :48, :48]


@pytest.fixture(scope="module")
def fp32_step() -> tuple[dict[str, float], CycleGAN]:
    trainer = narrow_setup("fp32")
    return trainer.train_step(dict(zip("AB", first_pair(), strict=True))), trainer


@pytest.mark.parametrize("channels_last", [True, False])
def test_bf16_step_gives_fp32_master_weights_the_losses_and_gradients_of_fp32(fp32_step, channels_last):
    fp32_losses, fp32 = fp32_step
    bf16 = narrow_setup("bf16", channels_last)
    bf16_losses = bf16.train_step(dict(zip("AB", first_pair(), strict=True)))
    for name in LOSS_NAMES:
        assert bf16_losses[name] == pytest.approx(fp32_losses[name], rel=3e-2), name
    for name, net in bf16.networks.items():
        theirs = dict(fp32.networks[name].named_parameters())
        for param_name, ours in net.named_parameters():
            assert ours.dtype == ours.grad.dtype == torch.float32
            # every weight tensor; biases are sums over the image of signs of the L1 loss, or (before instance
            # norm) zero in exact arithmetic: rounding decides them
            if ours.ndim > 1:
                cosine = F.cosine_similarity(ours.grad.flatten(), theirs[param_name].grad.flatten(), dim=0)
                ratio = ours.grad.norm() / theirs[param_name].grad.norm()
                # worst cosine 0.92 (G_B's first layers), norms within 3% (AVX2; bf16 autocast does no better)
                assert cosine > 0.88 and 0.9 < ratio < 1.1, (name, param_name, cosine.item(), ratio.item())


def generator_batches(trainer: CycleGAN, norm_is_batched: bool, monkeypatch) -> tuple[dict, list[int]]:
    """One fp32 step of ``trainer`` with the passes batched when the generators allow it (or, with
    ``norm_is_batched`` False, as if they had a batch norm): the losses, and the batch sizes ``G_A`` saw."""
    if not norm_is_batched:
        monkeypatch.setattr(trainer, "batches_identity", {"G_A": False, "G_B": False})
    sizes: list[int] = []
    trainer.networks["G_A"].register_forward_pre_hook(lambda module, args: sizes.append(len(args[0])))
    losses = trainer.train_step(dict(zip("AB", first_pair(), strict=True)))
    monkeypatch.undo()
    return losses, sizes


def test_translation_and_identity_pass_run_as_one_batch_with_the_losses_and_gradients_of_separate_passes(
    monkeypatch,
):
    batched_trainer, separate_trainer = narrow_setup("fp32"), narrow_setup("fp32")
    batched, batched_sizes = generator_batches(batched_trainer, True, monkeypatch)
    separate, separate_sizes = generator_batches(separate_trainer, False, monkeypatch)
    assert batched_sizes == [2, 1]  # G_A(real_A) with its identity pass G_A(real_B), then G_A(fake_A)
    assert separate_sizes == [1, 1, 1]  # what a generator with batch norm runs
    for name in LOSS_NAMES:
        assert batched[name] == pytest.approx(separate[name], rel=1e-5), name
    for name in ("G_A", "G_B"):
        ours = dict(batched_trainer.networks[name].named_parameters())
        for param_name, theirs in separate_trainer.networks[name].named_parameters():
            if theirs.ndim > 1:  # biases before instance norm are zero in exact arithmetic: rounding decides them
                # other convolution kernels sum in another order: a few elements differ by 2e-4 of the largest
                scale = theirs.grad.abs().max().item()
                torch.testing.assert_close(ours[param_name].grad, theirs.grad, atol=1e-3 * scale, rtol=0)
                cosine = F.cosine_similarity(ours[param_name].grad.flatten(), theirs.grad.flatten(), dim=0)
                assert cosine > 0.99999, (name, param_name, cosine.item())


def test_generators_with_batch_norm_are_not_batched():
    from i2i_core.layers import batch_independent

    recipe = recipe_from_dict({"model": {"generator": {"name": "resnet6", "ngf": 8, "norm": "batch"}}})
    trainer = CycleGAN(recipe, "cpu", Layout("fp32", False))
    assert not batch_independent(trainer.networks["G_A"])
    assert batch_independent(narrow_setup("fp32").networks["G_A"])
