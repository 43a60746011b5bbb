"""The CycleGAN method (Zhu et al., 2017): two generators, two discriminators, two image pools; one step in the
reference's order.

Names: ``G_A`` maps A -> B and ``D_A`` judges domain B; ``G_B`` maps B -> A and ``D_B`` judges domain A.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from i2i_core.augment import DiscriminatorAugment, augmented, end_step, gan_threshold
from i2i_core.compute_copy import ComputeCopy
from i2i_core.method import (
    Batch,
    Method,
    Translation,
    fp32_loss,
    load_optimizer_state,
    optimizer_state,
    set_requires_grad,
)
from i2i_core.precision import autocast
from i2i_core.seeds import rank_seed
from i2i_cyclegan.image_pool import ImagePool

if TYPE_CHECKING:
    from i2i_core.recipe import Recipe
    from i2i_core.training.autotune import Layout

LOSS_NAMES = ("G_A", "G_B", "cycle_A", "cycle_B", "idt_A", "idt_B", "D_A", "D_B")
#: Each network and the kind of component it is (also its table in the recipe: ``model.generator``...).
NETWORK_KINDS = {"G_A": "generator", "G_B": "generator", "D_A": "discriminator", "D_B": "discriminator"}


class CycleGAN(Method):
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
        augment: what every discriminator input goes through, reals and fakes, in both steps (the recipe's
            ``augment`` table, see :mod:`i2i_core.augment`); ``None``: nothing. One probability serves both
            discriminators: with ADA it follows their outputs on reals together. When it is on, the steps also
            return ``aug_p``, the probability the step used.
    """

    recipe_defaults: ClassVar[dict[str, Any]] = {
        "model": {
            "discriminator": {"name": "vanilla", "init_from": ""},
            # per-network starting weights, when the two generators (or discriminators) start differently
            **{net: {"init_from": ""} for net in NETWORK_KINDS},
        },
        "loss": {
            "gan": {"name": "lsgan"},
            "cycle": {"name": "l1", "weight": 10.0},
            "identity": {"name": "l1", "weight": 5.0},
        },
        "train": {"pool_size": 50},
    }
    component_tables: ClassVar[dict[tuple[str, ...], tuple[str, str]]] = {
        ("model", "discriminator"): ("discriminator", "name"),
        ("loss", "gan"): ("loss", "name"),
        ("loss", "cycle"): ("loss", "name"),
        ("loss", "identity"): ("loss", "name"),
    }
    loss_roles: ClassVar[dict[tuple[str, ...], str]] = {
        ("loss", "gan"): "gan",
        ("loss", "cycle"): "reconstruction",
        ("loss", "identity"): "reconstruction",
    }
    network_tables = (("model", "discriminator"),)
    loss_names = LOSS_NAMES
    shown_losses = ("G_A", "G_B", "D_A", "D_B")
    discriminator_losses = ("D_A", "D_B")
    translations: ClassVar[dict[str, Translation]] = {
        "AtoB": Translation("G_A", "real_A", "fake_B"),
        "BtoA": Translation("G_B", "real_B", "fake_A"),
    }
    sample_columns = ("real_A", "fake_B", "rec_A", "real_B", "fake_A", "rec_B")

    @classmethod
    def from_recipe(cls, recipe: Recipe, device: torch.device, layout: Layout) -> CycleGAN:
        specs = {
            net: (kind, recipe[f"model.{kind}.name"], recipe.component_options("model", kind))
            for net, kind in NETWORK_KINDS.items()
        }
        nets = {net: recipe.create("model", kind) for net, (kind, _, _) in specs.items()}  # errors name the table
        gan_loss = recipe.create("loss", "gan")
        method = cls(
            **nets,
            gan_loss=gan_loss,
            cycle_loss=recipe.create("loss", "cycle"),
            identity_loss=recipe.create("loss", "identity"),
            cycle_weight=recipe["loss.cycle.weight"],
            identity_weight=recipe["loss.identity.weight"],
            lr=recipe["train.lr"],
            betas=tuple(recipe["train.betas"]),
            pool_size=recipe["train.pool_size"],
            seed=recipe["train.seed"],
            precision=layout.precision,
            device=device,
            channels_last=layout.channels_last,
            augment=DiscriminatorAugment.from_recipe(recipe.get("augment"), gan_threshold(gan_loss)),
        )
        method.network_specs = specs
        return method

    @classmethod
    def check_recipe(cls, values: Mapping[str, Any], fail: Any) -> None:
        if values["train"]["pool_size"] < 0:
            fail("train.pool_size", f"must be >= 0, got {values['train']['pool_size']}")
        for key in ("cycle", "identity"):
            if values["loss"][key]["weight"] < 0:
                fail(f"loss.{key}.weight", f"must be >= 0, got {values['loss'][key]['weight']}")

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
        augment: DiscriminatorAugment | None = None,
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
        self.network_specs = {net: (kind, "", {}) for net, kind in NETWORK_KINDS.items()}  # from_recipe names them
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.copies = {
            name: ComputeCopy.for_precision(net, precision, channels_last) for name, net in self.networks.items()
        }
        # what the steps call where gradients flow: the compute copies, or their DistributedDataParallel wrappers
        self.trained: dict[str, nn.Module] = {name: c.module for name, c in self.copies.items()}
        self.augment = augment if augment is not None and augment.enabled else None
        if self.augment is not None:
            self.loss_names = (*LOSS_NAMES, "aug_p")

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
        if self.augment is not None:
            self.augment.distributed = True  # every process moves the probability alike

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

    def reseed(self, seed: int, rank: int, step: int) -> None:
        for i, pool in enumerate((self.pool_A, self.pool_B)):
            pool.rng.seed(rank_seed(seed * 2, rank, step, stream=i))

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One step on ``batch["A"]`` and ``batch["B"]``, (B, 3, H, W) in [-1, 1]; returns the eight weighted
        losses (and ``aug_p`` when augmenting)."""
        self._pull_weights(*self.networks)
        real_A, real_B = self._prepare(batch["A"]), self._prepare(batch["B"])
        p = self.augment.p if self.augment is not None else None
        losses = self._generator_step(real_A, real_B)
        losses.update(self._discriminator_step(real_A, real_B, losses.pop("fake_A"), losses.pop("fake_B")))
        return end_step(self.augment, {name: float(losses[name]) for name in LOSS_NAMES}, p, len(real_A))

    def pretrain_step(self, batch: Batch) -> dict[str, float]:
        """Train only the discriminators, against the generators' current outputs (which stay unchanged);
        the image pools fill as usual. Returns ``D_A`` and ``D_B``."""
        self._pull_weights(*self.networks)
        real_A, real_B = self._prepare(batch["A"]), self._prepare(batch["B"])
        with torch.no_grad(), autocast(self.precision, self.device):
            fake_B, fake_A = self.copies["G_A"].module(real_A), self.copies["G_B"].module(real_B)
        p = self.augment.p if self.augment is not None else None
        losses = self._discriminator_step(real_A, real_B, fake_A, fake_B)
        return end_step(self.augment, {name: float(value) for name, value in losses.items()}, p, len(real_A))

    def _augmented(self, images: torch.Tensor) -> torch.Tensor:
        return augmented(self.augment, images, self._prepare)

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
        set_requires_grad(frozen, False)
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
                losses["G_A"] = self._loss(self.gan_loss, D_A(self._augmented(fake_B)), True)
                losses["cycle_A"] = self._loss(self.cycle_loss, G_B(fake_B), real_A) * self.cycle_weight
            self._backward(losses["G_A"] + losses["cycle_A"])
        with autocast(self.precision, self.device):
            fake_A = G_B(real_B)
            losses["G_B"] = self._loss(self.gan_loss, D_B(self._augmented(fake_A)), True)
            losses["cycle_B"] = self._loss(self.cycle_loss, G_A(fake_A), real_B) * self.cycle_weight
        self._backward(losses["G_B"] + losses["cycle_B"])
        self._push_gradients("G_A", "G_B")
        self.scaler.step(self.opt_G)
        set_requires_grad(frozen, True)
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
            loss_D_A = self._discriminator_loss(self.trained["D_A"], real_B, pooled_B)
            loss_D_B = self._discriminator_loss(self.trained["D_B"], real_A, pooled_A)
        self.scaler.scale(loss_D_A + loss_D_B).backward()
        self._push_gradients("D_A", "D_B")
        self.scaler.step(self.opt_D)
        self.scaler.update()
        return {"D_A": loss_D_A.detach(), "D_B": loss_D_B.detach()}

    def _discriminator_loss(self, D: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        """Half the sum of ``D``'s GAN losses on ``real`` and on ``fake``, each as the discriminator sees it;
        adaptive augmentation observes ``D``'s outputs on ``real``."""
        real_logits = D(self._augmented(real))
        loss = self._loss(self.gan_loss, real_logits, True) + self._loss(self.gan_loss, D(self._augmented(fake)), False)
        if self.augment is not None:
            self.augment.observe(real_logits)
        return 0.5 * loss

    _loss = staticmethod(fp32_loss)

    @torch.no_grad()
    def sample_images(self, batch: Batch) -> dict[str, torch.Tensor]:
        """fake/rec images of both directions, in eval mode, for sample grids."""
        real_A, real_B = batch["A"], batch["B"]
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

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {}
        state: dict[str, Any] = {}
        for prefix, optimizer in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            opt_tensors, state[f"{prefix}.param_groups"] = optimizer_state(prefix, optimizer)
            tensors.update(opt_tensors)
        for prefix, pool in (("pool_A", self.pool_A), ("pool_B", self.pool_B)):
            pool_tensors, state[prefix] = pool.state_dict()
            tensors.update({f"{prefix}.{k}": v.cpu() for k, v in pool_tensors.items()})
        state["scaler"] = self.scaler.state_dict()
        if self.augment is not None:
            state["augment"] = self.augment.state_dict()
        return tensors, state

    def load_state_dict(self, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> None:
        for prefix, optimizer in (("opt_G", self.opt_G), ("opt_D", self.opt_D)):
            load_optimizer_state(prefix, optimizer, tensors, state[f"{prefix}.param_groups"])
        for prefix, pool in (("pool_A", self.pool_A), ("pool_B", self.pool_B)):
            pool_tensors = {
                k[len(prefix) + 1 :]: v.to(self.device) for k, v in tensors.items() if k.startswith(prefix + ".")
            }
            pool.load_state_dict(pool_tensors, state[prefix])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.augment is not None and state.get("augment"):  # checkpoints from before augmentation have none
            self.augment.load_state_dict(state["augment"])
