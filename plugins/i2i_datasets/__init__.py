"""i2i plugin: the ``unpaired-folder`` dataset (CycleGAN layout), the paired ``paired-folder`` and ``aligned`` datasets
(pix2pix layouts), and the builtin ``mini-photo2cartoon`` data."""

from i2i_core import hookimpl
from i2i_datasets.builtin import builtin_datasets, resolve_root
from i2i_datasets.paired import PairedImages, aligned, paired_folder
from i2i_datasets.transforms import preprocess, random_params
from i2i_datasets.unpaired import UnpairedFolder, unpaired_folder

__all__ = [
    "PairedImages",
    "UnpairedFolder",
    "aligned",
    "builtin_datasets",
    "paired_folder",
    "preprocess",
    "random_params",
    "resolve_root",
    "unpaired_folder",
]


@hookimpl
def register_datasets(register):
    register("unpaired-folder", unpaired_folder)
    register("paired-folder", paired_folder)
    register("aligned", aligned)
