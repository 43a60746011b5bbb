"""``i2i_core.compute_copy``: bf16 channels-last copies that train fp32 master weights."""

from __future__ import annotations

import torch
from torch import nn

from i2i_core.compute_copy import ComputeCopy

CL = torch.channels_last


def small_net() -> nn.Module:
    """No bias before batch norm: such a bias has a zero gradient, and bf16 and fp32 round it differently."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 8, 3, bias=False), nn.BatchNorm2d(8), nn.ReLU(), nn.Conv2d(8, 3, 1))


def test_fp32_contiguous_copy_is_the_master_itself():
    net = small_net()
    copy = ComputeCopy(net, torch.float32)
    assert copy.module is net
    x = torch.zeros(1, 3, 4, 4)
    assert copy.prepare(x) is x


def test_copy_runs_bf16_channels_last_and_keeps_batch_norm_fp32():
    copy = ComputeCopy(small_net(), torch.bfloat16, CL)
    conv, norm = copy.module[0], copy.module[1]
    assert conv.weight.dtype == torch.bfloat16 and conv.weight.is_contiguous(memory_format=CL)
    assert norm.weight.dtype == norm.running_mean.dtype == torch.float32
    x = copy.prepare(torch.rand(2, 3, 8, 8))
    assert x.dtype == torch.bfloat16 and x.is_contiguous(memory_format=CL)
    assert copy.module(x).dtype == torch.bfloat16
    assert copy.master[0].weight.dtype == torch.float32  # the master is untouched


def test_gradients_reach_the_master_in_fp32_and_weights_come_back():
    master = small_net()
    reference = small_net()  # the same weights, trained in fp32
    copy = ComputeCopy(master, torch.bfloat16, CL)
    x = torch.rand(2, 3, 8, 8)
    copy.module(copy.prepare(x)).float().square().mean().backward()
    copy.push_gradients()
    reference(x).square().mean().backward()
    for ours, theirs in zip(master.parameters(), reference.parameters(), strict=True):
        assert ours.grad.dtype == torch.float32 and ours.grad.is_contiguous()
        cosine = torch.nn.functional.cosine_similarity(ours.grad.flatten(), theirs.grad.flatten(), dim=0)
        assert cosine > 0.99
    assert all(p.grad is None for p in copy.module.parameters())
    # batch-norm statistics updated by the copy's forward reach the master
    torch.testing.assert_close(master[1].running_mean, reference[1].running_mean, atol=2e-3, rtol=0)

    with torch.no_grad():
        master[0].weight.add_(1.0)
    copy.pull_weights()
    torch.testing.assert_close(copy.module[0].weight.float(), master[0].weight, atol=2e-2, rtol=1e-2)
    assert copy.module[0].weight.is_contiguous(memory_format=CL)


def test_gradients_of_two_backward_passes_add_up():
    master = small_net()
    copy = ComputeCopy(master, torch.bfloat16, CL)
    x = copy.prepare(torch.rand(1, 3, 8, 8))
    copy.module(x).float().sum().backward()
    copy.push_gradients()
    first = master[0].weight.grad.clone()
    copy.module(x).float().sum().backward()
    copy.push_gradients()
    torch.testing.assert_close(master[0].weight.grad, 2 * first, atol=1e-2, rtol=1e-2)
