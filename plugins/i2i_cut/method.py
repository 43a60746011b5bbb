"""The CUT and FastCUT methods (Park et al., "Contrastive Learning for Unpaired Image-to-Image Translation",
ECCV 2020): one generator ``G`` (A -> B), one discriminator ``D`` (of domain B) and a patch head ``F``; a GAN
loss plus PatchNCE between each source and its translation. One step in the reference's order.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from i2i_core.errors import I2IError
from i2i_core.method import Batch, Method, NetworkSpec, Translation, fp32_loss
from i2i_core.seeds import rank_seed
from i2i_cut.draws import DeviceDraws, PatchDraws
from i2i_cut.features import feature_layers, sample_patches
from i2i_cut.init import INIT_TYPES, xavier_init

if TYPE_CHECKING:
    from i2i_core.precision import Layout
    from i2i_core.recipe import Recipe

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
    """CUT: a generator ``G`` (declaring its features, see :mod:`i2i_cut.features`), a discriminator ``D`` of
    domain B and a patch head ``F`` (a list of (N, C_l) -> a list of (N, D) embeddings, one per compared layer),
    one Adam optimiser each; :meth:`train_step` does one step.

    The recipe's ``loss.gan`` (``loss(prediction, target_is_real)``) and ``loss.nce`` (``loss(query, key)``
    over (B, N, D) embeddings) are weighted by their ``weight``; ``nce.layers`` are the generator's feature
    layers compared, ``nce.num_patches`` positions of each per step; ``nce.idt`` adds PatchNCE between real B
    and G(real B) (CUT; the two NCE terms are averaged); ``nce.flip_equivariance`` mirrors the batch before G
    with probability 1/2 and the query features back (FastCUT). :attr:`draws` (seeded by ``train.seed``) draws
    the patch positions and flips: any object with ``permutation(n)`` and ``flip()`` may replace it. Every input
    of the discriminator, reals and fakes, in D's step and in G's, goes through the recipe's ``augment`` table.
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
    network_tables: ClassVar[dict[str, str]] = {net: f"model.{kind}" for net, kind in NETWORK_KINDS.items()}
    loss_roles: ClassVar[dict[str, str]] = {"loss.gan": "gan", "loss.nce": "contrastive"}
    translations: ClassVar[dict[str, Translation]] = {"AtoB": Translation("G", "real_A", "fake_B")}
    sample_columns = ("real_A", "fake_B", "real_B", "idt_B")
    shown_losses = ("G_GAN", "NCE", "D")
    discriminator_losses = ("D",)
    graph_safe = True

    def __init__(self, recipe: Recipe, device: torch.device | str, layout: Layout) -> None:
        super().__init__(recipe, device, layout)
        self.layers, _ = _feature_layers(recipe, self.networks["G"])
        self.num_patches, self.idt = recipe["nce.num_patches"], recipe["nce.idt"]
        self.flip_equivariance = recipe["nce.flip_equivariance"]
        self.optimizers = {name: self.adam(recipe, name) for name in self.networks}
        self.draws: Any = DeviceDraws(self.device) if self.graphs else PatchDraws(recipe["train.seed"])
        self.trained["G"] = GeneratorPasses(self.copies["G"].module)

    @classmethod
    def network_options(cls, name: str, recipe: Recipe, built: Mapping[str, nn.Module]) -> dict[str, Any]:
        """The patch head's ``channels``: the widths of the generator's compared feature layers."""
        return {"channels": _feature_layers(recipe, built["G"])[1]} if name == "F" else {}

    @classmethod
    def build_networks(cls, recipe: Recipe) -> tuple[dict[str, nn.Module], dict[str, NetworkSpec]]:
        """The networks, with the reference's Xavier initialisation when ``init.type`` is ``xavier``."""
        networks, specs = super().build_networks(recipe)
        if recipe["init.type"] == "xavier":
            for net in networks.values():
                xavier_init(net, recipe["init.gain"])
        return networks, specs

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

    def reseed(self, seed: int, rank: int, step: int) -> None:
        self.draws.seed(rank_seed(seed, rank, step, stream=1))

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One step on ``batch["A"]`` and ``batch["B"]``, (B, 3, H, W) in [-1, 1]: G's forward, D's step, then
        G's and F's step. Returns the losses of :data:`LOSS_NAMES` (``D`` is the mean of ``D_real`` and
        ``D_fake``; ``NCE_Y`` is 0 without ``idt``), and ``aug_p`` when augmenting."""
        real_A, real_B = self.start_step(batch)
        real = torch.cat([real_A, real_B]) if self.idt else real_A
        flipped = self.flip_equivariance and self.draws.flip()
        with self.autocast():
            fake = self.trained["G"](mirrored(real, flipped))
        fake_B, idt_B = fake[: len(real_A)], fake[len(real_A) :]
        losses = self._discriminator_step(real_B, fake_B.detach())
        self.pull_weights("D")  # G's adversarial loss uses the updated discriminator
        losses.update(self._generator_step(real_A, real_B, fake_B, idt_B, flipped))
        return self.finish_step({name: losses[name] for name in LOSS_NAMES}, real_B)

    def pretrain_step(self, batch: Batch) -> dict[str, float]:
        """Train only the discriminator against the generator's current outputs; returns ``D_real``, ``D_fake``
        and ``D``."""
        real_A, real_B = self.start_step(batch)
        with torch.no_grad(), self.autocast():
            fake_B = self.copies["G"].module(real_A)
        return self.finish_step(self._discriminator_step(real_B, fake_B), real_B)

    def _discriminator_step(self, real_B: torch.Tensor, fake_B: torch.Tensor) -> dict[str, torch.Tensor]:
        D = self.trained["D"]
        with self.optimizing("D"):
            with self.autocast():
                fake = fp32_loss(self.losses["gan"], D(self.augmented(fake_B)), False)  # unweighted, as the reference
                real_logits = D(self.augmented(real_B))
                real = fp32_loss(self.losses["gan"], real_logits, True)
                loss = (fake + real) * 0.5
            self.observe_reals(real_logits)
            self.backward(loss)
        return {"D_real": real.detach(), "D_fake": fake.detach(), "D": loss.detach()}

    def _generator_step(
        self,
        real_A: torch.Tensor,
        real_B: torch.Tensor,
        fake_B: torch.Tensor,
        idt_B: torch.Tensor,
        flipped: bool | torch.Tensor,
    ) -> dict[str, torch.Tensor]:
        zero = torch.zeros((), device=self.device)
        nce_weight = self.weights["nce"]
        with self.frozen("D") as D, self.optimizing("G", "F"):
            with self.autocast():
                gan = self.loss("gan", D["D"](self.augmented(fake_B)), True) if self.weights["gan"] else zero
                nce = self._nce(real_A, fake_B, flipped) if nce_weight else zero
                nce_Y = self._nce(real_B, idt_B, flipped) if nce_weight and self.idt else zero
                loss = gan + ((nce + nce_Y) * 0.5 if self.idt else nce)
            self.backward(loss)
        return {"G_GAN": gan.detach(), "NCE": nce.detach(), "NCE_Y": nce_Y.detach(), "G": loss.detach()}

    def _nce(self, source: torch.Tensor, target: torch.Tensor, flipped: bool | torch.Tensor) -> torch.Tensor:
        """PatchNCE between ``source`` (B, 3, H, W) and its translation ``target``, averaged over the layers and
        weighted. Queries are the features of ``target`` (mirrored back when the batch was mirrored), keys those
        of ``source``; each layer's positions are drawn on the keys and reused for the queries."""
        G, F = self.trained["G"], self.trained["F"]
        queries = G(target, self.layers)
        queries = [mirrored(q, flipped) for q in queries]
        with torch.no_grad():  # keys are constants
            keys = G(source, self.layers)
            positions = [self.draws.permutation(k.shape[2] * k.shape[3])[: self.num_patches].to(k.device) for k in keys]
            key_embeddings = F([sample_patches(k, p) for k, p in zip(keys, positions, strict=True)])
        query_embeddings = F([sample_patches(q, p) for q, p in zip(queries, positions, strict=True)])
        images = len(source)
        losses = [
            fp32_loss(self.losses["nce"], q.view(images, -1, q.shape[-1]), k.view(images, -1, k.shape[-1]))
            for q, k in zip(query_embeddings, key_embeddings, strict=True)
        ]
        return torch.stack(losses).mean() * self.weights["nce"]

    @torch.no_grad()
    def sample_images(self, batch: Batch) -> dict[str, torch.Tensor]:
        """G(real_A) and G(real_B), for sample grids."""
        with self.evaluating("G") as nets:
            return {"fake_B": nets["G"](self.prepare(batch["A"])), "idt_B": nets["G"](self.prepare(batch["B"]))}

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, state = super().state_dict()
        tensors["draws"] = self.draws.state()
        return tensors, state

    def load_state_dict(self, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> None:
        super().load_state_dict(tensors, state)
        self.draws.load_state(tensors["draws"])


def mirrored(images: torch.Tensor, flipped: bool | torch.Tensor) -> torch.Tensor:
    """``images`` (B, C, H, W) mirrored left to right when ``flipped``: a bool, or a bool tensor on the device
    (:class:`~i2i_cut.draws.DeviceDraws`), then without a Python branch."""
    if isinstance(flipped, torch.Tensor):
        return torch.where(flipped, images.flip(3), images)
    return images.flip(3) if flipped else images


def _feature_layers(recipe: Recipe, generator: nn.Module) -> tuple[list[int], list[int]]:
    """The generator's compared feature layers (``nce.layers``, or its own) and their widths; errors name the
    recipe."""
    try:
        return feature_layers(generator, recipe["model.generator.name"], recipe["nce.layers"])
    except I2IError as exc:
        raise I2IError(f"{recipe.path or recipe.name}: {exc}") from None


class FastCUT(CUT):
    """FastCUT: CUT without the identity NCE term, with flip equivariance, NCE weight 10, 150 + 50 epochs."""

    recipe_defaults: ClassVar[dict[str, Any]] = {
        **CUT.recipe_defaults,
        "loss": {"gan": {"name": "lsgan", "weight": 1.0}, "nce": {"name": "patchnce", "weight": 10.0}},
        "nce": {**CUT.recipe_defaults["nce"], "idt": False, "flip_equivariance": True},
        "train": {"epochs": 150, "decay_epochs": 50},
    }
