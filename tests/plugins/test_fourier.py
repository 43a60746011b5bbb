"""The ``i2i_fourier`` plugin: spectra against numpy.fft, known signals, real images, and the ``fourier`` reporter."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import i2i_datasets
import numpy as np
import pytest
import torch
from i2i_fourier import (
    FourierReporter,
    band_energy,
    fft2_centered,
    frequency_grid,
    log_magnitude,
    luminance,
    orientation_histogram,
    radial_power_spectrum,
    spectral_centroid,
)
from PIL import Image, ImageFilter

from i2i_core import I2IError, create
from i2i_core.images import find_images, load_rgb, to_tensor

TEST_A = Path(i2i_datasets.__file__).parent / "data" / "mini-photo2cartoon" / "testA"
H, W = 48, 64


def small_photo(blur: float = 0.0, size: tuple[int, int] = (W, H)) -> torch.Tensor:
    """The first testA photo resized to ``size`` (width, height), optionally Gaussian-blurred: (3, H, W) in [-1, 1]."""
    img = load_rgb(find_images(TEST_A)[0]).resize(size, Image.Resampling.BICUBIC)
    return to_tensor(img.filter(ImageFilter.GaussianBlur(blur)) if blur else img)


@pytest.fixture(scope="module")
def photo() -> torch.Tensor:
    return small_photo()


def sinusoid(kx: int, ky: int) -> torch.Tensor:
    """0.2 + 0.5 cos(2π(f_x x + f_y y)) on an H x W grid with f_x = kx / W, f_y = ky / H: (H, W) float32."""
    y, x = torch.meshgrid(torch.arange(H, dtype=torch.float64), torch.arange(W, dtype=torch.float64), indexing="ij")
    return (0.2 + 0.5 * torch.cos(2 * math.pi * (kx / W * x + ky / H * y))).float()


# --- the transform, against numpy.fft on a real image ---


def test_fft2_centered_equals_numpy_fftshift_of_orthonormal_fft2(photo):
    expected = np.fft.fftshift(np.fft.fft2(photo.double().numpy(), norm="ortho"), axes=(-2, -1))
    spec = fft2_centered(photo)
    assert spec.shape == (3, H, W) and spec.dtype == torch.complex64
    np.testing.assert_allclose(spec.numpy(), expected, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(log_magnitude(spec).numpy(), np.log1p(np.abs(expected)), rtol=1e-5, atol=1e-5)


def test_orthonormal_scaling_preserves_energy_and_dc_sits_at_the_centre(photo):
    spec = fft2_centered(photo.double())
    torch.testing.assert_close(spec.abs().square().sum(dim=(-2, -1)), photo.double().square().sum(dim=(-2, -1)))
    torch.testing.assert_close(spec[:, H // 2, W // 2].real, photo.double().sum(dim=(-2, -1)) / math.sqrt(H * W))
    odd = torch.rand(5, 7, dtype=torch.float64)
    assert fft2_centered(odd)[2, 3].real.item() == pytest.approx(odd.sum().item() / math.sqrt(35))


def test_frequency_grid_matches_numpy():
    fy, fx = frequency_grid(5, 4)
    np.testing.assert_array_equal(fy[:, 0].numpy(), np.fft.fftshift(np.fft.fftfreq(5)))
    np.testing.assert_array_equal(fx[0].numpy(), [-0.5, -0.25, 0.0, 0.25])
    assert fy[2, 2] == 0 and fx[2, 2] == 0  # DC at (H//2, W//2)


def test_luminance_is_bt601(photo):
    expected = 0.299 * photo[0] + 0.587 * photo[1] + 0.114 * photo[2]
    torch.testing.assert_close(luminance(photo), expected[None])
    assert luminance(torch.zeros(2, 3, 4, 5)).shape == (2, 1, 4, 5)


# --- known signals ---


@pytest.mark.parametrize(
    ("kx", "ky", "radius", "orientation_bin", "band"),
    [
        (8, 6, math.hypot(0.125, 0.125), 4, 1),  # 45°
        (16, -6, math.hypot(0.25, 0.125), 15, 2),  # atan2(-0.125, 0.25) = -26.6° = 153.4° mod 180
        (0, 12, 0.25, 9, 1),  # 90°; r = 0.25 is the mid band's closed upper edge
        (20, 0, 0.3125, 0, 2),  # 0°
    ],
)
def test_sinusoid_energy_lands_at_its_radius_and_orientation(kx, ky, radius, orientation_bin, band):
    x = sinusoid(kx, ky)
    assert spectral_centroid(x).item() == pytest.approx(radius, rel=1e-5)
    histogram = orientation_histogram(x, bins=18)
    assert histogram[orientation_bin].item() == pytest.approx(1.0, abs=1e-6)
    assert histogram.sum().item() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(band_energy(x), torch.eye(3)[band], atol=1e-6, rtol=0)

    frequencies, power = radial_power_spectrum(x, bins=64)
    peak = int(torch.nan_to_num(power).argmax())
    assert abs(frequencies[peak].item() - radius) <= 0.5 / 64 / 2 + 1e-9
    others = torch.cat([power[:peak], power[peak + 1 :]])
    assert torch.nan_to_num(others).max() < 1e-6 * power[peak]


def test_checkerboard_energy_is_in_the_corner_counted_in_the_high_band():
    checkerboard = torch.tensor([[1.0, -1.0], [-1.0, 1.0]]).repeat(H // 2, W // 2)
    torch.testing.assert_close(band_energy(checkerboard), torch.tensor([0.0, 0.0, 1.0]))
    assert spectral_centroid(checkerboard).item() == pytest.approx(math.sqrt(0.5))
    assert orientation_histogram(checkerboard, bins=4).tolist() == pytest.approx([0.0, 1.0, 0.0, 0.0])
    _, power = radial_power_spectrum(checkerboard)
    assert torch.nan_to_num(power).max() < 1e-6  # r = √0.5 lies beyond the radial axis [0, 0.5]


def test_constant_image_has_zero_statistics_and_no_nan():
    x = torch.stack([torch.full((H, W), 0.3), sinusoid(8, 6)])  # a constant and a varying image
    bands = band_energy(x)
    assert bands[0].tolist() == [0.0, 0.0, 0.0] and bands[1].sum().item() == pytest.approx(1.0)
    assert spectral_centroid(x)[0].item() == 0.0
    histogram = orientation_histogram(x)
    assert histogram[0].abs().sum().item() == 0.0 and histogram[1].sum().item() == pytest.approx(1.0)
    _, power = radial_power_spectrum(x)
    assert power[0][torch.isfinite(power[0])].abs().max().item() == 0.0
    assert torch.isfinite(band_energy(torch.zeros(3, H, W))).all()


def test_white_noise_has_flat_unit_power_whatever_the_size():
    g = torch.Generator().manual_seed(0)
    for size in ((128, 128), (96, 160)):
        _, power = radial_power_spectrum(torch.randn(4, *size, generator=g, dtype=torch.float64), bins=8)
        torch.testing.assert_close(power.mean(dim=0), torch.ones(8, dtype=torch.float64), atol=0.15, rtol=0)


def test_radial_bins_without_frequencies_are_nan():
    frequencies, power = radial_power_spectrum(torch.rand(2, 3, H, W), bins=64)
    assert frequencies.shape == (64,) and power.shape == (2, 3, 64)
    assert frequencies[0].item() == pytest.approx(0.5 / 128) and frequencies[-1].item() == pytest.approx(
        0.5 - 0.5 / 128
    )
    # bin k holds radii in [k, k+1) / 128 cycles/pixel. The non-DC radii of a 48x64 image start at 1/64 = 2/128
    # (bin 2); the largest below 8/128 is hypot(2/64, 2/48) = 6.67/128: bins 0, 1 and 7 hold none
    empty = torch.isnan(power).all(dim=(0, 1)).nonzero().flatten().tolist()
    assert empty == [0, 1, 7] and torch.isnan(power).sum() == 2 * 3 * 3


# --- real images ---


def test_band_energy_and_centroid_match_a_numpy_computation(photo):
    lum = (0.299 * photo[0] + 0.587 * photo[1] + 0.114 * photo[2]).double().numpy()
    power = np.abs(np.fft.fftshift(np.fft.fft2(lum, norm="ortho"))) ** 2
    fy, fx = np.meshgrid(np.fft.fftshift(np.fft.fftfreq(H)), np.fft.fftshift(np.fft.fftfreq(W)), indexing="ij")
    radius = np.hypot(fy, fx)
    power[H // 2, W // 2] = 0.0
    low, mid = power[radius <= 0.1].sum(), power[(radius > 0.1) & (radius <= 0.25)].sum()
    expected = np.array([low, mid, power.sum() - low - mid]) / power.sum()
    np.testing.assert_allclose(band_energy(luminance(photo))[0].numpy(), expected, rtol=1e-5)
    assert spectral_centroid(luminance(photo)).item() == pytest.approx((power * radius).sum() / power.sum(), rel=1e-5)


def test_blurring_lowers_the_centroid_and_moves_energy_to_low_frequencies(photo):
    sharp, blurred = luminance(photo), luminance(small_photo(blur=1.5))
    assert spectral_centroid(blurred).item() < 0.8 * spectral_centroid(sharp).item()
    sharp_bands, blurred_bands = band_energy(sharp)[0], band_energy(blurred)[0]
    assert blurred_bands[0] > sharp_bands[0] and blurred_bands[2] < sharp_bands[2]
    assert sharp_bands.sum().item() == pytest.approx(1.0)


def test_statistics_keep_leading_dimensions(photo):
    batch = torch.stack([photo, photo.flip(-1)])  # (2, 3, H, W)
    assert band_energy(batch).shape == (2, 3, 3) and spectral_centroid(batch).shape == (2, 3)
    assert orientation_histogram(batch, bins=6).shape == (2, 3, 6)
    torch.testing.assert_close(band_energy(batch)[1], band_energy(photo.flip(-1)))
    torch.testing.assert_close(orientation_histogram(batch, bins=6)[0], orientation_histogram(photo, bins=6))
    torch.testing.assert_close(spectral_centroid(batch)[1], spectral_centroid(photo.flip(-1)))


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: fft2_centered(torch.ones(5)), r"fft2_centered: expected images of shape \(\*, H, W\).*\(5,\)"),
        (lambda: band_energy(torch.ones(4, 4, dtype=torch.int64)), "real floating-point"),
        (lambda: band_energy(torch.ones(4, 4), bands=((0.2, 0.1),)), "increasing, non-overlapping"),
        (lambda: band_energy(torch.ones(4, 4), bands=((0, 0.2), (0.1, 0.5))), "increasing, non-overlapping"),
        (lambda: band_energy(torch.ones(4, 4), bands=(0.1, 0.2)), r"\(lo, hi\) pairs"),
        (lambda: radial_power_spectrum(torch.ones(4, 4), bins=0), "bins must be a positive integer"),
        (lambda: orientation_histogram(torch.ones(4, 4), bins=2.5), "bins must be a positive integer"),
        (lambda: luminance(torch.ones(4, 8, 8)), r"luminance: expected \(\*, 3, H, W\).*\(4, 8, 8\)"),
    ],
)
def test_bad_inputs_are_clear_errors(call, message):
    with pytest.raises(I2IError, match=message):
        call()


# --- the reporter ---


@pytest.fixture(scope="module")
def report(tmp_path_factory, photo):
    """One report on a photo, its blur, a smaller copy and a batch of both: (result, out_dir)."""
    blurred = small_photo(blur=1.5)
    images = {
        "photo": photo,
        "blurred": blurred,
        "small": small_photo(size=(30, 40)),
        "batch": torch.stack([photo, blurred]),
    }
    out_dir = tmp_path_factory.mktemp("fourier") / "report"
    return create("reporter", "fourier").report(images, out_dir), out_dir


def test_reporter_writes_two_figures_and_the_json_it_returns(report):
    result, out_dir = report
    assert sorted(p.name for p in out_dir.iterdir()) == ["fourier.json", "radial_power.png", "spectra.png"]
    for name in ("spectra.png", "radial_power.png"):
        with Image.open(out_dir / name) as img:
            assert img.format == "PNG" and img.width > 300 and img.height > 300
    assert json.loads((out_dir / "fourier.json").read_text()) == result
    assert result["reference"] == "photo" and list(result["images"]) == ["photo", "blurred", "small", "batch"]
    assert list(result["changes"]) == ["blurred", "small", "batch"]
    assert result["bands"] == {"low": [0.0, 0.1], "mid": [0.1, 0.25], "high": [0.25, 0.5]}


def test_reporter_numbers_are_the_functions_on_luminance(report, photo):
    stats = report[0]["images"]["photo"]
    assert (stats["count"], stats["height"], stats["width"]) == (1, H, W)
    assert list(stats["band_energy"].values()) == pytest.approx(band_energy(luminance(photo))[0].tolist())
    assert stats["spectral_centroid"] == pytest.approx(spectral_centroid(luminance(photo)).item())
    assert stats["orientation_histogram"] == pytest.approx(orientation_histogram(luminance(photo))[0].tolist())
    assert (report[0]["images"]["small"]["height"], report[0]["images"]["small"]["width"]) == (40, 30)


def test_reporter_changes_are_differences_from_the_reference(report):
    result = report[0]
    ref = result["images"]["photo"]
    for label, change in result["changes"].items():
        stats = result["images"][label]
        for band in ("low", "mid", "high"):
            assert change["band_energy"][band] == pytest.approx(stats["band_energy"][band] - ref["band_energy"][band])
        assert change["spectral_centroid"] == pytest.approx(stats["spectral_centroid"] - ref["spectral_centroid"])
        l1 = sum(abs(a - b) for a, b in zip(stats["orientation_histogram"], ref["orientation_histogram"], strict=True))
        assert change["orientation_l1"] == pytest.approx(l1) and 0 <= l1 <= 2
    blurred = result["changes"]["blurred"]
    assert blurred["spectral_centroid"] < 0 and blurred["band_energy"]["low"] > 0 > blurred["band_energy"]["high"]


def test_reporter_averages_a_batch_over_its_images(report):
    images = report[0]["images"]
    batch, photo, blurred = images["batch"], images["photo"], images["blurred"]
    assert batch["count"] == 2
    assert batch["spectral_centroid"] == pytest.approx((photo["spectral_centroid"] + blurred["spectral_centroid"]) / 2)
    for band in ("low", "mid", "high"):
        assert batch["band_energy"][band] == pytest.approx(
            (photo["band_energy"][band] + blurred["band_energy"][band]) / 2
        )


def test_rgb_channel_averages_the_three_channels(tmp_path, photo):
    result = create("reporter", "fourier", channel="rgb", bins=16, orientation_bins=6).report({"p": photo}, tmp_path)
    stats = result["images"]["p"]
    assert result["channel"] == "rgb" and len(stats["orientation_histogram"]) == 6
    assert list(stats["band_energy"].values()) == pytest.approx(band_energy(photo).mean(dim=0).tolist())
    assert stats["spectral_centroid"] == pytest.approx(spectral_centroid(photo).mean().item())
    assert result["changes"] == {}


@pytest.mark.parametrize(
    ("images", "message"),
    [
        ({}, "non-empty mapping"),
        ([torch.zeros(3, 8, 8)], "non-empty mapping"),
        (
            {"photo": torch.zeros(3, 8, 8), "fake": torch.zeros(8, 8)},
            r"image 'fake' .*\(3, H, W\) or \(N, 3, H, W\), got shape \(8, 8\)",
        ),
        ({"photo": torch.zeros(1, 4, 8, 8)}, r"image 'photo' .*got shape \(1, 4, 8, 8\)"),
        ({"photo": np.zeros((3, 8, 8))}, r"image 'photo' .*got ndarray"),
        ({"photo": torch.zeros(3, 8, 8, dtype=torch.uint8)}, r"image 'photo' must be a real floating-point tensor"),
        ({"photo": torch.zeros(3, 8, 8), "fake": torch.full((3, 8, 8), float("nan"))}, "image 'fake' has NaN"),
    ],
)
def test_reporter_bad_images_are_clear_errors(tmp_path, images, message):
    with pytest.raises(I2IError, match=message):
        FourierReporter().report(images, tmp_path)
    assert not any(tmp_path.iterdir())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"channel": "luminence"},
            "option channel must be one of luminance, rgb, got 'luminence'. Did you mean 'luminance'",
        ),
        ({"bins": 0}, "option bins must be a positive integer"),
        ({"orientation_bins": True}, "option orientation_bins must be a positive integer"),
        ({"bands": 3}, "reporter 'fourier' has no option 'bands'"),
    ],
)
def test_reporter_bad_options_are_clear_errors(options, message):
    with pytest.raises(I2IError, match=message):
        create("reporter", "fourier", **options)


def test_missing_matplotlib_says_how_to_install_it(tmp_path, monkeypatch):
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(I2IError, match="matplotlib, which is not installed: pip install matplotlib"):
        FourierReporter().report({"photo": torch.zeros(3, 8, 8)}, tmp_path)


def test_loading_the_plugins_does_not_import_matplotlib():
    code = "import sys, i2i_core; i2i_core.list_components('reporter'); print('matplotlib' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "False"
