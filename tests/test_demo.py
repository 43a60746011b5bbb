"""``i2i demo``: the request checks, and the page driven in a real headless Chromium.

The browser test needs gradio, selenium, and Debian's chromium + chromium-driver; it is skipped without them
unless ``I2I_REQUIRE_BROWSER=1`` (set by CI), where a missing piece fails it.
"""

from __future__ import annotations

import base64
import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from i2i_core.cli.demo import check_request, model_choices, translate_upload
from i2i_core.errors import I2IError
from i2i_core.images import BadImageError
from i2i_core.infer.translate import load_translator

PHOTOS = Path(__file__).parents[1] / "plugins/i2i_datasets/data/mini-photo2cartoon/testA"
CHROMIUM, CHROMEDRIVER = "/usr/bin/chromium", "/usr/bin/chromedriver"
REQUIRED = os.environ.get("I2I_REQUIRE_BROWSER") == "1"


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A shipped photo, cut to an odd size so that a wrong resize or crop shows."""
    source = sorted(PHOTOS.glob("*.jpg"))[0]
    path = tmp_path_factory.mktemp("photo") / "photo.png"
    Image.open(source).convert("RGB").crop((0, 0, 203, 157)).save(path)
    return path


def test_requests_without_a_photo_or_model_are_refused_with_what_to_do():
    with pytest.raises(I2IError, match="upload or drop a photo first"):
        check_request(None, "builtin:photo2cartoon", "AtoB")
    with pytest.raises(I2IError, match="choose a model"):
        check_request("photo.png", " ", "AtoB")
    with pytest.raises(I2IError, match="unknown direction 'sideways'"):
        check_request("photo.png", "builtin:photo2cartoon", "sideways")


def test_a_bad_upload_names_the_file(generator_file, tmp_path):
    bad = tmp_path / "holiday.jpg"
    bad.write_bytes(b"not an image at all")
    with pytest.raises(BadImageError, match=r"^holiday.jpg: not an image file"):
        translate_upload(str(bad), load_translator(generator_file), tmp_path)


def test_upload_is_translated_at_its_size(generator_file, photo, tmp_path):
    out = translate_upload(str(photo), load_translator(generator_file), tmp_path)
    expected = load_translator(generator_file).translate(photo)
    got = Image.open(out)
    assert got.size == (203, 157)
    assert np.array_equal(np.asarray(got), np.asarray(expected))


def test_models_given_come_first_then_the_shipped_ones(generator_file):
    choices = model_choices((str(generator_file),))
    assert choices[0] == str(generator_file)
    assert "builtin:photo2cartoon" in choices[1:]


# -- the page in a browser -----------------------------------------------------------------------------------


def _browser_or_skip():
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    try:
        import gradio  # noqa: F401
        from selenium import webdriver  # noqa: F401
    except ImportError as exc:
        missing.append(f"python package {exc.name}")
    if missing:
        if REQUIRED:
            pytest.fail(f"I2I_REQUIRE_BROWSER=1 but missing: {', '.join(missing)}")
        pytest.skip(f"missing: {', '.join(missing)}")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_for_port(port: int, server: subprocess.Popen, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise AssertionError(f"i2i demo exited with {server.returncode}: {log.read_text()}")
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.5)
    raise AssertionError(f"i2i demo did not listen on port {port} within {timeout} s")


@pytest.fixture
def demo_page(generator_file, tmp_path):
    """``i2i demo -c GENERATOR`` on a free localhost port, and a headless Chromium driven by selenium."""
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    port = _free_port()
    log = (tmp_path / "demo.log").open("w")
    server = subprocess.Popen(
        [sys.executable, "-m", "i2i_core", "demo", "-c", str(generator_file), "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
        env={**os.environ, "GRADIO_ANALYTICS_ENABLED": "False"},
    )
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--window-size=1280,1600",
    ):
        options.add_argument(flag)
    driver = None
    try:
        _wait_for_port(port, server, tmp_path / "demo.log")
        driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
        driver.get(f"http://127.0.0.1:{port}/")
        yield driver, port
    finally:
        if driver is not None:
            driver.quit()
        server.terminate()
        server.wait(timeout=30)
        log.close()


def _upload_and_translate(driver, path: Path) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    wait = WebDriverWait(driver, 120)
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#source input[type=file]"))).send_keys(str(path))
    wait.until(ec.presence_of_element_located((By.CSS_SELECTOR, "#source img")))  # the upload is shown
    wait.until(ec.element_to_be_clickable((By.CSS_SELECTOR, "#translate"))).click()


def _fetch(src: str) -> Image.Image:
    if src.startswith("data:"):
        return Image.open(io.BytesIO(base64.b64decode(src.split(",", 1)[1])))
    with urllib.request.urlopen(src, timeout=30) as response:
        return Image.open(io.BytesIO(response.read()))


def test_the_page_translates_an_uploaded_photo_in_a_browser(demo_page, photo, generator_file):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = demo_page
    _upload_and_translate(driver, photo)
    image = WebDriverWait(driver, 120).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#result img")))
    got = _fetch(image.get_attribute("src")).convert("RGB")
    expected = load_translator(generator_file).translate(photo)
    assert got.size == (203, 157)
    diff = np.abs(np.asarray(got, dtype=np.int16) - np.asarray(expected, dtype=np.int16))
    assert diff.max() <= 1  # a PNG of the same translation
    link = WebDriverWait(driver, 60).until(ec.presence_of_element_located((By.CSS_SELECTOR, "#download a")))
    assert link.get_attribute("href").endswith(".png")


def test_the_page_says_what_is_wrong_with_a_bad_upload(demo_page, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    driver, _ = demo_page
    bad = tmp_path / "broken.png"
    Image.new("RGB", (64, 48), "red").save(bad)
    bad.write_bytes(bad.read_bytes()[:60])  # a truncated PNG: the browser may show it, i2i cannot read it
    _upload_and_translate(driver, bad)
    shown = WebDriverWait(driver, 120).until(
        lambda d: "broken.png: cannot decode" in d.find_element(By.TAG_NAME, "body").text
    )
    assert shown
