"""The two directions a translation can go: ``AtoB`` (domain A to domain B) and ``BtoA``, defined once."""

from __future__ import annotations

from i2i_core.errors import I2IError

#: Every direction, the default (``AtoB``) first.
DIRECTIONS = ("AtoB", "BtoA")


def check_direction(direction: str) -> str:
    """``direction`` itself when it is one of :data:`DIRECTIONS`; else an :class:`I2IError` saying which are."""
    if direction not in DIRECTIONS:
        raise I2IError(f"unknown direction '{direction}'; use AtoB or BtoA")
    return direction


def reverse(direction: str) -> str:
    """The other direction: ``AtoB`` -> ``BtoA``, ``BtoA`` -> ``AtoB``.

    Example:
        >>> reverse("AtoB")
        'BtoA'
    """
    return DIRECTIONS[1 - DIRECTIONS.index(check_direction(direction))]
