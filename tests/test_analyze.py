"""``i2i analyze``: a reporter run on image files from the command line."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import i2i_datasets
import pytest
from click.testing import CliRunner
from PIL import Image

from i2i_core.analyze import analyze, unique_labels
from i2i_core.cli import cli
from i2i_core.errors import UnknownComponentError
from i2i_core.images import find_images

DATA = Path(i2i_datasets.__file__).parent / "data" / "mini-photo2cartoon"


@pytest.fixture(scope="module")
def images(tmp_path_factory) -> list[Path]:
    """Two photos and a cartoon of the shipped dataset, downsized to keep the test fast (sizes differ)."""
    folder = tmp_path_factory.mktemp("images")
    sources = [*find_images(DATA / "testA")[:2], find_images(DATA / "testB")[0]]
    paths = []
    for source in sources:
        with Image.open(source) as img:
            img.thumbnail((96, 96))
            img.save(folder / f"{source.stem}.png")
        paths.append(folder / f"{source.stem}.png")
    return paths


@pytest.fixture
def runner() -> CliRunner:
    return CliRunner()


def test_unique_labels_are_stems_with_suffixes_for_repeats():
    assert unique_labels(["a/photo.png", "b/photo.jpg", "c/photo-2.png", "out.png"]) == [
        "photo",
        "photo-2",
        "photo-2-2",
        "out",
    ]


def test_analyze_fourier_command_writes_the_report(runner, images, tmp_path):
    out_dir = tmp_path / "report"
    result = runner.invoke(cli, ["analyze", "fourier", *map(str, images), "-o", str(out_dir)])
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        f"Wrote the 'fourier' report on 3 images to {out_dir}: fourier.json, radial_power.png, spectra.png"
    )
    report = json.loads((out_dir / "fourier.json").read_text())
    assert list(report["images"]) == [p.stem for p in images] and report["reference"] == images[0].stem
    assert list(report["changes"]) == [p.stem for p in images[1:]]
    with Image.open(images[2]) as img:
        assert (report["images"][images[2].stem]["width"], report["images"][images[2].stem]["height"]) == img.size


def test_analyze_passes_options_to_the_reporter(runner, images, tmp_path):
    args = ["analyze", "fourier", str(images[0]), "-o", str(tmp_path), "--option", "channel=rgb", "--option", "bins=8"]
    assert runner.invoke(cli, args).exit_code == 0
    report = json.loads((tmp_path / "fourier.json").read_text())
    assert report["channel"] == "rgb" and report["changes"] == {}


def test_identical_images_with_the_same_name_get_unique_labels_and_no_change(images, tmp_path):
    copies = [tmp_path / "a" / "photo.png", tmp_path / "b" / "photo.png"]
    for copy in copies:
        copy.parent.mkdir()
        shutil.copy(images[0], copy)
    report = analyze("fourier", copies, tmp_path / "report", {"bins": 8})
    assert list(report["images"]) == ["photo", "photo-2"]
    change = report["changes"]["photo-2"]
    assert change["spectral_centroid"] == 0 and change["orientation_l1"] == 0
    assert set(change["band_energy"].values()) == {0}


def test_unknown_reporter_suggests_the_closest_name(runner, images, tmp_path):
    result = runner.invoke(cli, ["analyze", "fouier", str(images[0]), "-o", str(tmp_path)])
    assert result.exit_code != 0
    assert "unknown reporter 'fouier'. Did you mean 'fourier'?" in result.output
    with pytest.raises(UnknownComponentError, match="Did you mean 'fourier'"):
        analyze("fouier", images, tmp_path)


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [("missing.png", None, "missing.png: file not found"), ("notes.png", b"not an image", "notes.png: not an image")],
)
def test_unreadable_image_names_the_file(runner, images, tmp_path, name, content, message):
    bad = tmp_path / name
    if content is not None:
        bad.write_bytes(content)
    result = runner.invoke(cli, ["analyze", "fourier", str(images[0]), str(bad), "-o", str(tmp_path / "report")])
    assert result.exit_code != 0 and message in result.output
    assert not (tmp_path / "report").exists()


def test_bad_options_are_one_line_errors(runner, images, tmp_path):
    unknown = runner.invoke(cli, ["analyze", "fourier", str(images[0]), "-o", str(tmp_path), "--option", "bands=3"])
    assert unknown.exit_code != 0 and "reporter 'fourier' has no option 'bands'" in unknown.output
    syntax = runner.invoke(cli, ["analyze", "fourier", str(images[0]), "-o", str(tmp_path), "--option", "bins"])
    assert syntax.exit_code != 0 and "expected KEY=VALUE, got 'bins'" in syntax.output
    no_images = runner.invoke(cli, ["analyze", "fourier", "-o", str(tmp_path)])
    assert no_images.exit_code != 0 and "Missing argument 'IMAGES...'" in no_images.output
