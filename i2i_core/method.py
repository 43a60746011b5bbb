"""The training-method interface: what the engine needs from CycleGAN, CUT or any other method.

A method is a plugin component of kind ``method`` (hook ``register_methods``): a :class:`Method` subclass. It
builds its networks from the recipe's components, owns its optimisers and every piece of training state, and
does one optimisation step at a time. The engine (loop, schedule, run folder, checkpoints, exact resume,
torchrun, monitors, samples, reporters, ``i2i translate`` and ``i2i export``) knows it only through this class,
so it runs any method without naming a network.

Example:
    >>> from i2i_core.host.registry import get_component
    >>> cyclegan = get_component("method", "cyclegan").factory
    >>> sorted(cyclegan.translations), cyclegan.can_pretrain()
    (['AtoB', 'BtoA'], True)
"""

from __future__ import annotations

import abc
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from i2i_core.recipe import Recipe
    from i2i_core.training.autotune import Layout

#: A batch of training data: ``{"A": (B, 3, H, W), "B": (B, 3, H, W)}`` in [-1, 1] (a dataset may add keys).
Batch = Mapping[str, torch.Tensor]
#: What a network is built from: (component kind, component name, options).
NetworkSpec = tuple[str, str, dict[str, Any]]


@dataclass(frozen=True)
class Translation:
    """A direction a trained method translates in: its exported ``network`` maps sample column ``source`` to
    sample column ``output`` (for ``AtoB``, typically ``real_A`` to ``fake_B``)."""

    network: str
    source: str
    output: str


class Method(abc.ABC):
    """A training method: its networks, optimisers and state, and one optimisation step.

    Class attributes declare what the engine and the recipe need to know before anything is built:

    - ``recipe_defaults``: the recipe tables and keys the method reads, with their defaults; merged over the
      core's (``train``, ``data``, ``model.generator``, ``output``...) when ``method`` names it, so a key of
      another method is an unknown key. A default given here for a core key (``train.epochs``) replaces it.
    - ``component_tables``: the method's recipe tables that name a component: table -> (kind, key of the name),
      e.g. ``{("loss", "gan"): ("loss", "name")}``; their other keys are the component's options.
    - ``loss_roles``: the role a loss table's component must have (``gan``, ``reconstruction``...).
    - ``network_tables``: tables of networks (besides ``model.generator``) that recipe checks build.
    - ``loss_names``: the keys :meth:`train_step` returns, in the order logs show them; ``shown_losses`` those
      of the progress bar; ``discriminator_losses`` those the engine watches for a discriminator that wins.
    - ``translations``: direction (``AtoB``...) -> :class:`Translation`: the exported generators.
    - ``sample_columns``: the images of a sample-grid row, left to right; ``real_A`` and ``real_B`` are the
      batch's inputs, the rest come from :meth:`sample_images`.

    An instance has ``device`` and ``network_specs`` (network name -> :data:`NetworkSpec`, every network of
    :attr:`networks`), set by :meth:`from_recipe`.
    """

    recipe_defaults: ClassVar[dict[str, Any]] = {}
    component_tables: ClassVar[dict[tuple[str, ...], tuple[str, str]]] = {}
    loss_roles: ClassVar[dict[tuple[str, ...], str]] = {}
    network_tables: ClassVar[tuple[tuple[str, ...], ...]] = ()
    loss_names: ClassVar[tuple[str, ...]] = ()
    shown_losses: ClassVar[tuple[str, ...]] = ()
    discriminator_losses: ClassVar[tuple[str, ...]] = ()
    translations: ClassVar[dict[str, Translation]] = {}
    sample_columns: ClassVar[tuple[str, ...]] = ()

    device: torch.device
    network_specs: dict[str, NetworkSpec]

    @classmethod
    @abc.abstractmethod
    def from_recipe(cls, recipe: Recipe, device: torch.device, layout: Layout) -> Method:
        """Build the method's networks (``recipe.create("model", "generator")``...), losses and optimisers
        on ``device``, in ``layout`` (precision and memory format). The global RNG is seeded already."""

    @classmethod  # noqa: B027
    def check_recipe(cls, values: Mapping[str, Any], fail: Any) -> None:
        """Check the method's own recipe values beyond their types; ``fail(key, message)`` raises.

        Example: CycleGAN refuses a negative ``loss.cycle.weight``."""

    @property
    @abc.abstractmethod
    def networks(self) -> dict[str, nn.Module]:
        """Every network by name, with its fp32 master weights: what checkpoints save and resume restores."""

    @abc.abstractmethod
    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimisation step on ``batch``; returns the losses named in :attr:`loss_names`."""

    def pretrain_step(self, batch: Batch) -> dict[str, float]:
        """A step of ``train.d_pretrain_steps``: train only the discriminators. Methods without one refuse."""
        raise NotImplementedError(f"method {type(self).__name__} has no discriminator pre-training")

    @classmethod
    def can_pretrain(cls) -> bool:
        """Whether the method implements :meth:`pretrain_step`."""
        return cls.pretrain_step is not Method.pretrain_step

    @abc.abstractmethod
    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every optimiser (the engine's schedule calls it before each step)."""

    @abc.abstractmethod
    def train(self, mode: bool = True) -> None:
        """Put every network in training (or eval) mode."""

    @abc.abstractmethod
    def distribute(self) -> None:
        """Under torchrun (the process group exists): make every process start from rank 0's weights and
        average gradients over the processes (``DistributedDataParallel``)."""

    def reseed(self, seed: int, rank: int, step: int) -> None:  # noqa: B027
        """Give the method's own random generators (image pools...) a stream of their own on process ``rank``;
        called under torchrun after the engine has reseeded the global RNG the same way."""

    @abc.abstractmethod
    def sample_images(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The images of a sample grid for ``batch``, in eval mode, keyed by :attr:`sample_columns` (besides
        ``real_A``/``real_B``): (N, 3, H, W) in [-1, 1], fp32."""

    @abc.abstractmethod
    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything but the networks that resuming exactly needs (optimisers, pools, loss scaler...), as
        tensors and JSON-able values. Keys are the method's own; the engine adds progress and RNG states."""

    @abc.abstractmethod
    def load_state_dict(self, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (``tensors`` may hold the engine's keys too)."""


# -- helpers for methods --------------------------------------------------------------------------------------


def optimizer_state(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """An optimiser's state as tensors ``<prefix>.<index>.<slot>`` and its param groups as JSON-able lists."""
    state = optimizer.state_dict()
    tensors = {
        f"{prefix}.{index}.{name}": value.detach().cpu().contiguous()
        for index, slots in state["state"].items()
        for name, value in slots.items()
    }
    groups = [{k: list(v) if isinstance(v, tuple) else v for k, v in g.items()} for g in state["param_groups"]]
    return tensors, groups


def load_optimizer_state(
    prefix: str, optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], groups: list
) -> None:
    """Restore what :func:`optimizer_state` returned."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in tensors.items():
        if key.startswith(prefix + "."):
            _, index, name = key.split(".", 2)
            state.setdefault(int(index), {})[name] = value
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def set_requires_grad(nets: tuple[nn.Module, ...] | list[nn.Module], flag: bool) -> None:
    """Freeze (or unfreeze) every parameter of ``nets``."""
    for net in nets:
        for p in net.parameters():
            p.requires_grad_(flag)


def fp32_loss(loss: Any, prediction: torch.Tensor, target: Any) -> torch.Tensor:
    """``loss(prediction, target)`` in fp32, whatever precision the networks ran in."""
    if isinstance(target, torch.Tensor):
        target = target.float()
    return loss(prediction.float(), target)
