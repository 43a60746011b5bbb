"""One CycleGAN optimisation step, in the reference's order (Zhu et al., 2017).

Names: ``G_A`` maps A -> B and ``D_A`` judges domain B; ``G_B`` maps B -> A and ``D_B`` judges domain A.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from i2i_core.image_pool import ImagePool
from i2i_core.precision import autocast

LOSS_NAMES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")


def _set_requires_grad(nets: tuple[nn.Module, ...], flag: bool) -> None:
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


class CycleGAN:
    """Four networks, their two Adam optimisers and two image pools; :meth:`train_step` does one step.

    Args:
        G_A, G_B: generators A -> B and B -> A.
        D_A, D_B: discriminators of domains B and A.
        gan_loss: ``loss(prediction, target_is_real)``.
        cycle_loss, identity_loss: ``loss(x, y)``; weighted by ``cycle_weight`` and ``identity_weight``
            (absolute weights: the reference's lambda 10 with lambda_identity 0.5 is 10 and 5).
        lr, betas: Adam settings, one optimiser over both generators and one over both discriminators.
        pool_size, seed: image pools and the seed of their random choices.
        precision: ``fp32``, ``bf16`` or ``fp16`` (autocast; master weights stay fp32).
    """

    def __init__(
        self,
        G_A: nn.Module,
        G_B: nn.Module,
        D_A: nn.Module,
        D_B: nn.Module,
        gan_loss: Callable[[torch.Tensor, bool], torch.Tensor],
        cycle_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        identity_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        cycle_weight: float = 10.0,
        identity_weight: float = 5.0,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        pool_size: int = 50,
        seed: int = 0,
        precision: str = "fp32",
        device: torch.device | str = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.G_A, self.G_B, self.D_A, self.D_B = (n.to(self.device) for n in (G_A, G_B, D_A, D_B))
        self.gan_loss, self.cycle_loss, self.identity_loss = gan_loss, cycle_loss, identity_loss
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.precision = precision
        self.opt_G = torch.optim.Adam(itertools.chain(self.G_A.parameters(), self.G_B.parameters()), lr, betas)
        self.opt_D = torch.optim.Adam(itertools.chain(self.D_A.parameters(), self.D_B.parameters()), lr, betas)
        self.pool_A = ImagePool(pool_size, seed=seed * 2 + 1)  # fakes of domain A, for D_B
        self.pool_B = ImagePool(pool_size, seed=seed * 2 + 2)  # fakes of domain B, for D_A
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        # what the steps call where gradients flow: the networks, or their DistributedDataParallel wrappers
        self.trained: dict[str, nn.Module] = dict(self.networks)

    def distribute(self) -> None:
        """Wrap the four networks in ``DistributedDataParallel`` (the process group must exist): gradients are
        averaged over the processes, and every process starts from rank 0's weights."""
        from torch.nn.parallel import DistributedDataParallel

        ids = [self.device.index] if self.device.type == "cuda" else None
        self.trained = {name: DistributedDataParallel(net, device_ids=ids) for name, net in self.networks.items()}

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}

    def set_lr(self, lr: float) -> None:
        for group in itertools.chain(self.opt_G.param_groups, self.opt_D.param_groups):
            group["lr"] = lr

    def train(self, mode: bool = True) -> None:
        for net in self.networks.values():
            net.train(mode)

    def train_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, float]:
        """One step on a batch of each domain, (B, 3, H, W) in [-1, 1]; returns the eight weighted losses."""
        real_A, real_B = real_A.to(self.device), real_B.to(self.device)
        losses = self._generator_step(real_A, real_B)
        losses.update(self._discriminator_step(real_A, real_B, losses.pop("fake_A"), losses.pop("fake_B")))
        return {name: float(losses[name]) for name in LOSS_NAMES}

    def discriminator_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, float]:
        """Train only the discriminators, against the generators' current outputs (which stay unchanged);
        the image pools fill as usual. Returns ``D_A`` and ``D_B``."""
        real_A, real_B = real_A.to(self.device), real_B.to(self.device)
        with torch.no_grad(), autocast(self.precision, self.device):
            fake_B, fake_A = self.G_A(real_A), self.G_B(real_B)
        losses = self._discriminator_step(real_A, real_B, fake_A, fake_B)
        return {name: float(value) for name, value in losses.items()}

    def _generator_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, Any]:
        _set_requires_grad((self.D_A, self.D_B), False)
        self.opt_G.zero_grad(set_to_none=True)
        G_A, G_B = self.trained["G_A"], self.trained["G_B"]
        with autocast(self.precision, self.device):
            fake_B = G_A(real_A)
            rec_A = G_B(fake_B)
            fake_A = G_B(real_B)
            rec_B = G_A(fake_A)
            # The reference's order of operations: it fixes the order in which autograd accumulates
            # gradients, and so makes the step bit-comparable with it.
            zero = torch.zeros((), device=self.device)
            idt_A = self.identity_loss(G_A(real_B), real_B) * self.identity_weight if self.identity_weight else zero
            idt_B = self.identity_loss(G_B(real_A), real_A) * self.identity_weight if self.identity_weight else zero
            # the frozen discriminators run unwrapped: they get no gradients to average in this step
            losses: dict[str, Any] = {
                "G_A": self.gan_loss(self.D_A(fake_B), True),
                "G_B": self.gan_loss(self.D_B(fake_A), True),
                "cycle_A": self.cycle_loss(rec_A, real_A) * self.cycle_weight,
                "cycle_B": self.cycle_loss(rec_B, real_B) * self.cycle_weight,
                "idt_A": idt_A,
                "idt_B": idt_B,
            }
            total = losses["G_A"] + losses["G_B"] + losses["cycle_A"] + losses["cycle_B"] + idt_A + idt_B
        self.scaler.scale(total).backward()
        self.scaler.step(self.opt_G)
        _set_requires_grad((self.D_A, self.D_B), True)
        losses = {k: v.detach() for k, v in losses.items()}
        losses.update(fake_A=fake_A.detach(), fake_B=fake_B.detach())
        return losses

    def _discriminator_step(
        self, real_A: torch.Tensor, real_B: torch.Tensor, fake_A: torch.Tensor, fake_B: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        self.opt_D.zero_grad(set_to_none=True)
        pooled_B = self.pool_B.query(fake_B)
        pooled_A = self.pool_A.query(fake_A)
        with autocast(self.precision, self.device):
            D_A, D_B = self.trained["D_A"], self.trained["D_B"]
            loss_D_A = 0.5 * (self.gan_loss(D_A(real_B), True) + self.gan_loss(D_A(pooled_B), False))
            loss_D_B = 0.5 * (self.gan_loss(D_B(real_A), True) + self.gan_loss(D_B(pooled_A), False))
        self.scaler.scale(loss_D_A + loss_D_B).backward()
        self.scaler.step(self.opt_D)
        self.scaler.update()
        return {"D_A": loss_D_A.detach(), "D_B": loss_D_B.detach()}

    @torch.no_grad()
    def translate(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """fake/rec images of both directions, in eval mode, for sample grids."""
        self.train(False)
        try:
            with autocast(self.precision, self.device):
                fake_B = self.G_A(real_A.to(self.device))
                fake_A = self.G_B(real_B.to(self.device))
                images = {"fake_B": fake_B, "rec_A": self.G_B(fake_B), "fake_A": fake_A, "rec_B": self.G_A(fake_A)}
        finally:
            self.train(True)
        return {k: v.float().clamp(-1, 1) for k, v in images.items()}
