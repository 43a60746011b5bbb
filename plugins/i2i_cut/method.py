"""The CUT and FastCUT methods (Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation",
ECCV 2020): one generator ``G`` (A -> B), one discriminator ``D`` (of domain B) and a patch head ``F``; a GAN
loss plus PatchNCE between each source and its translation. One step in the reference's order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from i2i_core.augment import DiscriminatorAugment, augmented, end_step, gan_threshold
from i2i_core.compute_copy import ComputeCopy
from i2i_core.errors import I2IError
from i2i_core.host.registry import create
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
from i2i_cut.draws import PatchDraws
from i2i_cut.features import feature_layers, sample_patches
from i2i_cut.init import INIT_TYPES, xavier_init

if TYPE_CHECKING:
    from i2i_core.recipe import Recipe
    from i2i_core.training.autotune import Layout

LOSS_NAMES = ("G_GAN", "NCE", "NCE_Y", "G", "D_real", "D_fake", "D")
#: Each network and its recipe table (``model.<kind>``), whose name is its component kind.
NETWORK_KINDS = {"G": "generator", "D": "discriminator", "F": "head"}


class GeneratorPasses(nn.Module):
    """A generator's two passes behind one ``forward``, so that ``DistributedDataParallel`` sees both: ``(x)``
    translates, ``(x, layers)`` returns the encoder features of :mod:`i2i_cut.features`."""

    def __init__(self, generator: nn.Module) -> None:
        super().__init__()
        self.generator = generator

    def forward(self, x: torch.Tensor, layers: Sequence[int] | None = None) -> torch.Tensor | list[torch.Tensor]:
        return self.generator(x) if layers is None else self.generator.features(x, layers)


class CUT(Method):
    """CUT: a generator, a discriminator and a patch head, their three Adam optimisers; :meth:`train_step` does
    one step.

    Args:
        G, D, F: the generator (declaring its features, see :mod:`i2i_cut.features`), the discriminator of domain
            B and the patch head (a list of (N, C_l) -> a list of (N, D) embeddings, one per layer of ``layers``).
        gan_loss: ``loss(prediction, target_is_real)``, weighted by ``gan_weight``.
        nce_loss: ``loss(query, key)`` over (B, N, D) embeddings, weighted by ``nce_weight``.
        layers: the generator's feature layers compared; ``num_patches`` positions of each per step.
        idt: also PatchNCE between real B and G(real B) (CUT); the two NCE terms are averaged.
        flip_equivariance: with probability 1/2 mirror the batch before G and mirror the query features back
            (FastCUT).
        lr, betas: Adam settings, one optimiser per network.
        seed: seed of :attr:`draws`, the patch positions and flips (any object with ``permutation(n)`` and
            ``flip()`` may replace it).
        precision, channels_last: as CycleGAN's: ``fp32``, ``bf16`` (compute copies) or ``fp16`` (autocast and
            loss scaling); the optimisers step fp32 weights.
        augment: what every input of the discriminator goes through, reals and fakes, in D's step and in G's
            (the recipe's ``augment`` table, see :mod:`i2i_core.augment`); ``None``: nothing. When it is on, the
            steps also return ``aug_p``, the probability the step used.
    """

    recipe_defaults: ClassVar[dict[str, Any]] = {
        "model": {
            "discriminator": {"name": "patchgan", "init_from": ""},
            "head": {"name": "patch-mlp", "init_from": ""},
        },
        "loss": {"gan": {"name": "lsgan", "weight": 1.0}, "nce": {"name": "patchnce", "weight": 1.0}},
        # layers = []: the generator's own feature_layers (anti-aliased ResNets: 0, 4, 8, 12, 16, the reference's)
        "nce": {"layers": [], "num_patches": 256, "idt": True, "flip_equivariance": False},
        "init": {"type": "xavier", "gain": 0.02},
        "train": {"epochs": 200, "decay_epochs": 200},
    }
    component_tables: ClassVar[dict[tuple[str, ...], tuple[str, str]]] = {
        ("model", "discriminator"): ("discriminator", "name"),
        ("model", "head"): ("head", "name"),
        ("loss", "gan"): ("loss", "name"),
        ("loss", "nce"): ("loss", "name"),
    }
    loss_roles: ClassVar[dict[tuple[str, ...], str]] = {("loss", "gan"): "gan", ("loss", "nce"): "contrastive"}
    network_tables = (("model", "discriminator"),)
    loss_names = LOSS_NAMES
    shown_losses = ("G_GAN", "NCE", "D")
    discriminator_losses = ("D",)
    translations: ClassVar[dict[str, Translation]] = {"AtoB": Translation("G", "real_A", "fake_B")}
    sample_columns = ("real_A", "fake_B", "real_B", "idt_B")

    @classmethod
    def from_recipe(cls, recipe: Recipe, device: torch.device, layout: Layout) -> CUT:
        source = str(recipe.path or recipe.name)
        G, D = recipe.create("model", "generator"), recipe.create("model", "discriminator")
        try:
            layers, channels = feature_layers(G, recipe["model.generator.name"], recipe["nce.layers"])
        except I2IError as exc:
            raise I2IError(f"{source}: {exc}") from None
        head_options = {**recipe.component_options("model", "head"), "channels": channels}
        try:
            F = create("head", recipe["model.head.name"], **head_options)
        except I2IError as exc:
            raise I2IError(f"{source}: model.head: {exc}") from exc
        if recipe["init.type"] == "xavier":
            for net in (G, D, F):
                xavier_init(net, recipe["init.gain"])
        gan_loss = recipe.create("loss", "gan")
        method = cls(
            G,
            D,
            F,
            gan_loss=gan_loss,
            nce_loss=recipe.create("loss", "nce"),
            gan_weight=recipe["loss.gan.weight"],
            nce_weight=recipe["loss.nce.weight"],
            layers=layers,
            num_patches=recipe["nce.num_patches"],
            idt=recipe["nce.idt"],
            flip_equivariance=recipe["nce.flip_equivariance"],
            lr=recipe["train.lr"],
            betas=tuple(recipe["train.betas"]),
            seed=recipe["train.seed"],
            precision=layout.precision,
            device=device,
            channels_last=layout.channels_last,
            augment=DiscriminatorAugment.from_recipe(recipe.get("augment"), gan_threshold(gan_loss)),
        )
        method.network_specs = {
            "G": ("generator", recipe["model.generator.name"], recipe.component_options("model", "generator")),
            "D": (
                "discriminator",
                recipe["model.discriminator.name"],
                recipe.component_options("model", "discriminator"),
            ),
            "F": ("head", recipe["model.head.name"], head_options),
        }
        return method

    @classmethod
    def check_recipe(cls, values: Mapping[str, Any], fail: Any) -> None:
        loss, nce, init = values["loss"], values["nce"], values["init"]
        for key in ("gan", "nce"):
            if loss[key]["weight"] < 0:
                fail(f"loss.{key}.weight", f"must be >= 0, got {loss[key]['weight']}")
        if loss["gan"]["weight"] == 0 and loss["nce"]["weight"] == 0:
            fail("loss.gan.weight", "and loss.nce.weight are both 0: nothing would train the generator")
        layers = nce["layers"]
        if not all(isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers):
            fail("nce.layers", f"must be feature layer numbers (integers >= 0), got {layers!r}")
        if len(set(layers)) != len(layers):
            fail("nce.layers", f"names a layer twice: {layers!r}")
        if nce["num_patches"] < 1:
            fail("nce.num_patches", f"must be >= 1, got {nce['num_patches']}")
        if "channels" in values["model"]["head"]:
            fail("model.head.channels", "is set by the method, from the widths of the generator's feature layers")
        if init["type"] not in INIT_TYPES:
            fail("init.type", f"must be one of {', '.join(INIT_TYPES)}, got {init['type']!r}")
        if init["gain"] <= 0:
            fail("init.gain", f"must be > 0, got {init['gain']}")
        if init["type"] == "xavier" and values["model"]["generator"].get("pretrained"):
            fail(
                "init.type",
                "is 'xavier', which would overwrite the generator's pretrained weights; set init.type = \"component\"",
            )

    def __init__(
        self,
        G: nn.Module,
        D: nn.Module,
        F: nn.Module,
        gan_loss: Callable[[torch.Tensor, bool], torch.Tensor],
        nce_loss: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
        gan_weight: float = 1.0,
        nce_weight: float = 1.0,
        layers: Sequence[int] = (0, 4, 8, 12, 16),
        num_patches: int = 256,
        idt: bool = True,
        flip_equivariance: bool = False,
        lr: float = 2e-4,
        betas: tuple[float, float] = (0.5, 0.999),
        seed: int = 0,
        precision: str = "fp32",
        device: torch.device | str = "cpu",
        channels_last: bool | None = None,
        augment: DiscriminatorAugment | None = None,
    ) -> None:
        self.device = torch.device(device)
        self.G, self.D, self.F = (n.to(self.device) for n in (G, D, F))
        self.gan_loss, self.nce_loss = gan_loss, nce_loss
        self.gan_weight, self.nce_weight = gan_weight, nce_weight
        self.layers, self.num_patches = list(layers), num_patches
        self.idt, self.flip_equivariance = idt, flip_equivariance
        self.precision = precision
        # fused: one kernel for all parameters (10x faster than the per-parameter loop on a CPU)
        self.optimizers = {
            name: torch.optim.Adam(net.parameters(), lr, betas, fused=True) for name, net in self.networks.items()
        }
        self.draws: Any = PatchDraws(seed)
        self.network_specs = {net: (kind, "", {}) for net, kind in NETWORK_KINDS.items()}  # from_recipe names them
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=precision == "fp16")
        self.copies = {
            name: ComputeCopy.for_precision(net, precision, channels_last) for name, net in self.networks.items()
        }
        # what the steps call where gradients flow: the compute copies, or their DistributedDataParallel wrappers
        self.trained: dict[str, nn.Module] = {
            "G": GeneratorPasses(self.copies["G"].module),
            "D": self.copies["D"].module,
            "F": self.copies["F"].module,
        }
        self.augment = augment if augment is not None and augment.enabled else None
        if self.augment is not None:
            self.loss_names = (*LOSS_NAMES, "aug_p")

    @property
    def networks(self) -> dict[str, nn.Module]:
        return {"G": self.G, "D": self.D, "F": self.F}

    def distribute(self) -> None:
        """Wrap the compute copies in ``DistributedDataParallel`` (the process group must exist): gradients are
        averaged over the processes, and every process starts from rank 0's master weights."""
        import torch.distributed as dist
        from torch.nn.parallel import DistributedDataParallel

        with torch.no_grad():
            for net in self.networks.values():
                for tensor in itertools.chain(net.parameters(), net.buffers()):
                    dist.broadcast(tensor, 0)
        ids = [self.device.index] if self.device.type == "cuda" else None
        self.trained = {name: DistributedDataParallel(module, device_ids=ids) for name, module in self.trained.items()}
        if self.augment is not None:
            self.augment.distributed = True  # every process moves the probability alike

    def set_lr(self, lr: float) -> None:
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                group["lr"] = lr

    def train(self, mode: bool = True) -> None:
        for compute_copy in self.copies.values():
            compute_copy.train(mode)

    def reseed(self, seed: int, rank: int, step: int) -> None:
        self.draws.seed(rank_seed(seed, rank, step, stream=1))

    def _prepare(self, images: torch.Tensor) -> torch.Tensor:
        return self.copies["G"].prepare(images.to(self.device))

    def _pull_weights(self) -> None:
        for compute_copy in self.copies.values():
            compute_copy.pull_weights()

    def _step(self, *names: str) -> None:
        """Hand the compute copies' gradients to the master weights of ``names`` and step their optimisers."""
        for name in names:
            self.copies[name].push_gradients()
            self.scaler.step(self.optimizers[name])

    _loss = staticmethod(fp32_loss)

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One step on ``batch["A"]`` and ``batch["B"]``, (B, 3, H, W) in [-1, 1]: G's forward, D's step, then
        G's and F's step. Returns the losses of :data:`LOSS_NAMES` (``D`` is the mean of ``D_real`` and
        ``D_fake``; ``NCE_Y`` is 0 without ``idt``), and ``aug_p`` when augmenting."""
        self._pull_weights()
        real_A, real_B = self._prepare(batch["A"]), self._prepare(batch["B"])
        real = torch.cat([real_A, real_B]) if self.idt else real_A
        flipped = self.flip_equivariance and self.draws.flip()
        with autocast(self.precision, self.device):
            fake = self.trained["G"](real.flip(3) if flipped else real)
        fake_B, idt_B = fake[: len(real_A)], fake[len(real_A) :]
        p = self.augment.p if self.augment is not None else None
        losses = self._discriminator_step(real_B, fake_B.detach())
        self.copies["D"].pull_weights()  # G's adversarial loss uses the updated discriminator
        losses.update(self._generator_step(real_A, real_B, fake_B, idt_B, flipped))
        self.scaler.update()
        return end_step(self.augment, {name: float(losses[name]) for name in LOSS_NAMES}, p, len(real_B))

    def pretrain_step(self, batch: Batch) -> dict[str, float]:
        """Train only the discriminator against the generator's current outputs; returns ``D_real``, ``D_fake``
        and ``D``."""
        self._pull_weights()
        real_A, real_B = self._prepare(batch["A"]), self._prepare(batch["B"])
        with torch.no_grad(), autocast(self.precision, self.device):
            fake_B = self.copies["G"].module(real_A)
        p = self.augment.p if self.augment is not None else None
        losses = self._discriminator_step(real_B, fake_B)
        self.scaler.update()
        return end_step(self.augment, {name: float(value) for name, value in losses.items()}, p, len(real_B))

    def _augmented(self, images: torch.Tensor) -> torch.Tensor:
        return augmented(self.augment, images, self._prepare)

    def _discriminator_step(self, real_B: torch.Tensor, fake_B: torch.Tensor) -> dict[str, torch.Tensor]:
        self.optimizers["D"].zero_grad(set_to_none=True)
        D = self.trained["D"]
        with autocast(self.precision, self.device):
            fake = self._loss(self.gan_loss, D(self._augmented(fake_B)), False)
            real_logits = D(self._augmented(real_B))
            real = self._loss(self.gan_loss, real_logits, True)
            loss = (fake + real) * 0.5
        if self.augment is not None:
            self.augment.observe(real_logits)
        self.scaler.scale(loss).backward()
        self._step("D")
        return {"D_real": real.detach(), "D_fake": fake.detach(), "D": loss.detach()}

    def _generator_step(
        self, real_A: torch.Tensor, real_B: torch.Tensor, fake_B: torch.Tensor, idt_B: torch.Tensor, flipped: bool
    ) -> dict[str, torch.Tensor]:
        D = self.copies["D"].module  # frozen, it runs unwrapped: it gets no gradients to average in this step
        set_requires_grad([D], False)
        self.optimizers["G"].zero_grad(set_to_none=True)
        self.optimizers["F"].zero_grad(set_to_none=True)
        zero = torch.zeros((), device=self.device)
        with autocast(self.precision, self.device):
            gan = (
                self._loss(self.gan_loss, D(self._augmented(fake_B)), True) * self.gan_weight
                if self.gan_weight
                else zero
            )
            nce = self._nce(real_A, fake_B, flipped) if self.nce_weight else zero
            nce_Y = self._nce(real_B, idt_B, flipped) if self.nce_weight and self.idt else zero
            loss = gan + ((nce + nce_Y) * 0.5 if self.idt else nce)
        self.scaler.scale(loss).backward()
        self._step("G", "F")
        set_requires_grad([D], True)
        return {"G_GAN": gan.detach(), "NCE": nce.detach(), "NCE_Y": nce_Y.detach(), "G": loss.detach()}

    def _nce(self, source: torch.Tensor, target: torch.Tensor, flipped: bool) -> torch.Tensor:
        """PatchNCE between ``source`` (B, 3, H, W) and its translation ``target``, averaged over the layers and
        weighted. Queries are the features of ``target`` (mirrored back when the batch was mirrored), keys those
        of ``source``; each layer's positions are drawn on the keys and reused for the queries."""
        G, F = self.trained["G"], self.trained["F"]
        queries = G(target, self.layers)
        if flipped:
            queries = [q.flip(3) for q in queries]
        with torch.no_grad():  # keys are constants
            keys = G(source, self.layers)
            positions = [self.draws.permutation(k.shape[2] * k.shape[3])[: self.num_patches].to(k.device) for k in keys]
            key_embeddings = F([sample_patches(k, p) for k, p in zip(keys, positions, strict=True)])
        query_embeddings = F([sample_patches(q, p) for q, p in zip(queries, positions, strict=True)])
        images = len(source)
        losses = [
            self._loss(self.nce_loss, q.view(images, -1, q.shape[-1]), k.view(images, -1, k.shape[-1]))
            for q, k in zip(query_embeddings, key_embeddings, strict=True)
        ]
        return torch.stack(losses).mean() * self.nce_weight

    @torch.no_grad()
    def sample_images(self, batch: Batch) -> dict[str, torch.Tensor]:
        """G(real_A) and G(real_B), in eval mode, for sample grids."""
        self.copies["G"].pull_weights()
        G = self.copies["G"].module
        self.train(False)
        try:
            with autocast(self.precision, self.device):
                images = {"fake_B": G(self._prepare(batch["A"])), "idt_B": G(self._prepare(batch["B"]))}
        finally:
            self.train(True)
        return {k: v.float().contiguous().clamp(-1, 1) for k, v in images.items()}

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors: dict[str, torch.Tensor] = {"draws": self.draws.state()}
        state: dict[str, Any] = {"scaler": self.scaler.state_dict()}
        if self.augment is not None:
            state["augment"] = self.augment.state_dict()
        for name, optimizer in self.optimizers.items():
            opt_tensors, state[f"opt_{name}.param_groups"] = optimizer_state(f"opt_{name}", optimizer)
            tensors.update(opt_tensors)
        return tensors, state

    def load_state_dict(self, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> None:
        for name, optimizer in self.optimizers.items():
            load_optimizer_state(f"opt_{name}", optimizer, tensors, state[f"opt_{name}.param_groups"])
        self.draws.load_state(tensors["draws"])
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.augment is not None and state.get("augment"):  # checkpoints from before augmentation have none
            self.augment.load_state_dict(state["augment"])


class FastCUT(CUT):
    """FastCUT: CUT without the identity NCE term, with flip equivariance, NCE weight 10, 150 + 50 epochs."""

    recipe_defaults: ClassVar[dict[str, Any]] = {
        **CUT.recipe_defaults,
        "loss": {"gan": {"name": "lsgan", "weight": 1.0}, "nce": {"name": "patchnce", "weight": 10.0}},
        "nce": {**CUT.recipe_defaults["nce"], "idt": False, "flip_equivariance": True},
        "train": {"epochs": 150, "decay_epochs": 50},
    }
