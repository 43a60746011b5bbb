"""The generators' ``upsample`` option: the reference's transposed convolutions stay the default, bit for bit;
``resize`` and ``antialias`` draw no checkerboard, already untrained."""

from __future__ import annotations

from pathlib import Path

import kornia
import pytest
import torch
import torch.nn.functional as F
from i2i_metrics.cartoon import palette_entropy
from PIL import Image
from torchvision.transforms.functional import pil_to_tensor

import i2i_core
from i2i_core.layers import guided_filter, outline, outline_mask, posterize
from i2i_core.testing import check_generator

PHOTO = Path(__file__).parents[2] / "plugins/i2i_datasets/data/mini-photo2cartoon/testA/sklearn-china.jpg"
GENERATORS = ("resnet6", "resnet9", "unet128", "unet256")


def photo(side: int) -> torch.Tensor:
    """The shipped photo, resized to (1, 3, side, side) in [-1, 1]."""
    image = pil_to_tensor(Image.open(PHOTO).convert("RGB")).float()[None] / 127.5 - 1
    return F.interpolate(image, size=(side, side), mode="area")


def periodic_peak(image: torch.Tensor, period: int) -> float:
    """Power of the luminance spectrum at 1/period cycles per pixel, along x and along y (the larger), over the
    median power of the 6 frequencies beside it on the same axis."""
    luminance = image.mean(1)[0]
    power = torch.fft.fft2(luminance - luminance.mean()).abs() ** 2
    k = luminance.shape[-1] // period
    peaks = []
    for line in (power[0], power[:, 0]):
        neighbours = torch.cat([line[k - 4 : k - 1], line[k + 2 : k + 5]]) if period > 2 else line[k - 7 : k - 1]
        peaks.append(float(line[k] / neighbours.median()))
    return max(peaks)


def seeded(name: str, **options) -> torch.nn.Module:
    torch.manual_seed(0)
    return i2i_core.create("generator", name, ngf=16, **options).eval()


@pytest.mark.parametrize("name", ["resnet6", "unet128"])
def test_transpose_is_the_default_bit_for_bit(name):
    default, explicit = seeded(name), seeded(name, upsample="transpose")
    assert list(default.state_dict()) == list(explicit.state_dict())
    x = photo(128)
    with torch.no_grad():
        assert torch.equal(default(x), explicit(x))


def test_antialias_up_is_upsample_antialias():
    flag, option = seeded("resnet6", antialias_up=True), seeded("resnet6", upsample="antialias")
    assert list(flag.state_dict()) == list(option.state_dict())
    with torch.no_grad():
        assert torch.equal(flag(photo(128)), option(photo(128)))
    both = seeded("resnet6", antialias_up=True, upsample="antialias")
    assert list(both.state_dict()) == list(option.state_dict())
    with pytest.raises(i2i_core.I2IError, match="antialias_up = true asks for upsample 'antialias'"):
        i2i_core.create("generator", "resnet6", antialias_up=True, upsample="resize")


@pytest.mark.parametrize("name", ["resnet6", "unet128"])
def test_an_unknown_upsampling_is_refused_with_the_choices(name):
    with pytest.raises(i2i_core.I2IError, match="unknown upsample 'bilinear'; choose one of transpose, resize"):
        i2i_core.create("generator", name, upsample="bilinear")


@pytest.mark.parametrize("name", ["resnet6", "unet128"])
def test_only_transposed_convolutions_draw_a_checkerboard_untrained(name):
    """Untrained generators on a real photo: transposed convolutions put peaks of tens to thousands of times
    their neighbourhood at period 2 or 4 px (measured, ngf 16, seed 0: resnet6 8381 and 75, unet128 116 and 437);
    the resize (bilinear) and anti-aliased decoders stay near 1 (1.0 to 1.7)."""
    x = photo(128)
    peaks = {}
    for upsample in ("transpose", "resize", "antialias"):
        with torch.no_grad():
            y = seeded(name, upsample=upsample)(x)
        peaks[upsample] = max(periodic_peak(y, 2), periodic_peak(y, 4))
    assert peaks["transpose"] > 50, peaks
    assert peaks["resize"] < 3 and peaks["antialias"] < 3, peaks


@pytest.mark.parametrize("name", GENERATORS)
@pytest.mark.parametrize("upsample", ["resize", "antialias"])
def test_every_upsampling_keeps_the_generator_contract_and_the_identity_start(name, upsample):
    check_generator(name, ngf=4, upsample=upsample)
    net = seeded(name, upsample=upsample, residual=True)
    x = photo(max(net.size_multiple, 64))
    with torch.no_grad():
        assert (net(x) - x).abs().max() < 2e-3
    assert net.feature_channels(net.feature_layers) == seeded(name).feature_channels(net.feature_layers)


@pytest.mark.parametrize("name", ["resnet6", "unet128"])
def test_the_guided_output_filter_flattens_the_photos_flat_regions_and_keeps_its_edges(name):
    """With ``guided_radius``, the output is the input-guided filter of the plain output: same weights, outputs in
    [-1, 1]; a residual generator's output is then the photo's own guided smoothing."""
    plain, guided = seeded(name, residual=True), seeded(name, residual=True, guided_radius=2, guided_eps=0.04)
    assert list(plain.state_dict()) == list(guided.state_dict())  # the filter has no weights
    check_generator(name, ngf=4, guided_radius=1)
    x = photo(128)
    with torch.no_grad():
        y = guided(x)
    assert y.abs().max() <= 1
    torch.testing.assert_close(y, guided_filter(x, plain(x), 2, 0.04).clamp(-1, 1))

    # smoother than the photo: less high-frequency energy, yet the edges (large steps) survive
    def detail(image):
        return (image - F.avg_pool2d(image, 3, 1, 1, count_include_pad=False)).abs().mean()

    assert detail(y) < 0.8 * detail(x)
    edges = (x[..., 1:] - x[..., :-1]).abs().mean(1) > 0.3
    assert (y[..., 1:] - y[..., :-1]).abs().mean(1)[edges].mean() > 0.5 * (x[..., 1:] - x[..., :-1]).abs().mean(1)[
        edges
    ].mean()


def test_posterize_puts_every_pixel_on_the_lab_grid_and_passes_the_gradient_straight_through():
    """Known answers: a grey ramp takes exactly ``levels`` values, colours already on the grid stay (to float
    precision), a photo's palette shrinks by bits, and the gradient is the identity's."""
    ramp = torch.linspace(-1, 1, 256).view(1, 1, 1, 256).expand(1, 3, 4, 256)
    assert len(posterize(ramp, levels=5)[0, 0].unique()) == 5
    on_grid = kornia.color.lab_to_rgb(torch.tensor([50.0, 20.0, -30.0]).view(1, 3, 1, 1).expand(1, 3, 4, 4)) * 2 - 1
    torch.testing.assert_close(posterize(on_grid, levels=11, chroma_step=10.0), on_grid, atol=1e-4, rtol=0)
    x = photo(128)
    flat = posterize(x, levels=10, chroma_step=10.0)
    assert float(palette_entropy(x) - palette_entropy(flat)) > 2  # bits
    lab = kornia.color.rgb_to_lab((flat + 1) / 2)
    on_levels = ((lab[:, 0] * 9 / 100).round() * 100 / 9 - lab[:, 0]).abs() < 0.5  # L* = 0, 11.1, ..., 100
    assert on_levels.float().mean() > 0.95  # all but the pixels clipped to the RGB gamut
    x.requires_grad_(True)
    (posterize(x) * torch.arange(3.0).view(1, 3, 1, 1)).sum().backward()
    torch.testing.assert_close(x.grad, torch.arange(3.0).view(1, 3, 1, 1).expand_as(x))


@pytest.mark.parametrize("name", ["resnet6", "unet128"])
def test_the_posterized_output_is_the_plain_output_posterized(name):
    """``posterize_levels`` adds no weights, and the output (after the guided filter) is posterized."""
    plain = seeded(name, residual=True, guided_radius=1)
    flat = seeded(name, residual=True, guided_radius=1, posterize_levels=8, posterize_chroma=12.0)
    assert list(plain.state_dict()) == list(flat.state_dict())
    check_generator(name, ngf=4, posterize_levels=8)
    x = photo(128)
    with torch.no_grad():
        torch.testing.assert_close(flat(x), posterize(plain(x), 8, 12.0))
    with pytest.raises(i2i_core.I2IError, match="posterize levels must be >= 2"):
        i2i_core.create("generator", name, posterize_levels=1)


def disc(side: int = 64, radius: float = 16.0) -> tuple[torch.Tensor, torch.Tensor]:
    """A light disc on a dark ground, (1, 3, side, side) in [-1, 1], and its boundary's distance map (pixels)."""
    yy, xx = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
    distance = ((yy - side / 2) ** 2 + (xx - side / 2) ** 2).sqrt() - radius
    image = torch.where(distance < 0, 0.6, -0.6).expand(1, 3, side, side).clone()
    return image, distance.abs()


def test_outline_inks_a_thin_line_along_each_edge_and_nowhere_else():
    """Known answers: on a disc the line runs all round the boundary, within a pixel of it and ``width`` pixels
    wide; flat regions and a gentle ramp get no line; the ink darkens by ``strength``; gradients reach the
    image where there is a line."""
    image, distance = disc()
    for width in (1, 2):
        mask = outline_mask(image, threshold=0.03, sigma=1.0, width=width)[0, 0]
        assert mask.max() > 0.99 and mask[distance > width + 1.5].max() < 1e-3  # only at the boundary
        on_row = (mask[32] > 0.5).sum()  # the row through the centre crosses the boundary twice
        assert 2 * width <= on_row <= 2 * (width + 1)
        near = F.max_pool2d(mask[None, None], 3, stride=1, padding=1)[0, 0]  # a line within a pixel
        assert (near[distance < 0.5] > 0.5).all()  # all round: no gap
    ramp = torch.linspace(-0.5, 0.5, 64).view(1, 1, 1, 64).expand(1, 3, 64, 64)  # 0.008 per pixel on 0..1
    assert outline_mask(ramp, threshold=0.03).max() < 0.01
    inked = outline(image, strength=0.5, threshold=0.03, sigma=1.0, width=1)
    mask = outline_mask(image, threshold=0.03, sigma=1.0, width=1)
    torch.testing.assert_close((inked + 1) / 2, (image + 1) / 2 * (1 - 0.5 * mask))
    x = image.clone().requires_grad_(True)
    outline(x, 0.85, 0.03, 1.0, 1).sum().backward()
    assert x.grad[..., distance < 2].abs().sum() > 0
    with pytest.raises(ValueError, match="outline strength must be in"):
        outline(image, strength=1.5)


def test_outline_on_a_photo_draws_lines_on_a_small_share_of_it():
    """On the shipped photo at 128 px, the lines cover a few per cent of the pixels (its edges), at the places of
    its strongest gradients, and the share falls as the threshold rises."""
    x = photo(128)
    shares = [float((outline_mask(x, threshold=t, sigma=1.0, width=1) > 0.5).float().mean()) for t in (0.03, 0.1)]
    assert 0.03 < shares[0] < 0.3 and shares[1] < 0.6 * shares[0]


@pytest.mark.parametrize("name", ["resnet6", "unet128"])
def test_the_outlined_output_is_the_plain_output_outlined_then_posterized(name):
    """``outline_strength`` adds no weights; the outlines come after the guided filter and before posterization."""
    plain = seeded(name, residual=True, guided_radius=1)
    options = {"outline_strength": 0.6, "outline_threshold": 0.05, "outline_sigma": 1.0, "outline_width": 1}
    inked = seeded(name, residual=True, guided_radius=1, **options)
    both = seeded(name, residual=True, guided_radius=1, posterize_levels=8, **options)
    assert list(plain.state_dict()) == list(inked.state_dict())
    check_generator(name, ngf=4, outline_strength=0.85)
    x = photo(128)
    with torch.no_grad():
        torch.testing.assert_close(inked(x), outline(plain(x), 0.6, 0.05, 1.0, 1))
        torch.testing.assert_close(both(x), posterize(inked(x), 8, 10.0))
    with pytest.raises(i2i_core.I2IError, match="outline strength must be in"):
        i2i_core.create("generator", name, outline_strength=2.0)
