"""i2i plugin: paired translation, the ``pix2pix`` method (Isola et al., CVPR 2017), and its U-Net generators
``pix2pix-unet256`` and ``pix2pix-unet128``, which can translate as the reference's test.py does."""

from i2i_core import hookimpl
from i2i_pix2pix.generator import Pix2PixUnet, pix2pix_unet128, pix2pix_unet256
from i2i_pix2pix.method import LOSS_NAMES, Pix2Pix

__all__ = ["LOSS_NAMES", "Pix2Pix", "Pix2PixUnet", "pix2pix_unet128", "pix2pix_unet256"]


@hookimpl
def register_methods(register):
    register(
        "pix2pix",
        Pix2Pix,
        summary="pix2pix: paired translation, a conditional PatchGAN and L1 to the target (Isola et al., 2017).",
    )


@hookimpl
def register_generators(register):
    register("pix2pix-unet256", pix2pix_unet256, size_multiple=256)
    register("pix2pix-unet128", pix2pix_unet128, size_multiple=128)
