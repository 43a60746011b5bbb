"""Shared fixtures: golden vectors of the reference CycleGAN; one torch thread for tests of tiny operators; a small
seeded generator checkpoint (``generator_file``).

Temporary plugins come from i2i's pytest plugin (``i2i_plugin``, see ``i2i_core/pytest_plugin.py``)."""

from __future__ import annotations

import hashlib
import json
import signal
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import i2i_core

GOLDEN = Path(__file__).parent / "golden"


@pytest.fixture(scope="session")
def golden_nets() -> dict:
    """``golden_nets.json``: parameter counts, checksums and state-dict manifests of reference networks."""
    return json.loads((GOLDEN / "golden_nets.json").read_text())


def golden_tensors(name: str) -> dict[str, torch.Tensor]:
    return load_file(GOLDEN / name)


def portable_state_dict(manifest: list[dict], seed: int) -> dict[str, torch.Tensor]:
    """The golden "portable" weights: uniform draws with std 0.02 from one seeded generator, walking the
    reference state dict in order. With the manifests' seed (1234) each tensor is checked against its sha256."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for entry in manifest:
        t = (torch.rand(entry["shape"], generator=g, dtype=torch.float32) * 2 - 1) * (0.02 * 3**0.5)
        if seed == 1234:
            assert hashlib.sha256(t.numpy().tobytes()).hexdigest() == entry["sha256"], entry["key"]
        state[entry["key"]] = t
    return state


@pytest.fixture
def one_thread():
    """Run torch on one thread: tiny networks and filters run fastest so, also on a machine busy with other work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def generator_file(tmp_path_factory) -> Path:
    """A small seeded ResNet-6 generator (ngf 8) saved as a component checkpoint."""
    torch.manual_seed(0)
    net = i2i_core.create("generator", "resnet6", ngf=8)
    path = tmp_path_factory.mktemp("generator") / "G.safetensors"
    return i2i_core.save_component(path, net, "generator", "resnet6", {"ngf": 8})


def train_interrupted(recipe, monkeypatch, method: type, at: int):
    """Train ``recipe``, a SIGINT raised in the ``at``-th call of ``method.run_step`` (the engine's step, eager or
    replayed): the run stops after that step, as Ctrl-C stops it. Returns its :class:`TrainResult`."""
    real_step, calls = method.run_step, []

    def step(self, batch):
        calls.append(1)
        if len(calls) == at:
            signal.raise_signal(signal.SIGINT)
        return real_step(self, batch)

    with monkeypatch.context() as patch:
        patch.setattr(method, "run_step", step)
        return i2i_core.train(recipe, show_progress=False)


def checkpoint_tensors(checkpoint: Path) -> dict[str, torch.Tensor]:
    """Every network's tensors of a training checkpoint, keyed ``<file>.<key>``."""
    return {f.stem + "." + k: v for f in sorted(checkpoint.glob("*.safetensors")) for k, v in load_file(f).items()}
