"""How long a run is, its learning rate at each step, and the order of each epoch."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from i2i_core.recipe import Recipe
from i2i_core.seeds import epoch_seed


def linear_decay(t: int, n_constant: int, n_decay: int) -> float:
    """The reference's "linear" policy for 1-based period ``t``: 1 for ``n_constant`` periods, then linear
    decay over ``n_decay``: ``1 - max(0, t - n_constant) / (n_decay + 1)``."""
    return 1.0 - max(0, t - n_constant) / (n_decay + 1)


@dataclass(frozen=True, kw_only=True)
class Schedule:
    """Length of a run and its learning rate at each step.

    With ``train.steps`` unset: ``epochs + decay_epochs`` epochs, the rate decaying per epoch as the reference.
    With ``train.steps``: that many steps, the rate decaying per step over the second half. The first
    ``train.d_pretrain_steps`` steps train only the discriminators, at the initial rate, before either count.
    """

    steps_per_epoch: int
    adversarial_steps: int
    lr: float
    decay: str
    epochs: int
    decay_epochs: int
    by_steps: bool
    pretrain_steps: int = 0

    @classmethod
    def from_recipe(cls, recipe: Recipe, dataset_size: int) -> Schedule:
        steps_per_epoch = math.ceil(dataset_size / recipe["train.batch_size"])
        steps = recipe["train.steps"]
        epochs, decay_epochs = recipe["train.epochs"], recipe["train.decay_epochs"]
        adversarial = steps if steps else (epochs + decay_epochs) * steps_per_epoch
        return cls(
            steps_per_epoch=steps_per_epoch,
            adversarial_steps=adversarial,
            lr=recipe["train.lr"],
            decay=recipe["train.decay"],
            epochs=epochs,
            decay_epochs=decay_epochs,
            by_steps=bool(steps),
            pretrain_steps=recipe["train.d_pretrain_steps"],
        )

    @property
    def total_steps(self) -> int:
        return self.pretrain_steps + self.adversarial_steps

    def pretraining(self, step: int) -> bool:
        """Whether 0-based step ``step`` trains the discriminators alone."""
        return step < self.pretrain_steps

    def lr_at(self, step: int) -> float:
        """Learning rate of 0-based step ``step``."""
        step = max(0, step - self.pretrain_steps)
        if self.decay == "none":
            return self.lr
        if self.by_steps:
            n_decay = self.adversarial_steps // 2
            return self.lr * linear_decay(step + 1, self.adversarial_steps - n_decay, n_decay)
        return self.lr * linear_decay(step // self.steps_per_epoch + 1, self.epochs, self.decay_epochs)


def epoch_order(seed: int, epoch: int, size: int) -> list[int]:
    """The shuffled order of an epoch, from its own generator: a resumed run sees the same order."""
    generator = torch.Generator().manual_seed(epoch_seed(seed, epoch))
    return torch.randperm(size, generator=generator).tolist()
