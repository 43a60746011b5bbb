"""Bad input and faults for plugins, the demo, datasets and videos: each case gets one line naming the plugin,
file or key at fault, the right exit code, no traceback, and no input or earlier output changed or lost."""

from __future__ import annotations

import traceback
import warnings
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from corpus.conftest import Outcome, expect_error, snapshot
from i2i_core import create
from i2i_core.cli import cli
from i2i_core.errors import I2IError
from i2i_core.host.plugins import PluginHost, reset_plugins
from i2i_core.images import load_rgb
from i2i_core.infer.translate import Translator, load_translator
from i2i_core.infer.video import translate_video

FRAMES, FPS = 24, 12


@pytest.fixture(autouse=True)
def _keep_warnings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The command line routes warnings to its own printer: put the test process's back afterwards."""
    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)


@pytest.fixture
def fresh_plugins():
    """Plugins are rediscovered (under the test's environment) in the test, and again after it."""
    reset_plugins()
    yield
    reset_plugins()


def invoke(*args: str | Path) -> Outcome:
    """Run the command line in this process (any uncaught exception's traceback is added to the output)."""
    result = CliRunner().invoke(cli, [str(arg) for arg in args])
    output = result.output
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        output += "".join(traceback.format_exception(result.exception))
    return Outcome(result.exit_code, output)


def warning_lines(outcome: Outcome) -> list[str]:
    return [line for line in outcome.lines if line.startswith("Warning:")]


def expect_refused(outcome: Outcome, name: str | Path) -> None:
    """``outcome`` exited 1 without a traceback, refusing its one input on one line naming ``name``: an error,
    or the line ``i2i translate`` gives an input it skips."""
    assert outcome.code == 1 and "Traceback" not in outcome.output, outcome.output
    refusals = [line for line in outcome.lines if line.startswith(("Error:", "Skipped:"))]
    assert len(refusals) == 1 and str(name) in refusals[0], outcome.output


def save_image(path: Path, size: tuple[int, int], seed: int = 0) -> Path:
    """A real noise image of ``size`` (width, height) at ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pixels = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def make_video(path: Path, options: dict[str, str] | None = None) -> Path:
    """A real H.264 video of ``FRAMES`` 96x64 noise frames at ``FPS`` frames/s."""
    rng = np.random.default_rng(0)
    with av.open(str(path), "w", options=options or {}) as out:
        stream = out.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = 96, 64, "yuv420p"
        for i in range(FRAMES):
            frame = av.VideoFrame.from_ndarray(rng.integers(0, 256, (64, 96, 3), dtype=np.uint8), "rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            for packet in stream.encode(frame):
                out.mux(packet)
        for packet in stream.encode(None):
            out.mux(packet)
    return path


def cut(path: Path, fraction: float) -> Path:
    """Keep only the first ``fraction`` of the file's bytes, as an interrupted copy does."""
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def decoded_frames(path: Path) -> int:
    with av.open(str(path)) as container:
        return sum(1 for _ in container.decode(video=0))


@pytest.fixture(scope="module")
def translator(generator_file: Path) -> Translator:
    return load_translator(generator_file)


# -- plugins -------------------------------------------------------------------------------------------------


def test_an_allow_list_naming_no_installed_plugin_warns_once_naming_the_installed_ones(monkeypatch) -> None:
    monkeypatch.setenv("I2I_PLUGINS", "doesnotexist, resnet")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        host = PluginHost()
    about = [str(w.message) for w in caught if "I2I_PLUGINS" in str(w.message)]
    assert len(about) == 1, about
    assert "not installed: doesnotexist." in about[0]
    assert "Installed plugins: " in about[0] and "cyclegan" in about[0] and "resnet" in about[0]
    assert set(host.plugins) == {"resnet"}


def test_plugins_command_warns_about_an_unknown_allow_list_and_later_errors_name_it(
    monkeypatch, fresh_plugins, tmp_path
) -> None:
    monkeypatch.setenv("I2I_PLUGINS", "doesnotexist")
    listed = invoke("plugins")
    assert listed.code == 0 and "Traceback" not in listed.output, listed.output
    (line,) = warning_lines(listed)
    assert "doesnotexist" in line and "resnet" in line, listed.output
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[output]\ndir = "{tmp_path / "run"}"\n')
    before = snapshot(tmp_path)
    expect_error(invoke("run", recipe, "--dry-run"), "Known methods: none", "I2I_PLUGINS='doesnotexist'")
    assert snapshot(tmp_path) == before


def test_a_recipe_naming_a_component_no_plugin_has_names_it_and_the_known_ones(tmp_path) -> None:
    recipe = tmp_path / "r.toml"
    recipe.write_text(f'[model.generator]\nname = "nosuchnet"\n[output]\ndir = "{tmp_path / "run"}"\n')
    before = snapshot(tmp_path)
    expect_error(invoke("run", recipe, "--dry-run"), "nosuchnet", "resnet9", "unet256")
    assert snapshot(tmp_path) == before


def test_a_plugin_whose_import_raises_is_named_once_and_the_others_load(monkeypatch, fresh_plugins, tmp_path) -> None:
    (tmp_path / "thirdparty_broken.py").write_text("raise ImportError('needs libfoo')\n")
    info = tmp_path / "i2i_broken-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: i2i-broken\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[i2i]\ni2i-broken = thirdparty_broken\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    outcome = invoke("plugins")
    assert outcome.code == 0 and "Traceback" not in outcome.output, outcome.output
    assert "resnet9" in outcome.output and "lsgan" in outcome.output
    (line,) = [line for line in warning_lines(outcome) if "i2i-broken" in line]
    assert "needs libfoo" in line


# -- the demo ------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo(generator_file: Path, tmp_path_factory):
    """The demo page (its uploads cached in a temporary folder), and the model it offers."""
    pytest.importorskip("gradio")
    from i2i_core.cli.demo import build_demo

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("GRADIO_TEMP_DIR", str(tmp_path_factory.mktemp("gradio")))
        yield build_demo([str(generator_file)]), str(generator_file)


def text_file(path: Path) -> None:
    path.write_text("not a photo at all\n")


def empty_file(path: Path) -> None:
    path.write_bytes(b"")


def huge_png(path: Path) -> None:
    Image.new("1", (20000, 20000)).save(path)  # 400 million pixels, 48 KB


def one_pixel(path: Path) -> None:
    save_image(path, (1, 1))


UPLOADS = {
    "notes.png": (text_file, "not an image file"),
    "empty.png": (empty_file, "empty file (0 bytes)"),
    "huge.png": (huge_png, "decompression bomb"),
    "dot.png": (one_pixel, "too small"),
    "clip.mp4": (make_video, "a video"),
}


@pytest.mark.parametrize("name", UPLOADS)
def test_a_bad_upload_gets_the_line_translate_gives_naming_it(name, demo, tmp_path) -> None:
    import gradio as gr

    page, model = demo
    make, reason = UPLOADS[name]
    upload = tmp_path / "uploads" / name
    upload.parent.mkdir()
    make(upload)
    before = snapshot(upload.parent)
    with pytest.raises(gr.Error) as info:
        page(str(upload), model, "AtoB")
    line = info.value.message
    assert line.startswith(f"{name}: ") and reason in line and "\n" not in line, line
    assert not info.value.print_exception  # no traceback in the server's log
    if not name.endswith(".mp4"):  # `i2i translate` translates videos
        translated = invoke("translate", upload, "-c", model, "-o", tmp_path / "out")
        assert f"{upload}: {line.removeprefix(f'{name}: ')}" in translated.output, translated.output
    assert snapshot(upload.parent) == before


# -- datasets ------------------------------------------------------------------------------------------------


def data_folder(root: Path) -> Path:
    """``root/trainA`` and ``root/trainB`` with two real 32x24 images each."""
    for domain in "AB":
        for i in range(2):
            save_image(root / f"train{domain}" / f"{i}.png", (32, 24), seed=i)
    return root


def unreadable(root: Path) -> Path:
    """A data folder whose every trainA image is unreadable: one text, one empty, one cut short."""
    folder = data_folder(root)
    good = (folder / "trainA" / "0.png").read_bytes()
    for path in (folder / "trainA").iterdir():
        path.unlink()
    for name, content in {"notes.png": b"text", "empty.png": b"", "cut.png": good[:60]}.items():
        (folder / "trainA" / name).write_bytes(content)
    return folder


def root_is_a_file(tmp_path: Path) -> tuple[Path, dict, tuple[str, ...]]:
    file = save_image(tmp_path / "photo.png", (32, 24))
    return file, {"root": str(file)}, ("data.root", str(file), "is a file")


def empty_folder(tmp_path: Path) -> tuple[Path, dict, tuple[str, ...]]:
    root = data_folder(tmp_path / "data")
    (tmp_path / "data" / "trainB" / "0.png").unlink()
    (tmp_path / "data" / "trainB" / "1.png").unlink()
    return root, {"root": str(root)}, ("no images", str(root / "trainB"))


def unreadable_error(tmp_path: Path) -> tuple[Path, dict, tuple[str, ...]]:
    root = unreadable(tmp_path / "data")
    return root, {"root": str(root)}, ("3 unreadable", "notes.png", "empty.png", "cut.png", "on_bad_image")


def unreadable_skip(tmp_path: Path) -> tuple[Path, dict, tuple[str, ...]]:
    root = unreadable(tmp_path / "data")
    return root, {"root": str(root), "on_bad_image": "skip"}, ("no readable images left", str(root / "trainA"))


def too_small(tmp_path: Path) -> tuple[Path, dict, tuple[str, ...]]:
    root = data_folder(tmp_path / "data")
    save_image(root / "trainA" / "dot.png", (1, 1))
    return root, {"root": str(root)}, ("dot.png", "1x1 pixels is too small", "on_bad_image")


DATA_CASES = [root_is_a_file, empty_folder, unreadable_error, unreadable_skip, too_small]


@pytest.mark.parametrize("case", DATA_CASES, ids=[case.__name__ for case in DATA_CASES])
def test_bad_training_data_is_refused_naming_the_key_or_file(case, tmp_path) -> None:
    data, options, names = case(tmp_path)
    recipe = tmp_path / "r.toml"
    settings = "".join(f'{key} = "{value}"\n' for key, value in options.items())
    recipe.write_text(
        f'[data]\n{settings}load_size = 32\ncrop_size = 32\n[output]\ndir = "{tmp_path / "run"}"\n'
        '[model.generator]\nname = "resnet6"\nngf = 8\n[train]\nsteps = 1\n'
    )
    before = snapshot(data)
    expect_error(invoke("run", recipe), *names)
    assert snapshot(data) == before
    assert not (tmp_path / "run").exists()


def test_an_image_translate_refuses_is_skipped_by_name_and_the_others_train(translator, tmp_path) -> None:
    root = data_folder(tmp_path / "data")
    dot = save_image(root / "trainA" / "dot.png", (1, 1))
    with pytest.raises(I2IError, match="1x1 pixels is too small"):
        translator.translate(load_rgb(dot))
    with pytest.warns(UserWarning, match=r"skipping 1 .*dot\.png: image of 1x1 pixels is too small"):
        dataset = create("dataset", "unpaired-folder", root=str(root), load_size=32, crop_size=32, on_bad_image="skip")
    assert [path.name for path in dataset.files_A] == ["0.png", "1.png"]
    assert dataset[0]["A"].shape == (3, 32, 32)


# -- videos --------------------------------------------------------------------------------------------------

CUT_VIDEOS = {"clip.mkv": None, "clip.mp4": {"movflags": "faststart"}}  # both keep their index in front


@pytest.mark.parametrize("name", CUT_VIDEOS)
def test_a_truncated_video_keeps_its_readable_frames_and_says_how_many_were_lost(name, generator_file, tmp_path):
    (tmp_path / "in").mkdir()
    source = cut(make_video(tmp_path / "in" / name, CUT_VIDEOS[name]), 0.6)
    before = snapshot(source.parent)
    output = tmp_path / "out" / name
    outcome = invoke("translate", source, "-c", generator_file, "-o", output)
    assert outcome.code == 0 and "Traceback" not in outcome.output, outcome.output
    kept = decoded_frames(output)
    assert 0 < kept < FRAMES
    (line,) = warning_lines(outcome)
    assert str(source) in line and f"{FRAMES - kept} of its" in line, outcome.output
    assert snapshot(source.parent) == before


@pytest.mark.parametrize("damage", ["empty", "cut"])
def test_an_unreadable_video_is_refused_by_name(damage, generator_file, tmp_path) -> None:
    source = tmp_path / "in" / "clip.mp4"
    source.parent.mkdir()
    if damage == "empty":
        source.write_bytes(b"")
    else:
        cut(make_video(source), 0.6)  # its index is written last: gone
    earlier = tmp_path / "out" / "clip.mp4"
    earlier.parent.mkdir()
    earlier.write_bytes(b"an earlier output")
    before = snapshot(source.parent, earlier.parent)
    expect_refused(invoke("translate", source, "-c", generator_file, "-o", earlier, "--overwrite"), source)
    assert snapshot(source.parent, earlier.parent) == before


def test_translate_video_reports_the_lost_frames(translator, tmp_path) -> None:
    source = cut(make_video(tmp_path / "clip.mkv"), 0.6)
    with pytest.warns(UserWarning, match=r"clip\.mkv: \d+ of its about 24 frames could not be read"):
        result = translate_video(translator, source, tmp_path / "out.mkv")
    assert result.lost_frames == FRAMES - result.frames > 0
    assert f"({result.lost_frames} more could not be read)" in result.summary()
