"""The golden vectors of reference CUT / FastCUT (``tests/golden/cut``): records, tensors, portable weights and
the recorded random draws."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn

import i2i_core

GOLDEN_CUT = Path(__file__).parent / "golden" / "cut"
MODES = ("cut", "fastcut")
LAYERS = [0, 4, 8, 12, 16]
#: The reference's networks as i2i components: G, D and (built from G's feature widths) F.
GENERATOR = {"name": "resnet9", "antialias": True, "antialias_up": True}
DISCRIMINATOR = {"name": "patchgan", "antialias": True}


@cache
def record(mode: str) -> dict:
    """``golden_cut.json``'s record of ``mode``: options, seeds, manifests, the three steps."""
    return json.loads((GOLDEN_CUT / "golden_cut.json").read_text())[mode]


@cache
def tensors(mode: str) -> dict[str, torch.Tensor]:
    """The golden tensors of ``mode``, with the step inputs ``iter{1,2,3}.{A,B}`` drawn again from the data seed
    as the reference drew them (the repository does not store them)."""
    golden = load_file(GOLDEN_CUT / f"golden_{mode}.safetensors")
    g = torch.Generator().manual_seed(record(mode)["seeds"]["data"])
    for step in (1, 2, 3):
        for domain in "AB":
            golden[f"iter{step}.{domain}"] = torch.rand(1, 3, 128, 128, generator=g) * 2 - 1
    return golden


@torch.no_grad()
def portable_parameters(net: nn.Module, manifest: list, seed: int) -> nn.Module:
    """Draw the golden portable weights into ``net``'s parameters (buffers keep their values), walking its state
    dict in the reference's order, and check every tensor against the manifest's sum and abs-sum."""
    state = net.state_dict()
    assert list(state) == [entry[0] for entry in manifest]
    g = torch.Generator().manual_seed(seed)
    for key, shape, total, abs_total, kind in manifest:
        tensor = state[key]
        assert list(tensor.shape) == shape, key
        if kind == "param":
            tensor.copy_((torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 1) * (0.02 * 3**0.5))
        assert abs(tensor.double().sum().item() - total) <= 1e-6 * abs_total + 1e-9, key
        assert abs(tensor.double().abs().sum().item() - abs_total) <= 1e-6 * abs_total, key
    return net


def generator(mode: str) -> nn.Module:
    options = {k: v for k, v in GENERATOR.items() if k != "name"}
    net = i2i_core.create("generator", GENERATOR["name"], **options)
    return portable_parameters(net, record(mode)["G_manifest"], record(mode)["seeds"]["G"])


def discriminator(mode: str) -> nn.Module:
    options = {k: v for k, v in DISCRIMINATOR.items() if k != "name"}
    net = i2i_core.create("discriminator", DISCRIMINATOR["name"], **options)
    return portable_parameters(net, record(mode)["D_manifest"], record(mode)["seeds"]["D"])


def weight_sums(net: nn.Module) -> dict[str, float]:
    """Sum and abs-sum (float64) of the parameters (not the blur buffers), as the record's ``weights_after``."""
    values = [p.detach().double() for p in net.parameters()]
    return {"sum": sum(v.sum().item() for v in values), "abs_sum": sum(v.abs().sum().item() for v in values)}


class ReplayedDraws:
    """Stands for a method's ``draws``: replays the reference's draws of one step, in order, checking that each
    is asked for as recorded (a permutation of as many positions, or a flip)."""

    def __init__(self, mode: str, step: int) -> None:
        self.recorded = record(mode)["iterations"][step - 1]["draws"]
        self.perms = tensors(mode)
        self.step, self.next, self.flips = step, 0, []

    def _take(self, kind: str) -> float:
        assert self.next < len(self.recorded), f"step {self.step}: more draws than the reference's"
        recorded_kind, value = self.recorded[self.next]
        assert recorded_kind == kind, (
            f"step {self.step}, draw {self.next}: {kind}, the reference drew a {recorded_kind}"
        )
        self.next += 1
        return value

    def permutation(self, n: int) -> torch.Tensor:
        index = self.next
        assert self._take("perm") == n, f"step {self.step}, draw {index}: a permutation of another size"
        return self.perms[f"iter{self.step}.draw{index}.perm"]

    def flip(self) -> bool:
        self.flips.append(self._take("flip") < 0.5)
        return self.flips[-1]

    def done(self) -> bool:
        return self.next == len(self.recorded)
