"""``i2i bench``: measure this machine and a recipe (see :mod:`i2i_core.bench` for the measuring)."""

from __future__ import annotations

import json
from typing import Any

import click

#: What ``i2i bench --device cuda`` compares by default: the reference's computation (fp32, one launch per
#: kernel), bf16, and bf16 with each step replayed from one CUDA graph.
CUDA_MODES = (("fp32", False), ("bf16", False), ("bf16", True))


@click.command("bench")
@click.argument("recipe", required=False, type=click.Path(dir_okay=False, exists=True))
@click.option("--size", "sizes", type=int, multiple=True, help="Image side; repeat for several.  [default: 256 128]")
@click.option(
    "--precision",
    "precisions",
    type=click.Choice(["fp32", "bf16", "fp16"]),
    multiple=True,
    help="Repeat for several.  [default: fp32 bf16]",
)
@click.option(
    "--batch", "batches", type=click.IntRange(min=1), multiple=True, help="Repeat for several.  [default: 1; CUDA: 1 8]"
)
@click.option(
    "--graphs",
    type=click.Choice(["off", "on", "both"]),
    help="Replay each step from a CUDA graph.  [default: off; CUDA: fp32 off, bf16 off and on]",
)
@click.option(
    "--memory-format",
    type=click.Choice(["auto", "channels_last", "contiguous"]),
    default="auto",
    show_default=True,
    help="The networks' memory format.",
)
@click.option(
    "--steps", type=click.IntRange(min=1), help="Timed steps, three times after the warm-up.  [default: 3; CUDA: 20]"
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    help="Train with this method instead of the recipe's (cyclegan, cut, fastcut...); repeat to compare them."
    "  [default: the recipe's; CUDA without a recipe: cyclegan fastcut]",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--photo/--no-photo", default=None, help="Time one 4K photo through i2i translate.  [default: on CUDA]")
@click.option("--profile", is_flag=True, help="Also say where a step's time goes, by operator class (torch.profiler).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def bench_command(
    recipe: str | None,
    sizes: tuple[int, ...],
    precisions: tuple[str, ...],
    batches: tuple[int, ...],
    graphs: str | None,
    memory_format: str,
    steps: int | None,
    methods: tuple[str, ...],
    device: str,
    photo: bool | None,
    profile: bool,
    as_json: bool,
) -> None:
    """Measure this machine: convolution peak, training-step time, TFLOP/s, % of peak, peak memory, and the
    generator's inference throughput.

    RECIPE defaults to the paper's networks (ResNet-9 generators, the conv+FC discriminator), batch 1. Each
    training configuration runs in a fresh process, so its peak memory is its own (RSS includes the PyTorch
    runtime). On CUDA it compares fp32 eager steps (the reference's computation), bf16, and bf16 steps replayed
    from CUDA graphs, at batch 1 and 8.
    """
    from i2i_core.bench import (
        PEAK_CONV,
        bench_recipe,
        conv_peak,
        generator_images_per_second,
        machine,
        measure,
        photo_seconds,
    )
    from i2i_core.precision import DTYPES, cpu_class, resolve_device, resolve_precision
    from i2i_core.training.build import compute_layout

    torch_device = resolve_device(device)
    cuda = torch_device.type == "cuda"
    sizes, precisions = sizes or (256, 128), precisions or ("fp32", "bf16")
    batches, steps = batches or ((1, 8) if cuda else (1,)), steps or (20 if cuda else 3)
    chosen: tuple[str | None, ...] = methods or (("cyclegan", "fastcut") if cuda and recipe is None else (None,))
    modes = _modes(precisions, graphs, cuda)
    for method in chosen:  # a recipe mistake is reported here, before any measurement
        for size in sizes:
            for precision in precisions:
                notes = bench_recipe(recipe, size, precision, device, method).notes
        for note in notes:
            click.echo(f"# {note}", err=True)
    auto = compute_layout(bench_recipe(recipe, sizes[0], "auto", device), torch_device)
    peaks = {p: conv_peak(DTYPES[p], torch_device) for p in precisions}
    rows = [
        measure(
            recipe, size, p, device, steps, method, batch=batch, graphs=g, memory_format=memory_format, profile=profile
        )
        for method in chosen
        for size in sizes
        for batch in batches
        for p, g in modes
    ]
    for row in rows:
        row["pct_of_peak"] = 100 * row["tflops"] / peaks[row["precision"]]
        baseline = next((r for r in rows if _same_work(r, row) and r["precision"] == "fp32" and not r["graphs"]), None)
        row["speedup"] = baseline["s_per_step"] / row["s_per_step"] if baseline else None
    first = bench_recipe(recipe, sizes[0], "auto", device, chosen[0])
    inference_batch = 16 if cuda else 1
    forward = {
        p: generator_images_per_second(bench_recipe(recipe, sizes[0], p, device, chosen[0]), batch=inference_batch)
        for p in precisions
    }
    photo_s = photo_seconds(first) if (cuda if photo is None else photo) else None
    report: dict[str, Any] = {
        "machine": machine(),
        "cpu_class": None if cuda else cpu_class(),
        "auto": {"layout": auto.describe(), "reason": auto.reason},
        "conv_peak_tflops": peaks,
        "train": rows,
        "generator_images_per_s": forward,
        "generator_batch": inference_batch,
        "photo_4k_seconds": photo_s,
    }
    if as_json:
        click.echo(json.dumps(report))
        return
    c, s, k = PEAK_CONV["channels"], PEAK_CONV["side"], PEAK_CONV["kernel"]
    click.echo(f"Machine: {machine()}")
    described = recipe or "the paper's networks (built-in defaults)"
    click.echo(f"Recipe: {described}")
    click.echo(f"auto trains in: {auto.describe()} ({auto.reason})")
    click.echo(
        f"Convolution peak ({k}x{k}, {c} channels, {s}x{s}, channels-last): "
        + ", ".join(f"{p} {t:.2f} TFLOP/s" for p, t in peaks.items())
    )
    memory = "peak device memory (MB)" if cuda else "peak RSS (MB) | page faults / step"
    click.echo(
        f"\n| method | size | batch | precision | graphs | ms / step | x fp32 | TFLOP / step | TFLOP/s | % of peak | {memory} |"
    )
    click.echo("|" + "---|" * (11 if cuda else 12))
    for r in rows:
        speedup = f"{r['speedup']:.1f}" if r["speedup"] else "-"
        mem = f"{r['peak_device_mb']:.0f}" if cuda else f"{r['peak_rss_mb']:.0f} | {r['page_faults_per_step']:.0f}"
        click.echo(
            f"| {r['method']} | {r['size']} | {r['batch']} | {r['precision']} | {'on' if r['graphs'] else 'off'} | "
            f"{1000 * r['s_per_step']:.2f} | {speedup} | {r['tflop_per_step']:.3f} | {r['tflops']:.2f} | "
            f"{r['pct_of_peak']:.0f}% | {mem} |"
        )
    if profile:
        _profile_table(rows)
    click.echo(
        f"\nGenerator forward at {sizes[0]}x{sizes[0]}, batch {inference_batch}: "
        + ", ".join(f"{p} {rate:.1f} images/s" for p, rate in forward.items())
    )
    if photo_s is not None:
        precision = resolve_precision(first["train.precision"], torch_device)
        click.echo(f"One 3840x2160 photo through i2i translate ({precision}): {photo_s:.3f} s")


def _modes(precisions: tuple[str, ...], graphs: str | None, cuda: bool) -> list[tuple[str, bool]]:
    """(precision, CUDA graphs) pairs to measure."""
    if graphs is None:
        modes = [m for m in CUDA_MODES if m[0] in precisions] if cuda else [(p, False) for p in precisions]
        return modes + [(p, False) for p in precisions if cuda and p not in ("fp32", "bf16")]
    choice = {"off": (False,), "on": (True,), "both": (False, True)}[graphs]
    return [(p, g) for p in precisions for g in choice]


def _profile_table(rows: list[dict]) -> None:
    """Milliseconds per step (and share) of each operator class, a column per measured configuration."""
    names = [
        f"{r['method']} {r['size']} b{r['batch']} {r['precision']}{' graphs' if r['graphs'] else ''}" for r in rows
    ]
    click.echo("\nWhere a step's time goes, ms per step (share):\n")
    click.echo("| operator class | " + " | ".join(names) + " |")
    click.echo("|---|" + "---|" * len(rows))
    for kind in rows[0]["profile_ms"]:
        cells = [
            f"{r['profile_ms'][kind]:.0f} ({100 * r['profile_ms'][kind] / (1000 * r['s_per_step']):.0f}%)" for r in rows
        ]
        click.echo(f"| {kind} | " + " | ".join(cells) + " |")


def _same_work(a: dict, b: dict) -> bool:
    return (a["method"], a["size"], a["batch"]) == (b["method"], b["size"], b["batch"])
