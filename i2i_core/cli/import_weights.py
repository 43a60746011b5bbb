"""``i2i import-weights``: convert a reference CycleGAN or CUT checkpoint, or a released AnimeGANv2 generator, into an
i2i component checkpoint."""

from __future__ import annotations

import click

from i2i_core.assignments import parse_assignment
from i2i_core.checkpoint import read_metadata
from i2i_core.importers import REFERENCE_ARCHS, SOURCES, import_weights


@click.command("import-weights")
@click.argument("src", type=click.Path(dir_okay=False))
@click.option("-o", "--output", "dst", required=True, type=click.Path(dir_okay=False), help="i2i checkpoint to write.")
@click.option("--from", "source", type=click.Choice(SOURCES), default="cyclegan-reference", show_default=True)
@click.option(
    "--arch",
    type=click.Choice(list(REFERENCE_ARCHS)),
    help="Architecture of SRC (needed unless the source has one, animegan2, or a default, pix2pix-reference: "
    "pix2pix-unet256).",
)
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Component option, e.g. dropout=true or ngf=32 (repeatable).",
)
def import_weights_command(src: str, dst: str, source: str, arch: str | None, options: tuple[str, ...]) -> None:
    """Convert a reference CycleGAN or CUT checkpoint, or a released AnimeGANv2 generator, SRC (.pth, .pt) into
    an i2i component checkpoint."""
    parsed = dict(parse_assignment(o) for o in options)
    path = import_weights(src, dst, arch=arch, source=source, options=parsed)
    name = read_metadata(path)["name"]
    click.echo(f"Wrote {REFERENCE_ARCHS[name]} '{name}' to {path}")
