"""Multi-process training through PyTorch's own engine: ``torchrun`` sets the environment, i2i joins it.

``torchrun --nproc_per_node=N -m i2i_core run RECIPE`` starts N processes; each calls :func:`setup`, which
initialises the default process group (gloo on CPU, nccl on CUDA) from torchrun's environment variables.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Distributed:
    """This process's place in the job; a single process is rank 0 of a world of 1."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    enabled: bool = False  # launched by torchrun, a process group joined (even a group of one)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def shard(self, order: list[int]) -> list[int]:
        """This rank's share of an epoch's order, as ``DistributedSampler``: padded by wrapping around to a
        multiple of the world size, then every world_size-th index from this rank's."""
        if not self.enabled:
            return order
        total = math.ceil(len(order) / self.world_size) * self.world_size
        padded = (order * math.ceil(total / len(order)))[:total]
        return padded[self.rank :: self.world_size]

    def barrier(self) -> None:
        if self.enabled:
            dist.barrier()

    def any(self, flag: bool) -> bool:
        """True on every rank if ``flag`` is true on any (so all ranks stop at the same step)."""
        if not self.enabled:
            return flag
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        value = torch.tensor([int(flag)], device=device)
        dist.all_reduce(value, op=dist.ReduceOp.MAX)
        return bool(value.item())


def setup(device: torch.device) -> Distributed:
    """Join the job torchrun started (it sets ``WORLD_SIZE`` and ``RANK``), or return the single-process context.

    ``device`` is the device the recipe asked for; under torchrun a CUDA device becomes ``cuda:LOCAL_RANK``.
    """
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        return Distributed()
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return Distributed(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), True)


def teardown(context: Distributed) -> None:
    if context.enabled and dist.is_initialized():
        dist.destroy_process_group()
