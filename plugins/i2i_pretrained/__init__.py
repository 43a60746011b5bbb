"""Trained models shipped with i2i: ``builtin:photo2cartoon``, the model ``i2i translate`` uses by default."""

from __future__ import annotations

from pathlib import Path

from i2i_core.host.hookspecs import Register, hookimpl

MODELS = Path(__file__).parent


def photo2cartoon() -> Path:
    """Photo -> cartoon: cartoon method, ResNet-6, posterized output, free Debian photos and game art (see its card)."""
    return MODELS / "photo2cartoon" / "generator.safetensors"


@hookimpl
def register_pretrained(register: Register) -> None:
    register(
        "photo2cartoon", photo2cartoon, direction="AtoB", card=str(MODELS / "photo2cartoon" / "README.md"), default=True
    )
