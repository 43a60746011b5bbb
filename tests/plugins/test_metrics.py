"""The ``i2i_metrics`` plugin: known answers, real images, torchmetrics as reference, and local-only Inception weights."""

from __future__ import annotations

import doctest
import math
import re
import warnings
from pathlib import Path

import i2i_datasets
import pytest
import torch
from i2i_metrics import colour, inception, paired, sliced, swd
from i2i_metrics.content import edge_map
from i2i_metrics.swd import laplacian_pyramid, pyr_down, pyr_up, pyramid_levels
from PIL import Image
from torch import nn

from i2i_core import I2IError, create
from i2i_core.images import find_images, load_rgb, to_tensor
from i2i_core.metric import Metric

DATA = Path(i2i_datasets.__file__).parent / "data" / "mini-photo2cartoon"
#: name -> (reads, paired, higher_is_better), as documented.
EXPECTED = {
    "psnr": (("output", "truth"), True, True),
    "ssim": (("output", "truth"), True, True),
    "cycle-psnr": (("cycled", "source"), True, True),
    "content": (("output", "source"), True, True),
    "swd": (("output", "target"), False, False),
    "lab": (("output", "target"), False, False),
    "kid": (("output", "target"), False, False),
    "fid": (("output", "target"), False, False),
    "palette": (("output", "target"), False, False),
    "flat": (("output", "target"), False, True),
    "checker": (("output", "source"), True, False),
}


def resized(split: str, n: int, size: tuple[int, int] = (64, 64)) -> torch.Tensor:
    """The first ``n`` images of a split resized to ``size`` (width, height): (n, 3, H, W) in [-1, 1]."""
    paths = find_images(DATA / split)[:n]
    return torch.stack([to_tensor(load_rgb(p).resize(size, Image.Resampling.BICUBIC)) for p in paths])


def crops(split: str, per_image: int, size: int = 64) -> torch.Tensor:
    """``per_image`` size x size crops at full resolution, spread along the middle row of each image of a split."""
    out = []
    for path in find_images(DATA / split):
        img = load_rgb(path)
        top = (img.height - size) // 2
        for i in range(per_image):
            left = (img.width - size) * (i + 1) // (per_image + 1)
            out.append(to_tensor(img.crop((left, top, left + size, top + size))))
    return torch.stack(out)


@pytest.fixture(scope="module")
def photos() -> torch.Tensor:
    return resized("trainA", 8)


@pytest.fixture(scope="module")
def cartoons() -> torch.Tensor:
    return resized("trainB", 8)


def test_docstring_examples_hold():
    for module in (paired, sliced):
        assert doctest.testmod(module).failed == 0


# --- psnr, cycle-psnr ---------------------------------------------------------------------------------------------


def test_psnr_of_a_constant_offset_is_analytic(photos):
    # an offset c on [-1, 1] is c / 2 on [0, 1]: PSNR = -10 log10(c² / 4), whatever the image
    for c in (0.02, 0.1, 0.5):
        assert create("metric", "psnr")(photos, photos + c) == pytest.approx(-10 * math.log10(c**2 / 4), rel=1e-5)


def test_psnr_of_identical_images_is_capped_at_100_db(photos):
    assert create("metric", "psnr")(photos, photos.clone()) == pytest.approx(100.0)
    assert create("metric", "cycle-psnr")(photos, photos.clone()) == pytest.approx(100.0)


def test_psnr_is_the_mean_of_per_image_psnr_as_torchmetrics_computes_it(photos):
    from torchmetrics.functional.image import peak_signal_noise_ratio

    g = torch.Generator().manual_seed(0)
    noise = torch.randn(photos.shape, generator=g) * torch.tensor([0.01, 0.05, 0.1, 0.2] * 2).view(-1, 1, 1, 1)
    noisy = photos + noise
    expected = peak_signal_noise_ratio((noisy + 1) / 2, (photos + 1) / 2, data_range=1.0, dim=(1, 2, 3))
    pooled = peak_signal_noise_ratio((noisy + 1) / 2, (photos + 1) / 2, data_range=1.0)
    ours = create("metric", "psnr")(noisy, photos)
    assert ours == pytest.approx(float(expected), rel=1e-5)
    assert abs(ours - float(pooled)) > 1  # per image, not of the pooled error
    assert create("metric", "cycle-psnr")(noisy, photos) == pytest.approx(ours)


# --- ssim, content ------------------------------------------------------------------------------------------------


def test_ssim_is_1_for_identical_images_and_drops_with_noise(photos):
    metric = create("metric", "ssim")
    assert metric(photos, photos.clone()) == pytest.approx(1.0, abs=1e-5)
    g = torch.Generator().manual_seed(0)
    scores = [metric(photos + s * torch.randn(photos.shape, generator=g), photos) for s in (0.05, 0.2, 0.5)]
    assert 1 > scores[0] > scores[1] > scores[2]


def test_ssim_equals_torchmetrics_gaussian_ssim(photos, cartoons):
    from torchmetrics.functional.image import structural_similarity_index_measure

    expected = structural_similarity_index_measure(
        (cartoons + 1) / 2, (photos + 1) / 2, gaussian_kernel=True, sigma=1.5, kernel_size=11, data_range=1.0
    )
    assert create("metric", "ssim")(cartoons, photos) == pytest.approx(float(expected), rel=1e-5)


def test_edge_maps_lie_in_0_1_and_reach_1_at_the_steepest_corner():
    # a vertical black-white edge with a one-pixel step at (8, 8): Sobel gradients 4/8 and 2/8 there, the largest
    img = torch.ones(1, 3, 16, 16)
    img[..., :8] = -1
    img[..., :9, 8] = -1
    edges = edge_map(img)
    assert edges.shape == (1, 1, 16, 16)
    assert float(edges.max()) == pytest.approx(1.0, abs=1e-6)
    assert float(edges[0, 0, 8, 8]) == pytest.approx(1.0, abs=1e-6)
    assert float(edge_map(torch.zeros(1, 3, 16, 16)).abs().max()) == 0.0
    assert float(edge_map(resized("testA", 4)).min()) >= 0


def test_content_keeps_1_for_the_input_less_when_blurred_about_0_when_flat(photos):
    metric = create("metric", "content")
    blurred = torch.nn.functional.avg_pool2d(photos, 5, stride=1, padding=2, count_include_pad=False)
    same, blur, flat = metric(photos, photos.clone()), metric(blurred, photos), metric(torch.zeros_like(photos), photos)
    assert same == pytest.approx(1.0, abs=1e-5)
    assert 0.2 < blur < 0.8
    assert flat < 0.15  # what remains is the source's own flat regions (sky), which a flat output matches
    assert metric(photos + 0.3, photos) == pytest.approx(1.0, abs=1e-5)  # brightness does not change edges


# --- swd ----------------------------------------------------------------------------------------------------------


def test_laplacian_pyramid_reconstructs_the_image_and_keeps_constants():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 3, 37, 50, generator=g)  # odd sizes: levels of ceil(size / 2)
    bands = laplacian_pyramid(x, 3)
    assert [b.shape[-2:] for b in bands] == [(37, 50), (19, 25), (10, 13)]
    rebuilt = bands[-1]
    for band in reversed(bands[:-1]):
        rebuilt = band + pyr_up(rebuilt, band.shape[-2:])
    torch.testing.assert_close(rebuilt, x, atol=1e-5, rtol=0)
    flat = torch.full((1, 3, 16, 16), 0.3)
    torch.testing.assert_close(pyr_down(flat), torch.full((1, 3, 8, 8), 0.3))
    torch.testing.assert_close(pyr_up(pyr_down(flat), (16, 16)), flat)
    assert [pyramid_levels(s) for s in (15, 16, 64, 100, 256)] == [0, 1, 3, 3, 5]


def test_sliced_wasserstein_of_a_shift_is_its_mean_projection():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(500, 3, generator=g)
    shift = torch.tensor([3.0, -1.0, 0.5])
    dirs = sliced.random_directions(3, 32, g)
    torch.testing.assert_close(dirs.norm(dim=0), torch.ones(32))
    expected = (shift @ dirs).abs().mean()
    torch.testing.assert_close(sliced.sliced_wasserstein(a, a + shift, dirs), expected)
    assert float(sliced.sliced_wasserstein(a, a[torch.randperm(500, generator=g)], dirs)) == pytest.approx(0, abs=1e-6)


@pytest.fixture(scope="module")
def crop_sets() -> dict[str, torch.Tensor]:
    # full-resolution crops: resizing whole images to 64 px erases the fine texture that sets cartoons apart, and
    # sets of a few dozen images need it (the paper used thousands)
    return {
        "trainA": crops("trainA", 1),
        "trainB": crops("trainB", 1),
        "testA": crops("testA", 4),
        "testB": crops("testB", 4),
    }


def test_swd_tells_photos_from_cartoons(crop_sets):
    metric = create("metric", "swd", patches=64, repeats=1)  # the defaults separate them further, 4 x slower
    photos, cartoons = crop_sets["trainA"], crop_sets["trainB"]
    assert metric(photos, crop_sets["testB"]) > 1.15 * metric(photos, crop_sets["testA"])
    assert metric(cartoons, crop_sets["testA"]) > 1.15 * metric(cartoons, crop_sets["testB"])


def test_swd_of_identical_sets_is_0_and_the_seed_fixes_the_score(crop_sets):
    photos, other = crop_sets["trainA"], crop_sets["testA"]
    kept = photos.clone()
    options = {"patches": 32, "repeats": 1, "directions": 64}
    assert create("metric", "swd", **options)(photos, photos.clone()) < 1e-3
    levels = swd.swd_levels(photos, other, **options)
    assert levels.shape == (3,) and bool((levels > 0).all())
    torch.testing.assert_close(swd.swd_levels(photos, other, **options), levels, rtol=0, atol=0)
    assert not torch.equal(swd.swd_levels(photos, other, seed=1, **options), levels)
    torch.testing.assert_close(photos, kept, rtol=0, atol=0)


def test_swd_takes_sets_of_different_counts_and_sizes(crop_sets):
    metric = create("metric", "swd", patches=32, repeats=1, directions=32)
    photos = crop_sets["trainA"]
    bigger = resized("testB", 5, (96, 80))
    score = metric(photos, bigger)
    assert math.isfinite(score) and score > 0
    assert metric(photos[:20], photos) < metric(photos[:20], bigger)
    with pytest.raises(ValueError, match="at least 16x16"):
        metric(photos, photos[..., :12, :12])


# --- lab ----------------------------------------------------------------------------------------------------------


def shifted_lab(x: torch.Tensor, shift: tuple[float, float, float]) -> torch.Tensor:
    """Images in [-1, 1] with ``shift`` added to every pixel's (L, a, b), unclipped so the shift stays exact."""
    from kornia.color import lab_to_rgb, rgb_to_lab

    lab = rgb_to_lab((x + 1) / 2) + torch.tensor(shift).view(1, 3, 1, 1)
    return lab_to_rgb(lab, clip=False) * 2 - 1


def test_lab_distance_of_a_colour_shift_is_its_size(photos):
    assert create("metric", "lab")(photos, photos.clone()) == 0.0
    metric = create("metric", "lab", pixels=8192)  # the same seeded pixels of both sets: shifts stay exact
    for k in (2.0, 8.0):
        assert metric(shifted_lab(photos, (k, 0, 0)), photos) == pytest.approx(k, rel=0.05)
    assert metric(photos, shifted_lab(photos, (0, 6.0, 0))) == pytest.approx(6.0, rel=0.05)
    assert metric(photos, shifted_lab(photos, (3.0, 0, 4.0))) == pytest.approx(5.0, rel=0.05)


def test_lab_distance_of_real_sets(photos, cartoons):
    metric = create("metric", "lab", pixels=8192)  # a seeded sample of 8192 pixels of each set
    other_photos = resized("testA", 8, (80, 48))  # another size: pixel distributions only
    score = metric(photos, cartoons)
    assert score > metric(photos, other_photos) > 1
    assert metric(photos, cartoons) == score
    assert create("metric", "lab", pixels=2048, seed=1)(photos, cartoons) == pytest.approx(score, rel=0.2)


def test_sphere_directions_are_even_unit_vectors():
    dirs = colour.sphere_directions(64)
    torch.testing.assert_close(dirs.norm(dim=0), torch.ones(64))
    assert float(dirs[0].abs().mean()) == pytest.approx(0.5, abs=1e-6)
    torch.testing.assert_close(dirs.abs().mean(dim=1), torch.full((3,), 0.5), atol=0.02, rtol=0)


# --- shapes -------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["psnr", "ssim", "cycle-psnr", "content"])
def test_paired_metrics_refuse_unpaired_or_non_rgb_inputs(name, photos):
    metric = create("metric", name)
    with pytest.raises(ValueError, match="same shape"):
        metric(photos, photos[:4])
    with pytest.raises(ValueError, match="same shape"):
        metric(photos, photos[..., :32])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        metric(photos[:, :1], photos[:, :1])
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        metric(photos[0], photos[0])


@pytest.mark.parametrize("name", ["swd", "lab"])
def test_unpaired_metrics_refuse_non_rgb_inputs(name, photos):
    with pytest.raises(ValueError, match=r"\(N, 3, H, W\)"):
        create("metric", name)(photos, photos[:, :2])


def test_metrics_leave_their_inputs_alone(photos, cartoons):
    x, y = photos.clone(), cartoons.clone()
    for name in ("psnr", "ssim", "cycle-psnr", "content", "lab"):
        create("metric", name)(x, y)
    create("metric", "swd", repeats=1, directions=16)(x, y)
    torch.testing.assert_close(x, photos, rtol=0, atol=0)
    torch.testing.assert_close(y, cartoons, rtol=0, atol=0)


# --- kid, fid -----------------------------------------------------------------------------------------------------


def _refuse_download(*args, **kwargs):
    raise AssertionError("a download was attempted")


@pytest.fixture
def no_download(monkeypatch):
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity
    import torchvision.models._api as tv_api

    for target in (torch.hub, fidelity, tv_api):
        monkeypatch.setattr(target, "load_state_dict_from_url", _refuse_download)
    monkeypatch.setattr(torch.hub, "download_url_to_file", _refuse_download)


def _variance_preserving(net: nn.Module, seed: int) -> nn.Module:
    """Seeded He-normal weights, so the features of the random network keep a sane scale through all its layers."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        for m in net.modules():
            if isinstance(m, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)
    return net


@pytest.fixture(scope="module")
def weight_files(tmp_path_factory) -> dict[str, Path]:
    """Seeded random weights in each accepted layout, under the published file names."""
    import torch_fidelity.feature_extractor_inceptionv3 as fidelity
    from torchvision.models import inception_v3

    folder = tmp_path_factory.mktemp("inception")
    with pytest.MonkeyPatch.context() as mp:  # build torch-fidelity's network without loading any weights
        mp.setattr(fidelity, "load_state_dict_from_url", lambda *args, **kwargs: {})
        mp.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, state, strict=True: None)
        net = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    files = {"fidelity": folder / inception.FIDELITY_FILE, "torchvision": folder / inception.TORCHVISION_FILE}
    torch.save(_variance_preserving(net, 1).state_dict(), files["fidelity"])
    tv = _variance_preserving(inception_v3(weights=None, aux_logits=True, init_weights=False), 2)
    torch.save(tv.state_dict(), files["torchvision"])
    return files


def _exact_low_rank_fid(mu1, sigma1, mu2, sigma2, rank: int = 16):
    """torchmetrics' FID formula for covariances of rank below ``rank``, on a basis of ``sigma1``'s range.

    The nonzero eigenvalues of ``sigma1 @ sigma2`` are those of the small ``(QᵀΣ₂Q)(QᵀΣ₁Q)``, so this is exact
    for a few images; torchmetrics' general 2048 x 2048 eigendecomposition takes seconds on two cores.
    """
    g = torch.Generator().manual_seed(0)
    q, _ = torch.linalg.qr(sigma1 @ torch.randn(sigma1.shape[0], rank, generator=g, dtype=sigma1.dtype))
    small = (q.T @ sigma2 @ q) @ (q.T @ sigma1 @ q)
    trace_sqrt = torch.linalg.eigvals(small).sqrt().real.sum()
    return (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt


def test_the_low_rank_fid_equals_torchmetrics_formula():
    from torchmetrics.image.fid import _compute_fid

    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(5, 64, generator=g, dtype=torch.float64), torch.randn(6, 64, generator=g, dtype=torch.float64)
    stats = (a.mean(0), a.T.cov(), b.mean(0) + 0.3, b.T.cov())
    assert float(_exact_low_rank_fid(*stats)) == pytest.approx(float(_compute_fid(*stats)), rel=1e-6)


@pytest.fixture
def fast_inception(monkeypatch, no_download):
    """Inception at 80 x 80 inputs instead of 299 (for ours and the references alike), FID's trace term exact for
    low ranks: the comparisons below still see every step i2i takes, many times faster."""
    import torchmetrics.image.fid as tm_fid

    monkeypatch.setattr(tm_fid.NoTrainInceptionV3, "INPUT_IMAGE_SIZE", 80)
    monkeypatch.setattr(inception.TorchvisionInception, "size", 80)
    monkeypatch.setattr(tm_fid, "_compute_fid", _exact_low_rank_fid)


@pytest.fixture(scope="module")
def inception_inputs() -> tuple[torch.Tensor, torch.Tensor]:
    """3 outputs (64 x 64) and 4 targets of another size (48 x 64)."""
    return resized("testA", 3), resized("testB", 4, (64, 48))


def _torchvision_reference(path: Path) -> tuple[nn.Module, object]:
    """torchvision's InceptionV3 with a weight file as pool-feature extractor and its input conversion, without i2i."""
    from torchvision.models import inception_v3

    net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
    net.load_state_dict(torch.load(path, weights_only=True))
    net.fc = nn.Identity()
    net.eval()
    net.num_features = 2048
    mean, std = (
        torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1),
        torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1),
    )

    def convert(x):
        u = torch.nn.functional.interpolate((x + 1) / 2, size=(80, 80), mode="bilinear", antialias=True)
        return (u - mean) / std

    return net, convert


@pytest.mark.parametrize("kind", ["fidelity", "torchvision"])
def test_kid_and_fid_equal_torchmetrics_with_the_same_extractor(kind, weight_files, fast_inception, inception_inputs):
    from torchmetrics.image.fid import FrechetInceptionDistance
    from torchmetrics.image.kid import KernelInceptionDistance

    x, y = inception_inputs
    kept = x.clone(), y.clone()
    path = weight_files[kind]
    kid = create("metric", "kid", weights=str(path), subsets=5)
    fid = create("metric", "fid", weights=str(path))
    assert (
        type(kid.extractor)
        is {"fidelity": inception.FidelityInception, "torchvision": inception.TorchvisionInception}[kind]
    )
    ours_kid, ours_fid = kid(x, y), fid(x, y)

    if kind == "fidelity":  # torchmetrics' standard configuration, straight from the file
        ref_fid = FrechetInceptionDistance(feature=2048, feature_extractor_weights_path=str(path), antialias=False)
        net, convert = ref_fid.inception, lambda x: ((x.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    else:
        net, convert = _torchvision_reference(path)
        ref_fid = FrechetInceptionDistance(feature=net)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # KID keeps all features
        ref_kid = KernelInceptionDistance(feature=net, subsets=5, subset_size=3)  # min(1000, 3, 4)
    with torch.no_grad(), torch.random.fork_rng(devices=[]):
        for metric in (ref_kid, ref_fid):
            metric.update(convert(y), real=True)
            metric.update(convert(x), real=False)
        torch.manual_seed(0)  # the subsets: kid's seed 0
        expected_kid, _ = ref_kid.compute()
        expected_fid = ref_fid.compute()
    assert ours_kid == pytest.approx(float(expected_kid), rel=1e-5, abs=1e-9)
    assert ours_fid == pytest.approx(float(expected_fid), rel=1e-5)
    assert ours_fid > 0.01 and abs(ours_kid) > 1e-6  # the random network still tells the sets apart
    torch.testing.assert_close((x, y), kept, rtol=0, atol=0)


def test_inception_features_are_2048_d_at_full_size(weight_files, no_download):
    features = inception.load_inception(str(weight_files["fidelity"]))(resized("testA", 1))
    assert features.shape == (1, 2048) and bool(features.isfinite().all())


def test_the_extractor_is_loaded_once_per_file(weight_files, no_download, monkeypatch):
    path = str(weight_files["torchvision"])
    first = create("metric", "fid", weights=path).extractor
    monkeypatch.setenv(inception.ENV, path)
    assert create("metric", "kid").extractor is first
    assert inception.load_inception(path) is first


def test_without_weights_kid_and_fid_say_how_to_get_them(monkeypatch, no_download):
    monkeypatch.delenv(inception.ENV, raising=False)
    for name in ("kid", "fid"):
        with pytest.raises(I2IError) as info:
            create("metric", name)
        message = str(info.value)
        for needed in (
            "never downloads",
            "I2I_INCEPTION_WEIGHTS",
            "--inception-weights",
            "weights-inception-2015-12-05-6726825d.pth",
            "https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/weights-inception-2015-12-05-6726825d.pth",
            "inception_v3_google-0cc3c7bd.pth",
            "https://download.pytorch.org/models/inception_v3_google-0cc3c7bd.pth",
        ):
            assert needed in message


def test_weight_files_of_another_layout_are_refused_by_name(tmp_path, weight_files, no_download, monkeypatch):
    from torchvision.models import resnet18

    files = {
        "resnet.pth": resnet18(weights=None).state_dict(),
        "no-fc.pth": {"conv.weight": torch.zeros(3, 3)},
        "truncated.pth": torch.load(weight_files["torchvision"], weights_only=True),
    }
    files["truncated.pth"].pop("Mixed_7c.branch_pool.conv.weight")
    for name, state in files.items():
        torch.save(state, tmp_path / name)
    (tmp_path / "garbage.pth").write_bytes(b"not a state dict")
    for name in [*files, "garbage.pth", "missing.pth"]:
        with pytest.raises(I2IError, match=re.escape(str(tmp_path / name))):
            create("metric", "fid", weights=str(tmp_path / name))
    monkeypatch.setenv(inception.ENV, str(tmp_path / "missing.pth"))
    with pytest.raises(I2IError, match=re.escape(f"{tmp_path / 'missing.pth'}' (from I2I_INCEPTION_WEIGHTS)")):
        create("metric", "kid")


# --- the registry -------------------------------------------------------------------------------------------------


def test_every_metric_is_registered_as_documented(weight_files, no_download):
    for name, (reads, is_paired, higher) in EXPECTED.items():
        options = {"weights": str(weight_files["fidelity"])} if name in ("kid", "fid") else {}
        metric = create("metric", name, **options)
        assert isinstance(metric, Metric)
        assert (metric.reads, metric.paired, metric.higher_is_better) == (reads, is_paired, higher), name
    assert {c.name for c in i2i_metrics_components()} == set(EXPECTED)


def i2i_metrics_components():
    import i2i_core

    return [c for c in i2i_core.list_components("metric") if c.plugin == "metrics"]


def test_bad_options_are_refused_when_the_metric_is_built():
    with pytest.raises(I2IError, match="swd"):
        create("metric", "swd", min_size=4)
    with pytest.raises(I2IError, match="no option"):
        create("metric", "lab", colours=3)
