"""i2i plugin: the AnimeGANv2 generator ``animegan2``, for the released photo -> anime weights of its PyTorch port."""

from i2i_animegan.animegan2 import AnimeGAN2Generator, animegan2
from i2i_core import hookimpl

__all__ = ["AnimeGAN2Generator", "animegan2"]


@hookimpl
def register_generators(register):
    register("animegan2", animegan2, size_multiple=4)
