"""i2i plugin: the ``cartoon`` training method (White-box cartoonization's surface, texture and structure
representations with CartoonGAN's and AnimeGAN's extra fakes, no pretrained network)."""

from i2i_cartoon.method import LOSS_NAMES, Cartoon
from i2i_cartoon.representations import (
    draw_gray_weights,
    edge_mask,
    edge_smoothed,
    lowpass,
    quantize_colours,
    random_gray,
    superpixel_flatten,
    superpixel_labels,
    surface,
)
from i2i_core import hookimpl

__all__ = [
    "LOSS_NAMES",
    "Cartoon",
    "draw_gray_weights",
    "edge_mask",
    "edge_smoothed",
    "lowpass",
    "quantize_colours",
    "random_gray",
    "superpixel_flatten",
    "superpixel_labels",
    "surface",
]


@hookimpl
def register_methods(register):
    register(
        "cartoon",
        Cartoon,
        summary="Cartoon: surface and texture discriminators, superpixel structure, content and colour kept.",
    )
