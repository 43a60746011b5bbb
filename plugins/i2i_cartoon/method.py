"""The ``cartoon`` method: White-box cartoonization's representations (Wang & Yu, CVPR 2020) with CartoonGAN's and
AnimeGAN's extra fakes, and no pretrained network.

One generator ``G`` (photo -> cartoon) and two discriminators of the same recipe table: ``D_surface`` judges the
*surface* (a self-guided filter of cartoons against one of translations: flat shading), ``D_texture`` the
*texture* (a random-weight grayscale, the same draw for both: outlines and strokes). Besides the translations,
``D_surface`` is shown grayscale cartoons as fakes (colour must count) and ``D_texture`` edge-smoothed cartoons
(crisp outlines must count). The generator also moves towards its own output flattened by superpixels
(*structure*, a stop-gradient target), keeps the photo's content (``loss.content``, by default L1 between 4 x 4
block means) and colours (``loss.color``), and pays a total variation. The first ``cartoon.warmup_steps`` steps
train the generator alone to reproduce its input.

A generator with drawing stages (``draw``: outlines and posterization, see the ResNet and U-Net generators) is run
as ``G(photo, draw=False)`` then ``G.draw``: the discriminators judge the drawn output, while the losses that
compare with the photo or smooth (structure, content, colour, total variation) read the network's colours before
the ink and the rounding, which they would otherwise fight.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import torch
import torch.nn.functional as F

from i2i_cartoon.representations import (
    draw_gray_weights,
    edge_smoothed,
    quantize_colours,
    random_gray,
    superpixel_flatten,
    surface,
)
from i2i_core.method import Batch, Method, Translation
from i2i_core.seeds import rank_seed

if TYPE_CHECKING:
    from i2i_core.precision import Layout
    from i2i_core.recipe import Recipe

LOSS_NAMES = ("G_surface", "G_texture", "structure", "content", "color", "tv", "G", "D_surface", "D_texture")


class Cartoon(Method):
    """The cartoon method; :meth:`train_step` does one step (see the module)."""

    recipe_defaults: ClassVar[dict[str, Any]] = {
        "model": {"discriminator": {"name": "patchgan", "init_from": ""}},
        "loss": {
            "gan": {"name": "lsgan"},
            "content": {"name": "lowpass-l1", "weight": 10.0},
            "structure": {"name": "l1", "weight": 2.0},
            "color": {"name": "yuv", "weight": 0.0},
            "tv": {"name": "tv", "weight": 0.1},
        },
        "cartoon": {
            "surface_weight": 0.1,
            "texture_weight": 1.0,
            "surface_radius": 5,
            "surface_eps": 0.2,
            "gray_fakes": True,
            "edge_fakes": True,
            "edge_threshold": 0.2,
            "segments": 200,
            "compactness": 40.0,
            "colours": 0,
            "warmup_steps": 0,
        },
    }
    network_tables: ClassVar[dict[str, str]] = {
        "G": "model.generator",
        "D_surface": "model.discriminator",
        "D_texture": "model.discriminator",
    }
    loss_roles: ClassVar[dict[str, str]] = {
        "loss.gan": "gan",
        "loss.content": "reconstruction",
        "loss.structure": "reconstruction",
        "loss.color": "reconstruction",
        "loss.tv": "reconstruction",
    }
    translations: ClassVar[dict[str, Translation]] = {"AtoB": Translation("G", "real_A", "fake_B")}
    sample_columns = ("real_A", "fake_B", "structure_B", "real_B")
    shown_losses = ("G_surface", "G_texture", "content", "D_surface", "D_texture")
    discriminator_losses = ("D_surface", "D_texture")

    def __init__(self, recipe: Recipe, device: torch.device | str, layout: Layout) -> None:
        super().__init__(recipe, device, layout)
        self.optimizers = {"G": self.adam(recipe, "G"), "D": self.adam(recipe, "D_surface", "D_texture")}
        self.options = dict(recipe["cartoon"])
        self.steps = 0  # for the warm-up
        self.draws = torch.Generator().manual_seed(recipe["train.seed"] * 2 + 1)  # grayscale weights

    @classmethod
    def check_recipe(cls, values: Mapping[str, Any], fail: Any) -> None:
        options = values["cartoon"]
        for key in ("surface_weight", "texture_weight", "warmup_steps", "edge_threshold"):
            if options[key] < 0:
                fail(f"cartoon.{key}", f"must be >= 0, got {options[key]}")
        for key in ("content", "structure", "color", "tv"):
            if values["loss"][key]["weight"] < 0:
                fail(f"loss.{key}.weight", f"must be >= 0, got {values['loss'][key]['weight']}")
        if options["surface_radius"] < 1 or options["surface_eps"] <= 0:
            fail("cartoon.surface_radius", "must be >= 1, with cartoon.surface_eps > 0")
        if options["segments"] < 2 or options["compactness"] <= 0:
            fail("cartoon.segments", "must be >= 2, with cartoon.compactness > 0")
        if options["colours"] == 1 or options["colours"] < 0:
            fail("cartoon.colours", f"must be 0 (all the superpixels' colours) or >= 2, got {options['colours']}")

    def reseed(self, seed: int, rank: int, step: int) -> None:
        self.draws.manual_seed(rank_seed(seed * 2 + 1, rank, step, stream=2))

    def _surface(self, images: torch.Tensor) -> torch.Tensor:
        return surface(images, self.options["surface_radius"], self.options["surface_eps"])

    def _structure(self, images: torch.Tensor) -> torch.Tensor:
        """The structure target: superpixels in their mean colours, on ``cartoon.colours`` colours when > 0."""
        flat = superpixel_flatten(images.detach().float(), self.options["segments"], self.options["compactness"])
        return quantize_colours(flat, self.options["colours"]) if self.options["colours"] else flat

    def train_step(self, batch: Batch) -> dict[str, float]:
        """A warm-up step (``warmup``: L1 of the generator's output to its input) for the first
        ``cartoon.warmup_steps`` steps, then one step of both discriminators and of the generator: the losses of
        :data:`LOSS_NAMES` (and ``aug_p`` when augmenting)."""
        real_A, real_B = self.start_step(batch)
        self.steps += 1
        if self.steps <= self.options["warmup_steps"]:
            with self.autocast():
                warmup = F.l1_loss(self.trained["G"](real_A).float(), real_A.float())
            self.update(warmup, "G")
            return self.finish_step({"warmup": warmup}, real_A)
        gray = draw_gray_weights(self.draws)
        with self.autocast():
            colours_B, fake_B = self._translate(real_A)
        losses = self._discriminator_step(real_B, fake_B.detach(), gray)
        self.pull_weights("D_surface", "D_texture")  # the generator meets the updated discriminators
        losses.update(self._generator_step(real_A, colours_B, fake_B, gray))
        return self.finish_step({name: losses[name] for name in LOSS_NAMES}, real_A)

    def _translate(self, real_A: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The generator's colours and its drawn translation (the same tensor for a generator without ``draw``).
        The drawing stages have no weights, so the master network's draw what any copy would."""
        draw = getattr(self.networks["G"], "draw", None)
        if draw is None:
            fake_B = self.trained["G"](real_A)
            return fake_B, fake_B
        colours_B = self.trained["G"](real_A, draw=False)
        return colours_B, draw(colours_B)

    def _discriminator_loss(self, D: torch.nn.Module, real: torch.Tensor, fakes: Sequence[torch.Tensor]) -> Any:
        """Half of ``D``'s GAN loss on ``real`` plus its mean over ``fakes``; adaptive augmentation observes
        ``D``'s outputs on ``real``."""
        real_logits = D(self.augmented(real))
        fake = sum(self.loss("gan", D(self.augmented(f)), False) for f in fakes) / len(fakes)
        self.observe_reals(real_logits)
        return 0.5 * (self.loss("gan", real_logits, True) + fake)

    def _discriminator_step(self, real_B: torch.Tensor, fake_B: torch.Tensor, gray: torch.Tensor) -> dict:
        surface_fakes, texture_fakes = [self._surface(fake_B)], [random_gray(fake_B, gray)]
        if self.options["gray_fakes"]:
            surface_fakes.append(self._surface(random_gray(real_B, gray)))
        if self.options["edge_fakes"]:
            texture_fakes.append(random_gray(edge_smoothed(real_B, self.options["edge_threshold"]), gray))
        with self.optimizing("D"):
            with self.autocast():
                D_surface = self._discriminator_loss(self.trained["D_surface"], self._surface(real_B), surface_fakes)
                D_texture = self._discriminator_loss(
                    self.trained["D_texture"], random_gray(real_B, gray), texture_fakes
                )
            self.backward(D_surface + D_texture)
        return {"D_surface": D_surface.detach(), "D_texture": D_texture.detach()}

    def _generator_step(
        self, real_A: torch.Tensor, colours_B: torch.Tensor, fake_B: torch.Tensor, gray: torch.Tensor
    ) -> dict:
        options, zero = self.options, torch.zeros((), device=self.device)
        with self.frozen("D_surface", "D_texture") as D, self.optimizing("G"):
            with self.autocast():
                surface_logits = D["D_surface"](self.augmented(self._surface(fake_B)))
                texture_logits = D["D_texture"](self.augmented(random_gray(fake_B, gray)))
                losses = {
                    "G_surface": self.loss("gan", surface_logits, True) * options["surface_weight"],
                    "G_texture": self.loss("gan", texture_logits, True) * options["texture_weight"],
                    "structure": self.loss("structure", colours_B, self._structure(colours_B))
                    if self.weights["structure"]
                    else zero,
                    "content": self.loss("content", colours_B, real_A),
                    "color": self.loss("color", colours_B, real_A) if self.weights["color"] else zero,
                    "tv": self.loss("tv", colours_B, None),
                }
                losses["G"] = sum(losses.values())
            self.backward(losses["G"])
        return {name: value.detach() for name, value in losses.items()}

    @torch.no_grad()
    def sample_images(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The translations of ``batch["A"]`` and the structure target the generator moves them towards."""
        with self.evaluating("G") as nets:
            fake_B = nets["G"](self.prepare(batch["A"])).float()
        return {"fake_B": fake_B, "structure_B": self._structure(fake_B)}

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        tensors, state = super().state_dict()
        tensors["gray_draws"] = self.draws.get_state()
        state["steps"] = self.steps
        return tensors, state

    def load_state_dict(self, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> None:
        super().load_state_dict(tensors, state)
        self.draws.set_state(tensors["gray_draws"])
        self.steps = state["steps"]
