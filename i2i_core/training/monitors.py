"""Training health checks: warn once when a generator collapses or a discriminator wins outright."""

from __future__ import annotations

from collections import deque

import torch


def output_diversity(inputs: torch.Tensor, outputs: torch.Tensor) -> float:
    """How much outputs differ across a batch, relative to how much the inputs differ.

    (N, C, H, W) inputs and outputs, N >= 2 -> the mean per-pixel standard deviation across the batch of the
    outputs divided by that of the inputs. Near 0 the generator maps different images to the same picture.

    Example:
        >>> x = torch.rand(4, 3, 8, 8)
        >>> output_diversity(x, x.mean(0, keepdim=True).expand_as(x))
        0.0
    """
    if inputs.shape[0] < 2 or inputs.shape != outputs.shape:
        raise ValueError(
            f"need two or more input/output pairs of one shape, got {tuple(inputs.shape)}, {tuple(outputs.shape)}"
        )
    spread_in = inputs.float().std(dim=0).mean()
    spread_out = outputs.float().std(dim=0).mean()
    return float(spread_out / spread_in.clamp_min(1e-8))


class CollapseMonitor:
    """Warns when a generator's outputs on different sample images become nearly identical (mode collapse).

    Collapse is a change: the diversity must fall below ``threshold`` and below ``drop`` times the diversity
    first seen, so a generator that starts out near-constant is not taken for a collapsed one.
    """

    def __init__(self, threshold: float = 0.05, drop: float = 0.25) -> None:
        self.threshold, self.drop = threshold, drop
        self.first: dict[str, float] = {}
        self.warned: set[str] = set()

    def check(self, name: str, inputs: torch.Tensor, outputs: torch.Tensor, step: int) -> str | None:
        """A warning the first time generator ``name`` has collapsed on these samples, else ``None``."""
        if name in self.warned or inputs.shape[0] < 2:
            return None
        diversity = output_diversity(inputs, outputs)
        first = self.first.setdefault(name, diversity)
        if diversity >= self.threshold or diversity >= self.drop * first:
            return None
        self.warned.add(name)
        return (
            f"step {step}: generator {name} may have collapsed: its outputs on different sample images are nearly "
            f"identical (diversity {diversity:.3f} < {self.threshold}). Try train.d_pretrain_steps, a lower "
            "train.lr or a larger weight of the content loss (loss.cycle.weight, loss.nce.weight)."
        )


class DiscriminatorMonitor:
    """Warns when a discriminator's loss stays near zero: it has won, and its generator gets no useful signal."""

    def __init__(self, names: tuple[str, ...], threshold: float = 1e-2, window: int = 50) -> None:
        self.names, self.threshold = names, threshold
        self.history: dict[str, deque[float]] = {}
        self.window = window
        self.warned: set[str] = set()

    def check(self, losses: dict[str, float], step: int) -> list[str]:
        """Warnings for discriminators whose mean loss over the last ``window`` steps fell below the threshold."""
        messages = []
        for name in self.names:
            if name not in losses:
                continue
            history = self.history.setdefault(name, deque(maxlen=self.window))
            history.append(losses[name])
            mean = sum(history) / len(history)
            if name not in self.warned and len(history) == self.window and mean < self.threshold:
                self.warned.add(name)
                messages.append(
                    f"step {step}: discriminator {name}'s loss has stayed near zero (mean {mean:.2e} over the last "
                    f"{self.window} steps): it wins every time and its generator learns little. Try a smaller "
                    "discriminator (ndf, n_layers), a lower train.lr, or (CycleGAN) an image pool, train.pool_size."
                )
        return messages
