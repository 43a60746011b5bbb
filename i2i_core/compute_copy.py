"""Compute copies: a network's weights in the dtype and memory format the arithmetic runs fastest in.

The fp32 network keeps the master weights: the optimiser steps them and checkpoints save them. Forward and
backward run on the compute copy (bf16, channels-last), so activations are stored in bf16 and no layer casts
between precisions. Before each step the copy takes the master weights; after backward the master weights take
the copy's gradients, in fp32.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from i2i_core.precision import compute_dtype


def _keeps_fp32(module: nn.Module) -> bool:
    """Layers whose parameters and running statistics stay fp32 in a compute copy: batch-norm statistics
    accumulate over many steps and would lose them in bf16 (PyTorch's batch norm takes bf16 inputs with fp32
    parameters)."""
    return isinstance(module, nn.modules.batchnorm._BatchNorm)


class ComputeCopy:
    """A network's ``module`` to run in ``dtype`` and ``memory_format``; ``module`` is ``master`` itself
    when that changes nothing (fp32, contiguous).

    Example:
        >>> master = nn.Conv2d(3, 8, 3)
        >>> c = ComputeCopy(master, torch.bfloat16, torch.channels_last)
        >>> c.module.weight.dtype, c.module(c.prepare(torch.zeros(1, 3, 8, 8))).dtype
        (torch.bfloat16, torch.bfloat16)
    """

    def __init__(
        self, master: nn.Module, dtype: torch.dtype, memory_format: torch.memory_format = torch.contiguous_format
    ) -> None:
        self.master, self.dtype, self.memory_format = master, dtype, memory_format
        self.is_master = dtype == torch.float32 and memory_format == torch.contiguous_format
        if self.is_master:
            self.module = master
            return
        self.module = copy.deepcopy(master).to(dtype=dtype, memory_format=memory_format)
        for layer in self.module.modules():
            if _keeps_fp32(layer):
                layer.float()
        self.pairs = list(zip(master.parameters(), self.module.parameters(), strict=True))
        self.buffer_pairs = list(zip(master.buffers(), self.module.buffers(), strict=True))

    @classmethod
    def for_precision(cls, master: nn.Module, precision: str, channels_last: bool | None = None) -> ComputeCopy:
        """The copy a precision (``fp32``, ``bf16``, ``fp16``) runs ``master`` as: bf16 for ``bf16``, else fp32;
        channels-last when ``channels_last`` says so, by default with bf16."""
        if channels_last is None:
            channels_last = precision == "bf16"
        layout = torch.channels_last if channels_last else torch.contiguous_format
        return cls(master, compute_dtype(precision), layout)

    def prepare(self, x: torch.Tensor) -> torch.Tensor:
        """``x`` in the copy's dtype and memory format."""
        if self.is_master:
            return x
        return x.to(dtype=self.dtype, memory_format=self.memory_format if x.ndim == 4 else torch.preserve_format)

    @torch.no_grad()
    def pull_weights(self) -> None:
        """Copy the master weights (and running statistics) into the copy."""
        if not self.is_master:
            for master, compute in self.pairs + self.buffer_pairs:
                compute.copy_(master)

    @torch.no_grad()
    def push_gradients(self) -> None:
        """Add the copy's gradients to the master's (fp32, contiguous) and clear the copy's. Running statistics
        (batch norm) go to the master too."""
        if self.is_master:
            return
        for master, compute in self.pairs:
            if compute.grad is None:
                continue
            grad = compute.grad.to(master.dtype, memory_format=torch.contiguous_format)
            master.grad = grad if master.grad is None else master.grad.add_(grad)
            compute.grad = None
        for master, compute in self.buffer_pairs:
            master.copy_(compute)

    def train(self, mode: bool = True) -> None:
        self.master.train(mode)
        self.module.train(mode)
