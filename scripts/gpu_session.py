#!/usr/bin/env python3
"""Everything a lent GPU is for, in one call under a deadline: the CUDA-graph tests, ``i2i bench --device cuda``,
and the shipped model's recipe trained for the time left. Each part logs under ``--out`` as it goes, so a part
that fails or runs out of time leaves the others' results.

Usage (on the GPU machine, the project installed; ``--smoke`` runs the same parts small on a CPU first)::

    python scripts/gpu_session.py --out $OUT --deadline 560
    python scripts/gpu_session.py --smoke --out /tmp/gpu-smoke

Writes ``log.txt`` (what ran, for how long), ``tests.txt``, ``bench.json`` and ``bench-contiguous.json``
(bf16 steps replayed in contiguous memory, against channels-last), ``train.txt`` and ``photo2cartoon-gpu.tar``
(the best checkpoint's generator with its ``state.json``, the run's recipe, metrics and last samples).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tarfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: Seconds left for training after the probe, kept back for evaluation, checkpoints and packing.
TRAIN_MARGIN = 25


class Session:
    def __init__(self, out: Path, deadline: float) -> None:
        self.out, self.end = out, time.monotonic() + deadline
        out.mkdir(parents=True, exist_ok=True)

    def left(self) -> float:
        return self.end - time.monotonic()

    def log(self, message: str) -> None:
        line = f"[{time.strftime('%H:%M:%S')}, {self.left():.0f} s left] {message}"
        print(line, flush=True)
        with open(self.out / "log.txt", "a") as f:
            f.write(line + "\n")

    def run(self, name: str, args: list[str], log: str, timeout: float) -> subprocess.CompletedProcess | None:
        """Run ``args``, its output appended to ``log``; None when it did not finish in ``timeout`` seconds."""
        timeout = min(timeout, self.left() - 5)
        if timeout < 10:
            self.log(f"{name}: skipped, {self.left():.0f} s left")
            return None
        start = time.monotonic()
        with open(self.out / log, "a") as f:
            f.write(f"$ {' '.join(args)}\n")
            f.flush()
            try:
                done = subprocess.run(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=f, text=True, timeout=timeout)
            except subprocess.TimeoutExpired:
                self.log(f"{name}: stopped after {timeout:.0f} s")
                return None
            f.write(done.stdout[-20000:])
        self.log(f"{name}: exit {done.returncode} in {time.monotonic() - start:.0f} s")
        return done


def tests(s: Session, smoke: bool) -> None:
    args = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_cuda_graphs.py"]
    s.run("tests", args, "tests.txt", 60 if smoke else 150)


def bench(s: Session, smoke: bool) -> None:
    i2i = [sys.executable, "-m", "i2i_core"]
    small = ["--device", "cpu", "--size", "32", "--steps", "1", "--method", "cyclegan", "--no-photo"] if smoke else []
    runs = {
        f"bench-{method}.json": ["bench", "--json", "--method", method, *(small or ["--device", "cuda"])]
        for method in (["cyclegan"] if smoke else ["cyclegan", "fastcut"])
    }
    runs |= {
        "bench-contiguous.json": [
            "bench",
            "--json",
            "--precision",
            "bf16",
            "--graphs",
            "on",
            "--memory-format",
            "contiguous",
            "--size",
            "256",
            "--method",
            "cyclegan",
            "--method",
            "fastcut",
            "--no-photo",
            *(small or ["--device", "cuda"]),
        ],
    }
    if smoke:  # CUDA graphs are refused on a CPU
        del runs["bench-contiguous.json"]
    for file, args in runs.items():
        done = s.run(file, [*i2i, *args], "bench.txt", 150)
        if done is not None and done.returncode == 0:
            (s.out / file).write_text(done.stdout.strip().splitlines()[-1] + "\n")


def train(s: Session, smoke: bool) -> None:
    """The shipped model's recipe: a probe of a few seconds measures steps per second, then a run of as many steps
    as the time left allows, the learning rate decaying over the second half."""
    recipe = ROOT / ("tests/recipes/tiny.toml" if smoke else "recipes/photo2cartoon.toml")
    runs = Path("/tmp/i2i-gpu-runs")
    common = ["--set", "train.minutes=0", "--set", "output.keep_last=1"]
    if smoke:
        common += ["--set", "train.device=cpu"]
    i2i = [sys.executable, "-m", "i2i_core", "run", str(recipe), *common]
    probe = [
        *i2i,
        "--set",
        f"output.dir={runs}/probe",
        "--set",
        "train.steps=1000000",
        "--set",
        f"train.minutes={0.3 if smoke else 0.4}",
        "--set",
        "output.log_every=20",
        "--set",
        "output.eval_every=0",
        "--set",
        "output.sample_every=0",
        "--restart",
    ]
    done = s.run("probe", probe, "train.txt", 120)
    if done is None or done.returncode:
        s.log("probe failed: training with train.cuda_graphs=off")
        i2i += ["--set", "train.cuda_graphs=off"]
        done = s.run("probe (eager)", [*probe, "--set", "train.cuda_graphs=off"], "train.txt", 120)
        if done is None or done.returncode:
            return
    logged = [json.loads(line) for line in (runs / "probe" / "metrics.jsonl").read_text().splitlines()]
    rates = sorted(m["steps_per_s"] for m in logged if "steps_per_s" in m)
    rate = rates[-min(3, len(rates))] if rates else 1.0  # steady, past the capture
    seconds = s.left() - TRAIN_MARGIN - 20
    steps = max(50, int(rate * seconds * 0.9) // 100 * 100)
    s.log(f"probe: {rate:.1f} steps/s; training {steps} steps in about {seconds:.0f} s")
    every = max(steps // 6, 10)
    run = runs / "photo2cartoon-gpu"
    args = [
        *i2i,
        "--set",
        f"output.dir={run}",
        "--set",
        f"train.steps={steps}",
        "--set",
        f"output.eval_every={every}",
        "--set",
        f"output.sample_every={every}",
        "--set",
        f"output.checkpoint_every={every * 3}",
        "--restart",
    ]
    s.run("train", args, "train.txt", s.left() - 10)
    pack(s, run)


def pack(s: Session, run: Path) -> None:
    """The best checkpoint's generator and state, the run's small files and its last sample grid, in one tar."""
    best = run / "checkpoints" / "best"
    if not best.is_dir():
        best = max((run / "checkpoints").glob("step_*"), default=None)
    if best is None:
        s.log("pack: no checkpoint")
        return
    samples = sorted((run / "samples").glob("step_*.png"))
    with tarfile.open(s.out / "photo2cartoon-gpu.tar", "w") as tar:
        for file in [*best.glob("G*.safetensors"), best / "state.json", *samples[-1:]]:
            tar.add(file, arcname=str(file.relative_to(run)))
        for file in run.iterdir():
            if file.is_file() and file.stat().st_size < 2_000_000:
                tar.add(file, arcname=file.name)
    s.log(f"pack: {best.name} of {run}, {(s.out / 'photo2cartoon-gpu.tar').stat().st_size / 1e6:.1f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--deadline", type=float, default=560, help="seconds for everything")
    parser.add_argument("--smoke", action="store_true", help="the same parts, small, on the CPU")
    parser.add_argument("--parts", default="tests,bench,train")
    args = parser.parse_args()
    s = Session(args.out, args.deadline)
    if not args.smoke:
        import torch

        s.log(f"torch {torch.__version__}, {torch.cuda.get_device_name()}")
    for part in args.parts.split(","):
        {"tests": tests, "bench": bench, "train": train}[part](s, args.smoke)
    s.log("done")
    print(json.dumps(sorted(p.name for p in args.out.iterdir())))


if __name__ == "__main__":
    main()
