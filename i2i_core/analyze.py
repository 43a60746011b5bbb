"""``i2i analyze``: run a reporter component on image files, the first being the reference."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import click

from i2i_core.assignments import parse_assignment
from i2i_core.errors import PluginError
from i2i_core.host.registry import create
from i2i_core.images import load_rgb, to_tensor


def unique_labels(paths: Sequence[str | Path]) -> list[str]:
    """The file stems of ``paths``, repeated stems made unique with ``-2``, ``-3``, ... suffixes.

    Example:
        >>> unique_labels(["a/photo.png", "b/photo.jpg", "out.png"])
        ['photo', 'photo-2', 'out']
    """
    labels: list[str] = []
    for path in paths:
        stem, label, n = Path(path).stem, Path(path).stem, 1
        while label in labels:
            n += 1
            label = f"{stem}-{n}"
        labels.append(label)
    return labels


def analyze(
    reporter: str, paths: Sequence[str | Path], out_dir: str | Path, options: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Build the reporter component ``reporter`` with ``options`` and report on the image files ``paths``.

    The images, labelled by file stem, are passed in order: the first is the reference the others are compared
    with. Returns what the reporter returns (JSON-able numbers); its files go into ``out_dir``.

    Example:
        >>> analyze("fourier", ["photo.png", "out_resnet.png", "out_unet.png"], "report")  # doctest: +SKIP
    """
    component = create("reporter", reporter, **dict(options or {}))
    if not callable(getattr(component, "report", None)):
        raise PluginError(f"reporter '{reporter}' built a {type(component).__name__} without a report() method")
    images = {label: to_tensor(load_rgb(path)) for label, path in zip(unique_labels(paths), paths, strict=True)}
    return component.report(images, Path(out_dir))


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
    parsed = dict(parse_assignment(o) for o in options)
    before = _files(Path(out_dir))
    analyze(reporter, images, out_dir, parsed)
    written = sorted(name for name, mtime in _files(Path(out_dir)).items() if before.get(name) != mtime)
    click.echo(f"Wrote the '{reporter}' report on {len(images)} images to {out_dir}: {', '.join(written)}")


def _files(folder: Path) -> dict[str, int]:
    """The files directly in ``folder`` and their modification times (ns); empty when it does not exist."""
    return {p.name: p.stat().st_mtime_ns for p in folder.iterdir() if p.is_file()} if folder.is_dir() else {}
