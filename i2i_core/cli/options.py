"""Command-line options shared by several ``i2i`` commands."""

from __future__ import annotations

import click

#: ``--pick``: which checkpoint of a run folder a command reads.
PICK = click.option(
    "--pick",
    metavar="WHICH",
    help="With a run folder: its checkpoint latest (the default), best (kept by eval.best), step_N or N.",
)
