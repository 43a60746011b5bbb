"""The golden vectors of reference pix2pix (``tests/golden/pix2pix``): records, tensors, portable weights, inputs and
the replayed dropout masks."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file
from torch import nn

GOLDEN_PIX2PIX = Path(__file__).parent / "golden" / "pix2pix"
#: The step records: ``narrow`` (ngf = ndf = 16, fast) and ``full`` (the reference's 64, slow).
CONFIGS = {"narrow": 16, "full": 64}


@cache
def record() -> dict:
    """``golden_pix2pix.json``: the reference, seeds, the networks' records, the steps of each config, the import."""
    return json.loads((GOLDEN_PIX2PIX / "golden_pix2pix.json").read_text())


@cache
def tensors() -> dict[str, torch.Tensor]:
    return load_file(GOLDEN_PIX2PIX / "golden_pix2pix.safetensors")


def seed(name: str) -> int:
    return record()["seeds"][name]


def net_input() -> torch.Tensor:
    """The networks' input: ``torch.manual_seed(1)``, then (1, 3, 256, 256) uniform in [-1, 1]."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed("net_input"))
        return torch.rand(1, 3, 256, 256) * 2 - 1


def net_pair(x: torch.Tensor) -> torch.Tensor:
    """The discriminator's input in the networks' record: ``x`` beside itself mirrored, on channels."""
    return torch.cat([x, x.flip(3)], 1)


def step_inputs() -> list[tuple[torch.Tensor, torch.Tensor]]:
    """The three steps' (A, B): one generator seeded ``step_data``, A then B, (1, 3, 256, 256) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed("step_data"))
    return [tuple(torch.rand(1, 3, 256, 256, generator=g) * 2 - 1 for _ in "AB") for _ in range(3)]  # type: ignore[misc]


@torch.no_grad()
def portable(net: nn.Module, manifest: list, seed: int) -> nn.Module:
    """Draw the golden portable weights into ``net``: walking its state dict in the reference's order, each
    parameter gets (rand * 2 - 1) * 0.02 * sqrt(3) from one generator seeded ``seed``, plus 1 for batch-norm
    weights; buffers keep their values. Every tensor is checked against the manifest's sums."""
    state = net.state_dict(keep_vars=True)
    assert list(state) == [entry[0] for entry in manifest], "the state-dict keys or their order differ"
    modules = dict(net.named_modules())
    g = torch.Generator().manual_seed(seed)
    for key, shape, total, abs_total, kind in manifest:
        tensor = state[key]
        assert list(tensor.shape) == shape, key
        assert (kind == "param") == isinstance(tensor, nn.Parameter), key
        if kind == "param":
            draw = (torch.rand(shape, generator=g, dtype=torch.float32) * 2 - 1) * (0.02 * 3**0.5)
            if isinstance(modules[key.rpartition(".")[0]], nn.BatchNorm2d) and key.endswith(".weight"):
                draw = draw + 1
            tensor.copy_(draw)
        assert abs(tensor.double().sum().item() - total) <= 1e-6 * abs_total + 1e-9, key
        assert abs(tensor.double().abs().sum().item() - abs_total) <= 1e-6 * abs_total + 1e-9, key
    return net


class Masks:
    """Stands for ``torch.nn.functional.dropout``, as the golden script's: in training, keeps the elements where a
    draw of U[0, 1) from its own generator seeded ``seed`` is >= p, in call order, scaled by 1 / (1 - p)."""

    def __init__(self, seed: int) -> None:
        self.generator = torch.Generator().manual_seed(seed)
        self.shapes: list[list[int]] = []

    def __call__(self, input, p=0.5, training=True, inplace=False):
        if not training:
            return input
        keep = (torch.rand(input.shape, generator=self.generator) >= p).to(input.dtype)
        self.shapes.append(list(input.shape))
        return input * keep / (1 - p)


@contextlib.contextmanager
def masks_from(seed: int) -> Iterator[Masks]:
    """Inside, every dropout draws the golden masks of ``seed`` (``nn.Dropout`` calls ``F.dropout``)."""
    masks, original = Masks(seed), F.dropout
    F.dropout = masks
    try:
        yield masks
    finally:
        F.dropout = original


def weights(net: nn.Module) -> dict[str, float]:
    """What the record's ``weights_after`` holds: parameter sum, abs-sum and count, running-statistics sums (and
    the running means' abs-sum)."""
    params = [p.detach().double() for p in net.parameters()]
    buffers = dict(net.named_buffers())
    stats = {
        name: sum(b.double().sum().item() for k, b in buffers.items() if k.endswith(name))
        for name in ("running_mean", "running_var", "num_batches_tracked")
    }
    stats["running_mean_abs"] = sum(b.double().abs().sum().item() for k, b in buffers.items() if k.endswith("mean"))
    return {
        "sum": sum(p.sum().item() for p in params),
        "abs_sum": sum(p.abs().sum().item() for p in params),
        "numel": sum(p.numel() for p in params),
        **stats,
    }


def sums(tensor: torch.Tensor) -> list[float]:
    t = tensor.detach().double()
    return [t.sum().item(), t.abs().sum().item()]
