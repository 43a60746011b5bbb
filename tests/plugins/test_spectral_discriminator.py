"""PatchGAN's ``spectral`` option (White-box cartoonization's discriminator): every convolution's weight divided
by its largest singular value, estimated by power iteration in training; off by default, bit for bit."""

from __future__ import annotations

import torch

import i2i_core
from i2i_core.compute_copy import ComputeCopy
from i2i_core.testing import check_discriminator


def seeded(**options) -> torch.nn.Module:
    torch.manual_seed(0)
    return i2i_core.create("discriminator", "patchgan", ndf=8, **options)


def largest_singular_values(net: torch.nn.Module) -> list[float]:
    """Of each convolution's weight as the network uses it, reshaped to (out, in * k * k)."""
    return [
        float(torch.linalg.matrix_norm(m.weight.detach().flatten(1), 2))
        for m in net.modules()
        if isinstance(m, torch.nn.Conv2d)
    ]


def test_off_by_default_bit_for_bit():
    plain, explicit = seeded(), seeded(spectral=False)
    assert list(plain.state_dict()) == list(explicit.state_dict())
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(plain(x), explicit(x), rtol=0, atol=0)
    assert max(abs(s - 1) for s in largest_singular_values(plain)) > 0.3  # the reference init is not normalised


def test_every_convolution_is_normalised_after_power_iterations():
    net = seeded(spectral=True, norm="none")
    check_discriminator(net)
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    for _ in range(20):  # each training forward refines the estimate
        net(x)
    assert all(abs(s - 1) < 0.02 for s in largest_singular_values(net))
    assert len(largest_singular_values(net)) == 5


def test_estimates_are_saved_and_a_copy_resumes_exactly():
    """The power iteration's vectors are buffers: a state-dict round trip (as a checkpoint) continues exactly, and
    a bf16 compute copy hands its updated estimates and gradients back to the master."""
    net = seeded(spectral=True, norm="none")
    x = torch.rand(1, 3, 64, 64) * 2 - 1
    net(x)
    twin = seeded(spectral=True, norm="none")
    twin.load_state_dict(net.state_dict())
    torch.testing.assert_close(twin(x), net(x), rtol=0, atol=0)  # both iterate once more, identically
    before = {name: b.clone() for name, b in net.named_buffers() if name.endswith("_v")}
    copy = ComputeCopy.for_precision(net, "bf16")
    copy.pull_weights()
    copy.module(copy.prepare(x)).float().sum().backward()
    copy.push_gradients()
    assert all(p.grad is not None for p in net.parameters())
    after = dict(net.named_buffers())
    assert len(before) == 5 and all(not torch.equal(after[name], u) for name, u in before.items())
