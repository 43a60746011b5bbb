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


def test_a_scene_is_its_land_over_the_horizon_over_the_sky(builder):
    from PIL import Image

    sky = Image.new("RGBA", (2, 1), (200, 0, 0, 255))  # stretched to the land's size
    horizon = Image.new("RGBA", (4, 2), (0, 0, 200, 255))  # scaled to the land's width (8), at the bottom
    land = Image.new("RGBA", (8, 8), (0, 0, 0, 0))
    land.paste((0, 180, 0, 255), (0, 6, 2, 8))  # a green block in the bottom-left corner
    scene, drawn = builder.compose_scene([sky, horizon, land])
    assert scene.size == (8, 8) and scene.mode == "RGB"
    assert scene.getpixel((5, 0)) == (200, 0, 0)  # sky above the horizon
    assert scene.getpixel((5, 6)) == (0, 0, 200)  # horizon: the bottom 4 rows
    assert scene.getpixel((1, 7)) == (0, 180, 0)  # land on top
    assert builder.drawn_share(drawn, (0, 0, 8, 8)) == 0.5  # horizon (and land) cover the bottom half
    assert builder.drawn_share(drawn, (0, 0, 8, 4)) == 0.0


def test_scene_layers_follow_the_maps_theme(builder, tmp_path):
    data = tmp_path / "Data"
    (data / "Maps/Hill").mkdir(parents=True)
    (data / "Maps/Hill/map.cfg").write_text("Nature\n8\n", encoding="utf-8")
    (data / "Themes/Nature").mkdir(parents=True)
    assert builder.scene_layers(data / "Maps/Hill/map.png") == [
        data / "Themes/Nature/Sky.png",
        data / "Maps/Hill/map.png",
    ]
    (data / "Themes/Nature/horizont.png").touch()
    assert builder.scene_layers(data / "Maps/Hill/map.png")[1] == data / "Themes/Nature/horizont.png"


def test_detint_makes_the_mean_colour_grey(builder):
    import numpy as np
    from PIL import Image

    bluish = [Image.new("RGB", (4, 4), (40, 60, 140)), Image.new("RGB", (4, 4), (100, 100, 200))]
    offsets = builder.detint_offsets(bluish)
    grey = (70 + 80 + 170) / 3  # the channel means are 70, 80 and 170
    assert offsets == pytest.approx([grey - 70, grey - 80, grey - 170])
    after = [np.asarray(builder.detint(im, offsets), dtype=float).reshape(-1, 3).mean(0) for im in bluish]
    assert np.mean(after, axis=0) == pytest.approx([grey] * 3, abs=0.5)
    assert builder.detint(Image.new("RGB", (1, 1), (250, 5, 10)), offsets).getpixel((0, 0)) == (255, 32, 0)
