"""Measuring this machine and a recipe: the convolution peak, training-step time, FLOP/s and memory.

``i2i bench`` (:mod:`i2i_core.cli.bench`) prints these; the pytest-benchmark suite in ``benchmarks/`` uses the same
helpers. FLOPs are counted by ``torch.utils.flop_counter`` on a real step, not estimated. Each training
configuration runs in a fresh process (``python -m i2i_core.bench``) so that its peak memory is its own.
"""

from __future__ import annotations

import gc
import json
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch.utils.flop_counter import FlopCounterMode

from i2i_core.compute_copy import ComputeCopy
from i2i_core.errors import I2IError
from i2i_core.host.registry import create
from i2i_core.precision import cpu_class, processor, resolve_device, resolve_precision
from i2i_core.recipe import Recipe, load_recipe, recipe_from_dict
from i2i_core.training.build import build_trainer, compute_layout

#: The convolution that dominates a CycleGAN step: ResNet-9's bottleneck, 3x3, 256 -> 256 channels at 64x64.
PEAK_CONV = {"channels": 256, "side": 64, "kernel": 3}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_seconds(fn: Callable[[], Any], device: torch.device, repeats: int = 5, number: int = 4) -> float:
    """The best of ``repeats`` mean times of ``number`` calls (after one warm-up call); fewer calls when one takes
    long (bf16 without bf16 units), so that the measurement stays around a second."""
    start = time.perf_counter()
    fn()
    synchronize(device)
    warm_up = time.perf_counter() - start
    if warm_up * repeats * number > 1.0:
        repeats, number = 3, 1
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        synchronize(device)
        best = min(best, (time.perf_counter() - start) / number)
    return best


def conv_peak(dtype: torch.dtype, device: torch.device) -> float:
    """Measured TFLOP/s of :data:`PEAK_CONV` (forward, channels-last, batch 1): what this machine reaches on
    the convolutions CycleGAN spends its time in."""
    c, s, k = PEAK_CONV["channels"], PEAK_CONV["side"], PEAK_CONV["kernel"]
    conv = torch.nn.Conv2d(c, c, k, padding=k // 2, bias=False).to(device, dtype, memory_format=torch.channels_last)
    x = torch.randn(1, c, s, s, device=device, dtype=dtype).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        seconds = best_seconds(lambda: conv(x), device)
    return 2 * c * c * k * k * s * s / seconds / 1e12


def count_flops(fn: Callable[[], Any]) -> int:
    """FLOPs of one call of ``fn``, as counted by ``torch.utils.flop_counter``."""
    counter = FlopCounterMode(display=False)
    with counter:
        fn()
    return counter.get_total_flops()


def bench_recipe(
    path: str | Path | None,
    size: int,
    precision: str,
    device: str = "auto",
    method: str | None = None,
    *,
    batch: int = 1,
    graphs: bool = False,
    memory_format: str = "auto",
) -> Recipe:
    """``path``'s recipe (the built-in defaults, the paper's networks, when None) at ``size``, ``precision``,
    ``batch`` and ``memory_format``, its steps replayed from CUDA graphs with ``graphs``, trained by ``method``
    when given (as ``--set method=...``: the keys only the recipe's method reads are dropped, the others keep
    the recipe's values; its ``notes`` say which)."""
    overrides: dict[str, Any] = {"method": method} if method else {}
    overrides.update(
        {
            "data.crop_size": size,
            "data.load_size": size + size // 8,
            "train.precision": precision,
            "train.memory_format": memory_format,
            "train.batch_size": batch,
            "train.cuda_graphs": "on" if graphs else "off",
            "train.device": device,
        }
    )
    if path is None:
        values: dict[str, Any] = {"name": "bench"}
        for dotted, value in overrides.items():
            *tables, key = dotted.split(".")
            node = values
            for table in tables:
                node = node.setdefault(table, {})
            node[key] = value
        return recipe_from_dict(values, "bench")
    return load_recipe(path, overrides)


#: Warm-up steps before timing: the first (FLOPs counted) and, with CUDA graphs, until the step is replayed
#: (CycleGAN's image pools fill first), at most this many.
MAX_WARMUP_STEPS = 200


def measure_train_step(recipe: Recipe, steps: int = 3, profile: bool = False) -> dict[str, Any]:
    """Seconds per training step (:meth:`~i2i_core.method.Method.run_step`, as the engine runs it) on random
    images: the median of three runs of ``steps`` steps after the warm-up (one step, or with CUDA graphs the
    steps until the graph is replayed); FLOPs per step, peak RSS, the host's page faults per timed step (memory
    the step touches afresh, see :mod:`i2i_core.host_memory`) and, on CUDA, peak device memory. With
    ``profile``, also where a step's time goes (:func:`profile_step`), in milliseconds per step."""
    device = resolve_device(recipe["train.device"])
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    layout = compute_layout(recipe, device)
    trainer = build_trainer(recipe, device, layout)
    size, batch = recipe["data.crop_size"], recipe["train.batch_size"]
    a, b = (torch.rand(batch, 3, size, size) * 2 - 1 for _ in range(2))
    flops = count_flops(lambda: trainer.run_step({"A": a, "B": b}))  # also the first warm-up step
    for _ in range(MAX_WARMUP_STEPS):
        if trainer.step_graphs is None or trainer.step_graphs.graphs:
            break
        trainer.run_step({"A": a, "B": b})
    runs, faults_before = [], minor_page_faults()
    for _ in range(3):
        synchronize(trainer.device)
        start = time.perf_counter()
        for _ in range(steps):
            trainer.run_step({"A": a, "B": b})
        synchronize(trainer.device)
        runs.append((time.perf_counter() - start) / steps)
    faults = (minor_page_faults() - faults_before) / (3 * steps)
    seconds = sorted(runs)[1]
    cuda = trainer.device.type == "cuda"
    shares = profile_step(lambda: trainer.run_step({"A": a, "B": b})) if profile else {}
    return {
        "method": recipe["method"],
        "size": size,
        "batch": batch,
        "precision": layout.precision,
        "channels_last": layout.channels_last,
        "graphs": trainer.graphs,
        "device": str(trainer.device),
        "s_per_step": seconds,
        "tflop_per_step": flops / 1e12,
        "tflops": flops / seconds / 1e12,
        "peak_rss_mb": peak_rss_mb(),
        "page_faults_per_step": faults,
        "peak_device_mb": torch.cuda.max_memory_allocated(trainer.device) / 2**20 if cuda else None,
        **({"profile_ms": {name: 1000 * seconds * share for name, share in shares.items()}} if profile else {}),
    }


#: Operator classes of :func:`profile_step`, each with the words that name its operators (the first class whose
#: word is in an operator's lower-case name takes it; the rest is elementwise work).
OPERATOR_CLASSES = {
    "convolution backward": ("convolution_backward", "conv2d_backward", "convolutionbackward", "conv_transpose2d_back"),
    "convolution forward": ("conv",),
    "normalisation": ("norm",),
    "padding": ("pad",),
    "optimiser": ("adam", "optimizer", "_foreach"),
    "copies and allocation": ("copy", "clone", "contiguous", "empty", "resize", "fill_", "zero_", "as_strided"),
    "losses and reductions": ("loss", "mean", "sum", "softmax", "sort", "argsort", "topk"),
}
#: What :func:`profile_step` calls the time outside every operator: the autograd engine's and Python's own.
OVERHEAD = "Python and autograd overhead"


def profile_step(step: Callable[[], Any], steps: int = 2) -> dict[str, float]:
    """Where the time of ``step()`` goes: the share of each operator class of :data:`OPERATOR_CLASSES` (by the
    operators' own time, children excluded), ``elementwise and other``, and :data:`OVERHEAD` (the wall time no
    operator accounts for), over ``steps`` profiled calls. On CUDA the operators' device time counts, and the
    overhead is the time the device waits. The profiler slows every operator, so shares, not its times, are what
    it measures.

    Example:
        >>> conv = torch.nn.Conv2d(3, 8, 3)
        >>> shares = profile_step(lambda: conv(torch.rand(1, 3, 64, 64)).sum().backward())
        >>> round(sum(shares.values()), 6), shares["convolution forward"] > 0
        (1.0, True)
    """
    from torch.profiler import ProfilerActivity, profile

    cuda = torch.cuda.is_available()
    with profile(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda) as prof:
        start = time.perf_counter()
        for _ in range(steps):
            step()
        if cuda:
            torch.cuda.synchronize()
        wall = time.perf_counter() - start
    totals = dict.fromkeys([*OPERATOR_CLASSES, "elementwise and other"], 0.0)
    for event in prof.key_averages():
        name = event.key.lower()
        kind = next((c for c, words in OPERATOR_CLASSES.items() if any(w in name for w in words)), None)
        own = getattr(event, "self_device_time_total", 0) if cuda else event.self_cpu_time_total
        totals[kind or "elementwise and other"] += own / 1e6
    totals[OVERHEAD] = max(0.0, wall - sum(totals.values()))
    whole = sum(totals.values())
    return {name: value / whole for name, value in totals.items()}


def generator_images_per_second(recipe: Recipe, seconds: float = 2.0, batch: int = 1) -> float:
    """Generator forward throughput at the recipe's crop size, ``batch`` images a pass, in eval mode."""
    device = resolve_device(recipe["train.device"])
    precision = resolve_precision(recipe["train.precision"], device)
    net = create("generator", recipe["model.generator.name"], **recipe.component_options("model", "generator"))
    compute = ComputeCopy.for_precision(net.to(device).eval(), precision)
    size = recipe["data.crop_size"]
    x = compute.prepare(torch.rand(batch, 3, size, size, device=device) * 2 - 1)
    with torch.no_grad():
        compute.module(x)
        synchronize(device)
        start, count = time.perf_counter(), 0
        while time.perf_counter() - start < seconds:
            compute.module(x)
            count += batch
        synchronize(device)
    return count / (time.perf_counter() - start)


def photo_seconds(recipe: Recipe, width: int = 3840, height: int = 2160) -> float:
    """Seconds to translate one photo of ``width`` x ``height`` with the recipe's generator (random weights) as
    ``i2i translate`` does (:class:`~i2i_core.infer.translate.Translator`: tiled when the memory budget asks),
    from host memory to host memory; the best of three after a warm-up."""
    from i2i_core.infer.translate import Translator

    device = resolve_device(recipe["train.device"])
    precision = resolve_precision(recipe["train.precision"], device)
    net = create("generator", recipe["model.generator.name"], **recipe.component_options("model", "generator"))
    translator = Translator(net.to(device).eval(), device, precision)
    photo = torch.rand(3, height, width) * 2 - 1
    with torch.no_grad():
        return best_seconds(lambda: translator.translate_tensor(photo), device, repeats=3, number=1)


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def minor_page_faults() -> int:
    """This process's page faults so far that needed no disk: mostly memory it touched for the first time."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def machine() -> str:
    """The processor (or GPU), its class (see :func:`i2i_core.precision.cpu_class`), threads and the torch version."""
    if torch.cuda.is_available():
        return f"{torch.cuda.get_device_name()}, torch {torch.__version__}"
    units = "bf16 units" if cpu_class() in ("AMX", "AVX512-BF16") else "no bf16 units"
    return f"{processor()}, CPU class {cpu_class()} ({units}), {torch.get_num_threads()} threads, torch {torch.__version__}"


def measure(
    recipe_path: str | None,
    size: int,
    precision: str,
    device: str,
    steps: int,
    method: str | None = None,
    **options: Any,
) -> dict:
    """:func:`measure_train_step` of :func:`bench_recipe`'s recipe (``options``: ``batch``, ``graphs``,
    ``memory_format``): on a CPU in a fresh process (:func:`measure_in_subprocess`), so that its peak RSS is its
    own; on CUDA in this one, which the peak device memory does not need, freeing the device's memory after."""
    if resolve_device(device).type != "cuda":
        return measure_in_subprocess(recipe_path, size, precision, device, steps, method, **options)
    try:
        return measure_here(recipe_path, size, precision, device, steps, method, **options)
    finally:
        gc.collect()
        torch.cuda.empty_cache()


def measure_here(
    recipe_path: str | None,
    size: int,
    precision: str,
    device: str,
    steps: int,
    method: str | None = None,
    profile: bool = False,
    **options: Any,
) -> dict:
    """:func:`measure_train_step` of :func:`bench_recipe`'s recipe, in this process."""
    recipe = bench_recipe(recipe_path, size, precision, device, method, **options)
    return measure_train_step(recipe, steps, profile)


def measure_in_subprocess(
    recipe_path: str | None,
    size: int,
    precision: str,
    device: str,
    steps: int,
    method: str | None = None,
    **options: Any,
) -> dict:
    """:func:`measure_train_step` in a fresh Python process, so its peak RSS is its own; ``options`` are
    :func:`bench_recipe`'s (``batch``, ``graphs``, ``memory_format``) and ``profile``."""
    args = {"recipe": recipe_path, "size": size, "precision": precision, "device": device, "method": method}
    done = subprocess.run(
        [sys.executable, "-m", "i2i_core.bench", json.dumps({"args": args, "options": options, "steps": steps})],
        capture_output=True,
        text=True,
    )
    if done.returncode:
        what = f"{method or 'the recipe'} at {size}px {precision} {options}"
        raise I2IError(f"benchmark of {what} failed:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.splitlines()[-1])


def main(argv: list[str]) -> None:
    job = json.loads(argv[0])
    a = job["args"]
    row = measure_here(a["recipe"], a["size"], a["precision"], a["device"], job["steps"], a["method"], **job["options"])
    print(json.dumps(row))


if __name__ == "__main__":
    main(sys.argv[1:])
