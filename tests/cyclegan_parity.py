"""Comparing CycleGAN training steps with the reference's three golden steps, on any CPU.

Two fp32 implementations of the same step do not agree to rounding. Instance norm's backward cancels most of
the gradient reaching it, so the step-1 gradients of two implementations differ by up to 0.07% per network
(measured: AVX2, AVX-512, the emulated ``default`` class, channels-last, fp64); and Adam's first update is
``lr * sign(gradient)``, so wherever a gradient is within rounding of zero the two updates go opposite ways.
After that, the trajectories drift apart: step-3 adversarial losses differ by up to 2.1%.

So each quantity is compared with a tolerance that this spread cannot reach and a real mistake does:
:data:`TOLERANCES` below, and for the step-1 update of each tensor a bound derived from the step itself (see
:func:`update_sum_tolerance`). ``tests/plugins/test_cyclegan_parity.py`` shows that deliberately broken steps fail.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import torch
from i2i_cyclegan import LOSS_NAMES, CycleGAN

GOLDEN = json.loads((Path(__file__).parent / "golden" / "golden_cyclegan_step.json").read_text())["portable_pool50"]
LR = GOLDEN["opt"]["lr"]
ADVERSARIAL = ("G_A", "G_B", "D_A", "D_B")

#: Relative tolerances, each several times the widest spread measured between implementations.
TOLERANCES = {
    # forward only: rounding, 4e-6 at most
    "losses_step1": 1e-4,
    # sum of |gradient| per network, before Adam: spread 7.2e-4 (AVX2 against the reference)
    "grad_abs_sum_step1": 5e-3,
    # sum of |update| per network: lr * the number of elements with a gradient well above Adam's eps;
    # spread 2.1e-4 (fp64, whose tiny gradients are smaller than fp32's)
    "update_abs_sum_step1": 1e-3,
    # losses after one update: spread 0.37% (adversarial), 0.05% (cycle and identity)
    "adversarial_step2": 1.5e-2,
    "reconstruction_step2": 3e-3,
    # after two: 2.1% and 0.13%
    "adversarial_step3": 6e-2,
    "reconstruction_step3": 6e-3,
    # sum of |weight| per network after each step: spread 1.7e-6
    "weight_abs_sum": 6e-6,
}


@dataclass
class Record:
    """What the golden file holds of a run of the three steps, measured on ours."""

    losses: list[dict[str, float]] = field(default_factory=list)
    weight_abs_sums: list[dict[str, float]] = field(default_factory=list)
    grad_abs_sum_step1: dict[str, float] = field(default_factory=dict)
    update_abs_sum_step1: dict[str, float] = field(default_factory=dict)
    tensor_sums_step1: dict[str, dict[str, float]] = field(default_factory=dict)
    grads_step1: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)


def _flat(tensors) -> torch.Tensor:
    return torch.cat([t.detach().double().flatten() for t in tensors])


def run_steps(trainer: CycleGAN, tensors: dict[str, torch.Tensor], steps: int = 3) -> Record:
    """Train ``steps`` golden steps and record what the golden file records."""
    record = Record()
    before = {name: _flat(net.parameters()) for name, net in trainer.networks.items()}
    for i in range(steps):
        record.losses.append(trainer.train_step({"A": tensors[f"iter{i + 1}.A"], "B": tensors[f"iter{i + 1}.B"]}))
        record.weight_abs_sums.append(
            {name: _flat(net.parameters()).abs().sum().item() for name, net in trainer.networks.items()}
        )
        if i == 0:
            for name, net in trainer.networks.items():
                grads = {key: p.grad.detach().clone() for key, p in net.named_parameters()}
                record.grads_step1[name] = grads
                record.grad_abs_sum_step1[name] = _flat(grads.values()).abs().sum().item()
                record.update_abs_sum_step1[name] = (_flat(net.parameters()) - before[name]).abs().sum().item()
                record.tensor_sums_step1[name] = {k: v.double().sum().item() for k, v in net.state_dict().items()}
    return record


def update_sum_tolerance(ours: torch.Tensor, other: torch.Tensor) -> float:
    """How far the sum of a tensor's step-1 update may be from the reference's, given the tensor's gradient
    in two of our implementations that round differently (``ours`` and ``other``).

    Elements whose gradient is within twice the largest difference of the two may move by ``lr`` either way
    in any implementation; the others move the same way in all. The sum of ``n`` such independent ``±2 lr``
    differences stays within ``5 sqrt(n)`` of them (five standard deviations).
    """
    spread = (ours - other).abs().max()
    uncertain = int((ours.abs() <= 2 * spread).sum())
    return 2 * LR * (5 * math.sqrt(uncertain) + 1)


def _relative(ours: float, theirs: float) -> float:
    return abs(ours - theirs) / abs(theirs)


def failures(record: Record, other_grads: dict[str, dict[str, torch.Tensor]] | None = None) -> list[str]:
    """Every comparison with the golden steps that fails, as readable lines (empty when all agree).

    ``other_grads`` (step-1 gradients of a second implementation, see :func:`update_sum_tolerance`) enables the
    per-tensor check of the step-1 update."""
    found = []

    def check(what: str, ours: float, theirs: float, tolerance: float) -> None:
        if not _relative(ours, theirs) <= tolerance:
            found.append(f"{what}: {ours:.7g} against the reference's {theirs:.7g} (tolerance {tolerance:g})")

    steps = GOLDEN["iterations"]
    for i, losses in enumerate(record.losses):
        for name in LOSS_NAMES:
            kind = "adversarial" if name in ADVERSARIAL else "reconstruction"
            tolerance = TOLERANCES["losses_step1"] if i == 0 else TOLERANCES[f"{kind}_step{i + 1}"]
            check(f"step {i + 1} loss {name}", losses[name], steps[i]["losses"][name], tolerance)
        for name, value in record.weight_abs_sums[i].items():
            golden = steps[i]["weights_after"][name]["abs_sum"]
            check(f"step {i + 1} sum |{name} weights|", value, golden, TOLERANCES["weight_abs_sum"])
    for name, value in record.grad_abs_sum_step1.items():
        golden = steps[0]["grads_after"][name]["abs_sum"]
        check(f"step 1 sum |{name} gradient|", value, golden, TOLERANCES["grad_abs_sum_step1"])
    for name, value in record.update_abs_sum_step1.items():
        golden = steps[0]["delta_after_iter1"][name]["abs_sum"]
        check(f"step 1 sum |{name} update|", value, golden, TOLERANCES["update_abs_sum_step1"])
    if other_grads is not None:
        for name, sums in record.tensor_sums_step1.items():
            for key, value in sums.items():
                golden = steps[0]["per_tensor_after_iter1"][name][key]["sum"]
                grads = record.grads_step1[name]
                if key not in grads:
                    continue
                tolerance = update_sum_tolerance(grads[key], other_grads[name][key])
                if not abs(value - golden) <= tolerance:
                    found.append(
                        f"step 1 sum of {name}.{key}: {value:.7g} against the reference's {golden:.7g} "
                        f"(tolerance {tolerance:.2g})"
                    )
    return found
