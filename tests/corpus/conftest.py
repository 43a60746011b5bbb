"""The bad-input and fault corpus: what every case checks (one line naming the culprit, the right exit, no
traceback, nothing lost), shared by its modules."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Outcome:
    """What a command did: its exit code and its output (standard output and error together)."""

    code: int
    output: str

    @property
    def lines(self) -> list[str]:
        return [line for line in self.output.splitlines() if line.strip()]


def i2i(
    *args: str | os.PathLike, cwd: Path | None = None, env: dict[str, str] | None = None, timeout: float = 300
) -> Outcome:
    """Run the ``i2i`` command line in a fresh process, as a user would."""
    done = subprocess.run(
        [sys.executable, "-m", "i2i_core", *map(str, args)],
        cwd=cwd or ROOT,
        env={**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=timeout,
    )
    return Outcome(done.returncode, done.stdout)


def expect_error(outcome: Outcome, *names: str, code: int = 1) -> str:
    """``outcome`` failed with ``code`` and no traceback, and its error is one line naming each of ``names``
    (a file, key or plugin); returns that line."""
    assert outcome.code == code, outcome.output
    assert "Traceback" not in outcome.output, outcome.output
    errors = [line for line in outcome.lines if line.startswith("Error:")]
    assert len(errors) == 1, outcome.output
    for name in names:
        assert str(name) in errors[0], outcome.output
    return errors[0]


def snapshot(*folders: Path) -> dict[str, str]:
    """Every file under ``folders`` with the SHA-256 of its bytes: compare before and after to show nothing was
    lost or changed."""
    files = {}
    for folder in folders:
        paths = [folder] if folder.is_file() else sorted(p for p in folder.rglob("*") if p.is_file())
        for path in paths:
            files[str(path)] = hashlib.sha256(path.read_bytes()).hexdigest()
    return files


@pytest.fixture
def photo(tmp_path: Path) -> Path:
    """A real 64x48 photo (from the shipped mini set), in its own folder."""
    from PIL import Image

    source = ROOT / "plugins/i2i_datasets/data/mini-photo2cartoon/testA/sklearn-china.jpg"
    path = tmp_path / "photos" / "china.png"
    path.parent.mkdir()
    Image.open(source).convert("RGB").resize((64, 48)).save(path)
    return path
