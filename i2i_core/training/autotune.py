"""``auto`` precision and memory format: what runs a network fastest on this machine, measured once.

CPU flags alone mislead. Without bf16 units (an AVX2-only CPU) bf16 convolutions run 8x slower than fp32; and
there, channels-last fp32 makes a whole CycleGAN step slower although its 3x3 convolution alone is faster. So on a
CPU, ``auto`` times a pass of the recipe's own generator (forward and backward when training) in each candidate
layout and keeps the fastest. The choice is cached per processor, torch version, thread count, network, size and
candidates in ``$XDG_CACHE_HOME/i2i/compute.json`` (default ``~/.cache``): a machine measures it once, in seconds,
and a resumed run makes the same choice. On CUDA, ``auto`` is bf16 channels-last (tensor cores) without measuring.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from i2i_core.compute_copy import ComputeCopy
from i2i_core.precision import Layout, cpu_class, processor

#: The largest side measured: relative speeds settle well below the training sizes.
MAX_SIDE = 128


def _candidates(precision: str, memory_format: str) -> list[Layout]:
    precisions = ["fp32", "bf16"] if precision == "auto" else [precision]
    formats = {"auto": [False, True], "contiguous": [False], "channels_last": [True]}[memory_format]
    layouts = [Layout(p, cl) for p in precisions for cl in formats]
    if precision == "auto" and memory_format == "auto":  # bf16 is fastest channels-last wherever it is fastest
        layouts.remove(Layout("bf16", False))
    return layouts


def _pass_seconds(module: nn.Module, layout: Layout, side: int, train: bool, budget: float) -> float:
    """Time of a pass (forward, plus backward when ``train``) of ``module`` run as ``layout``, after a warm-up
    pass; gives up (returns infinity) when the warm-up pass alone takes more than ``budget`` seconds."""
    compute = ComputeCopy.for_precision(module, layout.precision, layout.channels_last)
    x = compute.prepare(torch.rand(1, 3, side, side) * 2 - 1)

    def one_pass() -> float:
        start = time.perf_counter()
        with torch.set_grad_enabled(train):
            y = compute.module(x)
            if train:
                y.float().mean().backward()
        return time.perf_counter() - start

    if one_pass() > budget:  # the first pass also creates the kernels: it is the slower one
        return float("inf")
    return one_pass()


def _cache_file() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "i2i" / "compute.json"


def choose_layout(
    make_module: Callable[[], nn.Module],
    key: str,
    side: int,
    device: torch.device,
    precision: str = "auto",
    memory_format: str = "auto",
    train: bool = True,
) -> Layout:
    """The layout to run a network in: as given, or for ``auto`` the fastest measured here (see the module).

    Args:
        make_module: builds the network to time (on the CPU), e.g. the recipe's generator.
        key: names the network and its options in the cache.
        side: image side it runs at (measured at up to :data:`MAX_SIDE`).
        precision: ``auto``, ``fp32``, ``bf16`` or ``fp16``; memory_format: ``auto``, ``channels_last``, ``contiguous``.
        train: time forward and backward (training) or forward only (inference).

    Example:
        >>> choose_layout(lambda: nn.Conv2d(3, 3, 3), "conv", 16, torch.device("cpu"), "fp32", "contiguous")
        Layout(precision='fp32', channels_last=False, reason='set in the recipe')
    """
    if device.type != "cpu" or precision == "fp16":
        chosen = "bf16" if precision == "auto" else precision
        channels_last = {"auto": chosen == "bf16", "channels_last": True, "contiguous": False}[memory_format]
        auto = "auto" in (precision, memory_format)
        return Layout(chosen, channels_last, f"the default on {device.type}" if auto else "set in the recipe")
    candidates = _candidates(precision, memory_format)
    if len(candidates) == 1:
        return candidates[0]
    side = min(side, MAX_SIDE)
    machine = [processor(), cpu_class(), f"torch {torch.__version__}", f"{torch.get_num_threads()} threads"]
    work = [key, f"{side}px", "train" if train else "inference", ",".join(c.describe() for c in candidates)]
    cache_key = " | ".join(machine + work)
    file = _cache_file()
    try:
        cached = json.loads(file.read_text())
    except (OSError, ValueError):
        cached = {}
    if not isinstance(cached, dict):
        cached = {}
    seconds = cached.get(cache_key)
    if not (isinstance(seconds, dict) and set(seconds) == {c.describe() for c in candidates}):
        seconds, best = {}, float("inf")
        with torch.random.fork_rng(devices=[]):  # measuring leaves the caller's random numbers as they were
            module = make_module().train(train)
            for layout in candidates:
                measured = _pass_seconds(module, layout, side, train, budget=2 * best + 0.5)
                seconds[layout.describe()] = None if measured == float("inf") else measured  # None: gave up
                best = min(best, measured)
        cached[cache_key] = seconds
        try:
            file.parent.mkdir(parents=True, exist_ok=True)
            file.write_text(json.dumps(cached, indent=1))
        except OSError:
            pass  # a read-only home only means measuring again next time
    fastest = min(candidates, key=lambda c: float("inf") if seconds[c.describe()] is None else seconds[c.describe()])
    timings = ", ".join(f"{name} {s:.3g} s" if s is not None else f"{name} too slow" for name, s in seconds.items())
    return Layout(
        fastest.precision,
        fastest.channels_last,
        f"the fastest on this CPU ({cpu_class()}), measured per pass at {side} px: {timings}",
    )
