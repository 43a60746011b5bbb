"""One suite run over every registered generator and discriminator, as timm tests every model.

The checks are :mod:`i2i_core.testing`'s, the same that plugin authors run on their own components.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

import i2i_core
from i2i_core.testing import check_discriminator, check_generator

GENERATORS = [c.name for c in i2i_core.list_components("generator")]
DISCRIMINATORS = [c.name for c in i2i_core.list_components("discriminator")]


def _small(kind: str, name: str) -> dict:
    """Narrow networks keep the suite fast: ngf/ndf=8 where the factory has those options."""
    options = i2i_core.get_component(kind, name).options()
    return {k: v for k, v in {"ngf": 8, "ndf": 8}.items() if k in options}


@pytest.mark.parametrize("name", GENERATORS)
def test_generator_contract(name):
    net = check_generator(name, **_small("generator", name))
    assert not net.training


@pytest.mark.parametrize("name", DISCRIMINATORS)
def test_discriminator_contract(name):
    net = check_discriminator(name, **_small("discriminator", name))
    assert not net.training


class _Unbounded(nn.Module):
    """A generator breaking the contract: no tanh, so values leave [-1, 1]."""

    size_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1)
        nn.init.constant_(self.conv.weight, 2.0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x)


class _Lenient(nn.Module):
    """A discriminator that declares a size multiple but accepts any size."""

    size_multiple = 4

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 1, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] != 3:
            raise ValueError("expected (B, 3, H, W)")
        return self.conv(x)


class _ViewsPixels(nn.Module):
    """A generator that flattens each image with .view(), which needs contiguous memory."""

    size_multiple = 1

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        flat = x.view(x.shape[0], -1)
        return torch.tanh(flat * self.scale).reshape(x.shape)


def test_failures_name_the_component_and_the_check():
    with pytest.raises(AssertionError, match=r"generator _Unbounded fails the 'output range' check: values in"):
        check_generator(_Unbounded())
    with pytest.raises(AssertionError, match=r"discriminator _Lenient fails the 'size_multiple' check: .* accepted"):
        check_discriminator(_Lenient())
    with pytest.raises(
        AssertionError, match=r"fails the 'bf16 channels-last' check: raised RuntimeError .*\.reshape\(\)"
    ):
        check_generator(_ViewsPixels())


def test_registered_component_failure_names_it():
    with pytest.raises(AssertionError, match=r"discriminator 'pixel' fails the 'build' check: RuntimeError"):
        check_discriminator("pixel", ndf=-1)
