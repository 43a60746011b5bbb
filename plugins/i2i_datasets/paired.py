"""Paired images, each A image with its B counterpart, for paired translation: ``paired-folder`` (``<split>A/x.jpg``
with ``<split>B/x.png``, matched by file stem) and ``aligned`` (the pix2pix layout: ``<split>/x.jpg`` holding A
and B side by side). Both images of a pair get the same crop and the same mirroring."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from i2i_core.errors import I2IError
from i2i_core.images import IMAGE_EXTENSIONS, BadImageError, find_images, to_uint8_tensor
from i2i_datasets.builtin import resolve_root
from i2i_datasets.transforms import crop_flip, random_params, resize_square
from i2i_datasets.unpaired import check_options, load_usable

#: A pair's source: (A file, B file) for two folders, (file, file) for one side-by-side image.
Source = tuple[Path, Path]


def paired_folder(
    root: str,
    split: str = "train",
    load_size: int = 286,
    crop_size: int = 256,
    flip: bool = True,
    on_bad_image: str = "error",
    cache: bool = True,
) -> PairedImages:
    """Pairs from <root>/<split>A and <root>/<split>B matched by file stem (``trainA/x.jpg`` with ``trainB/x.png``).

    Each image needs its partner, of the same size; an image without one, or of another size, is an error naming
    both files. Options as ``unpaired-folder``'s; an unreadable image leaves its pair out under
    ``on_bad_image = "skip"``.
    """
    check_options(split, load_size, crop_size, flip, on_bad_image, cache)
    root_path = resolve_root(root)
    folders = [root_path / f"{split}{domain}" for domain in "AB"]
    files = [_images_in(folder, split) for folder in folders]
    by_stem = [{path.stem: path for path in found} for found in files]
    for ours, theirs in ((0, 1), (1, 0)):
        folder, other = folders[ours], folders[theirs]
        lonely = [path for stem, path in by_stem[ours].items() if stem not in by_stem[theirs]]
        if lonely:
            more = f" (and {len(lonely) - 1} more)" if len(lonely) > 1 else ""
            raise I2IError(
                f"{lonely[0]}{more}: no partner in {other}: each image of {folder.name} needs one of the same name "
                f"(any image format) in {other.name}"
            )
    sources = [(path, by_stem[1][path.stem]) for path in files[0]]
    return PairedImages(sources, _load_pair, split, load_size, crop_size, flip, on_bad_image == "skip", cache)


def aligned(
    root: str,
    split: str = "train",
    load_size: int = 286,
    crop_size: int = 256,
    flip: bool = True,
    on_bad_image: str = "error",
    cache: bool = True,
) -> PairedImages:
    """Pairs side by side in <root>/<split> (pix2pix's aligned layout): each file's left half is A, its right half B.

    A file of odd width is an error naming it. Options as ``unpaired-folder``'s."""
    check_options(split, load_size, crop_size, flip, on_bad_image, cache)
    files = _images_in(resolve_root(root) / split, split)
    return PairedImages(
        [(path, path) for path in files],
        _split_halves,
        split,
        load_size,
        crop_size,
        flip,
        on_bad_image == "skip",
        cache,
    )


def _images_in(folder: Path, split: str) -> list[Path]:
    if not folder.is_dir():
        raise I2IError(f"folder not found: {folder} (data.split '{split}' reads it under data.root)")
    files = find_images(folder)
    if not files:
        raise I2IError(f"no images ({', '.join(e[1:] for e in IMAGE_EXTENSIONS)}) in folder {folder}")
    return files


def _load_pair(source: Source) -> tuple[Image.Image, Image.Image]:
    a, b = (load_usable(path) for path in source)
    if a.size != b.size:
        raise BadImageError(
            source[0],
            f"is {a.width}x{a.height} but its partner {source[1]} is {b.width}x{b.height}: a pair's images "
            "must have one size",
        )
    return a, b


def _split_halves(source: Source) -> tuple[Image.Image, Image.Image]:
    image = load_usable(source[0])
    if image.width % 2:
        raise BadImageError(source[0], f"is {image.width} pixels wide, an odd width: not A and B side by side")
    half = image.width // 2
    return image.crop((0, 0, half, image.height)), image.crop((half, 0, image.width, image.height))


class PairedImages(Dataset):
    """Items ``{"A": (3, crop, crop), "B": (3, crop, crop), "A_path": str, "B_path": str}`` in [-1, 1], item ``i``
    the ``i``-th pair. Split ``"train"``: both images resized to ``load_size``, cropped at one random place and
    mirrored together (if ``flip``), from torch's global RNG; other splits: resized to ``crop_size``, not mirrored,
    and each image's partner is also its ground truth (``"A_truth"`` is the B image, ``"B_truth"`` the A image), so
    that evaluations score paired translations with PSNR and SSIM.
    """

    def __init__(
        self,
        sources: list[Source],
        load: Callable[[Source], tuple[Image.Image, Image.Image]],
        split: str,
        load_size: int,
        crop_size: int,
        flip: bool,
        skip_bad: bool,
        cache: bool,
    ) -> None:
        self.train = split == "train"
        self.size = load_size if self.train else crop_size
        self.crop_size, self.flip, self.load = crop_size, flip, load
        self.sources: list[Source] = []
        self._pairs: list[tuple[torch.Tensor, torch.Tensor]] = []
        bad: list[BadImageError] = []
        for source in sources:
            try:
                pair = self._resized(load(source))
            except BadImageError as exc:
                bad.append(exc)
                continue
            self.sources.append(source)
            if cache:
                self._pairs.append(pair)
        self.cache = cache
        if bad and not skip_bad:
            raise I2IError(f"{bad[0]}" + (f" (and {len(bad) - 1} more bad pairs)" if len(bad) > 1 else ""))
        if bad:
            warnings.warn(f"skipping {len(bad)} pair(s): " + "; ".join(str(e) for e in bad), stacklevel=2)
        if not self.sources:
            raise I2IError(f"no usable pairs left after skipping {len(bad)} bad one(s)")

    def _resized(self, pair: tuple[Image.Image, Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        a, b = pair
        return resize_square(to_uint8_tensor(a), self.size), resize_square(to_uint8_tensor(b), self.size)

    def __len__(self) -> int:
        return len(self.sources)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor | str]:
        if not 0 <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} pairs")
        a, b = self._pairs[index] if self.cache else self._resized(self.load(self.sources[index]))
        top, left, flip = random_params(self.size, self.crop_size, self.flip) if self.train else (0, 0, False)
        item: dict[str, torch.Tensor | str] = {
            "A": crop_flip(a, self.crop_size, top, left, flip),
            "B": crop_flip(b, self.crop_size, top, left, flip),
            "A_path": str(self.sources[index][0]),
            "B_path": str(self.sources[index][1]),
        }
        if not self.train:  # a pair's partner is its ground truth
            item["A_truth"], item["B_truth"] = item["B"], item["A"]
        return item
