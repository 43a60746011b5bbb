"""``i2i bench``: measure this machine and a recipe (see :mod:`i2i_core.bench` for the measuring)."""

from __future__ import annotations

import json

import click


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
    "--steps", type=click.IntRange(min=1), default=3, show_default=True, help="Timed steps (after one warm-up)."
)
@click.option(
    "--method",
    "methods",
    multiple=True,
    help="Train with this method instead of the recipe's (cyclegan, cut, fastcut...); repeat to compare them.",
)
@click.option("--device", default="auto", show_default=True, help="auto, cpu, cuda or cuda:N.")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object instead of tables.")
def bench_command(
    recipe: str | None,
    sizes: tuple[int, ...],
    precisions: tuple[str, ...],
    methods: tuple[str, ...],
    steps: int,
    device: str,
    as_json: bool,
) -> None:
    """Measure this machine: convolution peak, training-step time, TFLOP/s, % of peak, peak memory.

    RECIPE defaults to the paper's networks (ResNet-9 generators, the conv+FC discriminator), batch 1. Each
    training configuration runs in a fresh process, so its peak RSS is its own (it includes the PyTorch runtime).
    """
    from i2i_core.bench import (
        PEAK_CONV,
        bench_recipe,
        conv_peak,
        generator_images_per_second,
        machine,
        measure_in_subprocess,
    )
    from i2i_core.precision import DTYPES, cpu_class, resolve_device
    from i2i_core.training.build import compute_layout

    sizes, precisions = sizes or (256, 128), precisions or ("fp32", "bf16")
    chosen: tuple[str | None, ...] = methods or (None,)
    torch_device = resolve_device(device)
    for method in chosen:  # a recipe mistake is reported here, before any measurement
        for size in sizes:
            for precision in precisions:
                notes = bench_recipe(recipe, size, precision, device, method).notes
        for note in notes:
            click.echo(f"# {note}", err=True)
    auto = compute_layout(bench_recipe(recipe, sizes[0], "auto", device), torch_device)
    peaks = {p: conv_peak(DTYPES[p], torch_device) for p in precisions}
    rows = [
        measure_in_subprocess(recipe, size, p, device, steps, method)
        for size in sizes
        for method in chosen
        for p in precisions
    ]
    for row in rows:
        row["pct_of_peak"] = 100 * row["tflops"] / peaks[row["precision"]]
    forward = {p: generator_images_per_second(bench_recipe(recipe, sizes[0], p, device)) for p in precisions}
    if as_json:
        click.echo(
            json.dumps(
                {
                    "machine": machine(),
                    "cpu_class": cpu_class() if torch_device.type == "cpu" else None,
                    "auto": {"layout": auto.describe(), "reason": auto.reason},
                    "conv_peak_tflops": peaks,
                    "train": rows,
                    "generator_images_per_s": forward,
                }
            )
        )
        return
    c, s, k = PEAK_CONV["channels"], PEAK_CONV["side"], PEAK_CONV["kernel"]
    click.echo(f"Machine: {machine()}")
    described = recipe or "the paper's networks (built-in defaults)"
    click.echo(f"Recipe: {described}, batch 1")
    click.echo(f"auto trains in: {auto.describe()} ({auto.reason})")
    click.echo(
        f"Convolution peak ({k}x{k}, {c} channels, {s}x{s}, channels-last): "
        + ", ".join(f"{p} {t:.2f} TFLOP/s" for p, t in peaks.items())
    )
    click.echo("\n| method | size | precision | s / step | TFLOP / step | TFLOP/s | % of peak | peak RSS (MB) |")
    click.echo("|---|---|---|---|---|---|---|---|")
    for r in rows:
        click.echo(
            f"| {r['method']} | {r['size']} | {r['precision']} | {r['s_per_step']:.3f} | {r['tflop_per_step']:.3f} | "
            f"{r['tflops']:.3f} | {r['pct_of_peak']:.0f}% | {r['peak_rss_mb']:.0f} |"
        )
    click.echo(
        f"\nGenerator forward at {sizes[0]}x{sizes[0]}: "
        + ", ".join(f"{p} {rate:.2f} images/s" for p, rate in forward.items())
    )
