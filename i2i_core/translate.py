"""Translating images with a trained generator, at full resolution and in bounded memory.

A checkpoint is a run folder (its latest checkpoint), a training checkpoint folder, or a component checkpoint
file (e.g. one written by ``i2i import-weights``).
"""

from __future__ import annotations

import glob
import io
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch
from PIL import Image
from torch import nn

from i2i_core.checkpoint import atomic_write_bytes, load_component, read_metadata
from i2i_core.compute_copy import ComputeCopy
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.images import IMAGE_EXTENSIONS, find_images, load_rgb, to_image, to_tensor
from i2i_core.precision import autocast, resolve_device, resolve_precision
from i2i_core.tiling import translate_tensor
from i2i_core.training_checkpoint import network_file

DIRECTIONS = {"AtoB": "G_A", "BtoA": "G_B"}
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG", "webp": "WEBP"}
MIN_SIDE = 16
#: Peak working memory of a generator pass, in bytes per pixel per filter of its first layer: measured 15 for
#: ResNet-9 in fp32 (11 in bf16) and 6 for U-Net-256 at 1024x1024 on CPU; used to decide when and how to tile.
BYTES_PER_PIXEL_PER_FILTER = 16


def generator_checkpoint(path: str | os.PathLike, direction: str = "AtoB") -> Path:
    """The generator file a checkpoint path stands for (see the module docstring)."""
    if direction not in DIRECTIONS:
        raise I2IError(f"unknown direction '{direction}'; use AtoB or BtoA")
    return network_file(path, DIRECTIONS[direction])


def load_generator(path: str | os.PathLike, direction: str = "AtoB") -> nn.Module:
    """Load the generator of ``direction`` from a checkpoint path; refuse checkpoints of other kinds."""
    file = generator_checkpoint(path, direction)
    kind = read_metadata(file).get("kind")
    if kind != "generator":
        raise CheckpointError(f"{file}: holds a {kind or 'non-i2i'} checkpoint, not a generator")
    return load_component(file)


def default_max_memory() -> int:
    """A safe budget for one full-image pass: a quarter of the available memory, at most 1 GiB."""
    try:
        available = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError):
        available = 4 << 30
    return min(1 << 30, available // 4)


def _first_width(net: nn.Module) -> int:
    conv = next((m for m in net.modules() if isinstance(m, nn.Conv2d)), None)
    return conv.out_channels if conv is not None else 64


@dataclass
class Translator:
    """A generator ready to translate images of any size.

    With ``precision="bf16"`` the images run through a bf16, channels-last copy of ``net`` (``compute``) made
    when the translator is; ``net`` itself is left as it is.

    Example:
        >>> t = load_translator("runs/quickstart")  # doctest: +SKIP
        >>> t.translate("photo.jpg").save("anime.png")  # doctest: +SKIP
    """

    net: nn.Module
    device: torch.device
    precision: str
    tile: int | None = None
    overlap: int = 32
    max_memory: int | None = None
    compute: ComputeCopy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.compute = ComputeCopy.for_precision(self.net, self.precision)

    def tile_for(self, height: int, width: int) -> int | None:
        """The tile side for an image: the explicit one; else none when a full pass fits the memory budget, or
        the largest tile (at most 512, at least 128) whose pass fits it."""
        if self.tile:
            return self.tile
        budget = self.max_memory or default_max_memory()
        per_pixel = _first_width(self.net) * BYTES_PER_PIXEL_PER_FILTER
        if height * width * per_pixel <= budget:
            return None
        return max(128, min(512, int((budget / per_pixel) ** 0.5)))

    def translate_tensor(self, x: torch.Tensor) -> torch.Tensor:
        """(3, H, W) or (N, 3, H, W) in [-1, 1] -> the same shape in [-1, 1] (batches of N > 1 are not tiled)."""
        batch = x.unsqueeze(0) if x.ndim == 3 else x
        if batch.ndim != 4 or batch.shape[1] != 3:
            raise ValueError(f"expected (3, H, W) or (N, 3, H, W), got {tuple(x.shape)}")
        h, w = batch.shape[-2:]
        if min(h, w) < MIN_SIDE:
            raise I2IError(f"image of {w}x{h} pixels is too small: both sides must be at least {MIN_SIDE}")
        y = translate_tensor(
            self.compute.module,
            batch.to(self.device),
            tile=self.tile_for(h, w) if len(batch) == 1 else None,
            overlap=self.overlap,
            autocast=lambda: autocast(self.precision, self.device),
            prepare=self.compute.prepare,
        )
        y = y.clamp(-1, 1).cpu().contiguous()
        return y[0] if x.ndim == 3 else y

    def translate(self, image: Image.Image | str | os.PathLike | torch.Tensor) -> Image.Image | torch.Tensor:
        """Translate a PIL image, an image file (returns a PIL image) or a tensor (returns a tensor)."""
        if isinstance(image, torch.Tensor):
            return self.translate_tensor(image)
        if not isinstance(image, Image.Image):
            image = load_rgb(image)
        return to_image(self.translate_tensor(to_tensor(image.convert("RGB"))))

    def translate_many(
        self,
        inputs: Iterable[str | os.PathLike],
        out_dir: str | os.PathLike,
        fmt: str | None = None,
        quality: int = 95,
        batch_size: int = 8,
    ) -> tuple[list[Path], list[tuple[Path, str]]]:
        """Translate image files into ``out_dir`` (same names; ``fmt`` changes the extension).

        Returns (written files, [(failed input, reason)]): a bad file is reported and skipped.
        """
        written, failed = [], []
        for path, out, error in self.translate_files(inputs, out_dir, fmt, quality, batch_size):
            if out is not None:
                written.append(out)
            else:
                failed.append((path, error))
        return written, failed

    def translate_files(
        self,
        inputs: Iterable[str | os.PathLike],
        out_dir: str | os.PathLike,
        fmt: str | None = None,
        quality: int = 95,
        batch_size: int = 8,
    ) -> Iterator[tuple[Path, Path | None, str | None]]:
        """Translate files one by one, yielding (input, output or None, error or None) as each is done.

        Consecutive images of the same size that need no tiling run through the generator together, up to
        ``batch_size`` at a time (instance norm is per image, so the result is the same as one at a time).
        """
        out_dir = Path(out_dir)
        pending: list[tuple[Path, torch.Tensor]] = []

        def flush() -> Iterator[tuple[Path, Path | None, str | None]]:
            if pending:
                outputs = self.translate_tensor(torch.stack([x for _, x in pending]))
                for (path, _), y in zip(pending, outputs, strict=True):
                    yield path, self._save(to_image(y), path, out_dir, fmt, quality), None
                pending.clear()

        for path in map(Path, inputs):
            try:
                x = to_tensor(load_rgb(path))
            except I2IError as exc:
                yield path, None, str(exc)
                continue
            same = not pending or pending[0][1].shape == x.shape
            if not same or len(pending) == batch_size:
                yield from flush()
            if self.tile_for(*x.shape[-2:]) is None and min(x.shape[-2:]) >= MIN_SIDE and batch_size > 1:
                pending.append((path, x))
                continue
            try:
                yield path, self._save(to_image(self.translate_tensor(x)), path, out_dir, fmt, quality), None
            except I2IError as exc:
                yield path, None, str(exc)
        yield from flush()

    def translate_file(self, path: Path, out_dir: Path, fmt: str | None = None, quality: int = 95) -> Path:
        """Translate one file into ``out_dir``; the output is written atomically."""
        return self._save(self.translate(path), Path(path), Path(out_dir), fmt, quality)

    @staticmethod
    def _save(image: Image.Image, path: Path, out_dir: Path, fmt: str | None, quality: int) -> Path:
        suffix = (fmt or path.suffix.lstrip(".")).lower()
        if suffix not in FORMATS:
            suffix = "png"
        out = out_dir / f"{path.stem}.{suffix}"
        buffer = io.BytesIO()
        options = {"quality": quality} if FORMATS[suffix] in ("JPEG", "WEBP") else {}
        image.save(buffer, format=FORMATS[suffix], **options)
        atomic_write_bytes(out, buffer.getvalue())
        return out


def load_translator(
    checkpoint: str | os.PathLike,
    direction: str = "AtoB",
    device: str | torch.device | None = None,
    precision: str = "auto",
    tile: int | None = None,
    overlap: int = 32,
    max_memory: int | None = None,
) -> Translator:
    """A :class:`Translator` for the generator of ``direction`` in ``checkpoint``."""
    device = torch.device(device) if device is not None else resolve_device("auto")
    net = load_generator(checkpoint, direction).to(device).eval()
    return Translator(net, device, resolve_precision(precision, device), tile, overlap, max_memory)


def expand_inputs(inputs: Iterable[str]) -> list[Path]:
    """Files, folders (recursive) and glob patterns -> image files, in order, without duplicates."""
    found: list[Path] = []
    for item in inputs:
        path = Path(item)
        if path.is_dir():
            found += find_images(path)
        elif path.exists():
            found.append(path)
        else:
            matches = sorted(
                Path(p) for p in glob.glob(item, recursive=True) if Path(p).suffix.lower() in IMAGE_EXTENSIONS
            )
            if not matches:
                raise I2IError(f"no such file, folder or matching images: {item}")
            found += matches
    return list(dict.fromkeys(found))
