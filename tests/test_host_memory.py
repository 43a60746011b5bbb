"""The process keeps freed memory for reuse: a tensor freed and allocated again is not faulted in afresh."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from i2i_core.host_memory import ENV, uses_glibc

TINY = str(Path(__file__).parent / "recipes" / "tiny.toml")

pytestmark = pytest.mark.skipif(not uses_glibc(), reason="glibc's allocator only")

# allocates, fills and frees a 64 MiB tensor (16,384 pages) four times, then counts the faults of four more
CHILD = """
import json, resource, sys, torch
from i2i_core.host_memory import keep_freed_memory
kept = keep_freed_memory() if sys.argv[1] == "keep" else None
if sys.argv[1] == "trainer":
    from i2i_core.bench import bench_recipe
    from i2i_core.training.build import build_trainer
    build_trainer(bench_recipe(sys.argv[2], 32, "fp32", "cpu"))
for _ in range(4):
    torch.empty(16 << 20).fill_(1.0)
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(4):
    torch.empty(16 << 20).fill_(1.0)
print(json.dumps({"kept": kept, "faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before}))
"""


def run_child(mode: str, **env: str) -> dict:
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("MALLOC_", ENV))} | env
    args = [sys.executable, "-c", CHILD, mode, TINY]
    done = subprocess.run(args, capture_output=True, text=True, env=environ, check=True)
    return json.loads(done.stdout)


def test_freed_memory_is_reused_without_page_faults():
    plain, kept = run_child("plain"), run_child("keep")
    assert plain["faults"] > 4 * 16_000  # glibc maps a 64 MiB tensor afresh each time
    assert kept["kept"] is True
    assert kept["faults"] < 1_000


def test_building_a_trainer_keeps_freed_memory():
    assert run_child("trainer")["faults"] < 1_000


@pytest.mark.parametrize("env", [{ENV: "0"}, {"MALLOC_TRIM_THRESHOLD_": "131072"}])
def test_left_alone_when_the_user_says_so(env):
    child = run_child("keep", **env)
    assert child["kept"] is False
    assert child["faults"] > 4 * 16_000
