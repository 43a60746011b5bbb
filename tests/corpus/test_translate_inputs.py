"""Bad input and faults for ``i2i translate``: each case gets one line naming the file, option or variable at
fault, the right exit code, no traceback, and no input or earlier output changed or lost."""

from __future__ import annotations

import errno
import os
import struct
import traceback
import warnings
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

from corpus.conftest import Outcome, expect_error, i2i, snapshot
from i2i_core.cli import cli
from i2i_core.errors import I2IError
from i2i_core.images import find_images, load_rgb
from i2i_core.infer.translate import OutputExistsError, Translator, write_output


@pytest.fixture(autouse=True)
def _keep_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line routes warnings to its own printer: put the test process's back afterwards."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)


def translate(*args: str | Path, env: dict[str, str] | None = None) -> Outcome:
    """Run ``i2i translate`` in this process (any uncaught exception's traceback is added to the output)."""
    result = CliRunner().invoke(cli, ["translate", *map(str, args)], env=env)
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += "".join(traceback.format_exception(result.exception))
    return Outcome(result.exit_code, output)


def expect_skipped(outcome: Outcome, name: str | Path, reason: str) -> str:
    """``outcome`` exited 1 without a traceback, having skipped exactly one input, on one line naming ``name`` and
    ``reason``; returns that line."""
    assert outcome.code == 1, outcome.output
    assert "Traceback" not in outcome.output, outcome.output
    skipped = [line for line in outcome.lines if line.startswith("Skipped:")]
    assert len(skipped) == 1 and str(name) in skipped[0] and reason in skipped[0], outcome.output
    return skipped[0]


def leftovers(folder: Path) -> list[str]:
    """Temporary or partial files left in ``folder``."""
    return sorted(p.name for p in folder.rglob("*") if p.name.startswith("."))


# --- --max-memory is checked while the command line is parsed ------------------------------------------------


@pytest.mark.parametrize("value", ["-5", "1e400", "-5MB", "nan", "0", "0.5", "lots"])
@pytest.mark.parametrize("kind", ["image", "video"])
def test_a_bad_max_memory_is_refused_before_any_work(photo: Path, tmp_path: Path, value: str, kind: str) -> None:
    source = photo if kind == "image" else photo.with_name("clip.mp4")
    if kind == "video":
        source.write_bytes(b"never opened: the option is refused first")
    before = snapshot(photo.parent)
    error = expect_error(translate(source, "-o", tmp_path / "out", "--max-memory", value), "--max-memory")
    assert repr(value) in error
    assert not (tmp_path / "out").exists() and snapshot(photo.parent) == before


def test_a_bad_max_memory_is_one_line_from_the_command_line(photo: Path, tmp_path: Path) -> None:
    expect_error(i2i("translate", photo, "-o", tmp_path / "out", "--max-memory", "-5"), "--max-memory", "'-5'")
    assert not (tmp_path / "out").exists()


# --- outputs are created exclusively --------------------------------------------------------------------------


def two_photos(photo: Path) -> list[Path]:
    """``photo`` and a second photo of another size next to it."""
    second = photo.with_name("second.png")
    Image.open(photo).resize((40, 32)).save(second)
    return [photo, second]


def appears_during_translation(monkeypatch: pytest.MonkeyPatch, path: Path, data: bytes) -> None:
    """Make another program write ``path`` while the first image is translated."""
    real = Translator.translate_tensor

    def racing(self: Translator, x: torch.Tensor, **kwargs: bool) -> torch.Tensor:
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        return real(self, x, **kwargs)

    monkeypatch.setattr(Translator, "translate_tensor", racing)


def test_an_output_that_appears_during_translation_is_kept(photo, tmp_path, monkeypatch) -> None:
    inputs, out = two_photos(photo), tmp_path / "out"
    appears_during_translation(monkeypatch, out / "china.png", b"another program's file")
    outcome = translate(*inputs, "-o", out)
    expect_skipped(outcome, out / "china.png", "created by another program")
    assert (out / "china.png").read_bytes() == b"another program's file"
    assert Image.open(out / "second.png").size == (40, 32) and "Translated 1 of 2" in outcome.output
    assert leftovers(out) == []


def test_an_output_that_appears_during_translation_is_replaced_with_overwrite(photo, tmp_path, monkeypatch) -> None:
    out = tmp_path / "out"
    appears_during_translation(monkeypatch, out / "china.png", b"another program's file")
    outcome = translate(photo, "-o", out, "--overwrite")
    assert outcome.code == 0, outcome.output
    assert Image.open(out / "china.png").size == (64, 48) and leftovers(out) == []


@pytest.mark.parametrize("hard_links", [True, False])
def test_write_output_never_replaces_a_file_without_overwrite(tmp_path, monkeypatch, hard_links) -> None:
    if not hard_links:  # FAT and some network shares: os.link fails with EPERM
        monkeypatch.setattr(os, "link", lambda *a: (_ for _ in ()).throw(OSError(errno.EPERM, "not permitted")))
    write_output(tmp_path / "new.png", b"new")
    (tmp_path / "kept.png").write_bytes(b"kept")
    with pytest.raises(OutputExistsError, match=r"kept\.png"):
        write_output(tmp_path / "kept.png", b"new")
    write_output(tmp_path / "replaced.png", b"old")
    write_output(tmp_path / "replaced.png", b"new", overwrite=True)
    contents = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    assert contents == {"new.png": b"new", "kept.png": b"kept", "replaced.png": b"new"}


# --- write faults: a read-only output folder, a full disk ----------------------------------------------------


def read_only(out: Path) -> Callable[..., int]:
    """``os.open`` that refuses to create files in ``out``, as a read-only folder does."""
    real = os.open

    def guarded(path: str | os.PathLike, flags: int, *args: int, **kwargs: int) -> int:
        if Path(path).parent == out and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real(path, flags, *args, **kwargs)

    return guarded


def full_disk(out: Path) -> Callable[[int], None]:
    """``os.fsync`` that fails as a full disk does, for files in ``out`` (after their bytes were written)."""
    real = os.fsync

    def failing(fd: int) -> None:
        if Path(os.readlink(f"/proc/self/fd/{fd}")).parent == out:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real(fd)

    return failing


@pytest.mark.parametrize(
    ("name", "fault", "reason"),
    [("open", read_only, "Permission denied"), ("fsync", full_disk, "No space left on device")],
    ids=["read-only folder", "full disk"],
)
def test_a_failed_write_names_the_output_and_leaves_nothing(photo, tmp_path, monkeypatch, name, fault, reason) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "earlier.png").write_bytes(b"an earlier output")
    before = snapshot(photo.parent, out)
    monkeypatch.setattr(os, name, fault(out))
    expect_error(translate(photo, "-o", out), out / "china.png", reason)
    assert snapshot(photo.parent, out) == before and leftovers(out) == []


# --- messages that name the option, the variable or the file ---------------------------------------------------


@pytest.mark.parametrize(
    ("args", "names"),
    [
        (["--device", "nonsense"], ["--device", "'nonsense'"]),
        (["--device", "cuda"], ["--device", "no CUDA device"]),
        (["--device", "cpu", "--precision", "fp16"], ["--precision", "CUDA"]),
    ],
    ids=["unknown device", "no cuda", "fp16 on cpu"],
)
def test_device_and_precision_errors_name_the_option(photo, tmp_path, args, names) -> None:
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has a CUDA device")
    error = expect_error(translate(photo, "-o", tmp_path / "out", *args), *names)
    assert "train." not in error and not (tmp_path / "out").exists()


@pytest.mark.parametrize("inside", ["", "sub"])
def test_an_output_folder_that_is_a_file_is_refused(photo, tmp_path, inside) -> None:
    existing = tmp_path / "existing.txt"
    existing.write_text("keep me")
    video = photo.with_name("clip.mp4")
    video.write_bytes(b"never opened")
    before = snapshot(photo.parent, existing)
    for source in (photo, video):
        error = expect_error(translate(source, "-o", existing / inside), existing)
        assert "Errno" not in error
    assert snapshot(photo.parent, existing) == before


def test_existing_outputs_are_refused_naming_the_option(photo, tmp_path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "china.png").write_bytes(b"an earlier output")
    before = snapshot(photo.parent, out)
    error = expect_error(translate(photo, "-o", out), out / "china.png", "--overwrite")
    assert "overwrite=True" not in error and snapshot(photo.parent, out) == before


def test_an_unreadable_image_is_not_called_undecodable(photo, tmp_path, monkeypatch) -> None:
    real = Image.open

    def locked(fp, *args, **kwargs):
        if Path(str(fp)) == photo:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(fp))
        return real(fp, *args, **kwargs)

    monkeypatch.setattr(Image, "open", locked)
    line = expect_skipped(translate(photo, "-o", tmp_path / "out"), photo, "cannot read the file (Permission denied)")
    assert "decode" not in line


def bomb_png(path: Path, side: int = 30_000) -> Path:
    """A PNG whose header claims ``side`` x ``side`` pixels (far over Pillow's limit), with one tiny data chunk."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", side, side, 8, 2, 0, 0, 0)
    path.write_bytes(
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + chunk(b"IEND", b"")
    )
    return path


def test_the_pixel_limit_is_set_by_an_environment_variable(photo, tmp_path, monkeypatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", Image.MAX_IMAGE_PIXELS)  # restored after the test
    line = expect_skipped(translate(photo, "-o", tmp_path / "a", env={"I2I_MAX_PIXELS": "1000"}), photo, "bomb")
    assert "I2I_MAX_PIXELS" in line and "PIL" not in line
    assert translate(photo, "-o", tmp_path / "b", env={"I2I_MAX_PIXELS": "4000"}).code == 0
    outcome = translate(photo, "-o", tmp_path / "c", env={"I2I_MAX_PIXELS": "lots"})
    expect_error(outcome, "I2I_MAX_PIXELS", "'lots'")
    assert not (tmp_path / "c").exists()


# --- folders: unreadable subfolders, symlink loops, empty folders, outputs aimed at the inputs ---------------


def unreadable(monkeypatch: pytest.MonkeyPatch, folder: Path) -> None:
    """Make listing ``folder`` fail as it does without read permission (tests may run as root)."""
    real = os.scandir

    def scandir(path: str | os.PathLike = ".") -> object:
        if Path(path) == folder:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_an_unreadable_subfolder_is_reported_and_skipped(photo, tmp_path, monkeypatch) -> None:
    locked = photo.parent / "locked"
    locked.mkdir()
    Image.open(photo).save(locked / "hidden.png")
    unreadable(monkeypatch, locked)
    outcome = translate(photo.parent, "-o", tmp_path / "out")
    assert outcome.code == 0 and "Traceback" not in outcome.output, outcome.output
    warnings = [line for line in outcome.lines if line.startswith("Warning:")]
    assert len(warnings) == 1 and str(locked) in warnings[0] and "Permission denied" in warnings[0], outcome.output
    assert sorted(p.name for p in (tmp_path / "out").rglob("*")) == ["china.png"]


def test_an_unreadable_input_folder_is_refused(photo, tmp_path, monkeypatch) -> None:
    unreadable(monkeypatch, photo.parent)
    expect_error(translate(photo.parent, "-o", tmp_path / "out"), photo.parent, "Permission denied")
    with pytest.raises(I2IError, match="cannot read this folder"):
        find_images(photo.parent)
    assert not (tmp_path / "out").exists()


def test_a_symlink_loop_in_an_input_folder_is_not_followed(photo, tmp_path) -> None:
    (photo.parent / "loop").symlink_to(photo.parent, target_is_directory=True)
    outcome = translate(photo.parent, "-o", tmp_path / "out")
    assert outcome.code == 0 and "Translated 1 of 1" in outcome.output, outcome.output
    assert [p.name for p in (tmp_path / "out").rglob("*")] == ["china.png"]


def test_an_empty_input_folder_is_refused(tmp_path) -> None:
    (tmp_path / "empty").mkdir()
    expect_error(translate(tmp_path / "empty", "-o", tmp_path / "out"), tmp_path / "empty")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("given", "out", "flags"),
    [("folder", ".", []), ("folder", "sub", []), ("glob", ".", ["--overwrite"]), ("file", ".", ["--overwrite"])],
)
def test_outputs_aimed_at_the_inputs_are_refused(photo, given, out, flags) -> None:
    folder = photo.parent
    source = {"folder": folder, "glob": folder / "*.png", "file": photo}[given]
    before = snapshot(folder)
    expect_error(translate(source, "-o", folder / out, *flags), folder)
    assert snapshot(folder) == before


# --- images of every kind: bad ones are skipped on one line, odd ones translated upright -----------------------


def truncated(path: Path, photo: Path) -> None:
    path.write_bytes(photo.read_bytes()[: photo.stat().st_size // 2])


def exif_rotated(path: Path, photo: Path) -> None:
    exif = Image.Exif()
    exif[0x0112] = 6  # shown rotated 90 degrees clockwise
    Image.open(photo).save(path, exif=exif)


BAD = {
    "truncated.png": (truncated, "cannot decode"),
    "empty.png": (lambda path, photo: path.write_bytes(b""), "empty file"),
    "text.png": (lambda path, photo: path.write_text("not an image\n"), "not an image file"),
    "bomb.png": (lambda path, photo: bomb_png(path), "I2I_MAX_PIXELS"),
    "tiny.png": (lambda path, photo: Image.new("RGB", (1, 1)).save(path), "too small"),
}

GOOD = {
    "cmyk.jpg": (lambda path, photo: Image.open(photo).convert("CMYK").save(path), (64, 48)),
    "deep.png": (lambda path, photo: Image.open(photo).convert("L").convert("I;16").save(path), (64, 48)),
    "palette.png": (
        lambda path, photo: Image.open(photo).convert("RGBA").convert("P", palette=Image.Palette.ADAPTIVE).save(path),
        (64, 48),
    ),
    "grey.png": (lambda path, photo: Image.open(photo).convert("L").save(path), (64, 48)),
    "rotated.jpg": (exif_rotated, (48, 64)),
    "фото 写真.png": (lambda path, photo: Image.open(photo).save(path), (64, 48)),
}


@pytest.mark.parametrize("name", BAD)
def test_a_bad_image_is_skipped_on_one_line(photo, tmp_path, name) -> None:
    make, reason = BAD[name]
    path = photo.with_name(name)
    make(path, photo)
    photo.unlink()
    before = snapshot(path)
    expect_skipped(translate(path, "-o", tmp_path / "out"), path, reason)
    assert snapshot(path) == before and not list((tmp_path / "out").rglob("*"))


@pytest.mark.parametrize("name", GOOD)
def test_an_odd_image_is_translated(photo, tmp_path, name) -> None:
    make, size = GOOD[name]
    path = photo.with_name(name)
    make(path, photo)
    before = snapshot(path)
    outcome = translate(path, "-o", tmp_path / "out")
    assert outcome.code == 0 and "Traceback" not in outcome.output, outcome.output
    with Image.open(tmp_path / "out" / name) as output:
        assert output.size == size and output.mode == "RGB"
    assert snapshot(path) == before


def test_16_bit_and_palette_images_keep_their_values(tmp_path) -> None:
    Image.new("I;16", (20, 20), 65535).save(tmp_path / "white16.png")
    rgba = Image.new("RGBA", (20, 20), (255, 0, 0, 0))
    rgba.convert("P", palette=Image.Palette.ADAPTIVE).save(tmp_path / "clear.png", transparency=0)
    assert load_rgb(tmp_path / "white16.png").getpixel((0, 0)) == (255, 255, 255)
    assert load_rgb(tmp_path / "clear.png").getpixel((0, 0)) == (255, 255, 255)  # transparent: composited on white


def test_a_cuda_device_index_past_the_last_is_one_line_naming_the_option(monkeypatch):
    from i2i_core.precision import resolve_device

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    with pytest.raises(
        I2IError, match=r"--device is 'cuda:2' but this machine has 2 CUDA device\(s\): cuda:0 to cuda:1"
    ):
        resolve_device("cuda:2", key="--device")
    assert resolve_device("cuda:1", key="--device") == torch.device("cuda", 1)
