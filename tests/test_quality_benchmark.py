"""The photo -> cartoon quality benchmark (benchmarks/quality): the filter, the dataset builder, the result helpers
and the command lines run.py builds (no training here)."""

from __future__ import annotations

import csv
import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
QUALITY = ROOT / "benchmarks" / "quality"
SHIPPED = ROOT / "plugins" / "i2i_datasets" / "data" / "mini-photo2cartoon"


def _load(name: str) -> ModuleType:
    """Load ``benchmarks/quality/<name>.py`` under the name its siblings use for it."""
    key = f"i2i_quality_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, QUALITY / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


cartoon_mod = _load("cartoon")
build_mod = _load("build")
report_mod = _load("report")
run_mod = _load("run")


pytestmark = pytest.mark.usefixtures("one_thread")


def _photo(name: str = "testA/sklearn-china.jpg") -> torch.Tensor:
    array = np.array(Image.open(SHIPPED / name).convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1)[None].float() / 255


def _colours(x: torch.Tensor) -> int:
    pixels = (x[0].permute(1, 2, 0).reshape(-1, 3) * 255).round().to(torch.uint8)
    return len(torch.unique(pixels, dim=0))


def _two_colours(left=(0.9, 0.8, 0.3), right=(0.2, 0.3, 0.7), h=48, w=64) -> torch.Tensor:
    x = torch.empty(1, 3, h, w)
    x[..., : w // 2] = torch.tensor(left).view(1, 3, 1, 1)
    x[..., w // 2 :] = torch.tensor(right).view(1, 3, 1, 1)
    return x


# --- the filter --------------------------------------------------------------------------------------------------


def test_cartoon_keeps_shape_dtype_and_range():
    x = torch.rand(2, 3, 40, 56, generator=torch.Generator().manual_seed(0))
    y = cartoon_mod.cartoon(x)
    assert y.shape == x.shape and y.dtype == x.dtype
    assert float(y.min()) >= 0.0 and float(y.max()) <= 1.0
    assert not torch.equal(y, x)


def test_cartoon_is_deterministic():
    x = _photo("testA/tuxpaint-lighthouse.jpg")[..., 100:228, 60:252]
    assert torch.equal(cartoon_mod.cartoon(x), cartoon_mod.cartoon(x.clone()))


@pytest.mark.parametrize("colour", [(0.5, 0.5, 0.5), (0.8, 0.45, 0.25), (0.1, 0.3, 0.6)])
def test_a_flat_image_stays_flat_on_its_quantised_level(colour):
    import kornia

    p = cartoon_mod.CartoonParams()
    x = torch.tensor(colour).view(1, 3, 1, 1).expand(1, 3, 24, 32).contiguous()
    y = cartoon_mod.cartoon(x)
    assert torch.equal(y, y[..., :1, :1].expand_as(y)), "a flat image must stay flat (no outlines, no specks)"
    assert torch.allclose(y, cartoon_mod.quantize(x, p.levels, p.chroma_step, p.saturation), atol=1e-6)
    lab = kornia.color.rgb_to_lab(y[..., :1, :1])[0, :, 0, 0]
    step = 100.0 / (p.levels - 1)
    assert abs(float(lab[0]) / step - round(float(lab[0]) / step)) < 0.01  # L* on one of the levels
    for chroma in lab[1:]:
        assert abs(float(chroma) / p.chroma_step - round(float(chroma) / p.chroma_step)) < 0.02
    if colour[0] == colour[1] == colour[2]:  # mid grey (L* 53.4) -> the level L* = 50, still grey
        expected = kornia.color.lab_to_rgb(torch.tensor([50.0, 0.0, 0.0]).view(1, 3, 1, 1))
        assert torch.allclose(y[..., :1, :1], expected, atol=1e-5)


def test_cartoon_flattens_the_colours_of_a_real_photo():
    x = _photo()
    y = cartoon_mod.cartoon(x)
    before, after = _colours(x), _colours(y)
    assert before > 20_000
    assert after * 50 < before, (before, after)
    assert after < 1_000
    # ...while the scene stays recognisable: the picture is close to the photo on average
    assert float((y - x).abs().mean()) < 0.12


def test_a_strong_edge_becomes_a_dark_outline():
    x = _two_colours()
    y = cartoon_mod.cartoon(x)
    luma = _luma(y)
    left, right = float(luma[24, 4]), float(luma[24, -5])
    w = x.shape[-1]
    band = luma[8:-8, w // 2 - 3 : w // 2 + 3]  # rows away from the top and bottom borders
    darkest = band.min(dim=1).values
    assert bool((darkest < 0.5 * min(left, right)).all()), (darkest, left, right)
    # away from the edge both sides stay flat on their quantised colours
    q = cartoon_mod.quantize(x, 7, 12.0, 1.0)
    assert torch.allclose(y[..., :10], q[..., :10], atol=1e-6)
    assert torch.allclose(y[..., -10:], q[..., -10:], atol=1e-6)


def _luma(y: torch.Tensor) -> torch.Tensor:
    return 0.299 * y[0, 0] + 0.587 * y[0, 1] + 0.114 * y[0, 2]


def test_outlines_can_be_turned_off():
    x = _two_colours()
    lined, unlined = _luma(cartoon_mod.cartoon(x)), _luma(cartoon_mod.cartoon(x, line_strength=0.0))
    sides = min(float(unlined[24, 4]), float(unlined[24, -5]))
    assert float(unlined.min()) >= sides - 1e-6  # no pixel darker than the darker side
    assert float(lined.min()) < 0.5 * sides


def test_the_module_equals_the_function():
    x = torch.rand(1, 3, 32, 40, generator=torch.Generator().manual_seed(1))
    assert torch.equal(cartoon_mod.Cartoon()(x), cartoon_mod.cartoon(x))
    assert torch.equal(cartoon_mod.Cartoon(levels=4)(x), cartoon_mod.cartoon(x, levels=4))
    params = cartoon_mod.CartoonParams(line_width=1, smooth_passes=1)
    assert torch.equal(cartoon_mod.Cartoon(params)(x), cartoon_mod.cartoon(x, params))
    assert "levels=7" in repr(cartoon_mod.Cartoon())
    assert list(cartoon_mod.Cartoon().parameters()) == []


@pytest.mark.parametrize(
    "x",
    [
        torch.rand(3, 32, 32),
        torch.rand(1, 1, 32, 32),
        torch.rand(1, 4, 32, 32),
        torch.rand(2, 3, 32),
        torch.zeros(1, 3, 32, 32, dtype=torch.uint8),
        torch.rand(1, 3, 4, 32),
    ],
    ids=["no-batch", "grey", "rgba", "3d", "uint8", "tiny"],
)
def test_bad_inputs_raise(x):
    with pytest.raises(ValueError):
        cartoon_mod.cartoon(x)
    with pytest.raises(ValueError):
        cartoon_mod.Cartoon()(x)


@pytest.mark.parametrize("bad", [{"levels": 1}, {"median_kernel": 4}, {"line_strength": 1.5}, {"edge_low": 0.5}])
def test_bad_parameters_raise(bad):
    with pytest.raises(ValueError):
        cartoon_mod.cartoon(torch.rand(1, 3, 16, 16), **bad)


# --- the dataset ---------------------------------------------------------------------------------------------------


@pytest.fixture
def small_source(tmp_path: Path) -> Path:
    """The shipped mini set (trainA, testA, manifest, attribution, licences) with images shrunk 4x, for speed."""
    src = tmp_path / "mini"
    for split in ("trainA", "testA"):
        (src / split).mkdir(parents=True)
        for f in sorted((SHIPPED / split).iterdir()):
            with Image.open(f) as image:
                image.convert("RGB").resize((image.width // 4, image.height // 4)).save(src / split / f.name)
    for name in ("manifest.csv", "ATTRIBUTION.md"):
        shutil.copyfile(SHIPPED / name, src / name)
    shutil.copytree(SHIPPED / "LICENSES", src / "LICENSES")
    return src


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def test_build_writes_the_benchmark_layout(small_source: Path, tmp_path: Path):
    out = build_mod.build(tmp_path / "data", source=small_source)
    assert {p.name for p in out.iterdir()} == {
        *build_mod.LAYOUT,
        "manifest.csv",
        "ATTRIBUTION.md",
        "LICENSES",
        "README.md",
        "VERSION",
        "filter.json",
    }
    counts = {split: len(_files(out / split)) for split in build_mod.LAYOUT}
    assert counts == {"trainA": 16, "trainB": 16, "testA": 8, "testGT": 8, "testB": 8}
    stems = {split: {Path(n).stem for n in _files(out / split)} for split in build_mod.LAYOUT}
    shipped_train = {p.stem for p in (SHIPPED / "trainA").iterdir()}
    assert not stems["trainA"] & stems["trainB"], "training domains must show different scenes"
    assert stems["trainA"] | stems["trainB"] == shipped_train
    assert stems["testGT"] == stems["testA"] == {p.stem for p in (SHIPPED / "testA").iterdir()}
    assert _files(out / "testB") == _files(out / "testGT")
    for name in _files(out / "testGT"):  # testB = testGT, byte for byte
        assert (out / "testB" / name).read_bytes() == (out / "testGT" / name).read_bytes()
    assert all(n.endswith(".png") for split in ("trainB", "testGT", "testB") for n in _files(out / split))
    for name in _files(out / "trainA"):  # photos are copied as shipped
        assert (out / "trainA" / name).read_bytes() == (small_source / "trainA" / name).read_bytes()
    for name in _files(out / "testA"):  # filtered images keep their photo's size
        with Image.open(out / "testA" / name) as a, Image.open(out / "testGT" / (Path(name).stem + ".png")) as gt:
            assert a.size == gt.size and gt.mode == "RGB"
    assert _files(out / "LICENSES") == _files(SHIPPED / "LICENSES")
    assert (out / "ATTRIBUTION.md").read_bytes() == (SHIPPED / "ATTRIBUTION.md").read_bytes()
    readme = (out / "README.md").read_text()
    assert "testB = testGT" in readme and "levels" in readme
    assert json.loads((out / "filter.json").read_text())["levels"] == cartoon_mod.CartoonParams().levels


def test_build_manifest_credits_every_file(small_source: Path, tmp_path: Path):
    out = build_mod.build(tmp_path / "data", source=small_source)
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    with open(SHIPPED / "manifest.csv", newline="", encoding="utf-8") as f:
        shipped = {f"mini-photo2cartoon/{r['split']}/{r['file']}": r for r in csv.DictReader(f)}
    assert {(r["split"], r["file"]) for r in rows} == {
        (split, name) for split in build_mod.LAYOUT for name in _files(out / split)
    }
    for row in rows:
        source = shipped[row["source"]]
        assert row["license"] == source["license"] and row["license"]
        assert row["author"] == source["author"] and row["author"]
        assert row["license_url"] == source["license_url"]
        assert row["filter"] == ("none" if row["split"] in ("trainA", "testA") else "cartoon")
        assert Path(row["source"]).stem == Path(row["file"]).stem
        texts = row["license_text"].split(";")
        assert texts and all(t.startswith("LICENSES/") and (out / t).is_file() for t in texts), row
        family = row["license"].removesuffix("-only").removesuffix("-or-later").upper()
        assert family in {Path(t).stem.upper() for t in texts}, row


def test_build_is_skipped_when_nothing_changed(small_source: Path, tmp_path: Path, monkeypatch):
    out = build_mod.build(tmp_path / "data", source=small_source)
    version = (out / "VERSION").read_text()
    assert build_mod.is_current(out, small_source)

    def no_filtering(*args, **kwargs):
        raise AssertionError("an up-to-date build must not filter again")

    monkeypatch.setattr(build_mod, "filter_file", no_filtering)
    assert build_mod.build(out, source=small_source) == out
    assert (out / "VERSION").read_text() == version
    changed = small_source / "testA" / "sklearn-china.jpg"
    with Image.open(changed) as image:
        image.rotate(180).save(changed)
    assert not build_mod.is_current(out, small_source), "a changed input must trigger a rebuild"
    (out / "trainB" / _files(out / "trainB")[0]).unlink()
    assert not build_mod.is_current(out, small_source)


def test_build_refuses_to_replace_a_foreign_folder(small_source: Path, tmp_path: Path):
    foreign = tmp_path / "mine"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("keep me")
    with pytest.raises(FileExistsError):
        build_mod.build(foreign, source=small_source)
    assert (foreign / "notes.txt").read_text() == "keep me"


def test_the_real_training_photos_split_in_two_disjoint_halves():
    names = [p.name for p in (SHIPPED / "trainA").iterdir()]
    a, b = build_mod.split_train(names)
    assert len(a) == len(b) == 16 and not set(a) & set(b) and set(a) | set(b) == set(names)
    assert build_mod.version() == build_mod.version()


# --- results helpers -----------------------------------------------------------------------------------------------

METRICS_JSONL = """\
{"step": 10, "minutes": 0.1, "loss_G": 3.2, "loss_D": 0.5}
{"step": 20, "minutes": 0.2, "eval": {"psnr": 12.5, "swd": 0.40}, "identity": {"psnr": 14.0, "swd": 0.30, "x": null}}

{"step": 30, "minutes": 0.3, "loss_G": 2.9}
{"step": 40, "minutes": 0.45, "eval": {"psnr": 13.5, "swd": null}}
not json at all
{"step": 40, "minutes": 0.46, "eval": {"psnr": 13.6, "swd": 0.35}}
{"step": 60, "minutes": 0.7, "eval": {"psnr": 15.0, "swd": 0.25}, "identity": {"psnr": 99.0}}
{"step": 70, "minutes": 0.8, "eval": {"psnr
"""


def test_read_log_parses_eval_lines_among_training_lines(tmp_path: Path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(METRICS_JSONL)
    curves, identity = report_mod.read_log(path)
    assert curves == {
        "psnr": [
            {"step": 20, "minutes": 0.2, "value": 12.5},
            {"step": 40, "minutes": 0.46, "value": 13.6},
            {"step": 60, "minutes": 0.7, "value": 15.0},
        ],
        "swd": [
            {"step": 20, "minutes": 0.2, "value": 0.40},
            {"step": 40, "minutes": 0.46, "value": 0.35},
            {"step": 60, "minutes": 0.7, "value": 0.25},
        ],
    }
    assert identity == {"psnr": 14.0, "swd": 0.30}
    assert report_mod.read_curves(path) == curves
    assert report_mod.last_point(curves) == (60, 0.7)
    assert report_mod.read_log(tmp_path / "missing.jsonl") == ({}, {})
    assert report_mod.last_point({}) == (None, None)


ROWS = [
    {"name": "cyclegan", "steps": 500, "minutes": 10.0, "scores": {"psnr": 15.0, "ssim": 0.40, "swd": 0.30}},
    {"name": "cut", "steps": 800, "minutes": 10.02, "scores": {"psnr": 17.25, "ssim": 0.40, "swd": 0.50}},
    {"name": "broken", "steps": None, "minutes": None, "scores": {}},
    {"name": report_mod.IDENTITY, "steps": None, "minutes": None, "scores": {"psnr": 16.0, "ssim": 0.3, "swd": 0.2}},
]
HIGHER = {"psnr": True, "ssim": True, "swd": False}


def test_best_rows_follow_higher_is_better():
    best = report_mod.best_rows(ROWS, ["psnr", "ssim", "swd", "fid"], HIGHER)
    assert best == {"psnr": {1}, "ssim": {0, 1}, "swd": {3}, "fid": set()}
    flipped = report_mod.best_rows(ROWS, ["psnr", "swd"], {"psnr": False, "swd": True})
    assert flipped == {"psnr": {0}, "swd": {1}}


def test_text_and_markdown_tables_mark_the_best_and_show_the_identity():
    text = report_mod.format_table(ROWS, ["psnr", "ssim", "swd"], HIGHER)
    lines = {line.split()[0]: line for line in text.splitlines() if line.strip()}
    assert "17.25 *" in lines["cut"] and "15 *" not in lines["cyclegan"]
    assert lines["cyclegan"].count("*") == 1 and lines["cut"].count("*") == 2  # ssim tie marks both
    identity = next(line for line in text.splitlines() if line.startswith(report_mod.IDENTITY))
    assert "0.2 *" in identity and "16 " in identity + " "
    assert "psnr ↑" in text and "swd ↓" in text
    assert "500" in lines["cyclegan"] and "10.00" in lines["cyclegan"]

    md = report_mod.markdown_table(ROWS, ["psnr", "ssim", "swd"], HIGHER)
    md_rows = md.strip().splitlines()
    assert md_rows[0] == "| recipe | steps | minutes | psnr ↑ | ssim ↑ | swd ↓ |"
    assert len(md_rows) == 2 + len(ROWS)
    assert md_rows[3] == "| cut | 800 | 10.02 | **17.25** | **0.4** | 0.5 |"
    assert md_rows[4] == "| broken | - | - | - | - | - |"
    assert md_rows[5] == f"| {report_mod.IDENTITY} | - | - | 16 | 0.3 | **0.2** |"


def test_markdown_report_holds_setup_and_table():
    results = {
        "command": "python benchmarks/quality/run.py --minutes 10 a.toml",
        "date": "2025-01-01T00:00:00+00:00",
        "machine": {"cpu": "Some CPU", "cpu_capability": "AVX2", "cpu_count": 2, "torch": "2.9.0", "threads": 2},
        "budget": {"minutes": 10.0},
        "eval_every": 100,
        "images": 8,
        "metrics": ["psnr"],
        "data": {"path": "/d", "version": "abc"},
        "recipes": [{"name": "a", "steps": 5, "minutes": 10.0, "scores": {"psnr": 20.0}, "error": None}],
        "identity": {"psnr": 14.0},
        "higher_is_better": {"psnr": True},
    }
    md = report_mod.markdown_report(results)
    for text in ("AVX2", "Some CPU", "2.9.0", "2 threads", "2025-01-01", "--minutes 10 a.toml", "10 minutes"):
        assert text in md
    assert "| a | 5 | 10.00 | **20** |" in md and f"| {report_mod.IDENTITY} | - | - | 14 |" in md
    assert report_mod.result_rows(results)[-1]["name"] == report_mod.IDENTITY


def test_plot_is_written(tmp_path: Path):
    path = tmp_path / "runs" / "quality.png"
    curves = {
        "a": {"psnr": [{"step": 1, "minutes": 0.5, "value": 12.0}, {"step": 2, "minutes": 1.0, "value": 13.0}]},
        "b": {"psnr": [{"step": 1, "minutes": 0.4, "value": 11.0}], "swd": [{"step": 1, "minutes": 0.4, "value": 1}]},
    }
    assert report_mod.plot_curves(curves, ["psnr", "swd", "lab"], path, {"psnr": 14.0}, HIGHER) == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    with Image.open(path) as image:
        assert image.width > 400 and image.height > 200


def test_machine_info_names_the_cpu_class():
    info = report_mod.machine_info()
    assert info["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert info["torch"] == torch.__version__ and info["threads"] >= 1


# --- run.py's command lines ----------------------------------------------------------------------------------------


def test_training_and_eval_command_lines():
    lines = run_mod.commands(
        "recipes/quickstart.toml",
        Path("/r/runs/quickstart"),
        Path("/r/data"),
        minutes=10,
        eval_every=50,
        metrics=["psnr", "ssim", "swd"],
        overrides=["train.batch_size=2"],
        python="PY",
    )
    assert lines["train"] == [
        "PY", "-m", "i2i_core", "run", "recipes/quickstart.toml", "--restart", "--no-progress",
        "--set", 'output.dir="/r/runs/quickstart"',
        "--set", 'data.root="/r/data"',
        "--set", "data.load_size=143", "--set", "data.crop_size=128", "--set", "eval.size=128",
        "--set", "train.minutes=10",
        "--set", "output.eval_every=50",
        "--set", 'eval.metrics=["psnr", "ssim", "swd"]',
        "--set", "train.batch_size=2",
    ]  # fmt: skip
    assert lines["eval"] == [
        "PY", "-m", "i2i_core", "eval", "-c", "/r/runs/quickstart", "--data", "/r/data", "--json",
        "--metric", "psnr", "--metric", "ssim", "--metric", "swd",
    ]  # fmt: skip


def test_step_budget_and_inception_weights():
    metrics = run_mod.metrics_for("/w/inception.pth")
    assert metrics == ["psnr", "ssim", "content", "swd", "lab", "palette", "flat", "checker", "kid", "fid"]
    assert run_mod.metrics_for(None) == ["psnr", "ssim", "content", "swd", "lab", "palette", "flat", "checker"]
    assert run_mod.metrics_for(None, ["psnr", "kid"]) == ["psnr"]
    lines = run_mod.commands(
        "a.toml", "/o/a", "/d", steps=40, eval_every=8, metrics=metrics, inception_weights="/w/inception.pth"
    )
    sets = [lines["train"][i + 1] for i, arg in enumerate(lines["train"]) if arg == "--set"]
    assert "train.steps=40" in sets and "train.minutes=0" in sets
    assert not any(s.startswith("train.minutes=") and s != "train.minutes=0" for s in sets)
    assert 'eval.metrics=["psnr", "ssim", "content", "swd", "lab", "palette", "flat", "checker", "kid", "fid"]' in sets
    assert lines["eval"][-2:] == ["--inception-weights", "/w/inception.pth"]
    assert lines["train"][:3] == [sys.executable, "-m", "i2i_core"]
    # a path that is not valid TOML by itself still reaches the core as a string
    assert run_mod.commands("a.toml", "/o/2024", "/d d", steps=1, eval_every=1, metrics=["psnr"], size=None)["train"][
        8:11
    ] == [
        'output.dir="/o/2024"',
        "--set",
        'data.root="/d d"',
    ]
    with pytest.raises(ValueError):
        run_mod.commands("a.toml", "/o", "/d", minutes=1, steps=1, eval_every=1, metrics=["psnr"])
    with pytest.raises(ValueError):
        run_mod.commands("a.toml", "/o", "/d", eval_every=1, metrics=["psnr"])


def test_run_names_and_eval_output_parsing():
    assert run_mod.run_names(["r/a.toml", "b.toml", "x/a.toml", "a.toml"]) == ["a", "b", "a-2", "a-3"]
    result = {"checkpoint": "c", "step": 7, "scores": {"psnr": 14.2}, "identity": {"psnr": 18.4}}
    noisy = "Warning: something {odd}\n" + json.dumps(result, indent=2) + "\ntrailing text\n"
    assert run_mod.parse_eval_output(noisy) == result
    with pytest.raises(ValueError):
        run_mod.parse_eval_output("no json here")


def test_dry_run_prints_the_command_lines(capsys):
    assert run_mod.main(["--steps", "20", "a.toml", "b.toml", "--out", "/o", "--data", "/d", "--dry-run"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 4
    assert "train.steps=20" in printed[0] and "output.eval_every=4" in printed[0]
    metrics = "--metric psnr --metric ssim --metric content --metric swd --metric lab --metric palette --metric flat"
    assert printed[1].endswith(f"--json {metrics} --metric checker")
    assert "/o/b" in printed[2]


def test_run_help_works():
    done = subprocess.run(
        [sys.executable, str(QUALITY / "run.py"), "--help"], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    for option in ("--minutes", "--steps", "--out", "--eval-every", "--inception-weights", "--set", "--size"):
        assert option in done.stdout


# --- the paired variant (pix2pix's ceiling) ------------------------------------------------------------------------


def test_build_paired_pairs_the_training_photos_with_their_filtered_versions(small_source: Path, tmp_path: Path):
    out = build_mod.build_paired(tmp_path / "paired", source=small_source)
    counts = {split: len(_files(out / split)) for split in build_mod.PAIRED_LAYOUT}
    assert counts == {"trainA": 16, "trainB": 16, "testA": 8, "testGT": 8, "testB": 8}
    stems = {split: {Path(n).stem for n in _files(out / split)} for split in build_mod.PAIRED_LAYOUT}
    photos, _ = build_mod.split_train([p.name for p in (small_source / "trainA").iterdir()])
    assert stems["trainA"] == stems["trainB"] == {Path(n).stem for n in photos}  # pairs, matched by file stem
    name = _files(out / "trainA")[0]
    assert (out / "trainA" / name).read_bytes() == (small_source / "trainA" / name).read_bytes()
    build_mod.filter_file(small_source / "trainA" / name, tmp_path / "filtered.png")
    assert (out / "trainB" / f"{Path(name).stem}.png").read_bytes() == (tmp_path / "filtered.png").read_bytes()
    unpaired = build_mod.build(tmp_path / "data", source=small_source)
    for split in ("testA", "testGT", "testB"):  # the benchmark's test images, byte for byte
        assert _files(out / split) == _files(unpaired / split)
        assert all((out / split / n).read_bytes() == (unpaired / split / n).read_bytes() for n in _files(out / split))
    with open(out / "manifest.csv", newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert {(r["split"], r["file"]) for r in rows} == {
        (split, n) for split in build_mod.PAIRED_LAYOUT for n in _files(out / split)
    }
    assert all(
        r["filter"] == "cartoon" and r["source"].startswith("mini-photo2cartoon/trainA/")
        for r in rows
        if r["split"] == "trainB"
    )
    assert "the same photos" in (out / "README.md").read_text()
    assert build_mod.is_current(out, small_source, paired=True) and not build_mod.is_current(out, small_source)
    assert not build_mod.is_current(unpaired, small_source, paired=True)


def test_paired_recipes_train_on_the_paired_data_and_their_generator_is_scored():
    assert run_mod.paired_crop(ROOT / "recipes" / "pix2pix-quality.toml") == 128
    assert (
        run_mod.paired_crop(ROOT / "recipes" / "pix2pix-quality.toml", ["data.load_size=286", "data.crop_size=256"])
        == 256
    )
    assert run_mod.paired_crop(ROOT / "recipes" / "photo2anime-fast.toml") is None
    assert run_mod.paired_crop("missing.toml") is None
    line = run_mod.eval_command("/o/G.safetensors", "/p", ["psnr"], size=128, python="PY")
    assert line == ["PY", "-m", "i2i_core", "eval", "-c", "/o/G.safetensors", "--data", "/p", "--json", "--size", "128", "--metric", "psnr"]  # fmt: skip


def test_dry_run_trains_a_paired_recipe_on_the_paired_data(capsys):
    recipes = [str(ROOT / "recipes" / "pix2pix-quality.toml"), str(ROOT / "recipes" / "photo2anime-fast.toml")]
    args = ["--steps", "20", *recipes, "--out", "/o", "--data", "/d", "--paired-data", "/p", "--dry-run"]
    assert run_mod.main(args) == 0
    printed = capsys.readouterr().out.splitlines()
    assert 'data.root="/p"' in printed[0] and 'data.root="/d"' in printed[2]
    assert f"eval -c /o/pix2pix-quality/{run_mod.LATEST_GENERATOR} --data /p --json --size 128" in printed[1]
    assert "eval -c /o/photo2anime-fast --data /d --json --metric" in printed[3]


def test_the_table_marks_the_paired_ceiling():
    results = {
        "metrics": ["psnr"],
        "paired_data": "/p",
        "recipes": [
            {"name": "pix2pix-quality", "paired": True, "steps": 9, "minutes": 10.0, "scores": {"psnr": 24.0}},
            {"name": "photo2anime-fast", "paired": False, "steps": 30, "minutes": 10.0, "scores": {"psnr": 19.0}},
        ],
        "identity": {"psnr": 19.6},
    }
    rows = report_mod.result_rows(results)
    assert [row["name"] for row in rows] == ["pix2pix-quality (paired)", "photo2anime-fast", report_mod.IDENTITY]
    md = report_mod.markdown_report(results)
    assert "| pix2pix-quality (paired) | 9 | 10.00 | **24** |" in md and "ceiling of the unpaired recipes" in md


@pytest.mark.slow
def test_the_benchmark_scores_a_paired_recipe_end_to_end(small_source: Path, tmp_path: Path):
    """pix2pix-quality for two steps on the small data: trained on the pairs, scored with ground truth (30 s)."""
    data = build_mod.build(tmp_path / "data", source=small_source)
    paired = build_mod.build_paired(tmp_path / "paired", source=small_source)
    args = ["--steps", "2", "--eval-every", "2", "--out", str(tmp_path / "runs"), "--data", str(data)]
    args += ["--paired-data", str(paired), "--metric", "psnr", "--metric", "lab"]
    assert run_mod.main([*args, str(ROOT / "recipes" / "pix2pix-quality.toml")]) == 0
    results = json.loads((tmp_path / "runs" / "results.json").read_text())
    (entry,) = results["recipes"]
    assert entry["paired"] and entry["error"] is None and set(entry["scores"]) == {"psnr", "lab"}
    assert entry["commands"]["eval"][5].endswith("G.safetensors") and "lab" in entry["curves"]
    assert "(paired)" in (tmp_path / "runs" / "results.md").read_text()
