"""``i2i translate`` and the translation API: any size, tiles that do not show, bad input."""

from __future__ import annotations

import hashlib
import math
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from PIL import Image

import i2i_core
from i2i_core.cli import cli
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.images import load_rgb, to_tensor
from i2i_core.infer.tiling import run_tiled, translate_tensor
from i2i_core.infer.translate import expand_inputs, generator_checkpoint, load_translator, plan_outputs

DATA = Path(__file__).parents[1] / "plugins" / "i2i_datasets" / "data" / "mini-photo2cartoon"
PHOTO = sorted((DATA / "testA").iterdir())[0]
TINY = Path(__file__).parent / "recipes" / "tiny.toml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("run") / "run"
    recipe = i2i_core.load_recipe(TINY, [f"output.dir='{out}'", "train.steps=2"])
    return i2i_core.train(recipe, show_progress=False).run_dir


def photo(path: Path, size: tuple[int, int] = (40, 32)) -> Path:
    """Save the test photo resized to ``size`` at ``path`` (folders created); returns ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.open(PHOTO).convert("RGB").resize(size).save(path)
    return path


def checksums(folder: Path) -> dict[str, str]:
    """SHA-256 of every file under ``folder``, by relative path."""
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.*")}


def translate_cli(*args: str | Path) -> object:
    """Run ``i2i translate`` with ``args``."""
    return CliRunner().invoke(cli, ["translate", *map(str, args)])


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [-1, 1]."""
    return 10 * math.log10(4.0 / ((a - b) ** 2).mean().item())


def test_checkpoint_paths_resolve(run_dir, generator_file):
    latest = run_dir / "checkpoints" / "step_0000002"
    assert generator_checkpoint(run_dir) == latest / "G_A.safetensors"
    assert generator_checkpoint(run_dir, "BtoA") == latest / "G_B.safetensors"
    assert generator_checkpoint(latest, "BtoA") == latest / "G_B.safetensors"
    assert generator_checkpoint(generator_file) == generator_file


def test_bad_checkpoints(tmp_path, run_dir):
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_translator(tmp_path / "nope")
    with pytest.raises(CheckpointError, match="no complete checkpoint"):
        load_translator(tmp_path)
    with pytest.raises(CheckpointError, match="holds a discriminator checkpoint, not a generator"):
        load_translator(run_dir / "checkpoints" / "step_0000002" / "D_A.safetensors")
    with pytest.raises(I2IError, match="unknown direction 'AtoC'"):
        load_translator(run_dir, direction="AtoC")


def test_any_size_keeps_size_and_equals_padded_pass(generator_file):
    t = load_translator(generator_file, precision="fp32")
    x = torch.rand(3, 37, 50) * 2 - 1  # not multiples of 4
    y = t.translate(x)
    assert y.shape == x.shape and y.min() >= -1 and y.max() <= 1
    padded = torch.nn.functional.pad(x[None], (0, 2, 0, 3), mode="reflect")
    with torch.no_grad():
        expected = t.net(padded)[0, :, :37, :50]
    torch.testing.assert_close(y, expected, atol=1e-5, rtol=0)


def test_translate_returns_the_kind_it_was_given(generator_file):
    t = load_translator(generator_file, precision="fp32")
    from_path = t.translate(PHOTO)
    from_pil = t.translate(load_rgb(PHOTO))
    assert isinstance(from_path, Image.Image) and from_path.size == load_rgb(PHOTO).size
    assert from_path.tobytes() == from_pil.tobytes()
    assert isinstance(t.translate(to_tensor(load_rgb(PHOTO))), torch.Tensor)


def test_too_small_image_is_refused(generator_file):
    with pytest.raises(I2IError, match="too small"):
        load_translator(generator_file).translate(torch.zeros(3, 8, 40))


def test_tiled_output_matches_untiled_on_a_1024_photo(generator_file):
    net = i2i_core.load_component(generator_file)
    x = to_tensor(load_rgb(PHOTO).resize((1024, 1024)))[None]
    with torch.no_grad():
        full = translate_tensor(net, x)
        tiled = translate_tensor(net, x, tile=384, overlap=64)
        naive = run_tiled(net, x, tile=384, overlap=64, multiple=4)  # per-tile instance-norm statistics
    assert psnr(full, tiled) >= 35.0
    assert psnr(full, tiled) > psnr(full, naive) + 3  # sharing the statistics is what keeps colours even


def test_automatic_tiling_under_a_memory_budget(generator_file):
    t = load_translator(generator_file, precision="fp32", max_memory=8 << 20)
    assert t.tile_for(64, 64) is None
    assert t.tile_for(1024, 1024) == 256  # the largest tile whose pass fits 8 MiB: 8 filters x 16 bytes a pixel
    x = to_tensor(load_rgb(PHOTO).resize((400, 300)))
    untiled = load_translator(generator_file, precision="fp32").translate(x)
    assert psnr(untiled, t.translate(x)) >= 35.0


def test_exif_orientation_is_applied(generator_file, tmp_path):
    image = Image.open(PHOTO).convert("RGB").resize((64, 48))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise on display
    image.save(tmp_path / "rotated.jpg", exif=exif)
    out = load_translator(generator_file).translate(tmp_path / "rotated.jpg")
    assert out.size == (48, 64)


def test_cli_translates_folders_and_reports_bad_files(generator_file, tmp_path):
    inputs = tmp_path / "in"
    (inputs / "nested").mkdir(parents=True)
    Image.open(PHOTO).convert("RGB").resize((70, 45)).save(inputs / "a.jpg")
    Image.open(PHOTO).convert("RGB").resize((33, 40)).save(inputs / "nested" / "b.png")
    (inputs / "broken.png").write_bytes(b"not an image")
    result = CliRunner().invoke(
        cli, ["translate", "-c", str(generator_file), str(inputs), "-o", str(tmp_path / "out"), "--format", "webp"]
    )
    assert result.exit_code == 1  # one input failed
    assert "broken.png" in result.output and "Translated 2 of 3 image(s)" in result.output
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.*")) == [
        "a.webp",
        "nested/b.webp",
    ]
    assert Image.open(tmp_path / "out" / "a.webp").size == (70, 45)


def test_cli_glob_keeps_names_and_formats(generator_file, tmp_path):
    for name in ("x.png", "y.jpg"):
        Image.open(PHOTO).convert("RGB").resize((40, 32)).save(tmp_path / name)
    out = tmp_path / "out"
    result = CliRunner().invoke(cli, ["translate", "-c", str(generator_file), str(tmp_path / "*.*"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.iterdir()) == ["x.png", "y.jpg"]
    assert Image.open(out / "y.jpg").format == "JPEG"


def test_cli_errors(generator_file, tmp_path):
    runner = CliRunner()
    missing = runner.invoke(cli, ["translate", "-c", str(tmp_path / "none"), str(PHOTO), "-o", str(tmp_path)])
    assert missing.exit_code == 1 and "no such checkpoint" in missing.output
    no_input = runner.invoke(cli, ["translate", "-c", str(generator_file), str(tmp_path / "x.png"), "-o", "o"])
    assert no_input.exit_code == 1 and "no such file, folder or matching images" in no_input.output
    budget = runner.invoke(
        cli, ["translate", "-c", str(generator_file), str(PHOTO), "-o", str(tmp_path), "--max-memory", "lots"]
    )
    assert budget.exit_code == 1 and "expected a size such as 800MB" in budget.output


def test_same_size_images_are_batched_with_the_same_result(generator_file, tmp_path):
    sizes = [(40, 32), (40, 32), (40, 32), (36, 44), (40, 32)]
    for i, size in enumerate(sizes):
        Image.open(PHOTO).convert("RGB").resize(size).save(tmp_path / f"{i}.png")
    (tmp_path / "9-broken.png").write_bytes(b"broken")
    inputs = sorted(tmp_path.glob("*.png"))
    t = load_translator(generator_file, precision="fp32")
    calls = []
    real = t.translate_tensor
    t.translate_tensor = lambda x: calls.append(len(x) if x.ndim == 4 else 1) or real(x)
    results = list(t.translate_files(inputs, tmp_path / "batched", batch_size=2))
    assert [p.name for p, out, _ in results if out is not None] == [f"{i}.png" for i in range(5)]
    assert [(p.name, error is not None) for p, out, error in results if out is None] == [("9-broken.png", True)]
    assert calls == [2, 1, 1, 1]  # two 40x32 together; the 36x44 breaks the run
    t.translate_tensor = real
    one_by_one, _ = t.translate_many(inputs[:5], tmp_path / "single", batch_size=1)
    for out in one_by_one:
        batched = Image.open(tmp_path / "batched" / out.name)
        diff = (to_tensor(batched) - to_tensor(Image.open(out))).abs().max().item()
        assert diff <= 2 / 255 + 1e-6, out.name  # at most one 8-bit level apart (float summation order)


def test_bf16_translation_tracks_fp32_tiled_and_untiled(generator_file):
    x = to_tensor(load_rgb(PHOTO).resize((200, 150)))
    fp32 = load_translator(generator_file, precision="fp32")
    bf16 = load_translator(generator_file, precision="bf16")
    assert next(bf16.compute.module.parameters()).dtype == torch.bfloat16
    assert next(bf16.net.parameters()).dtype == torch.float32  # the loaded weights stay as they are
    for tile in (None, 96):
        fp32.tile = bf16.tile = tile
        ours, reference = bf16.translate(x), fp32.translate(x)
        assert ours.dtype == torch.float32 and ours.shape == x.shape and ours.is_contiguous()
        assert psnr(reference, ours) >= 30.0, tile


def test_cli_refuses_an_output_folder_that_is_or_is_inside_an_input_folder(generator_file, tmp_path):
    photos = tmp_path / "photos"
    for name in ("a.png", "b.jpg", "sub/c.png"):
        photo(photos / name)
    before = checksums(photos)
    for out, where in ((photos, "is"), (photos / "anime", "is inside")):
        result = translate_cli("-c", tmp_path / "no-checkpoint", photos, "-o", out, "--overwrite")
        assert result.exit_code == 1
        # refused before the checkpoint is even looked at, naming both folders, in one line
        assert f"output folder {out} {where} the input folder {photos}: choose an -o" in result.output
        assert "Traceback" not in result.output and len(result.output.strip().splitlines()) == 1
    assert checksums(photos) == before and not (photos / "anime").exists()


def test_cli_refuses_to_replace_existing_outputs_unless_told(generator_file, tmp_path):
    inputs = [photo(tmp_path / "in" / f"{i}.png") for i in range(5)]
    out = tmp_path / "out"
    out.mkdir()
    for i in range(4):
        (out / f"{i}.png").write_bytes(b"someone's work")
    refused = translate_cli("-c", tmp_path / "no-checkpoint", tmp_path / "in", "-o", out)
    assert refused.exit_code == 1
    assert f"4 output file(s) exist already ({out / '0.png'}, {out / '1.png'}, {out / '2.png'}, ...)" in refused.output
    assert "use --overwrite" in refused.output and "(-o)" in refused.output
    assert sorted(p.name for p in out.iterdir()) == [f"{i}.png" for i in range(4)]  # nothing written, not 4.png
    assert {p.read_bytes() for p in out.iterdir()} == {b"someone's work"}
    replaced = translate_cli("-c", generator_file, tmp_path / "in", "-o", out, "--overwrite")
    assert replaced.exit_code == 0, replaced.output
    assert "Translated 5 of 5 image(s)" in replaced.output
    assert all(Image.open(out / p.name).size == (40, 32) for p in inputs)
    with pytest.raises(I2IError, match=re.escape("1 output file(s) exist already")):
        load_translator(generator_file).translate_many(inputs[:1], out)
    written, failed = load_translator(generator_file).translate_many(inputs[:1], out, overwrite=True)
    assert written == [out / "0.png"] and not failed


def test_an_output_that_is_an_input_is_refused_even_with_overwrite(generator_file, tmp_path):
    x = photo(tmp_path / "photos" / "x.png")
    before = checksums(tmp_path / "photos")
    for given in (x, tmp_path / "photos" / "*.png"):
        result = translate_cli("-c", generator_file, given, "-o", tmp_path / "photos", "--overwrite")
        assert result.exit_code == 1
        assert f"output {x} would replace the input {x}: choose another -o" in result.output
    (tmp_path / "link").symlink_to(tmp_path / "photos")  # the same folder under another name
    with pytest.raises(I2IError, match="would replace the input"):
        load_translator(generator_file).translate_many([x], tmp_path / "link", overwrite=True)
    assert checksums(tmp_path / "photos") == before


def test_cli_keeps_sub_paths_of_folder_inputs(generator_file, tmp_path):
    photos = tmp_path / "photos"
    photo(photos / "a" / "x.png")
    photo(photos / "b" / "x.png", (36, 44))
    photo(photos / "x.jpg", (48, 32))
    single = photo(tmp_path / "elsewhere" / "deep" / "y.png")
    result = translate_cli("-c", generator_file, photos, single, "-o", tmp_path / "out")
    assert result.exit_code == 0, result.output
    assert "Translated 4 of 4 image(s)" in result.output
    sizes = {p.relative_to(tmp_path / "out").as_posix(): Image.open(p).size for p in (tmp_path / "out").rglob("*.*")}
    assert sizes == {"a/x.png": (40, 32), "b/x.png": (36, 44), "x.jpg": (48, 32), "y.png": (40, 32)}
    found = expand_inputs([str(photos), str(single)])
    assert found.folders == (photos,)
    assert plan_outputs(found, "out")[photos / "a" / "x.png"] == Path("out/a/x.png")


def test_inputs_that_would_share_an_output_are_refused_before_any_work(generator_file, tmp_path):
    a, b = photo(tmp_path / "a" / "x.png"), photo(tmp_path / "b" / "x.png")
    jpg = photo(tmp_path / "c" / "y.jpg")
    png = photo(tmp_path / "c" / "y.png")
    out = tmp_path / "out"
    names = translate_cli("-c", tmp_path / "no-checkpoint", a, b, "-o", out)
    assert names.exit_code == 1
    assert f"inputs would be translated into the same file: {a} and {b} -> {out / 'x.png'}" in names.output
    formats = translate_cli("-c", tmp_path / "no-checkpoint", tmp_path / "c", "-o", out, "--format", "png")
    assert formats.exit_code == 1 and f"{jpg} and {png} -> {out / 'y.png'}" in formats.output
    assert not out.exists()
    with pytest.raises(I2IError, match="into the same file"):
        load_translator(generator_file).translate_many([a, b], out)
    assert not out.exists()
    assert translate_cli("-c", generator_file, tmp_path / "c", "-o", out).exit_code == 0  # own formats: no clash


def test_batches_respect_the_memory_budget(generator_file, tmp_path):
    inputs = [photo(tmp_path / f"{i}.png") for i in range(7)]  # 40x32
    t = load_translator(generator_file, precision="fp32")
    one_pass = 40 * 32 * 8 * 16  # pixels x filters of the first layer x BYTES_PER_PIXEL_PER_FILTER
    calls = []
    real = t.translate_tensor
    t.translate_tensor = lambda x: calls.append(len(x) if x.ndim == 4 else 1) or real(x)
    for budget, batch_size, expected in [
        (3 * one_pass + 1000, 16, [3, 3, 1]),  # three passes fit the budget, not four
        (one_pass, 16, [1] * 7),  # one image only just fits: one at a time, untiled
        (100 * one_pass, 2, [2, 2, 2, 1]),  # a large budget: --batch-size decides
    ]:
        t.max_memory, calls[:] = budget, []
        written, failed = t.translate_many(inputs, tmp_path / f"out-{budget}-{batch_size}", batch_size=batch_size)
        assert len(written) == 7 and not failed
        assert calls == expected, budget
    t.max_memory = one_pass
    assert t.tile_for(32, 40) is None and t.batch_limit(32, 40, 16) == 1
    t.max_memory = one_pass - 1  # the image no longer fits: tiled, and tiled images are not batched
    assert t.tile_for(32, 40) is not None and t.batch_limit(32, 40, 16) == 1


MEASURE_PEAK = """
import resource, sys
from pathlib import Path
from i2i_core.infer.translate import load_translator

checkpoint, folder, budget = sys.argv[1:]
t = load_translator(checkpoint, device="cpu", precision="fp32", max_memory=int(budget))
files = sorted(Path(folder).glob("*.png"))
t.translate_many(files, Path(folder) / "one", batch_size=1)
alone = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t.translate_many(files, Path(folder) / "batched", batch_size=16)
print(alone, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def test_batching_does_not_raise_peak_memory_beyond_the_budget(generator_file, tmp_path):
    for i in range(12):
        photo(tmp_path / f"{i}.png", (192, 192))
    one_pass = 192 * 192 * 8 * 16  # 4.5 MiB; the 12 images in one pass would take about 60 MiB more than one
    done = subprocess.run(
        [sys.executable, "-c", MEASURE_PEAK, str(generator_file), str(tmp_path), str(3 * one_pass // 2)],
        capture_output=True,
        text=True,
        check=True,
    )
    alone_kib, batched_kib = map(int, done.stdout.split())
    assert (batched_kib - alone_kib) * 1024 < 3 * one_pass  # at most one image at a time within this budget


def test_every_skip_line_names_its_file(generator_file, tmp_path):
    inputs = tmp_path / "in"
    photo(inputs / "good.png")
    Image.new("RGB", (1, 1)).save(inputs / "dot.png")
    photo(inputs / "thin.png", (200, 8))
    (inputs / "broken.jpg").write_bytes(b"not an image")
    result = translate_cli("-c", generator_file, inputs, "-o", tmp_path / "out")
    assert result.exit_code == 1
    skipped = sorted(line for line in result.output.splitlines() if line.startswith("Skipped:"))
    assert skipped == [
        f"Skipped: {inputs / 'broken.jpg'}: not an image file Pillow can read",
        f"Skipped: {inputs / 'dot.png'}: image of 1x1 pixels is too small: both sides must be at least 16",
        f"Skipped: {inputs / 'thin.png'}: image of 200x8 pixels is too small: both sides must be at least 16",
    ]
    assert "Translated 1 of 4 image(s)" in result.output
