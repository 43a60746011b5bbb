"""Exceptions raised by i2i. Every message names the file, key or plugin at fault."""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class I2IError(Exception):
    """Base class of the errors i2i reports to users as one clear line."""


class PluginError(I2IError):
    """A plugin failed to load, or registered something invalid."""


class UnknownComponentError(I2IError, KeyError):
    """A component name that no plugin registered."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class CheckpointError(I2IError):
    """A checkpoint that is missing, corrupt, or does not fit the network it is loaded into."""


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """Return ``" Did you mean 'x'?"`` for the closest match of ``name`` in ``choices``, or ``""``."""
    matches = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f" Did you mean '{matches[0]}'?" if matches else ""
