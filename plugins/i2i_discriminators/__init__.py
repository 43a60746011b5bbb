"""i2i plugin: discriminators ``vanilla`` (the paper's), ``patchgan`` and ``pixel``."""

from i2i_core import hookimpl
from i2i_discriminators.patchgan import PatchDiscriminator, PixelDiscriminator, patchgan, pixel
from i2i_discriminators.vanilla import VanillaDiscriminator, vanilla

__all__ = ["PatchDiscriminator", "PixelDiscriminator", "VanillaDiscriminator", "patchgan", "pixel", "vanilla"]


@hookimpl
def register_discriminators(register):
    register("vanilla", vanilla)
    register("patchgan", patchgan)
    register("pixel", pixel)
