"""What a run reports as it goes: metric lines and warnings in ``metrics.jsonl`` (and TensorBoard), the
progress bar."""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path
from typing import Any

import torch


def _tensorboard(run_dir: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # optional extra
        return None
    return SummaryWriter(str(run_dir / "tensorboard"))


def progress_bar(total: int, initial: int, show: bool | None) -> Any:
    from tqdm.auto import tqdm

    return tqdm(
        total=total,
        initial=initial,
        unit="step",
        dynamic_ncols=True,
        disable=not (sys.stderr.isatty() if show is None else show),
    )


class RunLog:
    """``metrics.jsonl`` (and, when TensorBoard is installed, scalars of every loss a step returned, the learning
    rate and evaluation scores): metric lines and warnings, by step."""

    #: Keys of a metric line that are not losses.
    NOT_LOSSES = ("step", "epoch", "phase", "lr", "steps_per_s", "eval", "warning")

    def __init__(self, run_dir: Path) -> None:
        self.file = open(run_dir / "metrics.jsonl", "a")  # noqa: SIM115 (closed by close())
        self.tensorboard = _tensorboard(run_dir)

    def metrics(self, record: dict[str, Any]) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        if self.tensorboard is not None:
            for name, value in record.items():
                if name not in self.NOT_LOSSES and isinstance(value, int | float):
                    self.tensorboard.add_scalar(f"loss/{name}", value, record["step"])
            if "lr" in record:
                self.tensorboard.add_scalar("lr", record["lr"], record["step"])
            for name, value in record.get("eval", {}).items():
                self.tensorboard.add_scalar(f"eval/{name}", value, record["step"])

    def warning(self, step: int, message: str) -> None:
        """Warn now (once per call) and keep the warning in ``metrics.jsonl``."""
        warnings.warn(message, RuntimeWarning, stacklevel=3)
        self.metrics({"step": step, "warning": message})

    def images(self, tag: str, images: torch.Tensor, step: int) -> None:
        if self.tensorboard is not None:
            self.tensorboard.add_images(tag, images * 0.5 + 0.5, step)

    def close(self) -> None:
        self.file.close()
        if self.tensorboard is not None:
            self.tensorboard.close()
