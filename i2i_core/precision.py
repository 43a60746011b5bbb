"""Device and numeric precision: ``auto`` picks bf16 where the hardware runs it fast."""

from __future__ import annotations

import contextlib
from functools import cache
from pathlib import Path

import torch

from i2i_core.errors import I2IError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


def resolve_device(name: str = "auto") -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise I2IError(f"train.device: unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise I2IError(f"train.device is '{name}' but no CUDA device is available; use 'auto' or 'cpu'")
    return device


@cache
def cpu_has_fast_bf16() -> bool:
    """Whether this CPU has bf16 matrix instructions (AMX or AVX512-BF16), read from /proc/cpuinfo."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags


def resolve_precision(precision: str, device: torch.device) -> str:
    """``auto`` -> ``bf16`` on CUDA or a CPU with fast bf16, else ``fp32``; fp16 needs CUDA."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" or cpu_has_fast_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise I2IError("train.precision 'fp16' needs a CUDA device; on a CPU use 'bf16' or 'fp32'")
    return precision


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype networks run in: bf16 for ``bf16``; fp32 otherwise (``fp16`` runs fp32 networks under autocast)."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of ``fp16``; nothing otherwise (bf16 networks run as bf16 copies, not autocast)."""
    if precision != "fp16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])
