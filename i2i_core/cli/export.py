"""``i2i export onnx`` and ``i2i export safetensors``: a trained generator in other formats."""

from __future__ import annotations

import click

from i2i_core.checkpoint import select_checkpoint
from i2i_core.cli.options import PICK
from i2i_core.directions import DIRECTIONS
from i2i_core.errors import I2IError
from i2i_core.infer.export import STORED_DTYPES, export_component, export_onnx


@click.group("export")
def export_group() -> None:
    """Export a trained generator to other formats."""


@export_group.command("onnx")
@click.option(
    "-c", "--checkpoint", required=True, help="Run folder, checkpoint folder, generator .safetensors or builtin:NAME."
)
@PICK
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .onnx file to write.")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True)
@click.option("--dynamic-size", is_flag=True, help="Free batch size, height and width (else 1x3xSIZExSIZE).")
@click.option("--size", type=click.IntRange(min=16), default=256, show_default=True, help="Input side when fixed.")
@click.option("--opset", type=click.IntRange(min=13), default=17, show_default=True)
def export_onnx_command(
    checkpoint: str, pick: str | None, output: str, direction: str, dynamic_size: bool, size: int, opset: int
) -> None:
    """Export a generator to ONNX and check it against PyTorch with onnxruntime."""
    result = export_onnx(select_checkpoint(checkpoint, pick), output, direction, dynamic_size, size, opset)
    click.echo(f"Wrote {result.path}")
    if result.max_abs_diff is None:
        click.echo("onnxruntime is not installed: the model was not checked (pip install onnxruntime)")
    else:
        shapes = ", ".join("x".join(map(str, s)) for s in result.checked_shapes)
        click.echo(f"Checked with onnxruntime on {shapes}: max abs difference {result.max_abs_diff:.2e}")


@export_group.command("safetensors")
@click.option(
    "-c", "--checkpoint", required=True, help="Run folder, checkpoint folder, generator .safetensors or builtin:NAME."
)
@PICK
@click.option("-o", "--output", required=True, type=click.Path(dir_okay=False), help="The .safetensors file to write.")
@click.option("--direction", type=click.Choice(DIRECTIONS), default="AtoB", show_default=True)
@click.option("--dtype", type=click.Choice(list(STORED_DTYPES)), default="fp16", show_default=True)
@click.option("--meta", "extra", multiple=True, metavar="KEY=VALUE", help="Metadata to record (repeatable).")
def export_safetensors_command(
    checkpoint: str, pick: str | None, output: str, direction: str, dtype: str, extra: tuple[str, ...]
) -> None:
    """Export a generator as one component checkpoint file (weights in fp16 by default), as a model is shipped."""
    pairs = [item.split("=", 1) for item in extra]
    if any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise I2IError(f"--meta takes KEY=VALUE, got {', '.join(extra)}")
    path = export_component(select_checkpoint(checkpoint, pick), output, direction, dtype, dict(pairs))
    click.echo(f"Wrote {path} ({path.stat().st_size / 2**20:.1f} MiB, {dtype})")
