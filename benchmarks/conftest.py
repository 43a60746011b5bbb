"""The benchmark suite: ``python -m pytest benchmarks`` (pytest-benchmark; not part of the default test run).

``--smoke`` shrinks every image to 32 pixels a side and runs each benchmark once: CI runs it so the suite
cannot rot; its timings mean nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--smoke", action="store_true", help="Tiny images, one round each: check the suite runs.")


@pytest.fixture(scope="session")
def smoke(request: pytest.FixtureRequest) -> bool:
    return request.config.getoption("--smoke")


@pytest.fixture(scope="session")
def side(smoke: bool) -> Callable[[int], int]:
    """The image side a benchmark uses for a nominal ``size``: itself, or 32 in smoke mode."""
    return lambda size: 32 if smoke else size


@pytest.fixture
def measure(benchmark: Any, smoke: bool) -> Callable[..., Any]:
    """``measure(fn, rounds=3)``: time ``fn`` (one warm-up call first) with pytest-benchmark."""

    def run(fn: Callable[[], Any], rounds: int = 3, warmup: int = 1) -> Any:
        return benchmark.pedantic(fn, rounds=1 if smoke else rounds, warmup_rounds=0 if smoke else warmup)

    return run
