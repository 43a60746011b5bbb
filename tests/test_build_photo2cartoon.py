"""Fast tests of the pure parts of scripts/build_photo2cartoon.py (no .deb files, no network)."""

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "build_photo2cartoon.py"


@pytest.fixture(scope="module")
def builder():
    spec = importlib.util.spec_from_file_location("build_photo2cartoon", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up here
    spec.loader.exec_module(module)
    return module


DEP5 = """\
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: demo

Files: *
Copyright: 2020 Everyone
License: GPL-2+

Files: art/*.png
       extra/photo.jpg
Copyright: 2021 Alice
           2022 Bob
License: CC-BY-SA-4.0

Files: art/secret.png
Copyright: 2023 Carol
License: CC-BY-NC-4.0

License: GPL-2+
 This is the licence text.
"""


def test_dep5_last_matching_paragraph_wins(builder):
    paragraphs = builder.parse_dep5(DEP5)
    assert [p.license for p in paragraphs] == ["GPL-2+", "CC-BY-SA-4.0", "CC-BY-NC-4.0"]
    assert paragraphs[1].globs == ("art/*.png", "extra/photo.jpg")
    assert paragraphs[1].copyright == "2021 Alice; 2022 Bob"
    assert builder.dep5_lookup(paragraphs, "src/main.c").license == "GPL-2+"
    assert builder.dep5_lookup(paragraphs, "art/sub/tree.png").license == "CC-BY-SA-4.0"  # '*' crosses '/'
    assert builder.dep5_lookup(paragraphs, "extra/photo.jpg").copyright == "2021 Alice; 2022 Bob"
    assert builder.dep5_lookup(paragraphs, "art/secret.png").license == "CC-BY-NC-4.0"
    assert builder.dep5_lookup(builder.parse_dep5(DEP5)[1:], "src/main.c") is None


def test_dep5_glob_has_no_character_classes(builder):
    assert builder.dep5_glob_matches("a[1].png", "a[1].png")
    assert not builder.dep5_glob_matches("a[1].png", "a1.png")
    assert builder.dep5_glob_matches("/x/?.jpg", "x/y.jpg")


def test_licence_filtering(builder):
    assert builder.normalise_license("GPL-2+") == "GPL-2.0-or-later"
    assert builder.free_choice(builder.normalise_license("GPL-2+ or CC-BY-SA-3.0")) == "GPL-2.0-or-later"
    assert builder.free_choice("CC-BY-SA-4.0") == "CC-BY-SA-4.0"
    for not_free in ("CC-BY-NC-4.0", "CC-BY-ND-4.0", "custom", "unknown", ""):
        assert builder.free_choice(not_free) is None
    assert builder.free_choice("CC-BY-NC-4.0 or CC0-1.0") == "CC0-1.0"


def test_every_free_licence_has_a_text_source(builder):
    for _url, files in builder.FREE_LICENSES.values():
        assert all(f in builder.LICENSE_TEXTS for f in files)


@pytest.mark.parametrize("size", [(5120, 2880), (2560, 1600), (1920, 1080), (800, 600), (400, 300), (3000, 480)])
def test_crop_grid(builder, size):
    width, height = size
    boxes = builder.crop_grid(width, height)
    assert 1 <= len(boxes) <= builder.MAX_GRID**2
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height
        w, h = x1 - x0, y1 - y0
        assert max(w, h) <= 2 * min(w, h)
        assert min(w, h) >= min(builder.MIN_CROP, width, height)
    for i, a in enumerate(boxes):  # pairwise non-overlapping
        for b in boxes[i + 1 :]:
            assert a[2] <= b[0] or b[2] <= a[0] or a[3] <= b[1] or b[3] <= a[1]


def test_split_by_source_is_deterministic(builder):
    keys = [f"pkg/usr/share/img{i}.jpg" for i in range(1000)]
    first = [builder.is_test(k) for k in keys]
    assert first == [builder.is_test(k) for k in keys]
    assert 50 <= sum(first) <= 150  # about 10 %
    assert not any(builder.is_test(k, test_percent=0) for k in keys)


def test_source_relative_path(builder):
    assert builder.source_relative("lomiri-wallpapers-16.04", "usr/share/backgrounds/x.jpg") == "16.04/x.jpg"
    assert builder.source_relative("unknown-pkg", "usr/share/a.png") == "usr/share/a.png"
