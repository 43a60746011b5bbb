"""i2i plugin: Fourier analysis of images (orthonormal 2-D DFT, the paper's equation 9) and the ``fourier`` reporter."""

from i2i_core import hookimpl
from i2i_fourier.reporter import FourierReporter, fourier
from i2i_fourier.spectrum import (
    band_energy,
    fft2_centered,
    frequency_grid,
    log_magnitude,
    luminance,
    orientation_histogram,
    radial_power_spectrum,
    spectral_centroid,
)

__all__ = [
    "FourierReporter",
    "band_energy",
    "fft2_centered",
    "fourier",
    "frequency_grid",
    "log_magnitude",
    "luminance",
    "orientation_histogram",
    "radial_power_spectrum",
    "spectral_centroid",
]


@hookimpl
def register_reporters(register):
    register("fourier", fourier)
