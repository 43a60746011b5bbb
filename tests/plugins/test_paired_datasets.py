"""The paired datasets ``paired-folder`` and ``aligned``: both images of a pair cropped and mirrored together, and a
clear error for a pair that does not fit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import i2i_core
from i2i_core.errors import I2IError

SIDE = 40  # the images are load_size square: resizing leaves them as they are


def photo(seed: int, width: int = SIDE, height: int = SIDE) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def paired_folders(root: Path, count: int = 3) -> Path:
    """``trainA/i.png`` and its negative ``trainB/i.png``: B = -A in [-1, 1], wherever both are cropped alike."""
    for domain in "AB":
        (root / f"train{domain}").mkdir(parents=True)
    for i in range(count):
        a = photo(i)
        Image.fromarray(a).save(root / "trainA" / f"{i}.png")
        Image.fromarray(255 - a).save(root / "trainB" / f"{i}.png")
    return root


def dataset(name: str, root: Path, **options) -> torch.utils.data.Dataset:
    options = {"load_size": SIDE, "crop_size": 24, **options}
    return i2i_core.create("dataset", name, root=str(root), **options)


@pytest.mark.parametrize("name", ["paired-folder", "aligned"])
def test_both_images_of_a_pair_get_one_crop_and_one_flip(tmp_path, name):
    root = paired_folders(tmp_path)
    if name == "aligned":  # the same pairs, side by side
        (root / "train").mkdir()
        for i in range(3):
            a = photo(i)
            Image.fromarray(np.concatenate([a, 255 - a], axis=1)).save(root / "train" / f"{i}.png")
    data = dataset(name, root)
    torch.manual_seed(0)
    crops = []
    for _ in range(8):
        item = data[1]
        assert item["A"].shape == (3, 24, 24) and torch.allclose(item["B"], -item["A"], atol=1e-6)  # one crop, one flip
        crops.append(item["A"])
    assert len({c.sum().item() for c in crops}) > 1  # the crops do move
    assert len(data) == 3 and item["A_path"].endswith("1.png") and "A_truth" not in item  # truth: test splits


def test_test_splits_resize_to_the_crop_and_do_not_mirror(tmp_path):
    root = tmp_path / "pairs"
    for domain in "AB":
        (root / f"test{domain}").mkdir(parents=True)
    Image.fromarray(photo(5, 48, 32)).save(root / "testA" / "x.jpg")
    Image.fromarray(photo(6, 48, 32)).save(root / "testB" / "x.png")  # another format, same stem
    item = dataset("paired-folder", root, split="test")[0]
    assert item["A"].shape == item["B"].shape == (3, 24, 24)
    assert item["A_path"].endswith("x.jpg") and item["B_path"].endswith("x.png")
    # each image's partner is its ground truth (evaluations score paired translations with PSNR and SSIM)
    assert torch.equal(item["A_truth"], item["B"]) and torch.equal(item["B_truth"], item["A"])


def test_a_missing_partner_is_named(tmp_path):
    root = paired_folders(tmp_path)
    (root / "trainB" / "2.png").unlink()
    with pytest.raises(I2IError, match=r"trainA/2\.png: no partner in .*trainB: each image of trainA needs one"):
        dataset("paired-folder", root)
    Image.fromarray(photo(9)).save(root / "trainB" / "extra.png")
    (root / "trainA" / "2.png").unlink()
    with pytest.raises(I2IError, match=r"trainB/extra\.png: no partner in .*trainA"):
        dataset("paired-folder", root)


def test_a_pair_of_two_sizes_is_named_or_skipped(tmp_path):
    root = paired_folders(tmp_path)
    Image.fromarray(photo(0, 44, SIDE)).save(root / "trainB" / "0.png")
    with pytest.raises(I2IError, match=r"trainA/0\.png: is 40x40 but its partner .*trainB/0\.png is 44x40"):
        dataset("paired-folder", root)
    with pytest.warns(UserWarning, match=r"skipping 1 pair"):
        assert len(dataset("paired-folder", root, on_bad_image="skip")) == 2


def test_an_aligned_file_of_odd_width_is_named(tmp_path):
    (tmp_path / "train").mkdir()
    Image.fromarray(photo(0, 81, SIDE)).save(tmp_path / "train" / "odd.png")
    with pytest.raises(I2IError, match=r"train/odd\.png: is 81 pixels wide, an odd width: not A and B side by side"):
        dataset("aligned", tmp_path)
