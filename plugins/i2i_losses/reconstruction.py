"""Reconstruction losses: ``loss(x, y) -> scalar``, averaged over every element."""

from __future__ import annotations

from torch import nn


def l1() -> nn.L1Loss:
    """Mean absolute error (cycle-consistency and identity losses of CycleGAN)."""
    return nn.L1Loss()


def l2() -> nn.MSELoss:
    """Mean squared error."""
    return nn.MSELoss()
