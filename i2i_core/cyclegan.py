"""One CycleGAN optimisation step, in the reference's order (Zhu et al., 2017).

Names: ``G_A`` maps A -> B and ``D_A`` judges domain B; ``G_B`` maps B -> A and ``D_B`` judges domain A.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from i2i_core.compute_copy import ComputeCopy
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
        precision: ``fp32``, ``bf16`` (the networks run as bf16 compute copies, see :mod:`i2i_core.compute_copy`)
            or ``fp16`` (autocast with loss scaling); the weights the optimisers step stay fp32.
        channels_last: run the compute copies channels-last (the default with bf16).
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
        channels_last: bool | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.G_A, self.G_B, self.D_A, self.D_B = (n.to(self.device) for n in (G_A, G_B, D_A, D_B))
        self.gan_loss, self.cycle_loss, self.identity_loss = gan_loss, cycle_loss, identity_loss
        self.cycle_weight, self.identity_weight = cycle_weight, identity_weight
        self.precision = precision
        # fused: one kernel for all parameters (10x faster than the per-parameter loop on a CPU)
        generators, discriminators = (
            itertools.chain(a.parameters(), b.parameters()) for a, b in ((G_A, G_B), (D_A, D_B))
        )
        self.opt_G = torch.optim.Adam(generators, lr, betas, fused=True)
        self.opt_D = torch.optim.Adam(discriminators, lr, betas, fused=True)
        self.pool_A = ImagePool(pool_size, seed=seed * 2 + 1)  # fakes of domain A, for D_B
        self.pool_B = ImagePool(pool_size, seed=seed * 2 + 2)  # fakes of domain B, for D_A
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.copies = {
            name: ComputeCopy.for_precision(net, precision, channels_last) for name, net in self.networks.items()
        }
        # what the steps call where gradients flow: the compute copies, or their DistributedDataParallel wrappers
        self.trained: dict[str, nn.Module] = {name: c.module for name, c in self.copies.items()}

    def distribute(self) -> None:
        """Wrap the four networks' compute copies in ``DistributedDataParallel`` (the process group must exist):
        gradients are averaged over the processes, and every process starts from rank 0's master weights."""
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        with torch.no_grad():
            for net in self.networks.values():
                for tensor in itertools.chain(net.parameters(), net.buffers()):
                    dist.broadcast(tensor, 0)
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.trained = {name: DistributedDataParallel(c.module, device_ids=ids) for name, c in self.copies.items()}

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}

    def set_lr(self, lr: float) -> None:
        for group in itertools.chain(self.opt_G.param_groups, self.opt_D.param_groups):
            group["lr"] = lr

    def train(self, mode: bool = True) -> None:
        for compute_copy in self.copies.values():
            compute_copy.train(mode)

    def _pull_weights(self, *names: str) -> None:
        for name in names:
            self.copies[name].pull_weights()

    def _push_gradients(self, *names: str) -> None:
        for name in names:
            self.copies[name].push_gradients()

    def train_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, float]:
        """One step on a batch of each domain, (B, 3, H, W) in [-1, 1]; returns the eight weighted losses."""
        self._pull_weights(*self.networks)
        real_A, real_B = self._prepare(real_A), self._prepare(real_B)
        losses = self._generator_step(real_A, real_B)
        losses.update(self._discriminator_step(real_A, real_B, losses.pop("fake_A"), losses.pop("fake_B")))
        return {name: float(losses[name]) for name in LOSS_NAMES}

    def discriminator_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, float]:
        """Train only the discriminators, against the generators' current outputs (which stay unchanged);
        the image pools fill as usual. Returns ``D_A`` and ``D_B``."""
        self._pull_weights(*self.networks)
        real_A, real_B = self._prepare(real_A), self._prepare(real_B)
        with torch.no_grad(), autocast(self.precision, self.device):
            fake_B, fake_A = self.copies["G_A"].module(real_A), self.copies["G_B"].module(real_B)
        losses = self._discriminator_step(real_A, real_B, fake_A, fake_B)
        return {name: float(value) for name, value in losses.items()}

    def _zero(self) -> torch.Tensor:
        return torch.zeros((), device=self.device)

    def _backward(self, loss: torch.Tensor) -> None:
        self.scaler.scale(loss).backward()

    @staticmethod
    def _no_sync(*modules: nn.Module) -> contextlib.ExitStack:
        """Inside, DistributedDataParallel ``modules`` accumulate gradients without averaging them."""
        stack = contextlib.ExitStack()
        for module in modules:
            if hasattr(module, "no_sync"):
                stack.enter_context(module.no_sync())
        return stack

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        return self.copies["G_A"].prepare(images.to(self.device))

    def _generator_step(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, Any]:
        frozen = (self.copies["D_A"].module, self.copies["D_B"].module)
        _set_requires_grad(frozen, False)
        self.opt_G.zero_grad(set_to_none=True)
        G_A, G_B = self.trained["G_A"], self.trained["G_B"]
        D_A, D_B = frozen  # frozen, they run unwrapped: they get no gradients to average in this step
        # The gradient of the sum of the losses is the sum of the gradients of four independent graphs: both
        # identity passes, and the two cycles. Each graph's backward runs as soon as it is built and frees its
        # activations, so at most two generator passes are held at once instead of six. Processes average
        # gradients once, in the last backward.
        losses: dict[str, Any] = {"idt_A": self._zero(), "idt_B": self._zero()}
        with self._no_sync(G_A, G_B):
            if self.identity_weight:
                with autocast(self.precision, self.device):
                    losses["idt_A"] = self._loss(self.identity_loss, G_A(real_B), real_B) * self.identity_weight
                self._backward(losses["idt_A"])
                with autocast(self.precision, self.device):
                    losses["idt_B"] = self._loss(self.identity_loss, G_B(real_A), real_A) * self.identity_weight
                self._backward(losses["idt_B"])
            with autocast(self.precision, self.device):
                fake_B = G_A(real_A)
                losses["G_A"] = self._loss(self.gan_loss, D_A(fake_B), True)
                losses["cycle_A"] = self._loss(self.cycle_loss, G_B(fake_B), real_A) * self.cycle_weight
            self._backward(losses["G_A"] + losses["cycle_A"])
        with autocast(self.precision, self.device):
            fake_A = G_B(real_B)
            losses["G_B"] = self._loss(self.gan_loss, D_B(fake_A), True)
            losses["cycle_B"] = self._loss(self.cycle_loss, G_A(fake_A), real_B) * self.cycle_weight
        self._backward(losses["G_B"] + losses["cycle_B"])
        self._push_gradients("G_A", "G_B")
        self.scaler.step(self.opt_G)
        _set_requires_grad(frozen, True)
        losses = {k: v.detach() for k, v in losses.items()}
        losses.update(fake_A=fake_A.detach(), fake_B=fake_B.detach())
        return losses

    def _discriminator_step(
        self, real_A: torch.Tensor, real_B: torch.Tensor, fake_A: torch.Tensor, fake_B: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        self.opt_D.zero_grad(set_to_none=True)
        # the pools keep fp32 images, so checkpoints do not depend on the precision
        pooled_B = self._prepare(self.pool_B.query(fake_B.float()))
        pooled_A = self._prepare(self.pool_A.query(fake_A.float()))
        with autocast(self.precision, self.device):
            D_A, D_B = self.trained["D_A"], self.trained["D_B"]
            loss_D_A = 0.5 * (
                self._loss(self.gan_loss, D_A(real_B), True) + self._loss(self.gan_loss, D_A(pooled_B), False)
            )
            loss_D_B = 0.5 * (
                self._loss(self.gan_loss, D_B(real_A), True) + self._loss(self.gan_loss, D_B(pooled_A), False)
            )
        self.scaler.scale(loss_D_A + loss_D_B).backward()
        self._push_gradients("D_A", "D_B")
        self.scaler.step(self.opt_D)
        self.scaler.update()
        return {"D_A": loss_D_A.detach(), "D_B": loss_D_B.detach()}

    @staticmethod
    def _loss(loss: Callable[..., torch.Tensor], prediction: torch.Tensor, target: Any) -> torch.Tensor:
        """Losses are computed in fp32 whatever precision the networks ran in."""
        if isinstance(target, torch.Tensor):
            target = target.float()
        return loss(prediction.float(), target)

    @torch.no_grad()
    def translate(self, real_A: torch.Tensor, real_B: torch.Tensor) -> dict[str, torch.Tensor]:
        """fake/rec images of both directions, in eval mode, for sample grids."""
        self._pull_weights("G_A", "G_B")
        G_A, G_B = self.copies["G_A"].module, self.copies["G_B"].module
        self.train(False)
        try:
            with autocast(self.precision, self.device):
                fake_B = G_A(self._prepare(real_A))
                fake_A = G_B(self._prepare(real_B))
                images = {"fake_B": fake_B, "rec_A": G_B(fake_B), "fake_A": fake_A, "rec_B": G_A(fake_A)}
        finally:
            self.train(True)
        return {k: v.float().contiguous().clamp(-1, 1) for k, v in images.items()}
