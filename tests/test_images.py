"""Image reading: every kind of file a user's folder may hold, read from real files written with Pillow."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from i2i_core.errors import I2IError
from i2i_core.images import BadImageError, find_images, load_rgb, to_image, to_tensor, to_uint8_tensor


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img, dtype=np.int32)


def noise_image(size: int = 64) -> Image.Image:
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8))


def test_find_images_matches_extensions_in_any_case_sorted_and_recursive(tmp_path: Path) -> None:
    for name in ["b.PNG", "a.jpg", "c.JpEg", "d.webp", "e.bmp", "f.tif", "g.TIFF", "sub/h.png", "notes.txt"]:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_bytes(b"x")
    for hidden in [".ipynb_checkpoints/x.png", "._a.jpg"]:
        (tmp_path / hidden).parent.mkdir(exist_ok=True)
        (tmp_path / hidden).write_bytes(b"x")

    found = [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path)]
    assert found == ["a.jpg", "b.PNG", "c.JpEg", "d.webp", "e.bmp", "f.tif", "g.TIFF", "sub/h.png"]
    assert "sub/h.png" not in [p.relative_to(tmp_path).as_posix() for p in find_images(tmp_path, recursive=False)]
    with pytest.raises(I2IError, match=r"image folder not found: .*nowhere"):
        find_images(tmp_path / "nowhere")


@pytest.mark.parametrize(("suffix", "options"), [("png", {}), ("bmp", {}), ("tiff", {}), ("webp", {"lossless": True})])
def test_lossless_formats_load_exactly(tmp_path: Path, suffix: str, options: dict) -> None:
    img = noise_image(16)
    img.save(tmp_path / f"x.{suffix}", **options)
    loaded = load_rgb(tmp_path / f"x.{suffix}")
    assert loaded.mode == "RGB"
    np.testing.assert_array_equal(pixels(loaded), pixels(img))


def test_exif_orientation_is_applied(tmp_path: Path) -> None:
    # 40 wide, 20 high: red left half, blue right half, tagged "rotate 90 degrees clockwise to display"
    img = Image.new("RGB", (40, 20), (0, 0, 255))
    img.paste((255, 0, 0), (0, 0, 20, 20))
    exif = Image.Exif()
    exif[0x0112] = 6
    img.save(tmp_path / "phone.jpg", exif=exif, quality=95)

    loaded = load_rgb(tmp_path / "phone.jpg")
    assert loaded.size == (20, 40)  # now portrait
    red_top, blue_bottom = loaded.getpixel((10, 5)), loaded.getpixel((10, 35))
    assert red_top[0] > 200 and red_top[2] < 50
    assert blue_bottom[2] > 200 and blue_bottom[0] < 50


def test_palette_png_with_transparency_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("P", (4, 2), 0)
    img.putpalette([255, 0, 0, 0, 0, 255])  # 0: red (declared transparent), 1: blue
    img.paste(1, (2, 0, 4, 2))
    img.save(tmp_path / "p.png", transparency=0)
    assert Image.open(tmp_path / "p.png").mode == "P"

    loaded = load_rgb(tmp_path / "p.png")
    assert loaded.mode == "RGB"
    assert loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((3, 1)) == (0, 0, 255)


def test_rgba_is_composited_on_white(tmp_path: Path) -> None:
    img = Image.new("RGBA", (3, 1))
    img.putdata([(0, 0, 0, 0), (255, 0, 0, 255), (0, 0, 0, 128)])
    img.save(tmp_path / "rgba.png")

    loaded = load_rgb(tmp_path / "rgba.png")
    assert loaded.getpixel((0, 0)) == (255, 255, 255)
    assert loaded.getpixel((1, 0)) == (255, 0, 0)
    assert loaded.getpixel((2, 0)) == (127, 127, 127)  # black at alpha 128/255 over white


def test_grayscale_becomes_gray_rgb(tmp_path: Path) -> None:
    Image.new("L", (5, 4), 77).save(tmp_path / "gray.png")
    loaded = load_rgb(tmp_path / "gray.png")
    assert loaded.mode == "RGB" and loaded.size == (5, 4)
    assert (pixels(loaded) == 77).all()


def test_cmyk_jpeg_becomes_rgb(tmp_path: Path) -> None:
    Image.new("CMYK", (16, 16), (0, 255, 255, 0)).save(tmp_path / "cmyk.jpg", quality=95)
    assert Image.open(tmp_path / "cmyk.jpg").mode == "CMYK"

    red = np.asarray(load_rgb(tmp_path / "cmyk.jpg"), dtype=np.int32)
    np.testing.assert_allclose(red.reshape(-1, 3).mean(0), [255, 0, 0], atol=4)


@pytest.mark.parametrize(("suffix", "mode"), [("png", "I;16"), ("tiff", "I")])
def test_16_bit_images_are_scaled_not_clipped(tmp_path: Path, suffix: str, mode: str) -> None:
    values = np.array([[0, 257, 32768, 65535]])
    Image.fromarray(values.astype(np.uint16 if mode == "I;16" else np.int32)).save(tmp_path / f"deep.{suffix}")
    assert Image.open(tmp_path / f"deep.{suffix}").mode == mode

    loaded = pixels(load_rgb(tmp_path / f"deep.{suffix}"))
    np.testing.assert_array_equal(loaded[0, :, 0], [0, 1, 128, 255])
    np.testing.assert_array_equal(loaded[..., 0], loaded[..., 2])


def test_zero_byte_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").touch()
    with pytest.raises(BadImageError, match=r"empty\.jpg: empty file \(0 bytes\)") as info:
        load_rgb(tmp_path / "empty.jpg")
    assert info.value.path == tmp_path / "empty.jpg"


def test_missing_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(BadImageError, match=r"gone\.png: file not found"):
        load_rgb(tmp_path / "gone.png")


@pytest.mark.parametrize("suffix", ["jpg", "png"])
def test_truncated_files_are_refused_at_load_time(tmp_path: Path, suffix: str) -> None:
    noise_image().save(tmp_path / f"full.{suffix}")
    data = (tmp_path / f"full.{suffix}").read_bytes()
    (tmp_path / f"cut.{suffix}").write_bytes(data[: len(data) // 2])

    with pytest.raises(BadImageError, match=rf"cut\.{suffix}: cannot decode .*truncated"):
        load_rgb(tmp_path / f"cut.{suffix}")


def test_text_file_named_png_is_refused(tmp_path: Path) -> None:
    (tmp_path / "notes.png").write_text("not a picture\n")
    with pytest.raises(BadImageError, match=r"notes\.png: not an image file"):
        load_rgb(tmp_path / "notes.png")


@pytest.mark.parametrize("side", [40, 100])  # over the limit (Pillow warns) and over twice it (Pillow raises)
def test_decompression_bombs_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, side: int) -> None:
    Image.new("RGB", (side, side)).save(tmp_path / "bomb.png")
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 1000)
    with pytest.raises(BadImageError, match=r"bomb\.png: refused as a possible decompression bomb.*1000 pixels"):
        load_rgb(tmp_path / "bomb.png")


def test_tensor_round_trip_is_exact_for_every_8_bit_value() -> None:
    values = np.arange(256, dtype=np.uint8).reshape(16, 16)
    img = Image.fromarray(np.stack([values, values.T, 255 - values], axis=-1))

    x = to_tensor(img)
    assert x.shape == (3, 16, 16) and x.dtype == torch.float32
    assert x.min() == -1 and x.max() == 1
    assert torch.equal(to_uint8_tensor(img)[0], torch.from_numpy(values))
    np.testing.assert_array_equal(pixels(to_image(x)), pixels(img))


def test_to_image_rounds_and_clamps() -> None:
    x = torch.tensor([127.6 / 127.5 - 1, 127.4 / 127.5 - 1, 2.0, -3.0]).view(1, 1, 4).expand(3, 1, 4)
    np.testing.assert_array_equal(pixels(to_image(x))[0, :, 0], [128, 127, 255, 0])


def test_shape_and_mode_checks() -> None:
    with pytest.raises(ValueError, match=r"\(3, H, W\) tensor, got shape \(1, 3, 4, 4\)"):
        to_image(torch.zeros(1, 3, 4, 4))
    with pytest.raises(ValueError, match=r"RGB image .* mode L"):
        to_tensor(Image.new("L", (2, 2)))
