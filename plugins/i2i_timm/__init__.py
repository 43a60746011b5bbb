"""i2i plugin: ``timm-unet``, a U-Net generator over the features of any timm backbone."""

from i2i_core import hookimpl
from i2i_timm.encoders import create_encoder
from i2i_timm.unet_decoder import TimmUnetGenerator, timm_unet

__all__ = ["TimmUnetGenerator", "create_encoder", "timm_unet"]


@hookimpl
def register_generators(register):
    # No size_multiple metadata: it is the encoder's stride, so each module declares its own.
    register("timm-unet", timm_unet)
