"""The pix2pix method (Isola et al., "Image-to-Image Translation with Conditional Adversarial Networks", CVPR 2017):
paired translation. One generator ``G`` (input -> output) and one conditional discriminator ``D`` that judges an
input and an output together, concatenated on channels; the vanilla GAN loss plus L1 to the paired target. One step
in the reference's order: G's forward, D's step, then G's step against the updated D.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from i2i_core.augment import parse_policy
from i2i_core.errors import I2IError
from i2i_core.host.registry import get_component
from i2i_core.method import Batch, Method, Translation, fp32_loss

if TYPE_CHECKING:
    from i2i_core.precision import Layout
    from i2i_core.recipe import Recipe

LOSS_NAMES = ("G_GAN", "G_L1", "G", "D_real", "D_fake", "D")
DIRECTIONS = {"AtoB": Translation("G", "real_A", "fake_B"), "BtoA": Translation("G", "real_B", "fake_A")}
#: Datasets that give unrelated A and B images: pix2pix refuses them.
UNPAIRED = ("unpaired-folder",)


def pair(source: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
    """What the conditional discriminator reads: ``source`` and ``image`` (B, 3, H, W) as (B, 6, H, W)."""
    return torch.cat([source, image], 1)


class Pix2Pix(Method):
    """pix2pix: a generator ``G`` and a conditional discriminator ``D`` (6 input channels, set by the method), one
    Adam optimiser each; :meth:`train_step` does one step.

    ``pix2pix.direction`` says which image of a pair is the input (``AtoB``: A, the reference's default); the
    method translates, exports and is evaluated in that direction only. ``pix2pix.eval_mode`` becomes the
    generator's ``eval_mode`` option (see :class:`~i2i_pix2pix.generator.Pix2PixUnet`): false, the default,
    translates as the reference's ``test.py`` (batch statistics, dropout on). The recipe's ``loss.gan``
    (``loss(prediction, target_is_real)``, ``bce`` as the reference's vanilla GAN loss) weighs ``loss.gan.weight``
    in G's loss (D's loss is unweighted, as the reference's); ``loss.l1`` (``loss(x, y)``) ``loss.l1.weight``
    (lambda_L1, 100). Every input of the discriminator, in D's step and in G's, goes through the recipe's
    ``augment`` table, a pair transformed as one image (so only ``translation`` and ``cutout``).
    """

    recipe_defaults: ClassVar[dict[str, Any]] = {
        "data": {"dataset": "paired-folder"},
        "model": {
            "generator": {"name": "pix2pix-unet256", "init_from": ""},
            "discriminator": {"name": "patchgan", "init_from": ""},
        },
        "loss": {"gan": {"name": "bce", "weight": 1.0}, "l1": {"name": "l1", "weight": 100.0}},
        "pix2pix": {"direction": "AtoB", "eval_mode": False},
    }
    network_tables: ClassVar[dict[str, str]] = {"G": "model.generator", "D": "model.discriminator"}
    loss_roles: ClassVar[dict[str, str]] = {"loss.gan": "gan", "loss.l1": "reconstruction"}
    #: Both directions a recipe may choose (``pix2pix.direction``); an instance translates in its own only.
    translations: ClassVar[dict[str, Translation]] = DIRECTIONS
    sample_columns = ("real_A", "fake_B", "real_B")
    shown_losses = ("G_GAN", "G_L1", "D")
    discriminator_losses = ("D",)

    def __init__(self, recipe: Recipe, device: torch.device | str, layout: Layout) -> None:
        super().__init__(recipe, device, layout)
        self.direction = recipe["pix2pix.direction"]
        translation = DIRECTIONS[self.direction]
        self.translations = {self.direction: translation}  # type: ignore[misc]
        #: The batch keys of the input and of its paired target ("A", "B"), and the sample column of the output.
        self.source = translation.source.removeprefix("real_")
        self.target = "B" if self.source == "A" else "A"
        self.output = translation.output
        self.sample_columns = (translation.source, translation.output, f"real_{self.target}")  # type: ignore[misc]
        self.optimizers = {"G": self.adam(recipe, "G"), "D": self.adam(recipe, "D")}

    @classmethod
    def network_options(cls, name: str, recipe: Recipe, built: Mapping[str, nn.Module]) -> dict[str, Any]:
        """The generator's ``eval_mode`` (``pix2pix.eval_mode``) and the discriminator's ``in_channels`` (6, an
        input and an output together); a component without the option is refused, naming it."""
        source = recipe.path or recipe.name
        if name == "G":
            generator, eval_mode = recipe["model.generator.name"], recipe["pix2pix.eval_mode"]
            if "eval_mode" in get_component("generator", generator).options():
                return {"eval_mode": eval_mode}
            if not eval_mode:
                raise I2IError(
                    f"{source}: pix2pix.eval_mode is false (translate as the reference's test.py: batch statistics, "
                    f"dropout on) but generator '{generator}' translates in eval mode only: set pix2pix.eval_mode = "
                    "true, or use pix2pix-unet256 / pix2pix-unet128"
                )
            return {}
        discriminator = recipe["model.discriminator.name"]
        if "in_channels" not in get_component("discriminator", discriminator).options():
            raise I2IError(
                f"{source}: model.discriminator: discriminator '{discriminator}' cannot judge pix2pix's pairs (an "
                "input and an output, 6 channels): it has no in_channels option; patchgan and pixel have one"
            )
        return {"in_channels": 6}

    @classmethod
    def check_recipe(cls, values: Mapping[str, Any], fail: Any) -> None:
        loss, direction = values["loss"], values["pix2pix"]["direction"]
        for key in ("gan", "l1"):
            if loss[key]["weight"] < 0:
                fail(f"loss.{key}.weight", f"must be >= 0, got {loss[key]['weight']}")
        if loss["gan"]["weight"] == 0 and loss["l1"]["weight"] == 0:
            fail("loss.gan.weight", "and loss.l1.weight are both 0: nothing would train the generator")
        if direction not in DIRECTIONS:
            fail("pix2pix.direction", f"must be {' or '.join(DIRECTIONS)}, got {direction!r}")
        if values["eval"]["direction"] != direction:
            fail(
                "eval.direction",
                f"is {values['eval']['direction']!r} but pix2pix learns {direction} (pix2pix.direction): set both alike",
            )
        if values["data"]["dataset"] in UNPAIRED:
            fail(
                "data.dataset",
                f"is '{values['data']['dataset']}', whose A and B images are not pairs; pix2pix learns from pairs: "
                "'paired-folder' (<split>A/x.jpg with <split>B/x.png) or 'aligned' (A and B side by side)",
            )
        if "in_channels" in values["model"]["discriminator"]:
            fail("model.discriminator.in_channels", "is set by the method: 6, an input and an output together")
        if "eval_mode" in values["model"]["generator"]:
            fail("model.generator.eval_mode", "is set by the method from pix2pix.eval_mode: set that instead")
        policy = values["augment"]["policy"]
        if "color" in parse_policy(policy):
            fail(
                "augment.policy",
                f"is {policy!r}: 'color' would mix the channels of a pair's input and output; use translation, cutout",
            )

    def start_pair(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Start a step; returns the input and its paired target, prepared."""
        real_A, real_B = self.start_step(batch)
        return (real_A, real_B) if self.source == "A" else (real_B, real_A)

    def train_step(self, batch: Batch) -> dict[str, float]:
        """One step on a batch of pairs ``batch["A"]``, ``batch["B"]`` (B, 3, H, W) in [-1, 1]: G's forward, D's
        step, G's step. Returns the losses of :data:`LOSS_NAMES` (``D`` the mean of ``D_real`` and ``D_fake``,
        ``G`` the sum of ``G_GAN`` and ``G_L1``), and ``aug_p`` when augmenting."""
        source, target = self.start_pair(batch)
        with self.autocast():
            fake = self.trained["G"](source)
        losses = self._discriminator_step(source, target, fake.detach())
        self.pull_weights("D")  # G's adversarial loss uses the updated discriminator
        losses.update(self._generator_step(source, target, fake))
        return self.finish_step({name: losses[name] for name in LOSS_NAMES}, source)

    def pretrain_step(self, batch: Batch) -> dict[str, float]:
        """Train only the discriminator against the generator's current outputs; returns ``D_real``, ``D_fake``
        and ``D``."""
        source, target = self.start_pair(batch)
        with torch.no_grad(), self.autocast():
            fake = self.copies["G"].module(source)
        return self.finish_step(self._discriminator_step(source, target, fake), source)

    def _discriminator_step(
        self, source: torch.Tensor, target: torch.Tensor, fake: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        D = self.trained["D"]
        with self.optimizing("D"):
            with self.autocast():
                loss_fake = fp32_loss(self.losses["gan"], D(self.augmented(pair(source, fake))), False)
                real_logits = D(self.augmented(pair(source, target)))
                loss_real = fp32_loss(self.losses["gan"], real_logits, True)
                loss = (loss_fake + loss_real) * 0.5
            self.observe_reals(real_logits)
            self.backward(loss)
        return {"D_real": loss_real.detach(), "D_fake": loss_fake.detach(), "D": loss.detach()}

    def _generator_step(self, source: torch.Tensor, target: torch.Tensor, fake: torch.Tensor) -> dict[str, Any]:
        zero = torch.zeros((), device=self.device)
        with self.frozen("D") as D, self.optimizing("G"):
            with self.autocast():
                gan = (
                    self.loss("gan", D["D"](self.augmented(pair(source, fake))), True) if self.weights["gan"] else zero
                )
                l1 = self.loss("l1", fake, target) if self.weights["l1"] else zero
                loss = gan + l1
            self.backward(loss)
        return {"G_GAN": gan.detach(), "G_L1": l1.detach(), "G": loss.detach()}

    @torch.no_grad()
    def sample_images(self, batch: Batch) -> dict[str, torch.Tensor]:
        """G's translations of the batch's inputs, as the run translates (see ``model.generator.eval_mode``);
        dropout draws nothing from the training's random numbers."""
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices), self.evaluating("G") as nets:
            return {self.output: nets["G"](self.prepare(batch[self.source]))}
