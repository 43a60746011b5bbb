"""Build the paired photo -> cartoon quality benchmark from the photos shipped in ``mini-photo2cartoon``.

``python benchmarks/quality/build.py [OUT] [--force]`` (default OUT: ``benchmarks/quality/data``) writes:

- ``trainA/``: 16 of the 32 shipped training photos, copied byte for byte (JPEG);
- ``trainB/``: the other 16 training photos passed through the cartoon filter (PNG), so the training domains
  show different scenes (unpaired training);
- ``testA/``: the 8 shipped test photos, copied byte for byte (JPEG);
- ``testGT/``: those 8 photos passed through the filter (PNG, same file stem): the ground truth of A -> B;
- ``testB/``: the same filtered test images again (testB = testGT), the target-domain test set of the
  distribution metrics (SWD, Lab, KID, FID);
- ``manifest.csv``, ``ATTRIBUTION.md``, ``LICENSES/``, ``README.md`` and ``VERSION``.

``VERSION`` is a hash of this builder, the filter's source, the library versions the filter runs on and every input
file; a build whose ``VERSION`` matches is skipped.

``python benchmarks/quality/build.py --paired [OUT]`` (default OUT: ``benchmarks/quality/data-paired``) writes the
paired variant, for paired methods (pix2pix): ``trainA/`` the same 16 training photos, ``trainB/`` *those* photos
through the filter (same file stem, PNG: pairs), and ``testA/``, ``testGT/``, ``testB/`` as above, so its test
images are the benchmark's.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import importlib.util
import json
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
SOURCE = REPO / "plugins" / "i2i_datasets" / "data" / "mini-photo2cartoon"
DEFAULT_OUT = HERE / "data"
DEFAULT_PAIRED_OUT = HERE / "data-paired"
FILTER = "cartoon"  # the manifest's name for the filter; its parameters are in README.md and filter.json
NO_FILTER = "none"
LAYOUT = {"trainA": 16, "trainB": 16, "testA": 8, "testGT": 8, "testB": 8}
#: The paired variant's folders: the same counts, trainB the filtered trainA photos.
PAIRED_LAYOUT = dict(LAYOUT)
#: One image of a build: (folder, shipped file name, shipped folder, filtered).
Entry = tuple[str, str, str, bool]


def _sibling(name: str) -> ModuleType:
    """This folder's module ``name``, loaded from its file (the folder is no package)."""
    key = f"i2i_quality_{name}"
    if key not in sys.modules:
        spec = importlib.util.spec_from_file_location(key, HERE / f"{name}.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[key] = module
        spec.loader.exec_module(module)
    return sys.modules[key]


cartoon_module = _sibling("cartoon")


def split_train(names: list[str]) -> tuple[list[str], list[str]]:
    """Share the training photos between the domains: sorted, alternately to A and B (disjoint, mixed sources)."""
    ordered = sorted(names)
    return ordered[0::2], ordered[1::2]


def version(source: Path = SOURCE) -> str:
    """The hash that identifies a build: builder and filter source, library versions, every input file."""
    digest = hashlib.sha256()

    def add(label: str, data: bytes) -> None:
        digest.update(label.encode() + b"\0" + hashlib.sha256(data).digest())

    add("build.py", (HERE / "build.py").read_bytes())
    add("cartoon.py", (HERE / "cartoon.py").read_bytes())
    add("params", json.dumps(cartoon_module.CartoonParams().to_dict(), sort_keys=True).encode())
    add("libs", f"torch {torch.__version__} kornia {_kornia_version()} pillow {Image.__version__}".encode())
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        rel = path.relative_to(source).as_posix()
        if rel.split("/")[0] in ("trainB", "testB"):  # the shipped cartoons are not used
            continue
        add(rel, path.read_bytes())
    return digest.hexdigest()[:16]


def _kornia_version() -> str:
    import kornia

    return str(kornia.__version__)


def _read_rgb(path: Path) -> torch.Tensor:
    with Image.open(path) as image:
        array = np.array(image.convert("RGB"))
    return torch.from_numpy(array).permute(2, 0, 1)[None].float().div(255.0)


def _write_png(image: torch.Tensor, path: Path) -> None:
    array = image[0].clamp(0, 1).mul(255.0).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(array).save(path, format="PNG", optimize=False, compress_level=6)


def filter_file(src: Path, dst: Path, params: object | None = None) -> None:
    """Cartoonise the image file ``src`` into the PNG ``dst`` (same size)."""
    with torch.inference_mode():
        _write_png(cartoon_module.cartoon(_read_rgb(src), params), dst)


@contextmanager
def _one_thread() -> Iterator[None]:
    """Run torch on one thread: the filter's operators are small, and on a busy machine extra threads spend
    more time waiting for each other than computing (several times slower on 2 shared cores)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _source_manifest(source: Path) -> dict[str, dict[str, str]]:
    with open(source / "manifest.csv", newline="", encoding="utf-8") as f:
        return {f"{row['split']}/{row['file']}": row for row in csv.DictReader(f)}


def licence_texts(licence: str, folder: Path) -> list[str]:
    """The files of ``folder`` (a ``LICENSES/``) with the text of the SPDX-style ``licence``, as ``LICENSES/<file>``:
    ``GPL-2.0-or-later`` -> ``GPL-2.0.txt``; an LGPL also needs the GPL text it builds on."""
    family = licence.removesuffix("-only").removesuffix("-or-later").upper()
    names = {p.stem.upper(): p.name for p in folder.iterdir() if p.is_file()}
    wanted = [family] + ([family.removeprefix("L")] if family.startswith("LGPL-") else [])
    found = [f"LICENSES/{names[w]}" for w in wanted if w in names]
    if not found:
        raise FileNotFoundError(f"{folder}: no licence text for {licence}")
    return found


def paired_version(source: Path = SOURCE) -> str:
    """The hash that identifies a build of the paired variant (that of the benchmark, marked as paired)."""
    return hashlib.sha256(f"paired {version(source)}".encode()).hexdigest()[:16]


def is_current(out: Path, source: Path = SOURCE, *, paired: bool = False) -> bool:
    """Whether ``out`` holds a complete build (``paired``: of the paired variant) of the current builder, filter and
    inputs."""
    try:
        built = (out / "VERSION").read_text().strip()
    except OSError:
        return False
    layout = PAIRED_LAYOUT if paired else LAYOUT
    complete = all((out / folder).is_dir() and len(list((out / folder).iterdir())) == n for folder, n in layout.items())
    tag = paired_version(source) if paired else version(source)
    return built == tag and complete and (out / "manifest.csv").is_file()


def build(out: Path = DEFAULT_OUT, *, force: bool = False, source: Path = SOURCE, quiet: bool = True) -> Path:
    """Build the benchmark dataset into ``out`` (deterministically) and return ``out``.

    Skipped when ``out/VERSION`` matches the current builder, filter and inputs (unless ``force``). ``out`` is
    replaced as a whole: it must be absent, empty, or an earlier build (it holds a ``VERSION`` file).
    """
    out = Path(out)
    if not force and is_current(out, source):
        if not quiet:
            print(f"{out}: up to date (VERSION {(out / 'VERSION').read_text().strip()})")
        return out
    train_a, train_b = split_train(_names(source, "trainA"))
    plan = [
        (split, name, "trainA", split == "trainB")
        for split, names in (("trainA", train_a), ("trainB", train_b))
        for name in names
    ]
    return _write(out, plan + _test_plan(source), source, version(source), _readme, quiet)


def build_paired(
    out: Path = DEFAULT_PAIRED_OUT, *, force: bool = False, source: Path = SOURCE, quiet: bool = True
) -> Path:
    """Build the paired variant into ``out`` and return it: ``trainA`` the benchmark's training photos, ``trainB``
    the same photos filtered (pairs, matched by file stem), the benchmark's test folders. Skipped and replaced as
    :func:`build`'s."""
    out = Path(out)
    if not force and is_current(out, source, paired=True):
        if not quiet:
            print(f"{out}: up to date (VERSION {(out / 'VERSION').read_text().strip()})")
        return out
    train_a, _ = split_train(_names(source, "trainA"))
    plan = [(split, name, "trainA", split == "trainB") for split in ("trainA", "trainB") for name in train_a]
    return _write(out, plan + _test_plan(source), source, paired_version(source), _paired_readme, quiet)


def _names(source: Path, folder: str) -> list[str]:
    return sorted(p.name for p in (source / folder).iterdir() if p.is_file())


def _test_plan(source: Path) -> list[Entry]:
    """testA (the test photos), testGT (filtered) and testB (= testGT: the target domain's test set)."""
    test = _names(source, "testA")
    return [(split, name, "testA", split != "testA") for split in ("testA", "testGT", "testB") for name in test]


def _write(
    out: Path,
    plan: list[Entry],
    source: Path,
    tag: str,
    readme: Callable[[object, list[dict[str, str]]], str],
    quiet: bool,
) -> Path:
    """Write the images of ``plan`` (each shipped image filtered once, copied where it comes again), the manifest,
    attribution, licences, filter parameters, ``readme`` and ``VERSION`` ``tag`` into ``out``, atomically."""
    if out.exists() and any(out.iterdir()) and not (out / "VERSION").is_file():
        raise FileExistsError(f"{out}: not empty and not an earlier benchmark build (no VERSION); not replacing it")
    start = time.perf_counter()
    tmp = out.with_name(out.name + ".building")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    shipped = _source_manifest(source)
    params = cartoon_module.CartoonParams()
    rows: list[dict[str, str]] = []
    filtered_once: dict[str, Path] = {}

    def add(split: str, name: str, source_split: str, filtered: bool) -> None:
        folder = tmp / split
        folder.mkdir(exist_ok=True)
        src = source / source_split / name
        dst = folder / (Path(name).stem + ".png" if filtered else name)
        done = filtered_once.get(f"{source_split}/{name}")
        if filtered and done is not None:  # testB = testGT: filtered once
            shutil.copyfile(done, dst)
        elif filtered:
            filter_file(src, dst, params)
            filtered_once[f"{source_split}/{name}"] = dst
        else:
            shutil.copyfile(src, dst)
        meta = shipped[f"{source_split}/{name}"]
        rows.append(
            {
                "split": split,
                "file": dst.name,
                "source": f"mini-photo2cartoon/{source_split}/{name}",
                "filter": FILTER if filtered else NO_FILTER,
                "author": meta["author"],
                "license": meta["license"],
                "license_url": meta["license_url"],
                "license_text": ";".join(licence_texts(meta["license"], source / "LICENSES")),
            }
        )

    with _one_thread():
        for entry in plan:
            add(*entry)

    with open(tmp / "manifest.csv", "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    shutil.copyfile(source / "ATTRIBUTION.md", tmp / "ATTRIBUTION.md")
    shutil.copytree(source / "LICENSES", tmp / "LICENSES")
    (tmp / "filter.json").write_text(json.dumps({"filter": FILTER, **params.to_dict()}, indent=2) + "\n")
    (tmp / "README.md").write_text(readme(params, rows))
    (tmp / "VERSION").write_text(tag + "\n")
    if out.exists():
        shutil.rmtree(out)
    tmp.rename(out)
    if not quiet:
        print(f"{out}: built {len(rows)} images in {time.perf_counter() - start:.1f} s (VERSION {tag})")
    return out


def _readme(params: object, rows: list[dict[str, str]]) -> str:
    counts = {split: sum(r["split"] == split for r in rows) for split in LAYOUT}
    licences = sorted({r["license"] for r in rows})
    table = "\n".join(f"| `{k}` | {v} |" for k, v in params.to_dict().items())
    return f"""# Photo -> cartoon quality benchmark

A small **paired** benchmark for photo -> cartoon translation, built by `benchmarks/quality/build.py` from the
photographs shipped in the i2i repository (`plugins/i2i_datasets/data/mini-photo2cartoon/trainA` and `testA`).
The cartoon domain is not drawn by hand: it is a fixed, deterministic filter (`benchmarks/quality/cartoon.py`,
built from kornia operators) applied to photos. A model that learns photo -> cartoon can therefore be scored
against the exact cartoon version of each test photo (PSNR, SSIM), not only as a distribution (SWD, KID, FID).

## Layout

| folder | images | what |
|---|---|---|
| `trainA/` | {counts["trainA"]} | training photos (shipped JPEGs, copied byte for byte) |
| `trainB/` | {counts["trainB"]} | the *other* {counts["trainB"]} training photos through the filter (PNG): different scenes, so training is unpaired |
| `testA/` | {counts["testA"]} | test photos (shipped JPEGs, copied byte for byte) |
| `testGT/` | {counts["testGT"]} | the test photos through the filter (PNG, same file stem as in `testA/`): ground truth of A -> B |
| `testB/` | {counts["testB"]} | **the same images as `testGT/`** (testB = testGT): the target domain's test set for distribution metrics |

The 32 shipped training photos are sorted by file name and dealt alternately to `trainA` (1st, 3rd, ...) and
`trainB` (2nd, 4th, ...). Images keep their shipped sizes (short side 320 px). Filtered images are stored as PNG
so that no JPEG artefacts blur the flat colours and one-pixel outlines of the ground truth. The filter runs in
float32 on the CPU; another CPU or library version may change a few pixels, which is why `VERSION` includes the
torch and kornia versions.

## The filter

1. median filter (`median_kernel`), then `smooth_passes` bilateral filters (`smooth_kernel`, `sigma_color`,
   `sigma_space`): edge-preserving smoothing;
2. colour quantisation in CIE Lab: L* to `levels` evenly spaced values, a* and b* (times `saturation`) to
   multiples of `chroma_step`, a median filter (`cleanup_kernel`) on the quantised channels against specks;
3. outlines: Canny edges (`edge_low`, `edge_high`, `edge_sigma`) of the smoothed luminance, widened to
   `line_width` pixels, darken the colour under them by the factor `1 - line_strength`.

Parameters used (also in `filter.json`):

| parameter | value |
|---|---|
{table}

## Licences

Each image keeps the licence of the photo it comes from ({", ".join(licences)}); `manifest.csv` gives, per file,
the shipped source file it comes from, the filter applied (`{FILTER}` or `{NO_FILTER}`), its author, its licence
and the file(s) in `LICENSES/` with the licence text.
`ATTRIBUTION.md` is the shipped dataset's attribution file, copied unchanged (its paths refer to the shipped
dataset; `manifest.csv` maps them to this one), and `LICENSES/` holds the licence texts. The filtered images are
modified versions of their sources (the modification is the filter described above); share-alike (CC-BY-SA) and
GPL/LGPL images are redistributed under those same licences.

## Rebuilding

`python benchmarks/quality/build.py OUT` (`--force` to rebuild although `VERSION` matches).
`benchmarks/quality/run.py` builds the default location (`benchmarks/quality/data/`) when it is missing or out of
date.
"""


def _paired_readme(params: object, rows: list[dict[str, str]]) -> str:
    """The paired variant's README: what differs from the benchmark's (its README, below the first section)."""
    benchmark = _readme(params, rows).split("\n## Layout", 1)[1]
    return f"""# Photo -> cartoon quality benchmark, paired variant

The quality benchmark's data for **paired** methods (pix2pix), built by `benchmarks/quality/build.py --paired`:
`trainA/` holds the benchmark's 16 training photos and `trainB/` **the same photos** through the cartoon filter,
under the same file stems (`trainA/x.jpg` with `trainB/x.png`: the pairs that the `paired-folder` dataset reads).
The test folders are the benchmark's, so a paired method is scored on the same images as the unpaired ones: what
it reaches is the ceiling an unpaired method could reach with the same photos, filter and training budget.

The rest describes the benchmark's own data (`benchmarks/quality/data`); here `trainB/` is the filtered `trainA/`.

## Layout{benchmark}"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "out", nargs="?", type=Path, help=f"output folder (default {DEFAULT_OUT}; with --paired {DEFAULT_PAIRED_OUT})"
    )
    parser.add_argument("--force", action="store_true", help="rebuild even when VERSION matches")
    parser.add_argument("--paired", action="store_true", help="build the paired variant (trainB: the filtered trainA)")
    args = parser.parse_args(argv)
    if args.paired:
        build_paired(args.out or DEFAULT_PAIRED_OUT, force=args.force, quiet=False)
    else:
        build(args.out or DEFAULT_OUT, force=args.force, quiet=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
