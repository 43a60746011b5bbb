"""Command-line options shared by several ``i2i`` commands."""

from __future__ import annotations

import math

import click

from i2i_core.errors import I2IError

#: ``--pick``: which checkpoint of a run folder a command reads.
PICK = click.option(
    "--pick",
    metavar="WHICH",
    help="With a run folder: its checkpoint latest (the default), best (kept by eval.best), step_N or N.",
)

_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


class ByteSize(click.ParamType):
    """A positive size in bytes: ``1.5GB``, ``800M``, ``2g``, ``512KiB`` or a plain number of bytes. Anything else
    is refused while the command line is parsed, with an :class:`I2IError` naming the option."""

    name = "size"

    def convert(self, value: object, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        text = str(value)
        number = text.strip().upper().removesuffix("IB").removesuffix("B")
        unit = number[-1] if number and number[-1] in _UNITS else ""
        try:
            size = float(number.removesuffix(unit)) * _UNITS[unit]
        except ValueError:
            size = math.nan
        if not math.isfinite(size) or size < 1:
            option = param.opts[0] if param is not None else "size"
            raise I2IError(f"{option}: expected a size such as 800MB or 2GB (at least 1 byte), got {text!r}")
        return int(size)
