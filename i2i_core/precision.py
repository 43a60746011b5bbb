"""Device, CPU class and numeric precision. ``resolve_precision`` resolves ``auto`` by CPU flags (inference, torchrun);
training measures what is fastest (:mod:`i2i_core.training.autotune`)."""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import torch

from i2i_core.errors import I2IError

DTYPES = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class Layout:
    """How a network runs: ``precision`` (``fp32``, ``bf16`` or ``fp16``) and memory format; ``reason`` says why."""

    precision: str
    channels_last: bool
    reason: str = "set in the recipe"

    def describe(self) -> str:
        return f"{self.precision} {'channels-last' if self.channels_last else 'contiguous'}"


def resolve_device(name: str = "auto", key: str = "train.device") -> torch.device:
    """``auto`` is the first CUDA device when there is one, else the CPU; errors name the setting ``key``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise I2IError(f"{key}: unknown device '{name}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise I2IError(f"{key} is '{name}' but no CUDA device is available; use 'auto' or 'cpu'")
    if device.type == "cuda" and device.index is not None and device.index >= torch.cuda.device_count():
        count = torch.cuda.device_count()
        raise I2IError(f"{key} is '{name}' but this machine has {count} CUDA device(s): cuda:0 to cuda:{count - 1}")
    return device


def _cpu_flags() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


@cache
def cpu_class() -> str:
    """This CPU's class as PyTorch and oneDNN use it: ``AMX``, ``AVX512-BF16``, ``AVX-512``, ``AVX2`` or ``default``
    (also what ``ATEN_CPU_CAPABILITY`` and ``ONEDNN_MAX_CPU_ISA`` emulate)."""
    capability = torch.backends.cpu.get_cpu_capability()
    if not capability.startswith("AVX512"):
        return "AVX2" if capability == "AVX2" else "default"
    flags, isa = _cpu_flags(), os.environ.get("ONEDNN_MAX_CPU_ISA", "ALL").upper()
    if "amx_bf16" in flags and ("AMX" in isa or isa == "ALL"):
        return "AMX"
    if "avx512_bf16" in flags and any(word in isa for word in ("BF16", "AMX", "ALL")):
        return "AVX512-BF16"
    return "AVX-512"


def processor() -> str:
    """The processor's model name, from /proc/cpuinfo."""
    names = [line.split(":", 1)[1].strip() for line in _cpu_flags().splitlines() if line.startswith("model name")]
    return names[0] if names else "unknown processor"


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU (as PyTorch and oneDNN may use it) has bf16 matrix instructions: AMX or AVX512-BF16."""
    return cpu_class() in ("AMX", "AVX512-BF16")


def resolve_precision(precision: str, device: torch.device, key: str = "train.precision") -> str:
    """``auto`` -> ``bf16`` on CUDA or a CPU with fast bf16, else ``fp32``; fp16 needs CUDA (the error names the
    setting ``key``)."""
    if precision == "auto":
        return "bf16" if device.type == "cuda" or cpu_has_fast_bf16() else "fp32"
    if precision == "fp16" and device.type != "cuda":
        raise I2IError(f"{key} 'fp16' needs a CUDA device; on a CPU use 'bf16' or 'fp32'")
    return precision


def compute_dtype(precision: str) -> torch.dtype:
    """The dtype networks run in: bf16 for ``bf16``; fp32 otherwise (``fp16`` runs fp32 networks under autocast)."""
    return torch.bfloat16 if precision == "bf16" else torch.float32


def autocast(precision: str, device: torch.device) -> contextlib.AbstractContextManager:
    """The autocast context of ``fp16``; nothing otherwise (bf16 networks run as bf16 copies, not autocast)."""
    if precision != "fp16":
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=DTYPES[precision])
