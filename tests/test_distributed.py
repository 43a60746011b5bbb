"""Multi-process training with torchrun (gloo on CPU): equal to one process with the combined batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import i2i_core

DATA = Path(__file__).parents[1] / "plugins" / "i2i_datasets" / "data" / "mini-photo2cartoon"
TINY = Path(__file__).parent / "recipes" / "tiny.toml"
STEPS = 3

# Runs under torchrun: trains, then every rank saves the weights it ended with.
RANK_SCRIPT = textwrap.dedent(
    """
    import os, sys
    from safetensors.torch import save_file
    import i2i_core, i2i_core.training.loop as training

    built = []
    real_build = training.build_trainer
    training.build_trainer = lambda *a, **k: built.append(real_build(*a, **k)) or built[-1]
    result = i2i_core.train(i2i_core.load_recipe(sys.argv[1], sys.argv[3:]), show_progress=False)
    weights = {f"{n}.{k}": v for n, net in built[0].networks.items() for k, v in net.state_dict().items()}
    save_file(weights, os.path.join(sys.argv[2], f"rank{os.environ['RANK']}.safetensors"))
    """
)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    """Four photos and one cartoon, 32 px, so that no randomness depends on the process drawing it."""
    root = tmp_path_factory.mktemp("data")
    photos = sorted((DATA / "trainA").iterdir())[:4]
    for split, files in (("train", photos), ("test", photos[:1])):
        for domain, paths in (("A", files), ("B", sorted((DATA / "trainB").iterdir())[:1])):
            (root / f"{split}{domain}").mkdir()
            for path in paths:
                Image.open(path).convert("RGB").resize((32, 32)).save(root / f"{split}{domain}" / f"{path.stem}.png")
    return root


def overrides(dataset: Path, out: Path, batch: int) -> list[str]:
    return [
        f"data.root='{dataset}'",
        "data.load_size=32",
        "data.crop_size=32",
        "data.flip=false",
        f"train.batch_size={batch}",
        f"train.steps={STEPS}",
        "train.pool_size=0",
        "output.checkpoint_every=0",
        f"output.dir='{out}'",
    ]


def torchrun(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", *args]
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)


@pytest.fixture(scope="module")
def two_ranks(dataset, tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("ddp")
    script = folder / "rank.py"
    script.write_text(RANK_SCRIPT)
    result = torchrun(str(script), str(TINY), str(folder), *overrides(dataset, folder / "run", batch=1))
    assert result.returncode == 0, result.stderr[-3000:]
    return folder


def test_both_ranks_end_with_identical_weights(two_ranks):
    rank0, rank1 = load_file(two_ranks / "rank0.safetensors"), load_file(two_ranks / "rank1.safetensors")
    assert rank0.keys() == rank1.keys()
    assert all(torch.equal(rank0[k], rank1[k]) for k in rank0)


def test_two_ranks_equal_one_process_with_batch_two(two_ranks, dataset, tmp_path):
    single = i2i_core.train(
        i2i_core.load_recipe(TINY, overrides(dataset, tmp_path / "one", batch=2)), show_progress=False
    )
    folder = single.run_dir / "checkpoints" / f"step_{STEPS:07d}"
    one = {
        f"{n}.{k}": v for n in ("G_A", "G_B", "D_A", "D_B") for k, v in load_file(folder / f"{n}.safetensors").items()
    }
    ranks = load_file(two_ranks / "rank0.safetensors")
    for key, value in one.items():
        # equal up to the order of float reductions; Adam turns rounding noise in gradients that are zero in exact
        # arithmetic (conv biases before instance norm) into updates of up to lr = 2e-4 per step
        torch.testing.assert_close(ranks[key], value, atol=2e-4 * STEPS * 2, rtol=0, msg=key)


def test_only_rank_zero_writes_and_the_run_resumes_on_one_process(two_ranks, dataset):
    run = two_ranks / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [m["step"] for m in lines] == list(range(1, STEPS + 1))  # one writer
    state = json.loads((run / "checkpoints" / f"step_{STEPS:07d}" / "state.json").read_text())
    assert state["world_size"] == 2 and state["step"] == STEPS
    more = [*overrides(dataset, run, batch=1), f"train.steps={STEPS + 2}"]  # later overrides win
    with pytest.warns(UserWarning, match="recipe differs"):
        resumed = i2i_core.train(i2i_core.load_recipe(TINY, more), show_progress=False)
    assert resumed.steps == STEPS + 2


@pytest.mark.slow
def test_i2i_run_nproc_launches_torchrun(dataset, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    sets = [a for o in overrides(dataset, tmp_path / "run", batch=1) for a in ("--set", o)]
    cmd = [sys.executable, "-m", "i2i_core", "run", str(TINY), "--nproc", "2", "--no-progress", *sets]
    result = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.count(f"Finished at step {STEPS}") == 1  # rank 0 reports
    state = json.loads((tmp_path / "run" / "checkpoints" / f"step_{STEPS:07d}" / "state.json").read_text())
    assert state["world_size"] == 2
