"""``i2i_core.layers``: the channels-last instance norm and the reflection padding equal PyTorch's layers."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from i2i_core.layers import (
    ConvTranspose2d,
    InstanceNorm2d,
    ReflectionPad2d,
    box_mean,
    guided_filter,
    norm_layer,
    reflection_pad2d,
)

CL = torch.channels_last


@pytest.mark.parametrize("batch", [1, 3])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_instance_norm_keeps_channels_last_and_equals_pytorch(batch, dtype):
    torch.manual_seed(0)
    x = (torch.randn(batch, 16, 12, 10) * 3 + 1).to(dtype)
    x_cl = x.contiguous(memory_format=CL).requires_grad_()
    x_ref = x.float().requires_grad_()
    grad = torch.randn(batch, 16, 12, 10)
    y = InstanceNorm2d(16)(x_cl)
    y_ref = nn.InstanceNorm2d(16)(x_ref)
    assert y.dtype == dtype and y.is_contiguous(memory_format=CL) and not y.is_contiguous()
    tol = {"atol": 1e-5, "rtol": 1e-5} if dtype == torch.float32 else {"atol": 4e-2, "rtol": 1e-2}
    torch.testing.assert_close(y.float(), y_ref, **tol)
    y.backward(grad.to(dtype).contiguous(memory_format=CL))
    y_ref.backward(grad)
    assert x_cl.grad.is_contiguous(memory_format=CL)
    torch.testing.assert_close(x_cl.grad.float(), x_ref.grad, **tol)


def test_instance_norm_is_a_drop_in_replacement():
    norm = norm_layer("instance", 8)
    assert isinstance(norm, nn.InstanceNorm2d) and repr(norm) == repr(nn.InstanceNorm2d(8))
    assert norm.state_dict() == {}
    x = torch.randn(2, 8, 6, 6)  # contiguous: PyTorch's own path
    torch.testing.assert_close(norm(x), F.instance_norm(x), atol=0, rtol=0)


@pytest.mark.parametrize("padding", [(1, 1, 1, 1), (3, 3, 3, 3), (2, 0, 1, 3)])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, CL])
def test_reflection_pad_backward_equals_pytorch(padding, memory_format):
    torch.manual_seed(0)
    x = torch.randn(2, 5, 7, 9, dtype=torch.float64).contiguous(memory_format=memory_format).requires_grad_()
    ours = reflection_pad2d(x, padding)
    theirs = F.pad(x, padding, mode="reflect")
    torch.testing.assert_close(ours, theirs, atol=0, rtol=0)
    grad = torch.randn_like(theirs)
    (ours_grad,) = torch.autograd.grad(ours, x, grad)
    (their_grad,) = torch.autograd.grad(theirs, x, grad)
    torch.testing.assert_close(ours_grad, their_grad, atol=1e-12, rtol=0)
    assert ours_grad.is_contiguous(memory_format=memory_format)
    assert torch.autograd.gradcheck(
        lambda t: reflection_pad2d(t, padding), (x[:1, :2, :4, :5].detach().requires_grad_(),)
    )


def test_reflection_pad_module_matches_pytorch_module():
    ours, theirs = ReflectionPad2d(3), nn.ReflectionPad2d(3)
    assert ours.padding == theirs.padding and repr(ours) == repr(theirs)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    torch.testing.assert_close(ours(x), theirs(x), atol=0, rtol=0)
    with pytest.raises(RuntimeError):
        ours(torch.zeros(1, 1, 2, 2, requires_grad=True))  # reflection needs padding < size, as in PyTorch


@pytest.mark.parametrize("grad", [True, False])
def test_conv_transpose_equals_pytorch_with_and_without_gradients(grad):
    torch.manual_seed(0)
    ours = ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
    theirs = nn.ConvTranspose2d(6, 4, 3, stride=2, padding=1, output_padding=1)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(2, 6, 5, 7)
    with torch.set_grad_enabled(grad):
        y, y_ref = ours(x), theirs(x)
    torch.testing.assert_close(y, y_ref, atol=1e-6, rtol=1e-5)
    assert y.shape == (2, 4, 10, 14)
    if grad:
        g = torch.randn_like(y)
        y.backward(g)
        y_ref.backward(g)
        for a, b in zip(ours.parameters(), theirs.parameters(), strict=True):
            torch.testing.assert_close(a.grad, b.grad, atol=1e-5, rtol=1e-5)


def test_guided_filter_gives_a_channels_last_input_the_same_values_in_its_layout():
    """It computes channels-first (box means of few channels are 3.6x faster so) and hands back the input's layout."""
    image = torch.rand(2, 3, 20, 24) * 2 - 1
    last = image.to(memory_format=torch.channels_last)
    for radius, eps in ((1, 1e-2), (5, 0.2)):
        out = guided_filter(last, last, radius, eps)
        assert out.is_contiguous(memory_format=torch.channels_last) and out.dtype == image.dtype
        torch.testing.assert_close(out, guided_filter(image, image, radius, eps), rtol=0, atol=1e-6)
        assert guided_filter(image, image, radius, eps).is_contiguous()


@pytest.mark.parametrize("shape", [(2, 3, 40, 36), (1, 1, 64, 1000)])
def test_box_mean_from_running_totals_equals_pooling_over_the_pixels_inside(shape):
    x = torch.rand(shape) * 2 - 1
    for radius in (3, 5, 12):
        pooled = F.avg_pool2d(x, 2 * radius + 1, stride=1, padding=radius, count_include_pad=False)
        torch.testing.assert_close(box_mean(x, radius), pooled, rtol=0, atol=1e-5)
    corner = torch.zeros(1, 1, 10, 10)
    corner[..., 0, 0] = 16.0  # a radius-3 window at a corner holds 4 x 4 pixels: the corner's mean is 1
    assert box_mean(corner, 3)[0, 0, 0, 0].item() == 1.0
