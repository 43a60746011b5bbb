"""Reading images robustly and converting them to and from tensors in [-1, 1].

:func:`load_rgb` turns whatever a user's folder holds (EXIF-rotated phone photos, palette or transparent PNGs,
grayscale, CMYK, 16-bit) into an 8-bit RGB image, and refuses corrupt, truncated or oversized files with a
:class:`BadImageError` that names the file and the reason.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from i2i_core.errors import I2IError

#: File suffixes treated as images (compared case-insensitively).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")

_WHITE = (255, 255, 255, 255)

#: The environment variable that sets the largest image (in pixels) :func:`load_rgb` decodes.
MAX_PIXELS_VARIABLE = "I2I_MAX_PIXELS"


class BadImageError(I2IError):
    """A file that cannot be used as an image: empty, corrupt, truncated, not an image, or too large."""

    def __init__(self, path: str | Path, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = Path(path)
        self.reason = reason


def find_images(folder: str | Path, recursive: bool = True) -> list[Path]:
    """The image files in ``folder`` (by extension, any case), sorted; hidden files and folders are skipped.

    Links to folders are not followed. A subfolder that cannot be read is skipped with a warning naming it.

    Raises:
        I2IError: ``folder`` is not a folder, or cannot be read.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise I2IError(f"image folder not found: {folder}")
    found = []
    for root, dirs, files in os.walk(folder, onerror=lambda exc: _unreadable_folder(folder, exc)):
        dirs[:] = [name for name in dirs if not name.startswith(".")] if recursive else []
        found += [Path(root, name) for name in files if not name.startswith(".")]
    return sorted(p for p in found if p.suffix.lower() in IMAGE_EXTENSIONS and p.is_file())


def _unreadable_folder(top: Path, exc: OSError) -> None:
    """Refuse ``top`` when it cannot be read; warn about a subfolder of it that cannot, which is skipped."""
    reason = exc.strerror or str(exc)
    if Path(exc.filename or top) == top:
        raise I2IError(f"{top}: cannot read this folder ({reason})")
    warnings.warn(f"{exc.filename}: cannot read this folder ({reason}); the images in it are skipped", stacklevel=2)


def load_rgb(path: str | Path) -> Image.Image:
    """Decode ``path`` fully into an 8-bit RGB image.

    EXIF orientation is applied; transparency is composited on white; grayscale and CMYK become RGB; 16-bit
    images are scaled to 8 bits (65535 -> 255). Images over :func:`max_pixels` pixels are refused.

    Raises:
        BadImageError: the file is empty, missing, unreadable, corrupt, truncated, not an image, or too large.
        I2IError: ``I2I_MAX_PIXELS`` is set to something other than a positive whole number.
    """
    path = Path(path)
    Image.MAX_IMAGE_PIXELS = max_pixels()
    if not path.is_file():
        raise BadImageError(path, "file not found")
    if path.stat().st_size == 0:
        raise BadImageError(path, "empty file (0 bytes)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                img.load()  # decode everything now, so truncation shows here and not during training
                img = ImageOps.exif_transpose(img)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise BadImageError(
            path,
            f"refused as a possible decompression bomb: more than {Image.MAX_IMAGE_PIXELS} pixels (if you trust "
            f"this file, set the environment variable {MAX_PIXELS_VARIABLE} to a larger number of pixels)",
        ) from None
    except Image.UnidentifiedImageError:
        raise BadImageError(path, "not an image file Pillow can read") from None
    except OSError as exc:
        if exc.errno is None:  # Pillow's own errors on bad data ("image file is truncated")
            raise BadImageError(path, f"cannot decode ({type(exc).__name__}: {exc})") from None
        raise BadImageError(path, f"cannot read the file ({exc.strerror or exc})") from None
    except Exception as exc:  # Pillow's decoders raise many types on corrupt data; all mean "bad file"
        raise BadImageError(path, f"cannot decode ({type(exc).__name__}: {exc})") from None
    return _to_rgb(img)


def max_pixels() -> int | None:
    """The largest image :func:`load_rgb` decodes, in pixels: ``I2I_MAX_PIXELS`` when set, else Pillow's limit.

    Raises:
        I2IError: ``I2I_MAX_PIXELS`` is not a positive whole number.
    """
    text = os.environ.get(MAX_PIXELS_VARIABLE, "").strip()
    if not text:
        return Image.MAX_IMAGE_PIXELS
    if not text.isdigit() or int(text) < 1:
        raise I2IError(f"{MAX_PIXELS_VARIABLE}: expected a positive whole number of pixels, got {text!r}")
    return int(text)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):
        # 16-bit samples (Pillow reads 16-bit grayscale as I;16, older versions as I): scale, don't clip
        values = np.asarray(img, dtype=np.float64).clip(0, 65535)
        img = Image.fromarray(np.rint(values / 257).astype(np.uint8))
    if "A" in img.getbands() or "a" in img.getbands() or "transparency" in img.info:
        rgba = img.convert("RGBA")
        return Image.alpha_composite(Image.new("RGBA", rgba.size, _WHITE), rgba).convert("RGB")
    return img.convert("RGB")


def to_uint8_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB image as a (3, H, W) uint8 tensor."""
    if img.mode != "RGB":
        raise ValueError(f"expected an RGB image (see load_rgb), got mode {img.mode}")
    return torch.from_numpy(np.array(img, dtype=np.uint8)).permute(2, 0, 1).contiguous()


def uint8_to_float(x: torch.Tensor) -> torch.Tensor:
    """uint8 values 0..255 of any shape as float32 in [-1, 1] (0 -> -1, 255 -> 1)."""
    return x.to(torch.float32) / 127.5 - 1.0


def to_tensor(img: Image.Image) -> torch.Tensor:
    """An RGB image as a (3, H, W) float32 tensor in [-1, 1]."""
    return uint8_to_float(to_uint8_tensor(img))


def to_image(x: torch.Tensor) -> Image.Image:
    """A (3, H, W) tensor in [-1, 1] as an RGB image; values are clamped to [-1, 1] and rounded to 8 bits."""
    if x.ndim != 3 or x.shape[0] != 3:
        raise ValueError(f"expected a (3, H, W) tensor, got shape {tuple(x.shape)}")
    values = ((x.detach().to("cpu", torch.float32).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    return Image.fromarray(values.permute(1, 2, 0).numpy())
