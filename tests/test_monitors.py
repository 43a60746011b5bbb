"""Collapse and discriminator-win detectors, driven with constructed cases."""

from __future__ import annotations

import pytest
import torch

from i2i_core.training.monitors import CollapseMonitor, DiscriminatorMonitor, output_diversity


def test_diversity_of_identity_constant_and_scaled_outputs():
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert output_diversity(x, x) == pytest.approx(1.0)
    assert output_diversity(x, 0.5 * x) == pytest.approx(0.5)
    assert output_diversity(x, torch.zeros_like(x)) == 0.0
    with pytest.raises(ValueError, match="two or more"):
        output_diversity(x[:1], x[:1])


def test_collapse_warns_once_with_the_step():
    monitor = CollapseMonitor(threshold=0.05)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    assert monitor.check("G_A", x, torch.tanh(x * 2), step=10) is None  # healthy: outputs follow inputs
    assert monitor.check("G_B", x, torch.tanh(x * 2), step=10) is None
    collapsed = x.mean(0, keepdim=True).expand_as(x) + 0.01 * torch.randn_like(x)  # one picture, slight noise
    message = monitor.check("G_A", x, collapsed, step=20)
    assert message is not None and message.startswith("step 20: generator G_A may have collapsed")
    assert monitor.check("G_A", x, collapsed, step=30) is None  # once
    assert monitor.check("G_B", x, collapsed, step=30) is not None  # per generator


def test_a_generator_that_starts_near_constant_has_not_collapsed():
    monitor = CollapseMonitor(threshold=0.05)
    x = torch.rand(4, 3, 16, 16) * 2 - 1
    flat = x.mean(0, keepdim=True).expand_as(x) + 0.02 * x  # diversity 0.02 from the start
    assert monitor.check("G_A", x, flat, step=1) is None
    assert monitor.check("G_A", x, flat, step=2) is None
    assert monitor.check("G_A", x, 0.002 * x, step=3) is not None  # a further tenfold drop is a collapse


def test_discriminator_win_needs_a_sustained_near_zero_loss():
    monitor = DiscriminatorMonitor(("D_A", "D_B"), threshold=1e-2, window=5)
    for step in range(1, 5):
        assert monitor.check({"D_A": 1e-4, "D_B": 0.3}, step) == []  # window not full yet
    messages = monitor.check({"D_A": 1e-4, "D_B": 0.3}, 5)
    assert len(messages) == 1 and messages[0].startswith("step 5: discriminator D_A's loss has stayed near zero")
    assert monitor.check({"D_A": 1e-4, "D_B": 0.3}, 6) == []  # once
    spiky = DiscriminatorMonitor(("D_A", "D_B"), threshold=1e-2, window=5)
    for step, loss in enumerate([1e-4, 1e-4, 0.5, 1e-4, 1e-4, 1e-4], start=1):
        assert spiky.check({"D_B": loss}, step) == []  # one real fight in the window keeps the mean up
