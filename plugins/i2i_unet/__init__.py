"""i2i plugin: U-Net generators ``unet128`` and ``unet256``."""

from i2i_core import hookimpl
from i2i_unet.unet import UnetGenerator, unet128, unet256

__all__ = ["UnetGenerator", "unet128", "unet256"]


@hookimpl
def register_generators(register):
    register("unet128", unet128, size_multiple=128)
    register("unet256", unet256, size_multiple=256)
