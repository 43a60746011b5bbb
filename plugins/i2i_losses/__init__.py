"""i2i plugin: GAN losses ``lsgan`` and ``bce``; reconstruction losses ``l1``, ``l2``, ``lowpass-l1``, ``yuv`` and
``tv``."""

from i2i_core import hookimpl
from i2i_losses.gan import BCEGANLoss, LSGANLoss, bce, bce_gan_loss, lsgan, lsgan_loss
from i2i_losses.reconstruction import l1, l2, lowpass_l1, total_variation, yuv_colour

__all__ = [
    "BCEGANLoss",
    "LSGANLoss",
    "bce",
    "bce_gan_loss",
    "l1",
    "l2",
    "lowpass_l1",
    "lsgan",
    "lsgan_loss",
    "total_variation",
    "yuv_colour",
]


@hookimpl
def register_losses(register):
    register("lsgan", lsgan, role="gan")
    register("bce", bce, role="gan")
    register("l1", l1, role="reconstruction")
    register("l2", l2, role="reconstruction")
    register("lowpass-l1", lowpass_l1, role="reconstruction")
    register("yuv", yuv_colour, role="reconstruction")
    register("tv", total_variation, role="reconstruction")
