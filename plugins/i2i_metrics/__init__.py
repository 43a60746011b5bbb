"""i2i plugin: evaluation metrics: ``psnr``, ``ssim``, ``cycle-psnr``, ``content``, ``swd``, ``lab``, ``kid``, ``fid``,
and ``palette``, ``flat``, ``checker`` (what makes a cartoon, with no weights).

Each is a :class:`i2i_core.metric.Metric` over images in [-1, 1]. ``kid`` and ``fid`` need a local InceptionV3
weight file (option ``weights`` or ``$I2I_INCEPTION_WEIGHTS``); i2i never downloads weights.
"""

from i2i_core import hookimpl
from i2i_metrics.cartoon import Checker, Flat, Palette, checker_ratio, flat_share, palette_entropy
from i2i_metrics.colour import LabDistance, lab_distance, lab_pixels, sphere_directions
from i2i_metrics.content import Content, edge_map
from i2i_metrics.inception import InceptionFeatures, load_inception
from i2i_metrics.kid_fid import FID, KID
from i2i_metrics.paired import PSNR, SSIM, CyclePSNR, psnr, ssim
from i2i_metrics.sliced import random_directions, sliced_wasserstein
from i2i_metrics.swd import SWD, laplacian_pyramid, swd_levels

__all__ = [
    "FID",
    "KID",
    "PSNR",
    "SSIM",
    "SWD",
    "Checker",
    "Content",
    "CyclePSNR",
    "Flat",
    "InceptionFeatures",
    "LabDistance",
    "Palette",
    "checker_ratio",
    "edge_map",
    "flat_share",
    "lab_distance",
    "lab_pixels",
    "laplacian_pyramid",
    "load_inception",
    "palette_entropy",
    "psnr",
    "random_directions",
    "sliced_wasserstein",
    "sphere_directions",
    "ssim",
    "swd_levels",
]


@hookimpl
def register_metrics(register):
    register("psnr", PSNR)
    register("ssim", SSIM)
    register("cycle-psnr", CyclePSNR)
    register("content", Content)
    register("swd", SWD)
    register("lab", LabDistance)
    register("kid", KID)
    register("fid", FID)
    register("palette", Palette)
    register("flat", Flat)
    register("checker", Checker)
