"""i2i plugin: the CycleGAN training method ``cyclegan`` (Zhu et al., 2017), the recipe default."""

from i2i_core import hookimpl
from i2i_cyclegan.image_pool import ImagePool
from i2i_cyclegan.method import LOSS_NAMES, NETWORK_KINDS, CycleGAN

__all__ = ["LOSS_NAMES", "NETWORK_KINDS", "CycleGAN", "ImagePool"]


@hookimpl
def register_methods(register):
    register(
        "cyclegan", CycleGAN, summary="CycleGAN: two generators and two discriminators, cycle and identity losses."
    )
