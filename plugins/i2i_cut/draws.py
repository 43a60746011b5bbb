"""CUT's random choices, drawn in the step's order from one generator the method owns: which patches the PatchNCE
loss compares, and (FastCUT) whether a batch is mirrored."""

from __future__ import annotations

import torch


class PatchDraws:
    """Patch positions and flips from a seeded CPU ``torch.Generator``; its state resumes exactly.

    A test may replace a method's ``draws`` with any object that has :meth:`permutation` and :meth:`flip`.

    Example:
        >>> draws = PatchDraws(seed=0)
        >>> sorted(draws.permutation(4).tolist())
        [0, 1, 2, 3]
    """

    def __init__(self, seed: int = 0) -> None:
        self.generator = torch.Generator().manual_seed(seed)

    def permutation(self, n: int) -> torch.Tensor:
        """A random permutation of ``range(n)``: (n,) int64 on the CPU. The step keeps its first positions."""
        return torch.randperm(n, generator=self.generator)

    def flip(self) -> bool:
        """Whether to mirror this step's batch: true with probability 1/2."""
        return bool(torch.rand((), generator=self.generator) < 0.5)

    def seed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def state(self) -> torch.Tensor:
        """The generator's state, (5056,) uint8."""
        return self.generator.get_state()

    def load_state(self, state: torch.Tensor) -> None:
        if state.numel():  # a run that drew on the device (DeviceDraws) saved none: its state is the device's
            self.generator.set_state(state.cpu())


class DeviceDraws:
    """The same choices made on ``device`` by its default generator, with no Python branch: what a step that CUDA
    graphs capture draws (each replay draws afresh). The generator's state is the device's, which checkpoints
    save with the engine's random states.

    Example:
        >>> draws = DeviceDraws(torch.device("cpu"))
        >>> sorted(draws.permutation(4).tolist()), draws.flip().dtype
        ([0, 1, 2, 3], torch.bool)
    """

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def permutation(self, n: int) -> torch.Tensor:
        """A random permutation of ``range(n)``: (n,) int64 on the device."""
        return torch.rand(n, device=self.device).argsort()

    def flip(self) -> torch.Tensor:
        """Whether to mirror this step's batch: a bool tensor on the device, true with probability 1/2."""
        return torch.rand((), device=self.device) < 0.5

    def seed(self, seed: int) -> None:
        """Nothing: the engine seeds the device's generator."""

    def state(self) -> torch.Tensor:
        return torch.zeros(0, dtype=torch.uint8)

    def load_state(self, state: torch.Tensor) -> None:
        """Nothing: the engine restores the device's generator."""
