"""i2i plugin: ResNet generators ``resnet9`` and ``resnet6``."""

from i2i_core import hookimpl
from i2i_resnet.antialias import Downsample, Upsample
from i2i_resnet.resnet import ResnetGenerator, resnet6, resnet9

__all__ = ["Downsample", "ResnetGenerator", "Upsample", "resnet6", "resnet9"]


@hookimpl
def register_generators(register):
    register("resnet9", resnet9, size_multiple=4)
    register("resnet6", resnet6, size_multiple=4)
