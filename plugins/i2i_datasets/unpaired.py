"""Unpaired image folders in the CycleGAN layout: ``<root>/<split>A`` and ``<root>/<split>B``, and optionally
``<root>/<split>GT``: the ground truth of each ``<split>A`` image in domain B, under the same file stem."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from i2i_core.errors import I2IError
from i2i_core.images import IMAGE_EXTENSIONS, BadImageError, find_images, load_rgb, to_uint8_tensor
from i2i_core.infer.translate import MIN_SIDE
from i2i_datasets.builtin import resolve_root
from i2i_datasets.transforms import crop_flip, random_params, resize_square

ON_BAD_IMAGE = ("error", "skip")
#: How many unreadable files the error lists (the warning of ``on_bad_image = "skip"`` lists them all).
LISTED = 10


def unpaired_folder(
    root: str,
    split: str = "train",
    load_size: int = 286,
    crop_size: int = 256,
    flip: bool = True,
    on_bad_image: str = "error",
    cache: bool = True,
) -> UnpairedFolder:
    """Unpaired images from <root>/<split>A and <root>/<split>B (CycleGAN layout); root may be builtin:<name>.

    A test split may also hold ``<split>GT/``: for each A image, its ground truth in domain B under the same
    file stem (e.g. ``testA/cat.jpg`` and ``testGT/cat.png``); items then carry it as ``A_truth``. Every file is
    decoded once up front; unreadable files, and images too small for ``i2i translate`` (a side under 16 pixels),
    fail the run (``on_bad_image="error"``) or are left out with a warning (``"skip"``). ``cache`` keeps the
    resized images in memory.
    """
    check_options(split, load_size, crop_size, flip, on_bad_image, cache)
    return UnpairedFolder(resolve_root(root), split, load_size, crop_size, flip, on_bad_image == "skip", cache)


def check_options(split: str, load_size: int, crop_size: int, flip: bool, on_bad_image: str, cache: bool) -> None:
    """Refuse ``data.*`` values that no folder dataset can use, naming the key."""
    for key, value in (("load_size", load_size), ("crop_size", crop_size)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise I2IError(f"data.{key} must be a positive integer, got {value!r}")
    for key, value in (("flip", flip), ("cache", cache)):
        if not isinstance(value, bool):
            raise I2IError(f"data.{key} must be true or false, got {value!r}")
    if crop_size > load_size:
        raise I2IError(
            f"data.crop_size ({crop_size}) is larger than data.load_size ({load_size}): "
            "images are resized to load_size, then cropped to crop_size"
        )
    if on_bad_image not in ON_BAD_IMAGE:
        raise I2IError(f"data.on_bad_image must be one of {', '.join(ON_BAD_IMAGE)}, got {on_bad_image!r}")
    if not isinstance(split, str) or not split:
        raise I2IError(f"data.split must be a non-empty string such as 'train' or 'test', got {split!r}")


def _listed(bad: list[BadImageError]) -> str:
    """The first ``LISTED`` bad files with their reasons, on one line, and how many more there are."""
    more = f"; and {len(bad) - LISTED} more" if len(bad) > LISTED else ""
    return "; ".join(str(exc) for exc in bad[:LISTED]) + more


def load_usable(path: Path) -> Image.Image:
    """:func:`load_rgb`, also refusing an image smaller than ``i2i translate`` takes (a side under ``MIN_SIDE``)."""
    image = load_rgb(path)
    if min(image.size) < MIN_SIDE:
        width, height = image.size
        raise BadImageError(
            path, f"image of {width}x{height} pixels is too small: both sides must be at least {MIN_SIDE}"
        )
    return image


class UnpairedFolder(Dataset):
    """Items ``{"A": (3, crop, crop), "B": (3, crop, crop), "A_path": str, "B_path": str}``, values in [-1, 1].

    Items of a split other than ``"train"`` with a ``<split>GT`` folder also hold ``"A_truth"``: the ground truth
    of their A image, resized as it is. One epoch is ``max(|A|, |B|)`` items. Split ``"train"``: item ``i`` takes A image ``i % |A|`` and a random
    B image, each resized to ``load_size``, randomly cropped to ``crop_size`` and randomly mirrored (if
    ``flip``); the randomness comes from torch's global RNG, so ``torch.manual_seed`` fixes it. Other splits
    are deterministic: A ``i % |A|``, B ``i % |B|``, resized to ``crop_size``, not mirrored.
    """

    def __init__(
        self, root: Path, split: str, load_size: int, crop_size: int, flip: bool, skip_bad: bool, cache: bool
    ) -> None:
        self.root, self.split = root, split
        self.train = split == "train"
        self.load_size, self.crop_size, self.flip = load_size, crop_size, flip
        self.size = load_size if self.train else crop_size  # side of the square resize
        self.cache = cache
        folders = {domain: root / f"{split}{domain}" for domain in "AB"}
        found = {domain: self._list(folder) for domain, folder in folders.items()}
        self.files: dict[str, list[Path]] = {}
        self._images: dict[str, list[torch.Tensor]] = {}
        bad: list[BadImageError] = []
        for domain, paths in found.items():
            self.files[domain], self._images[domain] = [], []
            for path in paths:
                try:
                    image = load_usable(path)
                except BadImageError as exc:
                    bad.append(exc)
                    continue
                self.files[domain].append(path)
                if cache:
                    self._images[domain].append(self._resize(image))
        self.skipped = [(exc.path, exc.reason) for exc in bad]
        if bad and not skip_bad:
            raise I2IError(
                f"{len(bad)} unreadable image(s) under data.root {root} "
                f'(set data.on_bad_image = "skip" to train without them): {_listed(bad)}'
            )
        if bad:
            warnings.warn(
                f"skipping {len(bad)} unreadable image(s) under {root}: " + "; ".join(str(e) for e in bad),
                stacklevel=2,
            )
        for domain, folder in folders.items():
            if not self.files[domain]:
                raise I2IError(f"no readable images left in {folder} after skipping unreadable ones")
        self.truth_files = None if self.train else self._truth_files(root / f"{split}GT")

    def _truth_files(self, folder: Path) -> list[Path] | None:
        """The ground-truth file of each A image in ``folder`` (same stem), or None without the folder."""
        if not folder.is_dir():
            return None
        by_stem = {path.stem: path for path in find_images(folder)}
        missing = [path.name for path in self.files["A"] if path.stem not in by_stem]
        if missing:
            raise I2IError(
                f"{folder}: no ground truth for {len(missing)} of the {len(self.files['A'])} images of "
                f"{self.split}A ({', '.join(missing[:3])}{'...' if len(missing) > 3 else ''}); each needs a file "
                "of the same name (any image format) in it"
            )
        return [by_stem[path.stem] for path in self.files["A"]]

    def _list(self, folder: Path) -> list[Path]:
        if not folder.is_dir():
            splits = sorted(
                p.name[:-1] for p in self.root.glob("*A") if p.is_dir() and (self.root / f"{p.name[:-1]}B").is_dir()
            )
            raise I2IError(
                f"folder not found: {folder} (data.split '{self.split}' reads {self.split}A and {self.split}B "
                f"under data.root). Splits found: {', '.join(splits) or 'none'}."
            )
        paths = find_images(folder)
        if not paths:
            raise I2IError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) in folder {folder}")
        return paths

    def _resize(self, image: Image.Image) -> torch.Tensor:
        return resize_square(to_uint8_tensor(image), self.size)

    @property
    def files_A(self) -> list[Path]:
        return self.files["A"]

    @property
    def files_B(self) -> list[Path]:
        return self.files["B"]

    def __len__(self) -> int:
        return max(len(self.files_A), len(self.files_B))

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        a = index % len(self.files_A)
        b = int(torch.randint(len(self.files_B), ())) if self.train else index % len(self.files_B)
        item = {
            "A": self._transform("A", a),
            "B": self._transform("B", b),
            "A_path": str(self.files_A[a]),
            "B_path": str(self.files_B[b]),
        }
        if self.truth_files is not None:
            item["A_truth"] = crop_flip(self._resize(load_rgb(self.truth_files[a])), self.crop_size, 0, 0, False)
        return item

    def _transform(self, domain: str, index: int) -> torch.Tensor:
        path = self.files[domain][index]
        image = self._images[domain][index] if self.cache else self._resize(load_rgb(path))
        top, left, flip = random_params(self.size, self.crop_size, self.flip) if self.train else (0, 0, False)
        return crop_flip(image, self.crop_size, top, left, flip)
