"""The ``unpaired-folder`` dataset: the shipped data, folder and file errors, sampling, and reference parity."""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from i2i_datasets import builtin_datasets, preprocess, random_params, resolve_root
from PIL import Image
from safetensors.torch import load_file
from torch.utils.data import DataLoader

from i2i_core import I2IError, create, get_component
from i2i_core.images import load_rgb, to_uint8_tensor

GOLDEN = Path(__file__).parents[1] / "golden"
BUILTIN = "builtin:mini-photo2cartoon"


def unpaired(**options):
    return create("dataset", "unpaired-folder", **options)


def make_split(root: Path, split: str, n_a: int, n_b: int, side: int = 24) -> Path:
    """Write ``n_a`` and ``n_b`` distinct noise images into ``root/<split>A`` and ``root/<split>B``."""
    rng = np.random.default_rng(n_a * 100 + n_b)
    for domain, n in (("A", n_a), ("B", n_b)):
        folder = root / f"{split}{domain}"
        folder.mkdir(parents=True, exist_ok=True)
        for i in range(n):
            pixels = rng.integers(0, 256, (side, side + 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / f"{i:02d}.{'png' if i % 2 else 'JPG'}")
    return root


@pytest.fixture(scope="module")
def builtin_train():
    return unpaired(root=BUILTIN, load_size=143, crop_size=128)


def test_registered_through_the_entry_point() -> None:
    assert get_component("dataset", "unpaired-folder").plugin == "datasets"
    assert builtin_datasets() == ["mini-photo2cartoon"]


@pytest.mark.parametrize("split", ["train", "test"])
def test_builtin_dataset_holds_every_image_of_its_manifest(split: str, builtin_train) -> None:
    ds = builtin_train if split == "train" else unpaired(root=BUILTIN, split=split, crop_size=128)
    with open(resolve_root(BUILTIN) / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    for domain, files in (("A", ds.files_A), ("B", ds.files_B)):
        expected = sorted(r["file"] for r in rows if r["split"] == f"{split}{domain}")
        assert [p.name for p in files] == expected
    assert ds.skipped == []
    assert len(ds) == max(len(ds.files_A), len(ds.files_B)) == {"train": 32, "test": 8}[split]


def test_builtin_dataset_ships_its_licences() -> None:
    root = resolve_root(BUILTIN)
    assert "Licence statement" in (root / "ATTRIBUTION.md").read_text(encoding="utf-8")
    assert {"CC-BY-SA-4.0.txt", "GPL-2.0.txt", "GPL-3.0.txt"} <= {p.name for p in (root / "LICENSES").iterdir()}


def test_items_have_crop_shape_and_range(builtin_train) -> None:
    item = builtin_train[5]
    assert set(item) == {"A", "B", "A_path", "B_path"}
    for domain in "AB":
        x = item[domain]
        assert x.shape == (3, 128, 128) and x.dtype == torch.float32
        assert -1 <= x.min() < x.max() <= 1
        assert x.std() > 0.1  # a real photo or drawing, not a flat image
    assert item["A_path"] == str(builtin_train.files_A[5])
    assert item["B_path"] in {str(p) for p in builtin_train.files_B}


def test_batches_through_a_data_loader(builtin_train) -> None:
    batch = next(iter(DataLoader(builtin_train, batch_size=4, shuffle=True)))
    assert batch["A"].shape == batch["B"].shape == (4, 3, 128, 128)
    assert len(batch["A_path"]) == 4


def test_epoch_is_the_larger_domain_and_a_cycles(tmp_path: Path) -> None:
    ds = unpaired(root=str(make_split(tmp_path, "train", 3, 5)), load_size=24, crop_size=16)
    assert len(ds) == 5
    assert [ds[i]["A_path"] for i in range(5)] == [str(ds.files_A[i % 3]) for i in range(5)]
    with pytest.raises(IndexError):
        ds[5]


def test_train_items_are_reproducible_under_a_seed(tmp_path: Path) -> None:
    ds = unpaired(root=str(make_split(tmp_path, "train", 2, 6)), load_size=24, crop_size=16)

    def epoch(seed: int) -> list[dict]:
        torch.manual_seed(seed)
        return [ds[i] for i in range(len(ds))]

    first, again, other = epoch(0), epoch(0), epoch(1)
    for a, b in zip(first, again, strict=True):
        assert a["B_path"] == b["B_path"] and torch.equal(a["A"], b["A"]) and torch.equal(a["B"], b["B"])
    assert any(not torch.equal(a["A"], b["A"]) for a, b in zip(first, other, strict=True))
    assert any(a["B_path"] != b["B_path"] for a, b in zip(first, other, strict=True))  # B is drawn at random


def test_train_crops_and_flips_are_random_and_exact(tmp_path: Path) -> None:
    ds = unpaired(root=str(make_split(tmp_path, "train", 1, 1)), load_size=20, crop_size=18)
    image = to_uint8_tensor(load_rgb(ds.files_A[0]))
    candidates = {
        (top, left, flip): preprocess(image, 20, 18, top, left, flip)
        for top in range(3)
        for left in range(3)
        for flip in (False, True)
    }
    torch.manual_seed(0)
    seen = Counter()
    for _ in range(200):
        x = ds[0]["A"]
        (params,) = [p for p, c in candidates.items() if torch.equal(c, x)]
        seen[params] += 1
    assert set(seen) == set(candidates)  # every position, mirrored or not


def test_random_params_stay_in_range() -> None:
    torch.manual_seed(0)
    draws = [random_params(10, 8, flip=True) for _ in range(300)]
    assert {d[0] for d in draws} == {d[1] for d in draws} == {0, 1, 2}
    assert {d[2] for d in draws} == {False, True}
    assert not any(random_params(10, 8, flip=False)[2] for _ in range(50))


def test_test_split_is_deterministic_and_resized_to_crop_size(tmp_path: Path) -> None:
    root = str(make_split(tmp_path, "test", 4, 3))
    ds = unpaired(root=root, split="test", crop_size=16)
    assert [ds[i]["B_path"] for i in range(4)] == [str(ds.files_B[i % 3]) for i in range(4)]
    expected = preprocess(to_uint8_tensor(load_rgb(ds.files_B[1])), 16, 16, 0, 0, False)
    assert torch.equal(ds[1]["B"], expected)
    assert torch.equal(ds[1]["B"], ds[1]["B"])


def test_without_cache_items_are_decoded_lazily_and_equal(tmp_path: Path) -> None:
    root = str(make_split(tmp_path, "test", 3, 3))
    cached, lazy = (unpaired(root=root, split="test", crop_size=16, cache=c) for c in (True, False))
    assert lazy._images == {"A": [], "B": []}
    for i in range(3):
        assert torch.equal(cached[i]["A"], lazy[i]["A"]) and torch.equal(cached[i]["B"], lazy[i]["B"])


def write_bad_files(root: Path) -> list[Path]:
    good = next((root / "trainA").iterdir())
    bad = [root / "trainA" / "empty.jpg", root / "trainA" / "cut.jpg", root / "trainB" / "notes.PNG"]
    bad[0].touch()
    Image.open(good).save(bad[1])
    bad[1].write_bytes(bad[1].read_bytes()[:300])
    bad[2].write_text("hello")
    return bad


def test_bad_files_are_all_listed_before_training(tmp_path: Path) -> None:
    bad = write_bad_files(make_split(tmp_path, "train", 2, 2))
    with pytest.raises(I2IError, match=r"3 unreadable image\(s\).*on_bad_image") as info:
        unpaired(root=str(tmp_path), load_size=24, crop_size=16)
    message = str(info.value)
    assert "empty file (0 bytes)" in message and "truncated" in message.lower() and "not an image file" in message
    assert all(str(path) in message for path in bad)


def test_skip_mode_warns_and_leaves_bad_files_out(tmp_path: Path) -> None:
    bad = write_bad_files(make_split(tmp_path, "train", 2, 2))
    with pytest.warns(UserWarning, match=r"skipping 3 unreadable image\(s\)") as record:
        ds = unpaired(root=str(tmp_path), load_size=24, crop_size=16, on_bad_image="skip")
    assert all(str(path) in str(record[0].message) for path in bad)
    assert len(ds.files_A) == len(ds.files_B) == 2
    assert sorted(path for path, _ in ds.skipped) == sorted(bad)


def test_skip_mode_still_needs_one_image_per_domain(tmp_path: Path) -> None:
    make_split(tmp_path, "train", 1, 0)
    (tmp_path / "trainB" / "zero.png").touch()
    with pytest.warns(UserWarning), pytest.raises(I2IError, match=r"no readable images left in .*trainB"):
        unpaired(root=str(tmp_path), load_size=24, crop_size=16, on_bad_image="skip")


def test_unknown_bad_image_policy(tmp_path: Path) -> None:
    with pytest.raises(I2IError, match=r"data\.on_bad_image must be one of error, skip, got 'ignore'"):
        unpaired(root=str(make_split(tmp_path, "train", 1, 1)), on_bad_image="ignore")


def test_missing_folder_is_named_with_the_splits_found(tmp_path: Path) -> None:
    make_split(tmp_path, "train", 1, 1)
    with pytest.raises(I2IError, match=r"folder not found: .*valA .*Splits found: train\."):
        unpaired(root=str(tmp_path), split="val")
    with pytest.raises(I2IError, match=r"data.root: folder not found: .*nowhere"):
        unpaired(root=str(tmp_path / "nowhere"))


def test_empty_folder_is_named(tmp_path: Path) -> None:
    make_split(tmp_path, "train", 2, 0)
    (tmp_path / "trainB" / "readme.txt").write_text("images go here")
    with pytest.raises(I2IError, match=r"no images \(jpg, jpeg, png, .*\) in folder .*trainB"):
        unpaired(root=str(tmp_path))


def test_unknown_builtin_gets_a_suggestion() -> None:
    with pytest.raises(
        I2IError, match=r"unknown builtin dataset 'mini-photo2carton'\. Did you mean 'mini-photo2cartoon'\?"
    ) as info:
        unpaired(root="builtin:mini-photo2carton")
    assert "Builtin datasets: builtin:mini-photo2cartoon." in str(info.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"load_size": 128, "crop_size": 256}, r"data.crop_size \(256\) is larger than data.load_size \(128\)"),
        ({"load_size": 0}, "data.load_size must be a positive integer, got 0"),
        ({"crop_size": "256"}, "data.crop_size must be a positive integer, got '256'"),
        ({"flip": "no"}, "data.flip must be true or false, got 'no'"),
    ],
)
def test_options_are_checked(options: dict, message: str) -> None:
    with pytest.raises(I2IError, match=message):
        unpaired(root=BUILTIN, **options)


@pytest.mark.parametrize(
    ("key", "args"),
    [
        ("train_143_crop128_pos7_11_flip", (143, 128, 11, 7, True)),
        ("train_143_crop128_pos7_11_noflip", (143, 128, 11, 7, False)),
        ("test_128", (128, 128, 0, 0, False)),
    ],
)
def test_preprocessing_matches_the_reference(key: str, args: tuple) -> None:
    # The reference resizes with PIL (bicubic); torchvision's uint8 bicubic resize follows the same filter but
    # rounds a few values the other way. Measured: max |difference| 2/255 (one 8-bit level) in 12 (train) and
    # 16 (test) of the 49152 values.
    expected = load_file(GOLDEN / "preproc.safetensors")[key]
    image = to_uint8_tensor(load_rgb(GOLDEN / "preproc_input_300x200.png"))
    diff = (preprocess(image, *args) - expected).abs()
    assert diff.max() <= 2 / 255 + 1e-6
    assert (diff > 1e-6).sum() <= 20
