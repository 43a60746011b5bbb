"""Datasets shipped inside this package, named ``builtin:<name>`` in recipes."""

from __future__ import annotations

from pathlib import Path

from i2i_core.errors import I2IError, did_you_mean

PREFIX = "builtin:"
DATA_DIR = Path(__file__).parent / "data"


def builtin_datasets() -> list[str]:
    """Names of the shipped datasets, e.g. ``["mini-photo2cartoon"]``."""
    return sorted(p.name for p in DATA_DIR.iterdir() if p.is_dir())


def resolve_root(root: str | Path) -> Path:
    """The folder ``data.root`` names: a path, or ``builtin:<name>`` for a shipped dataset."""
    text = str(root)
    if text.startswith(PREFIX):
        name, known = text.removeprefix(PREFIX), builtin_datasets()
        if name not in known:
            raise I2IError(
                f"data.root: unknown builtin dataset '{name}'.{did_you_mean(name, known)} "
                f"Builtin datasets: {', '.join(PREFIX + k for k in known)}."
            )
        return DATA_DIR / name
    path = Path(text).expanduser()
    if path.exists() and not path.is_dir():
        raise I2IError(f"data.root: {path} is a file, not a folder: name the folder holding <split>A and <split>B")
    if not path.is_dir():
        raise I2IError(f"data.root: folder not found: {path}")
    return path
