"""Running a reporter component on image files, the first being the reference (``i2i analyze``, see
:mod:`i2i_core.cli.analyze`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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
