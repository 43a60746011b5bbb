"""A whole training step as one CUDA graph: forward, backward and every optimiser of a method's step captured once
and replayed, so that a step costs one launch instead of about two thousand small ones.

Steps of one *phase* (:meth:`i2i_core.method.Method.graph_phase`) replay one graph. The first steps of a phase
run eagerly on a side stream (cuDNN chooses its algorithms, the allocator and the optimisers' state warm up); the
next one is captured and replayed, and every later one copies its batch into the graph's static inputs and
replays it. The method makes its random choices on the device with the default CUDA generator, whose offsets a
replay advances as an eager step would: replayed and eager steps draw alike, so exact resume still works.

``train.cuda_graphs``: ``auto`` captures on CUDA when the run allows it and says in one line why not when it does
not; ``on`` makes that an error; ``off`` (the default until the graphs have been measured on a GPU: the CPU tests
check that the steps are graph-safe, not the replays) runs every step eagerly. A capture that fails falls back to
eager steps with a warning.
"""

from __future__ import annotations

import warnings
from collections.abc import Hashable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch

from i2i_core.errors import I2IError

if TYPE_CHECKING:
    from i2i_core.method import Batch, Method

#: Eager steps of each phase before its graph is captured.
WARMUP_STEPS = 3


def graphs_blocker(method: type[Method], device: torch.device, precision: str, augment: bool, world_size: int) -> str:
    """Why a run of ``method`` cannot capture its steps ("" when it can)."""
    if device.type != "cuda":
        return f"CUDA graphs need a CUDA device, and this run trains on {device.type}"
    if not method.graph_safe:
        return f"method {method.__name__} does not declare its step graph-safe (graph_safe)"
    if precision == "fp16":
        return "fp16's loss scaling decides on the host whether to step; train in bf16 or fp32"
    if augment:
        return 'the discriminator augmentation adapts its probability on the host; set augment.pipeline = ""'
    if world_size > 1:
        return "torchrun's gradient averaging (DistributedDataParallel) is not captured"
    return ""


def choose_graphs(
    setting: str, method: type[Method], device: torch.device, precision: str, augment: bool, world_size: int
) -> tuple[bool, str]:
    """``train.cuda_graphs`` resolved: (capture the steps, the line that says what the run does and why)."""
    if setting == "off":
        return False, 'steps run eagerly: train.cuda_graphs = "off"'
    blocker = graphs_blocker(method, device, precision, augment, world_size)
    if not blocker:
        return True, "each training step is replayed from one CUDA graph"
    if setting == "on":
        raise I2IError(f'train.cuda_graphs is "on", but {blocker}')
    return False, f"steps run eagerly, not as CUDA graphs: {blocker}"


@dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    inputs: dict[str, torch.Tensor]  # the static batch the graph reads
    names: list[str]  # the losses, in the order of ``values``
    values: torch.Tensor  # (len(names),) fp32: the step's losses, written by each replay


class StepGraphs:
    """Runs a method's training steps: eagerly while a phase warms up, then by replaying the phase's graph.

    Example (on a CUDA device)::

        graphs = StepGraphs(method)
        losses = graphs.step({"A": real_A, "B": real_B})  # the same floats as method.train_step
    """

    def __init__(self, method: Method) -> None:
        self.method = method
        self.graphs: dict[Hashable, _Graph] = {}
        self.eager_steps: dict[Hashable, int] = {}
        self.side = torch.cuda.Stream(method.device)
        torch.backends.cudnn.benchmark = True  # algorithms are chosen in the eager steps, before capture

    def step(self, batch: Batch) -> dict[str, float]:
        """One training step on ``batch``: its losses as floats. A batch of another shape (an epoch's last, smaller
        one) is a phase of its own."""
        phase = self.method.graph_phase()
        if phase is not None:
            phase = (phase, *(tuple(v.shape) for v in batch.values() if isinstance(v, torch.Tensor)))
        if phase in self.graphs:
            return self._replay(self.graphs[phase], batch)
        if phase is None or self.eager_steps.get(phase, 0) < WARMUP_STEPS:
            if phase is not None:
                self.eager_steps[phase] = self.eager_steps.get(phase, 0) + 1
            return self._eager(batch)
        try:
            self.graphs[phase] = self._capture(batch)
        except RuntimeError as exc:  # a step that is not graph-safe after all: eager from now on, said once
            self.method.step_graphs = None
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            warnings.warn(f"CUDA graph capture failed ({first}); training steps run eagerly", stacklevel=2)
            return self._eager(batch)
        return self._replay(self.graphs[phase], batch)

    def _eager(self, batch: Batch) -> dict[str, float]:
        self.side.wait_stream(torch.cuda.current_stream(self.method.device))
        with torch.cuda.stream(self.side):
            losses = self.method.train_step(batch)
        torch.cuda.current_stream(self.method.device).wait_stream(self.side)
        return losses

    def _capture(self, batch: Batch) -> _Graph:
        method = self.method
        inputs = {k: v.to(method.device).clone() for k, v in batch.items() if isinstance(v, torch.Tensor)}
        graph = torch.cuda.CUDAGraph()
        torch.cuda.synchronize(method.device)
        with method.capturing(), torch.cuda.graph(graph):
            losses = method.train_step(inputs)
            names = list(losses)
            values = torch.stack([_on_device(v, method.device) for v in losses.values()])
        return _Graph(graph, inputs, names, values)

    def _replay(self, entry: _Graph, batch: Batch) -> dict[str, float]:
        for key, static in entry.inputs.items():
            static.copy_(batch[key], non_blocking=True)
        entry.graph.replay()
        return dict(zip(entry.names, entry.values.tolist(), strict=True))


#: Operators that read device data on the host.
SYNCING = (torch.ops.aten._local_scalar_dense.default, torch.ops.aten.lift_fresh.default)
SYNCING_PACKETS = (
    torch.ops.aten.nonzero,
    torch.ops.aten.masked_select,
    torch.ops.aten._unique2,
    torch.ops.aten.unique_dim,
    torch.ops.aten.unique_consecutive,
)


def _masks(func: Any, args: Any) -> bool:
    """Whether ``func`` indexes with a boolean mask (its output size is the mask's count)."""
    if func.overloadpacket not in (torch.ops.aten.index, torch.ops.aten.index_put, torch.ops.aten.index_put_):
        return False
    return any(isinstance(i, torch.Tensor) and i.dtype == torch.bool for i in args[1])


def _on_device(value: torch.Tensor | float, device: torch.device) -> torch.Tensor:
    """A loss as a 0-d fp32 tensor on ``device``; a float becomes a fill, not a copy from the host."""
    if isinstance(value, torch.Tensor):
        return value.detach().float().reshape(())
    return torch.full((), float(value), device=device)


def host_syncs(fn: Any, *args: Any) -> list[str]:
    """The operators of ``fn(*args)`` that would stop a CUDA graph's capture, on any device: reading a tensor's
    value on the host (``.item()``, ``bool()``, ``float()``), making a tensor from host data (``torch.tensor(...)``,
    which on CUDA copies from host memory) and operators whose output size depends on the data (``nonzero``,
    boolean masks, ``unique``). A graph-safe step has none.

    Example:
        >>> host_syncs(lambda x: float(x.sum()), torch.ones(2))
        ['aten._local_scalar_dense.default']
    """
    from torch.utils._python_dispatch import TorchDispatchMode

    found: list[str] = []

    class Watch(TorchDispatchMode):
        def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
            if func in SYNCING or func.overloadpacket in SYNCING_PACKETS or _masks(func, args):
                found.append(str(func))
            return func(*args, **(kwargs or {}))

    with Watch():
        fn(*args)
    return found
