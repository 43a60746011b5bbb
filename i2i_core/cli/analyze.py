"""``i2i analyze``: run a reporter component on image files, the first being the reference."""

from __future__ import annotations

from pathlib import Path

import click

from i2i_core.assignments import parse_assignment


@click.command("analyze")
@click.argument("reporter")
@click.argument("images", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("-o", "--output", "out_dir", required=True, type=click.Path(file_okay=False), help="Report folder.")
@click.option(
    "--option",
    "options",
    multiple=True,
    metavar="KEY=VALUE",
    help="Reporter option, e.g. channel=rgb or bins=32 (repeatable).",
)
def analyze_command(reporter: str, images: tuple[str, ...], out_dir: str, options: tuple[str, ...]) -> None:
    """Analyse IMAGES with the reporter REPORTER; the first image is the reference the others are compared with.

    \b
    Example:
      i2i analyze fourier photo.png out_resnet.png out_unet.png -o report/
    """
    from i2i_core.analyze import analyze

    parsed = dict(parse_assignment(o) for o in options)
    before = _files(Path(out_dir))
    analyze(reporter, images, out_dir, parsed)
    written = sorted(name for name, mtime in _files(Path(out_dir)).items() if before.get(name) != mtime)
    click.echo(f"Wrote the '{reporter}' report on {len(images)} images to {out_dir}: {', '.join(written)}")


def _files(folder: Path) -> dict[str, int]:
    """The files directly in ``folder`` and their modification times (ns); empty when it does not exist."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}
