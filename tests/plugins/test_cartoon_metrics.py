"""The cartoon metrics ``palette``, ``flat`` and ``checker``: known answers, real photos and cartoons, i2i eval."""

from __future__ import annotations

import doctest
import math
from pathlib import Path

import i2i_datasets
import numpy as np
import pytest
import torch
from i2i_metrics import cartoon
from i2i_metrics.cartoon import checker_ratio, flat_share, gradient_magnitude, palette_entropy
from kornia.filters import box_blur, gaussian_blur2d
from PIL import Image

from i2i_core import create
from i2i_core.evaluation import EvalSet, build_metrics, score
from i2i_core.images import find_images, load_rgb, to_tensor

DATA = Path(i2i_datasets.__file__).parent / "data" / "mini-photo2cartoon"


def resized(split: str, size: tuple[int, int] = (256, 256)) -> torch.Tensor:
    """The images of a split resized to ``size`` (width, height): (N, 3, H, W) in [-1, 1]."""
    return torch.stack(
        [to_tensor(load_rgb(p).resize(size, Image.Resampling.BICUBIC)) for p in find_images(DATA / split)]
    )


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return resized("testA")


@pytest.fixture(scope="module")
def cartoons() -> torch.Tensor:
    return resized("testB")


def square_wave(period: int, positions: torch.Tensor) -> torch.Tensor:
    """+1 for the first half of each period, -1 for the rest (period 3: +1, +1, -1)."""
    return torch.where(positions % period < period / 2, 1.0, -1.0)


def pattern(kind: str, period: int, height: int, width: int) -> torch.Tensor:
    """A (height, width) pattern of +-1: a checkerboard, or stripes across x or across y."""
    y, x = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    if kind == "checkerboard":
        return square_wave(period, x) * square_wave(period, y)
    return square_wave(period, x if kind == "stripes-x" else y)


def test_docstring_examples_hold():
    assert doctest.testmod(cartoon).failed == 0


# --- palette ------------------------------------------------------------------------------------------------------


def test_palette_of_one_colour_is_0_bits():
    assert palette_entropy(torch.full((2, 3, 16, 16), 0.3)).tolist() == [0.0, 0.0]


def test_palette_of_k_colours_in_equal_shares_is_log2_k_bits():
    two = torch.full((1, 3, 16, 16), -1.0)
    two[..., 8:] = torch.tensor([0.5, -0.2, 0.9]).view(3, 1, 1)  # two colours, half the pixels each
    assert palette_entropy(two).item() == pytest.approx(1.0)
    corners = torch.tensor([[r, g, b] for r in (-1.0, 1.0) for g in (-1.0, 1.0) for b in (-1.0, 1.0)])  # (8, 3)
    eight = corners.T[:, torch.arange(64) % 8].reshape(1, 3, 8, 8)  # each of the 8 colours on 8 pixels
    assert palette_entropy(eight).item() == pytest.approx(3.0)
    three_to_one = two.clone()
    three_to_one[..., 4:8] = two[..., 8:12]  # shares 1/4 and 3/4
    assert palette_entropy(three_to_one).item() == pytest.approx(-(0.25 * math.log2(0.25) + 0.75 * math.log2(0.75)))


def test_palette_bins_are_the_top_5_bits_of_8_bit_values():
    # every 8-bit grey once: 32 bins of 8 values each (u >> 3), hence 5 bits; values one bin apart are told apart
    grey = Image.fromarray(np.arange(256, dtype=np.uint8).reshape(16, 16)).convert("RGB")
    assert palette_entropy(to_tensor(grey)[None]).item() == pytest.approx(5.0)
    within = Image.fromarray(np.array([[8, 15]], dtype=np.uint8)).convert("RGB")  # both in bin 1
    across = Image.fromarray(np.array([[7, 8]], dtype=np.uint8)).convert("RGB")  # bins 0 and 1
    assert palette_entropy(to_tensor(within)[None]).item() == 0.0
    assert palette_entropy(to_tensor(across)[None]).item() == pytest.approx(1.0)


def test_palette_of_noise_is_near_its_maximum():
    noise = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    # 4096 pixels over 32768 bins: at most 12 bits, a little less for the pixels sharing a bin
    assert palette_entropy(noise).min() > 11.5


def test_palette_metric_is_the_mean_over_images():
    one, two = torch.zeros(1, 3, 8, 8), torch.zeros(1, 3, 8, 8)
    two[..., 4:] = 1.0
    assert create("metric", "palette")(torch.cat([one, two]), one) == pytest.approx(0.5)


# --- flat ---------------------------------------------------------------------------------------------------------


def grey_ramp(slope_x: float, slope_y: float = 0.0, size: int = 16) -> torch.Tensor:
    """A grey image rising by ``slope_x`` per pixel across x and ``slope_y`` across y, on [0, 1]: (1, 3, size, size)
    in [-1, 1]."""
    y, x = torch.meshgrid(
        torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32), indexing="ij"
    )
    unit = 0.1 + slope_x * x + slope_y * y
    return (unit * 2 - 1).expand(1, 3, size, size)


def test_flat_of_a_constant_image_is_1_and_of_noise_about_0():
    assert flat_share(torch.full((1, 3, 16, 16), 0.4)).item() == 1.0
    noise = torch.rand(2, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    assert flat_share(noise).max() < 0.05  # uniform noise: a few pixels by chance


def test_the_sobel_gradient_of_a_ramp_is_its_slope_per_pixel():
    # the Sobel kernels divided by 8: a ramp rising by s per pixel has gradient s, everywhere inside the image
    for sx, sy in ((0.03, 0.0), (0.0, 0.01), (0.012, 0.016)):
        g = gradient_magnitude(grey_ramp(sx, sy))
        assert g.shape == (1, 14, 14)
        torch.testing.assert_close(g, torch.full_like(g, math.hypot(sx, sy)), rtol=1e-4, atol=1e-6)


def test_a_ramp_is_flat_below_0_02_per_pixel_and_not_above():
    assert flat_share(grey_ramp(0.03)).item() == 0.0
    assert flat_share(grey_ramp(0.0, 0.025)).item() == 0.0
    assert flat_share(grey_ramp(0.015, 0.015)).item() == 0.0  # 0.0212
    assert flat_share(grey_ramp(0.01)).item() == 1.0
    assert flat_share(grey_ramp(0.012, 0.012)).item() == 1.0  # 0.017


def test_flat_uses_bt601_luminance():
    # a ramp in green alone rises by 0.587 x its slope in luminance
    for slope, expected in ((0.03, 1.0), (0.04, 0.0)):  # 0.0176 and 0.0235 per pixel
        green = torch.zeros(1, 3, 16, 16)
        green[:, 1] = grey_ramp(slope)[:, 1]
        assert flat_share(green).item() == expected
    blue = torch.zeros(1, 3, 7, 7)
    blue[:, 2] = grey_ramp(0.15, size=7)[:, 2]  # 0.114 x 0.15 = 0.0171
    assert flat_share(blue).item() == 1.0


def test_flat_threshold_is_an_option():
    ramp = grey_ramp(0.03)
    assert create("metric", "flat")(ramp, ramp) == 0.0
    assert create("metric", "flat", threshold=0.05)(ramp, ramp) == 1.0
    with pytest.raises(Exception, match="threshold"):
        create("metric", "flat", threshold=0)


# --- palette and flat on real images ------------------------------------------------------------------------------


def test_cartoons_have_fewer_colours_and_more_flat_pixels_than_photos(photos, cartoons):
    # measured: palette 8.4 bits for the photos, 6.5 for the cartoons; flat 0.60 and 0.78
    assert palette_entropy(photos).mean() > palette_entropy(cartoons).mean() + 1.5
    assert flat_share(cartoons).mean() > flat_share(photos).mean() + 0.1


# --- checker ------------------------------------------------------------------------------------------------------


def test_checker_is_1_for_the_photo_itself(photos):
    assert checker_ratio(photos, photos.clone()).tolist() == [1.0] * len(photos)
    assert create("metric", "checker")(photos, photos.clone()) == pytest.approx(1.0, abs=0.2)


@pytest.mark.parametrize("kind", ["checkerboard", "stripes-x"])
@pytest.mark.parametrize("period", [2, 3, 4])
def test_checker_finds_a_faint_periodic_pattern(photos, kind, period):
    faint = photos + 0.05 * pattern(kind, period, 256, 256)  # +-0.025 on [0, 1]
    ratios = checker_ratio(faint, photos)
    assert ratios.min() > (10 if kind == "checkerboard" or period < 4 else 5), ratios
    assert create("metric", "checker")(faint, photos) > 10


def test_checker_compares_with_what_the_photo_already_has(photos):
    # tuxpaint-lighthouse is of bricks, whose courses make horizontal stripes near periods 3 and 4 at 256 px: the
    # same faint stripes added there barely stand out against them, while in the other photos they do
    names = [p.stem for p in find_images(DATA / "testA")]
    ratios = checker_ratio(photos + 0.05 * pattern("stripes-y", 4, 256, 256), photos)
    assert ratios[names.index("tuxpaint-lighthouse")] < 3
    assert ratios.median() > 10


def test_checker_is_about_1_for_a_blurred_photo(photos):
    for blurred in (gaussian_blur2d(photos, (5, 5), (0.5, 0.5)), gaussian_blur2d(photos, (5, 5), (0.8, 0.8))):
        ratios = checker_ratio(blurred, photos)
        assert ratios.max() < 1.2 and ratios.min() > 0.9, ratios
    assert checker_ratio(box_blur(photos, (3, 3)), photos).max() < 1.25


def test_checker_of_a_translation_with_no_pattern_stays_small(photos, cartoons):
    # unrelated images (a cartoon as the "translation" of a photo): a few times 1 at most, not tens
    assert checker_ratio(cartoons, photos).max() < 5


@pytest.mark.parametrize("size", [(32, 32), (77, 100), (45, 61)])
def test_checker_takes_small_sizes_that_are_no_multiple_of_the_periods(size):
    height, width = size
    photo = resized("testA", (width, height))[:4]
    assert checker_ratio(photo, photo).tolist() == [1.0] * 4
    for period in (2, 3, 4):
        faint = photo + 0.05 * pattern("checkerboard", period, height, width)
        assert checker_ratio(faint, photo).min() > 5


def test_checker_of_flat_images():
    flat = torch.zeros(2, 3, 32, 32)
    assert checker_ratio(flat, flat).tolist() == [1.0, 1.0]
    assert checker_ratio(flat + 0.05 * pattern("checkerboard", 4, 32, 32), flat).min() > 1e6


def test_checker_refuses_unpaired_small_or_non_rgb_inputs(photos):
    with pytest.raises(ValueError, match="same shape"):
        checker_ratio(photos, photos[:4])
    with pytest.raises(ValueError, match="at least 24x24"):
        checker_ratio(photos[..., :20], photos[..., :20])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        create("metric", "checker")(photos[:, :1], photos[:, :1])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        palette_entropy(photos[0])
    with pytest.raises(ValueError, match="at least 3x3"):
        flat_share(photos[..., :2, :2])


def test_cartoon_metrics_leave_their_inputs_alone(photos, cartoons):
    x, y = photos.clone(), cartoons.clone()
    for name in ("palette", "flat", "checker"):
        create("metric", name)(x, y)
    torch.testing.assert_close(x, photos, rtol=0, atol=0)
    torch.testing.assert_close(y, cartoons, rtol=0, atol=0)


# --- registry and i2i eval ----------------------------------------------------------------------------------------


def test_registered_as_documented():
    expected = {
        "palette": (("output", "target"), False, False),
        "flat": (("output", "target"), False, True),
        "checker": (("output", "source"), True, False),
    }
    for name, (reads, paired, higher) in expected.items():
        metric = create("metric", name)
        assert (metric.reads, metric.paired, metric.higher_is_better) == (reads, paired, higher), name


def posterise(x: torch.Tensor) -> torch.Tensor:
    """A crude cartoon: each channel to 5 levels, flat patches of 2x2 (a period-4 checkerboard added, faintly)."""
    levels = (x * 2).round() / 2
    return levels + 0.05 * pattern("checkerboard", 4, *x.shape[-2:])


def test_eval_scores_them_beside_the_identity(photos, cartoons, capsys):
    from i2i_core.cli.eval import print_evaluation

    data = EvalSet("test", "AtoB", photos, cartoons, truth=None)
    result = score(build_metrics(["palette", "flat", "checker"]), data, translate=posterise)
    assert set(result.scores) == {"palette", "flat", "checker"}
    # the identity is the photos scored as the output: their own palette and flatness
    assert result.identity["palette"] == pytest.approx(float(palette_entropy(photos).mean()))
    assert result.identity["flat"] == pytest.approx(float(flat_share(photos).mean()))
    assert result.identity["checker"] is None  # the source against itself: 1 by definition
    assert result.scores["palette"] < result.identity["palette"] - 1
    assert result.scores["checker"] > 10
    print_evaluation(result)
    rows = {line.split()[0]: line.split() for line in capsys.readouterr().out.splitlines()[2:]}
    assert rows["palette"][1:3] == [f"{result.scores['palette']:.4g}", f"{result.identity['palette']:.4g}"]
    assert rows["palette"][3:] == ["better", "than", "identity;", "lower", "is", "better"]
    assert rows["checker"][2:] == ["-", "lower", "is", "better"]
    assert "flat" in rows


def test_many_images_are_scored_one_by_one(photos):
    # more images than a chunk: each scored as it would be alone
    noisy = photos.repeat(3, 1, 1, 1)[:20, :, :64, :64]
    noisy = noisy + 0.1 * torch.randn(noisy.shape, generator=torch.Generator().manual_seed(0))
    alone = torch.cat([palette_entropy(x[None]) for x in noisy])
    torch.testing.assert_close(palette_entropy(noisy), alone)
    shifted = noisy.roll(1, dims=-1)
    alone = torch.cat([checker_ratio(x[None], y[None]) for x, y in zip(shifted, noisy, strict=True)])
    torch.testing.assert_close(checker_ratio(shifted, noisy), alone)
