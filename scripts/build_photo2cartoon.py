#!/usr/bin/env python3
"""Build an unpaired photo/cartoon dataset (a few hundred images per domain) from Debian 12 packages.

Layout (CycleGAN convention): ``trainA/ testA/`` hold photographs, ``trainB/ testB/`` hold cartoon,
illustrated or game-art scenes.  Every image comes from a freely licensed file shipped in a pinned
Debian 12 (bookworm) ``.deb``; the dataset is built locally and never committed.

Requirements
------------
* Python >= 3.11 with Pillow (with littleCMS, as in the PyPI wheels).
* ``dpkg-deb`` (to stream the data archive of each .deb) and, for ``--download``, ``apt-get``.
* The pinned .deb files listed in ``DEBS`` (checked by sha256).

Usage
-----
::

    python scripts/build_photo2cartoon.py --out data/photo2cartoon [--debs DIR] [--download] [--detint]

``--download`` runs ``apt-get download PKG=VERSION`` for missing packages into ``--debs``. ``--detint`` removes
the cartoon domain's global colour cast (many game scenes are dark blue or brown): every cartoon image gets the
per-channel offset that makes the cartoon training set's mean colour grey.  Only the
needed members of each .deb are extracted into ``--debs/.extracted``.  Re-running clears the previous
images and rewrites ``manifest.csv``, ``ATTRIBUTION.md`` and ``LICENSES/``.

Licences are read per file from the package's machine-readable (DEP-5) copyright file, with the last
matching ``Files:`` paragraph winning; packages without one use a hand-read entry in
``PACKAGE_LICENSES``.  Files whose licence is not clearly free are left out.

Cartoon scenes also come from Hedgewars maps: each map's land over its theme's sky and horizon, as the game
shows it (flat colour, dark outlines), cut into crops that show more drawing than sky.

Large sources are cut into a grid of non-overlapping crops (short side >= ``MIN_CROP`` source pixels,
aspect <= 2:1); every crop is resized to a short side of ``SHORT`` px.  Train/test is split by source
image (a hash of its path), so all crops of one source land in the same split.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import hashlib
import importlib.util
import shutil
import subprocess
import sys
import tarfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import numpy as np
from PIL import Image

SHORT = 256  # short side of every output image
MIN_CROP = 480  # minimum short side of a crop, in source pixels
MAX_GRID = 3  # at most this many crops along each axis
TEST_PERCENT = 10
JPEG_QUALITY = 90
SPLITS = ("trainA", "testA", "trainB", "testB")
MINI_BUILDER = Path(__file__).resolve().parents[1] / "plugins/i2i_datasets/data/build_mini_photo2cartoon.py"

# package: (version, sha256 of the bookworm .deb)
DEBS = {
    "flare-game": ("1.14-1", "4ab6a8298276013d35a0806257e130d992761af1b749041433b409c3dafec508"),
    "freedroidrpg-data": ("1.0-1", "16c3cfeb82b1ec20c98493bbe1de2e356bd1aec832845630a5a7f12e303baa2b"),
    "hedgewars-data": ("1.0.2-6", "722225903a72604403e6e0026e40e9a6953f47a74d94efc5f55504bc05bb4761"),
    "lincity-ng-data": ("2.9~git20150314-5", "8f5e85bd42879abdc7099b035d7a3d7468eceb6b93b52a12270c28f3f3c792f9"),
    "lomiri-wallpapers-16.04": ("20.04.0-2", "a99ff6a3bfe451e4cc0682ecb3cc82e71740626d59e4845ae34a0a0e45421eab"),
    "lomiri-wallpapers-20.04": ("20.04.0-2", "d44e89b8473aafe64a5b678f014862dc31335aaaf18665c544d985d854f1a709"),
    "mate-backgrounds": ("1.26.0-1", "7bf4c2209f34b4f61ba6d24c8b58c28b361e82e4b943aae6d42c030169af9e04"),
    "plasma-workspace-wallpapers": ("4:5.27.5-2", "32cd18b71c8c938a18b3b351f217c02ac590e323caa3cf322fbb875ce8892f8b"),
    "supertux-data": ("0.6.3-2", "a6ad8865972f1dbb5e7b49f4e1b381dd16a68f3028a3502cfeaca2400285d27f"),
    "tuxpaint-data": ("1:0.9.28-sdl2-1", "f5d0de8f9a70d2efc1241d19f26168cb8bf279f1b77abd3631e7a1a55c40e5e5"),
}

# Installed prefix -> prefix used by the package's DEP-5 "Files:" globs (which name source-tree paths).
SOURCE_ROOTS = {
    "flare-game": ("usr/share/games/flare/", ""),
    "freedroidrpg-data": ("usr/share/freedroidrpg/", ""),
    "hedgewars-data": ("usr/share/games/hedgewars/", "share/hedgewars/"),
    "lincity-ng-data": ("usr/share/games/lincity-ng/", "data/"),
    "lomiri-wallpapers-16.04": ("usr/share/backgrounds/", "16.04/"),
    "lomiri-wallpapers-20.04": ("usr/share/backgrounds/", "20.04/"),
    "mate-backgrounds": ("usr/share/backgrounds/mate/", ""),
    "plasma-workspace-wallpapers": ("usr/share/wallpapers/", ""),
    "supertux-data": ("usr/share/games/supertux2/", "data/"),
    "tuxpaint-data": ("usr/share/tuxpaint/", ""),
}

# Packages whose copyright file is not machine-readable: (copyright, licence), read by hand. All the packages
# used now have DEP-5 copyright files; a package added without one must be entered here.
PACKAGE_LICENSES: dict[str, tuple[str, str]] = {}

# Where upstream metadata gives a more specific licence than Debian's summary "Files: *" (the wallpapers'
# own metadata.json, as checked by the mini builder).
LICENSE_OVERRIDES = {
    ("plasma-workspace-wallpapers", "Path/*"): ("Risto Saukonpää", "LGPL-3.0-only"),
    ("plasma-workspace-wallpapers", "summer_1am/*"): ("Risto Saukonpää", "LGPL-3.0-only"),
    ("plasma-workspace-wallpapers", "BytheWater/*"): ("Maciej Wiklo", "LGPL-3.0-only"),
    ("plasma-workspace-wallpapers", "FallenLeaf/*"): ("Martin Klapetek", "LGPL-3.0-only"),
    ("plasma-workspace-wallpapers", "Volna/*"): ("Nikita Babin", "CC-BY-SA-4.0"),
    ("plasma-workspace-wallpapers", "SafeLanding/*"): ("KDE Visual Design Group", "CC-BY-SA-4.0"),
    ("plasma-workspace-wallpapers", "Altai/*"): ("KDE Visual Design Group", "CC-BY-SA-4.0"),
}

# Debian short names -> SPDX-like identifiers.
LICENSE_ALIASES = {
    "GPL-2+": "GPL-2.0-or-later",
    "GPL-2": "GPL-2.0-only",
    "GPL-3+": "GPL-3.0-or-later",
    "GPL-3": "GPL-3.0-only",
    "LGPL-3": "LGPL-3.0-only",
    "CC-BY-SA-3.0+": "CC-BY-SA-3.0-or-later",
    "Public-Domain": "Public-Domain",
    "public-domain": "Public-Domain",
}

# SPDX-like licence -> (URL, files in LICENSES/).  Anything not listed here is treated as not free.
FREE_LICENSES = {
    "CC0-1.0": ("https://creativecommons.org/publicdomain/zero/1.0/", ["CC0-1.0.txt"]),
    "CC-BY-4.0": ("https://creativecommons.org/licenses/by/4.0/", ["CC-BY-4.0.txt"]),
    "CC-BY-SA-3.0": ("https://creativecommons.org/licenses/by-sa/3.0/", ["CC-BY-SA-3.0.txt"]),
    "CC-BY-SA-3.0-or-later": ("https://creativecommons.org/licenses/by-sa/3.0/", ["CC-BY-SA-3.0.txt"]),
    "CC-BY-SA-4.0": ("https://creativecommons.org/licenses/by-sa/4.0/", ["CC-BY-SA-4.0.txt"]),
    "GPL-2.0-only": ("https://www.gnu.org/licenses/old-licenses/gpl-2.0.html", ["GPL-2.0.txt"]),
    "GPL-2.0-or-later": ("https://www.gnu.org/licenses/old-licenses/gpl-2.0.html", ["GPL-2.0.txt"]),
    "GPL-3.0-only": ("https://www.gnu.org/licenses/gpl-3.0.html", ["GPL-3.0.txt"]),
    "GPL-3.0-or-later": ("https://www.gnu.org/licenses/gpl-3.0.html", ["GPL-3.0.txt"]),
    "LGPL-3.0-only": ("https://www.gnu.org/licenses/lgpl-3.0.html", ["LGPL-3.0.txt", "GPL-3.0.txt"]),
}

# LICENSES/ file -> where its full text comes from: a file on this system, or (package, licence name) of a
# stand-alone licence paragraph in that package's DEP-5 copyright file.
LICENSE_TEXTS: dict[str, Path | tuple[str, str]] = {
    "GPL-2.0.txt": Path("/usr/share/common-licenses/GPL-2"),
    "GPL-3.0.txt": Path("/usr/share/common-licenses/GPL-3"),
    "LGPL-3.0.txt": Path("/usr/share/common-licenses/LGPL-3"),
    "CC0-1.0.txt": Path("/usr/share/common-licenses/CC0-1.0"),
    "CC-BY-4.0.txt": ("lomiri-wallpapers-16.04", "CC-BY-4.0"),
    "CC-BY-SA-3.0.txt": ("lomiri-wallpapers-16.04", "CC-BY-SA-3.0"),
    "CC-BY-SA-4.0.txt": ("lomiri-wallpapers-16.04", "CC-BY-SA-4.0"),
}

_PLASMA = "usr/share/wallpapers/{}/contents/images/{}"
_LOMIRI = "usr/share/backgrounds/{}.jpg"
_ST = "usr/share/games/supertux2/images/background/{}"

# domain -> package -> glob patterns of source images, chosen by looking at every candidate.
SELECTION: dict[str, dict[str, list[str]]] = {
    "A": {
        "lomiri-wallpapers-16.04": [
            _LOMIRI.format(n)
            for n in (
                "Bridge_by_Sander_Klootwijk",
                "Dragonfly_by_Bolly",
                "Picture_0B_by_freespace",
                "Picture_1A_by_freespace",
                "Wine_by_Jakkub_Mede",
                "aitzgorri_by_Aitzol_Berasategi",
                "free_by_Peter_Nerlich",
                "friends_by_Aitzol_Berasategi",
                "life_by_Aitzol_Berasategi",
                "picosdeeuropa_by_Aitzol_Berasategi",
                "seeding_by_Clements_Engelhardt",
                "sunset_by_Aitzol_Berasategi",
            )
        ],
        "lomiri-wallpapers-20.04": [_LOMIRI.format("Kleiber_by_Lukas_Baubkus")],
        "mate-backgrounds": ["usr/share/backgrounds/mate/nature/*.jpg"],
        "plasma-workspace-wallpapers": [
            _PLASMA.format(n, "2560x1600.jpg")
            for n in (
                "BytheWater",
                "ColdRipple",
                "ColorfulCups",
                "DarkestHour",
                "EveningGlow",
                "FallenLeaf",
                "Grey",
                "OneStandsOut",
                "Path",
                "summer_1am",
            )
        ]
        + [_PLASMA.format("Volna", "5120x2880.jpg")],
        "tuxpaint-data": ["usr/share/tuxpaint/templates/*.jpg"],
    },
    "B": {
        "flare-game": [
            "usr/share/games/flare/mods/empyrean_campaign/images/cutscenes/*.png",
            "usr/share/games/flare/mods/fantasycore/images/menus/backgrounds/*.png",
        ],
        "freedroidrpg-data": [
            f"usr/share/freedroidrpg/data/graphics/backgrounds/{n}.jpg"
            for n in ("console_bg1", "credits", "shoppe", "title")
        ],
        "lincity-ng-data": ["usr/share/games/lincity-ng/images/mainmenu/menu_back.png"],
        "plasma-workspace-wallpapers": [
            _PLASMA.format("Autumn", "2560x1600.jpg"),
            _PLASMA.format("FlyingKonqui", "2560x1600.png"),
            _PLASMA.format("SafeLanding", "5120x2880.jpg"),
            _PLASMA.format("Altai", "5120x2880.png"),
        ],
        "supertux-data": [
            _ST.format(n)
            for n in (
                "BlueRock_Forest/blue-middle.jpg",
                "antarctic/semi_arctic.jpg",
                "bluemountain/bluemountain-middle.png",
                "christmas/intro.jpg",
                "christmas/outro.jpg",
                "forest/forest_para2.png",
                "ghostforest/ghostforest.jpg",
                "halloween/intro.jpg",
                "halloween/outro.jpg",
                "icecliffs/icecliffs-middle.png",
                "misc/oiltux.jpg",
                "nightsky/nightsky.png",
                "snowmountains/snowmountains.png",
            )
        ],
    },
}


# Hedgewars maps: flat colour with dark outlines. A map is its land (transparent where there is none) over the
# sky and horizon of the theme its map.cfg names: the scene a player sees.
_HW = "usr/share/games/hedgewars/Data/"
SCENES = {
    "hedgewars-data": [
        _HW + "Maps/*/map.png",
        _HW + "Maps/*/map.cfg",
        _HW + "Themes/*/Sky.png",
        _HW + "Themes/*/horizont.png",
    ]
}
SCENE_MIN_CROP = 340  # a 2048 x 1024 map gives 4 x 3 crops of 512 x 341 px
SCENE_MIN_DRAWN = 0.25  # crops with less land and horizon than this are mostly sky, and left out


@dataclass(frozen=True)
class Dep5Paragraph:
    """One ``Files:`` paragraph of a machine-readable Debian copyright file."""

    globs: tuple[str, ...]
    copyright: str
    license: str


def load_mini_builder() -> ModuleType:
    """Import the project's small dataset builder by file path, to reuse its helpers."""
    spec = importlib.util.spec_from_file_location("build_mini_photo2cartoon", MINI_BUILDER)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ---------------------------------------------------------------------------- licences
def is_dep5(text: str) -> bool:
    return text.lstrip().startswith("Format:")


def parse_dep5(text: str) -> list[Dep5Paragraph]:
    """The ``Files:`` paragraphs of a DEP-5 copyright file, in file order."""
    paragraphs = []
    for block in text.split("\n\n"):
        fields: dict[str, list[str]] = {}
        key = None
        for line in block.splitlines():
            if line[:1] in (" ", "\t") and key:
                fields[key].append(line.strip())
            elif ":" in line:
                key, value = line.split(":", 1)
                fields[key] = [value.strip()]
        if "Files" in fields and "License" in fields:
            globs = tuple(" ".join(fields["Files"]).split())
            copyright_ = "; ".join(v for v in fields.get("Copyright", []) if v)
            paragraphs.append(Dep5Paragraph(globs, copyright_, fields["License"][0]))
    return paragraphs


def dep5_glob_matches(pattern: str, path: str) -> bool:
    """DEP-5 glob: ``*`` and ``?`` match any characters including ``/``; no character classes."""
    pattern = pattern.lstrip("/").replace("[", "[[]")
    return fnmatch.fnmatchcase(path, pattern)


def dep5_lookup(paragraphs: list[Dep5Paragraph], path: str) -> Dep5Paragraph | None:
    """The last paragraph whose globs match ``path`` (the DEP-5 rule)."""
    found = None
    for p in paragraphs:
        if any(dep5_glob_matches(g, path) for g in p.globs):
            found = p
    return found


def normalise_license(name: str) -> str:
    """Map Debian licence short names (and ``a or b`` expressions) to SPDX-like names."""
    parts = [p.strip() for p in name.replace(" | ", " or ").split(" or ")]
    return " or ".join(LICENSE_ALIASES.get(p, p) for p in parts)


def free_choice(license_expr: str) -> str | None:
    """The first free alternative of a licence expression, or None if none is clearly free."""
    for alternative in license_expr.split(" or "):
        if alternative.strip() in FREE_LICENSES:
            return alternative.strip()
    return None


def source_relative(package: str, installed: str) -> str:
    """Translate an installed path to the source-tree path that DEP-5 globs refer to."""
    prefix, source_prefix = SOURCE_ROOTS.get(package, ("", ""))
    return source_prefix + installed.removeprefix(prefix)


def file_license(package: str, installed: str, copyright_text: str) -> tuple[str, str]:
    """(copyright holder, licence expression) of one installed file."""
    for (pkg, pattern), value in LICENSE_OVERRIDES.items():
        if pkg == package and dep5_glob_matches(pattern, installed.removeprefix(SOURCE_ROOTS[pkg][0])):
            return value
    if package in PACKAGE_LICENSES:
        return PACKAGE_LICENSES[package]
    if not is_dep5(copyright_text):
        raise ValueError(f"{package}: copyright file is not DEP-5 and no licence is declared by hand")
    paragraph = dep5_lookup(parse_dep5(copyright_text), source_relative(package, installed))
    if paragraph is None:
        return "", "unknown"
    return paragraph.copyright, normalise_license(paragraph.license)


# ---------------------------------------------------------------------------- crops and split
def crop_grid(width: int, height: int, min_crop: int = MIN_CROP, max_grid: int = MAX_GRID) -> list[tuple]:
    """Non-overlapping crop boxes (x0, y0, x1, y1) covering a centred grid of the image.

    Each cell's short side is at least ``min_crop`` (or the whole image when it is smaller) and its
    aspect ratio is at most 2:1.
    """
    cols = max(1, min(max_grid, width // min_crop))
    rows = max(1, min(max_grid, height // min_crop))
    cw, ch = width // cols, height // rows
    cw, ch = min(cw, 2 * ch), min(ch, 2 * cw)  # keep every cell within 2:1
    x_off, y_off = (width - cols * cw) // 2, (height - rows * ch) // 2
    return [
        (x_off + c * cw, y_off + r * ch, x_off + (c + 1) * cw, y_off + (r + 1) * ch)
        for r in range(rows)
        for c in range(cols)
    ]


def is_test(source_key: str, test_percent: int = TEST_PERCENT) -> bool:
    """Deterministic split by source: the same source always lands in the same split."""
    digest = hashlib.sha256(source_key.encode()).digest()
    return int.from_bytes(digest[:4], "big") % 100 < test_percent


def resize_short(im: Image.Image, short: int = SHORT) -> Image.Image:
    scale = short / min(im.size)
    size = (max(short, round(im.width * scale)), max(short, round(im.height * scale)))
    return im.resize(size, Image.LANCZOS)


# ---------------------------------------------------------------------------- packages
def deb_path(debs: Path, package: str) -> Path:
    version = DEBS[package][0]
    return debs / f"{package}_{version.replace(':', '%3a')}_all.deb"


def download(debs: Path) -> None:
    missing = [f"{p}={v}" for p, (v, _) in DEBS.items() if not deb_path(debs, p).exists()]
    if missing:
        debs.mkdir(parents=True, exist_ok=True)
        subprocess.run(["apt-get", "download", *missing], cwd=debs, check=True)


def extract(deb: Path, patterns: list[str], dest: Path) -> None:
    """Stream the .deb's data archive and write the regular files matching ``patterns`` under dest/."""
    stream = subprocess.Popen(["dpkg-deb", "--fsys-tarfile", str(deb)], stdout=subprocess.PIPE)
    with tarfile.open(fileobj=stream.stdout, mode="r|") as tar:
        for member in tar:
            path = member.name.removeprefix("./")
            if member.isfile() and any(fnmatch.fnmatchcase(path, p) for p in patterns):
                out = dest / path
                out.parent.mkdir(parents=True, exist_ok=True)
                out.write_bytes(tar.extractfile(member).read())
    if stream.wait() != 0:
        raise RuntimeError(f"dpkg-deb failed on {deb}")


def prepare_package(mini: ModuleType, debs: Path, package: str) -> Path:
    """Check the pinned .deb and extract the selected images and the copyright file (cached)."""
    deb = deb_path(debs, package)
    if not deb.exists():
        sys.exit(f"missing {deb.name} (run with --download)")
    if mini.sha256(deb) != DEBS[package][1]:
        sys.exit(f"sha256 mismatch for {deb.name}")
    root = debs / ".extracted" / deb.stem
    done = root / ".done"
    if not done.exists():
        shutil.rmtree(root, ignore_errors=True)
        patterns = [g for domain in SELECTION.values() for g in domain.get(package, [])] + SCENES.get(package, [])
        extract(deb, [*patterns, f"usr/share/doc/{package}/copyright"], root)
        done.touch()
    return root


# ---------------------------------------------------------------------------- output
def write_licenses(out: Path, used: set[str], copyrights: dict[str, str], mini: ModuleType) -> list[str]:
    """Write the full texts of the used licences into LICENSES/; returns their file names."""
    folder = out / "LICENSES"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    names = sorted({f for lic in used for f in FREE_LICENSES[lic][1]})
    for name in names:
        source = LICENSE_TEXTS[name]
        if isinstance(source, Path):
            text, origin = source.read_text(encoding="utf-8"), str(source)
        else:
            text = mini.dep5_license(copyrights[source[0]], source[1])
            origin = f"Debian package {source[0]} {DEBS[source[0]][0]}, copyright file (License: {source[1]})"
        (folder / name).write_text(f"(text taken from {origin})\n\n{text}", encoding="utf-8")
    return names


def write_attribution(
    out: Path, rows: list[dict], excluded: list[str], license_files: list[str], offsets: np.ndarray | None = None
) -> None:
    counts = {s: sum(r["split"] == s for r in rows) for s in SPLITS}
    lines = [
        "# photo2cartoon: attribution and licences\n",
        "Unpaired dataset: `trainA/`, `testA/` = photographs; `trainB/`, `testB/` = cartoon / illustrated / "
        "game-art scenes. Counts: " + ", ".join(f"{s} {n}" for s, n in counts.items()) + ".\n",
        "Built by `scripts/build_photo2cartoon.py` from Debian 12 (bookworm) packages. Each image keeps the "
        "licence of its source file; `manifest.csv` gives package, version, source path, crop box, "
        "copyright and licence per image. Modifications: converted to sRGB, transparency composited over "
        "white, cut into non-overlapping crops (box in the manifest), resized to a short side of "
        f"{SHORT} px (Lanczos), saved as JPEG q{JPEG_QUALITY}. CC-BY(-SA) images require attribution "
        "(keep this file or the manifest); share-alike / GPL images are redistributed under the same "
        "licence, with the Debian package as the corresponding source.\n",
        *(
            [
                f"De-tinted (`--detint`): every cartoon image has R, G, B offsets {', '.join(f'{o:+.1f}' for o in offsets)} "
                "added (on 0-255, clipped), which make the cartoon training set's mean colour grey.\n"
            ]
            if offsets is not None
            else []
        ),
        "## Sources\n",
        "| package | version | source file | copyright | licence |",
        "|---|---|---|---|---|",
    ]
    seen = set()
    for r in rows:
        if r["source_path"] not in seen:
            seen.add(r["source_path"])
            lines.append(
                f"| {r['package']} | {r['version']} | `{r['source_path']}` | {r['copyright']} | {r['license']} |"
            )
    lines += ["\n## Licence texts\n", *[f"* `LICENSES/{n}`" for n in license_files]]
    if excluded:
        lines += ["\n## Left out (licence not clearly free)\n", *[f"* {e}" for e in excluded]]
    (out / "ATTRIBUTION.md").write_text("\n".join(lines) + "\n", encoding="utf-8")


#: Folder names that say nothing about an image, left out of the names of its crops.
GENERIC_FOLDERS = {"usr", "share", "games", "contents", "images", "backgrounds", "background"}


def source_stem(package: str, installed: str) -> str:
    """A file-name stem unique to one source image: its package, then its path's telling parts (a plasma
    wallpaper's folder as well as its ``2560x1600`` file name)."""
    parts = [p for p in Path(installed).with_suffix("").parts[-4:] if p.lower() not in GENERIC_FOLDERS]
    return "-".join([package, *parts]).replace(" ", "_").lower()


def process_source(mini: ModuleType, path: Path, split: str, out: Path, stem: str) -> list[tuple]:
    """Write the crops of one source image; returns (file name, crop box) per crop."""
    im = mini.flatten(mini.load(str(path)), (255, 255, 255))
    written = []
    for i, box in enumerate(crop_grid(*im.size)):
        name = f"{stem}-{i}.jpg"
        resize_short(im.crop(box)).save(out / split / name, "JPEG", quality=JPEG_QUALITY, optimize=True)
        written.append((name, box))
    return written


def scene_layers(map_png: Path) -> list[Path]:
    """The files of a Hedgewars map's scene, back to front: its theme's sky, the theme's horizon when it has one,
    and the map's land."""
    theme_name = (map_png.parent / "map.cfg").read_text(encoding="utf-8").split()[0]
    theme = map_png.parents[2] / "Themes" / theme_name
    return [theme / "Sky.png", *[theme / "horizont.png"] * (theme / "horizont.png").exists(), map_png]


def compose_scene(layers: list[Image.Image]) -> tuple[Image.Image, Image.Image]:
    """(the scene, where it is drawn: the alpha of its land and horizon): the sky stretched to the land's size, the
    horizon scaled to its width at the bottom, then the land, each composited by its alpha."""
    land = layers[-1].convert("RGBA")
    scene = layers[0].convert("RGBA").resize(land.size, Image.BICUBIC)
    drawn = Image.new("RGBA", land.size, (0, 0, 0, 0))
    for horizon in layers[1:-1]:
        horizon = horizon.convert("RGBA")
        horizon = horizon.resize((land.width, round(horizon.height * land.width / horizon.width)), Image.BICUBIC)
        scene.alpha_composite(horizon, (0, max(0, land.height - horizon.height)))
        drawn.alpha_composite(horizon, (0, max(0, land.height - horizon.height)))
    scene.alpha_composite(land)
    drawn.alpha_composite(land)
    return scene.convert("RGB"), drawn.getchannel("A")


def drawn_share(alpha: Image.Image, box: tuple) -> float:
    """The share of a crop's pixels that show a drawing, not the sky (alpha above one half)."""
    histogram = alpha.crop(box).histogram()
    return sum(histogram[128:]) / max(1, sum(histogram))


def process_scene(layers: list[Path], split: str, out: Path, stem: str) -> list[tuple]:
    """Write the crops of one scene that show enough land; returns (file name, crop box) per crop."""
    scene, alpha = compose_scene([Image.open(p) for p in layers])
    written = []
    for i, box in enumerate(crop_grid(*scene.size, min_crop=SCENE_MIN_CROP, max_grid=4)):
        if drawn_share(alpha, box) >= SCENE_MIN_DRAWN:
            name = f"{stem}-{i}.jpg"
            resize_short(scene.crop(box)).save(out / split / name, "JPEG", quality=JPEG_QUALITY, optimize=True)
            written.append((name, box))
    return written


def scene_sources(root: Path, package: str) -> list[list[Path]]:
    """The layers of every scene of ``package`` (a map whose theme is missing is left out)."""
    maps = sorted(root.glob(SCENES[package][0]))
    return [layers for layers in map(scene_layers, maps) if all(p.exists() for p in layers)]


def detint_offsets(images: list[Image.Image]) -> np.ndarray:
    """The per-channel offsets (R, G, B, on 0-255) that make the mean colour of ``images`` grey: the mean of the
    images' channel means minus each channel's mean (each image weighs the same)."""
    means = np.mean([np.asarray(im.convert("RGB"), dtype=np.float64).reshape(-1, 3).mean(0) for im in images], axis=0)
    return means.mean() - means


def detint(image: Image.Image, offsets: np.ndarray) -> Image.Image:
    """``image`` with ``offsets`` added to its channels, clipped to 0-255."""
    shifted = np.asarray(image.convert("RGB"), dtype=np.float64) + offsets
    return Image.fromarray(np.clip(np.rint(shifted), 0, 255).astype(np.uint8))


def detint_cartoons(out: Path, rows: list[dict]) -> np.ndarray:
    """De-tint every cartoon image in place by the offsets of the cartoon training set; returns them."""
    files = [out / r["split"] / r["file"] for r in rows if r["split"].endswith("B")]
    offsets = detint_offsets([Image.open(f) for f in files if f.parent.name == "trainB"])
    for file in files:
        detint(Image.open(file), offsets).save(file, "JPEG", quality=JPEG_QUALITY, optimize=True)
    return offsets


def build(out: Path, debs: Path, detinted: bool = False) -> None:
    mini = load_mini_builder()
    for split in SPLITS:
        (out / split).mkdir(parents=True, exist_ok=True)
        for old in (out / split).glob("*.jpg"):
            old.unlink()
    packages = sorted({p for domain in SELECTION.values() for p in domain} | set(SCENES))
    roots = {p: prepare_package(mini, debs, p) for p in packages}
    copyrights = {p: (roots[p] / f"usr/share/doc/{p}/copyright").read_text(encoding="utf-8") for p in packages}
    rows, excluded = [], []
    for domain, by_package in SELECTION.items():
        for package, patterns in by_package.items():
            root = roots[package]
            sources = sorted({p for g in patterns for p in root.glob(g)})
            if not sources:
                print(f"WARNING: nothing matched in {package}: {patterns}", file=sys.stderr)
            for path in sources:
                installed = str(path.relative_to(root))
                holder, expr = file_license(package, installed, copyrights[package])
                license_ = free_choice(expr)
                if license_ is None:
                    excluded.append(f"{package}: /{installed} ({expr})")
                    continue
                split = ("test" if is_test(f"{package}/{installed}") else "train") + domain
                stem = source_stem(package, installed)
                for name, box in process_source(mini, path, split, out, stem):
                    rows.append(
                        {
                            "split": split,
                            "file": name,
                            "package": package,
                            "version": DEBS[package][0],
                            "source_path": "/" + installed,
                            "crop_box": " ".join(map(str, box)),
                            "copyright": holder,
                            "license": license_,
                            "license_url": FREE_LICENSES[license_][0],
                        }
                    )
    for package in SCENES:
        for layers in scene_sources(roots[package], package):
            installed = [str(p.relative_to(roots[package])) for p in layers]
            licences = {file_license(package, path, copyrights[package]) for path in installed}
            choices = {free_choice(expr) for _, expr in licences}
            if None in choices or len(choices) > 1:  # every layer free, under one licence
                excluded.append(f"{package}: scene of /{installed[-1]} ({', '.join(sorted(e for _, e in licences))})")
                continue
            split = ("test" if is_test(f"{package}/{installed[-1]}") else "train") + "B"
            stem = source_stem(package, installed[-1])
            for name, box in process_scene(layers, split, out, stem):
                row = {
                    "split": split,
                    "file": name,
                    "package": package,
                    "version": DEBS[package][0],
                    "source_path": " + ".join("/" + p for p in installed),
                    "crop_box": " ".join(map(str, box)),
                    "copyright": "; ".join(sorted({h for h, _ in licences})),
                    "license": choices.pop(),
                }
                row["license_url"] = FREE_LICENSES[row["license"]][0]
                choices.add(row["license"])
                rows.append(row)
    names = Counter((r["split"], r["file"]) for r in rows)
    clashes = [name for name, n in names.items() if n > 1]
    if clashes:
        raise RuntimeError(f"two sources would write the same file: {clashes[:3]}")
    with (out / "manifest.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    license_files = write_licenses(out, {r["license"] for r in rows}, copyrights, mini)
    offsets = detint_cartoons(out, rows) if detinted else None
    write_attribution(out, rows, excluded, license_files, offsets)
    for split in SPLITS:
        in_split = [r for r in rows if r["split"] == split]
        print(f"{split}: {len(in_split)} images from {len({r['source_path'] for r in in_split})} sources")
    for e in excluded:
        print("excluded:", e)
    if offsets is not None:
        print("cartoons de-tinted by R, G, B offsets", ", ".join(f"{o:+.1f}" for o in offsets))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="output folder (outside the repository)")
    parser.add_argument(
        "--debs", type=Path, default=Path("~/.cache/i2i/debs").expanduser(), help="folder with the pinned .deb files"
    )
    parser.add_argument("--download", action="store_true", help="apt-get download missing pinned packages")
    parser.add_argument("--detint", action="store_true", help="remove the cartoon domain's global colour cast")
    args = parser.parse_args()
    if args.download:
        download(args.debs)
    start = time.monotonic()
    build(args.out, args.debs, args.detint)
    print(f"built in {time.monotonic() - start:.1f} s")


if __name__ == "__main__":
    main()
