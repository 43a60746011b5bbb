"""The training-method interface: what a method declares, and everything the base class does for it.

A method is a plugin component of kind ``method`` (hook ``register_methods``): a :class:`Method` subclass. It
declares its recipe keys, networks, losses, translations and sample columns; it writes a constructor (its
optimisers and options), one optimisation step and its sample images. The base class builds the networks and
losses from the recipe, runs them in the layout training chose (bf16 compute copies, channels-last, fp16 loss
scaling), wraps them for torchrun, augments discriminator inputs, sets learning rates and saves the optimisers'
state. The engine (loop, schedule, run folder, checkpoints, exact resume, monitors, samples, reporters,
``i2i translate`` and ``i2i export``) knows a method only through this class, so it runs any method without
naming a network.

Example:
    >>> from i2i_core.host.registry import get_component
    >>> cyclegan = get_component("method", "cyclegan").factory
    >>> sorted(cyclegan.translations), cyclegan.can_pretrain(), sorted(set(cyclegan.network_tables.values()))
    (['AtoB', 'BtoA'], True, ['model.discriminator', 'model.generator'])
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import os
from collections.abc import Hashable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

from i2i_core.augment import DiscriminatorAugment, gan_threshold
from i2i_core.compute_copy import ComputeCopy
from i2i_core.cuda_graphs import StepGraphs, choose_graphs
from i2i_core.errors import I2IError
from i2i_core.host.registry import create
from i2i_core.precision import Layout, autocast

if TYPE_CHECKING:
    from i2i_core.recipe import Recipe

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


def table_kind(table: str) -> str:
    """The component kind a recipe table names: ``loss`` under ``loss.``, else the table's last part
    (``model.discriminator`` -> ``discriminator``)."""
    return "loss" if table.startswith("loss.") else table.rsplit(".", 1)[-1]


class Method(abc.ABC):
    """A training method. A subclass declares five things and writes three methods; the base does the rest.

    Declarations (class attributes):

    - ``recipe_defaults``: the recipe tables and keys the method reads, with their defaults; merged over the
      core's (``train``, ``data``, ``model.generator``, ``output``...) when ``method`` names it, so a key of
      another method is an unknown key. A default given here for a core key (``train.epochs``) replaces it.
    - ``network_tables``: network -> the recipe table that builds it (``{"G": "model.generator"}``); the table's
      last part is the component kind, its ``name`` the component, its other keys the options. Checkpoints save
      each network as ``<network>.safetensors``.
    - ``loss_roles``: loss table -> the role its component must have (``{"loss.gan": "gan"}``); a ``weight``
      key in the table weights it in :meth:`loss`.
    - ``translations``: direction (``AtoB``...) -> :class:`Translation`: the exported generators.
    - ``sample_columns``: the images of a sample-grid row, left to right; ``real_A`` and ``real_B`` are the
      batch's inputs, the rest come from :meth:`sample_images`.

    Optional: ``shown_losses`` (those of the progress bar; default all) and ``discriminator_losses`` (those the
    engine watches for a discriminator that wins); ``graph_safe``, for a :meth:`train_step` that CUDA graphs may
    capture (see :mod:`i2i_core.cuda_graphs`): when :attr:`graphs` is true it makes its random choices with the
    default generator of its device, reads no tensor on the host and changes no Python state (its phases aside,
    :meth:`graph_phase`).

    Written by the method: ``__init__(recipe, device, layout)`` calling ``super().__init__`` and setting
    :attr:`optimizers` (see :meth:`adam`); :meth:`train_step`; :meth:`sample_images`; and where it has state
    beyond its optimisers (image pools, random draws), :meth:`state_dict` and :meth:`load_state_dict` extending
    the base's. Options: :meth:`check_recipe`, :meth:`pretrain_step`, :meth:`reseed`, and
    :meth:`network_options` / :meth:`build_networks` for networks built from data.

    Networks and optimisers are also attributes: ``self.<network>`` is ``self.networks[<network>]``,
    ``self.opt_<name>`` is ``self.optimizers[<name>]``.
    """

    recipe_defaults: ClassVar[dict[str, Any]] = {}
    network_tables: ClassVar[dict[str, str]] = {}
    loss_roles: ClassVar[dict[str, str]] = {}
    translations: ClassVar[dict[str, Translation]] = {}
    sample_columns: ClassVar[tuple[str, ...]] = ()
    shown_losses: ClassVar[tuple[str, ...]] = ()
    discriminator_losses: ClassVar[tuple[str, ...]] = ()
    graph_safe: ClassVar[bool] = False

    #: Every network by name, with its fp32 master weights: what checkpoints save and resume restores.
    networks: dict[str, nn.Module]
    #: Network -> the component it is, as its checkpoint records it.
    network_specs: dict[str, NetworkSpec]
    #: The optimisers by name, set by the method; :meth:`set_lr` and the checkpoints cover them all.
    optimizers: dict[str, torch.optim.Optimizer]

    def __init__(self, recipe: Recipe, device: torch.device | str, layout: Layout) -> None:
        """Build the networks (:meth:`build_networks`) and the losses of :attr:`loss_roles` from ``recipe``,
        their compute copies in ``layout``, the loss scaler and the discriminator augmentation."""
        self.device, self.precision = torch.device(device), layout.precision
        networks, self.network_specs = self.build_networks(recipe)
        self.networks = {name: net.to(self.device) for name, net in networks.items()}
        self.losses = {table.split(".", 1)[1]: recipe.create(*table.split(".")) for table in self.loss_roles}
        #: Loss -> its ``weight`` key, for the loss tables that have one.
        self.weights = {
            name: recipe[f"loss.{name}.weight"] for name in self.losses if recipe.get(f"loss.{name}.weight") is not None
        }
        self.copies = {
            name: ComputeCopy.for_precision(net, layout.precision, layout.channels_last)
            for name, net in self.networks.items()
        }
        #: What the steps call where gradients flow: the compute copies, or their DistributedDataParallel wrappers.
        self.trained: dict[str, nn.Module] = {name: c.module for name, c in self.copies.items()}
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=layout.precision == "fp16")
        gan = [name for name, role in self.loss_roles.items() if role == "gan"]
        threshold = gan_threshold(self.losses[gan[0].split(".", 1)[1]]) if gan else 0.0
        augment = DiscriminatorAugment.from_recipe(recipe.get("augment"), threshold)
        #: The discriminator inputs' augmentation (the recipe's ``augment`` table), ``None`` when off.
        self.augment = augment if augment.enabled else None
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        #: Whether steps replay CUDA graphs (``train.cuda_graphs``), and the line that says why (or why not).
        self.graphs, self.graphs_note = choose_graphs(
            recipe["train.cuda_graphs"], type(self), self.device, layout.precision, self.augment is not None, world_size
        )
        #: What replays the steps from CUDA graphs (``None``: eager steps).
        self.step_graphs = StepGraphs(self) if self.graphs else None
        self._capturing = False
        self.optimizers = {}
        self._step_p: float | None = None
        self._optimized: dict[int, list[str]] = {}  # id of an optimiser -> the networks it steps

    @classmethod
    def from_recipe(cls, recipe: Recipe, device: torch.device, layout: Layout) -> Method:
        """The method the engine trains: ``cls(recipe, device, layout)``. The global RNG is seeded already."""
        return cls(recipe, device, layout)

    def __getattr__(self, name: str) -> Any:
        owner = self.__dict__.get("optimizers", {}) if name.startswith("opt_") else self.__dict__.get("networks", {})
        key = name[4:] if name.startswith("opt_") else name
        if key in owner:
            return owner[key]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    # -- declarations, as the recipe sees them ---------------------------------------------------------------

    @classmethod
    def component_kinds(cls) -> dict[str, str]:
        """Every recipe table of the method that names a component, with its kind."""
        tables = [*cls.network_tables.values(), *cls.loss_roles]
        return {table: table_kind(table) for table in tables}

    @classmethod
    def network_options(cls, name: str, recipe: Recipe, built: Mapping[str, nn.Module]) -> dict[str, Any]:
        """Options of network ``name`` that come from data rather than its table (CUT's patch head: the widths of
        the generator's features); ``built`` holds the networks built before it, in :attr:`network_tables`
        order. None by default."""
        return {}

    @classmethod
    def build_networks(cls, recipe: Recipe) -> tuple[dict[str, nn.Module], dict[str, NetworkSpec]]:
        """Each network of :attr:`network_tables` built from its table (plus :meth:`network_options`), and its
        spec. A failure names the recipe and the table."""
        networks: dict[str, nn.Module] = {}
        specs: dict[str, NetworkSpec] = {}
        for net, table in cls.network_tables.items():
            parts = table.split(".")
            options = {**recipe.component_options(*parts), **cls.network_options(net, recipe, networks)}
            specs[net] = (table_kind(table), recipe[f"{table}.name"], options)
            try:
                networks[net] = create(*specs[net][:2], **options)
            except I2IError as exc:
                raise I2IError(f"{recipe.path or recipe.name}: {table}: {exc}") from exc
        return networks, specs

    @classmethod  # noqa: B027
    def check_recipe(cls, values: Mapping[str, Any], fail: Any) -> None:
        """Check the method's own recipe values beyond their types; ``fail(key, message)`` raises.

        Example: CycleGAN refuses a negative ``loss.cycle.weight``."""

    # -- what the method writes ------------------------------------------------------------------------------

    @abc.abstractmethod
    def train_step(self, batch: Batch) -> dict[str, float]:
        """One optimisation step on ``batch``; returns its losses (every one is logged), as :meth:`finish_step`
        gives them."""

    @abc.abstractmethod
    def sample_images(self, batch: Batch) -> dict[str, torch.Tensor]:
        """The images of a sample grid for ``batch`` (see :meth:`evaluating`), keyed by :attr:`sample_columns`
        (besides ``real_A``/``real_B``): (N, 3, H, W)."""

    def graph_phase(self) -> Hashable | None:
        """The phase of the next step, for CUDA graphs: steps of one phase replay one captured graph; ``None`` runs
        the step eagerly (CycleGAN while its image pools fill). One phase by default."""
        return "train"

    def run_step(self, batch: Batch) -> dict[str, float]:
        """The engine's training step: :meth:`train_step`, replayed from a CUDA graph when :attr:`graphs` is on."""
        return self.step_graphs.step(batch) if self.step_graphs is not None else self.train_step(batch)

    @contextlib.contextmanager
    def capturing(self) -> Iterator[None]:
        """Inside, :meth:`train_step` is being captured: :meth:`finish_step` returns the losses as tensors."""
        self._capturing = True
        try:
            yield
        finally:
            self._capturing = False

    def pretrain_step(self, batch: Batch) -> dict[str, float]:
        """A step of ``train.d_pretrain_steps``: train only the discriminators. Methods without one refuse."""
        raise NotImplementedError(f"method {type(self).__name__} has no discriminator pre-training")

    @classmethod
    def can_pretrain(cls) -> bool:
        """Whether the method implements :meth:`pretrain_step`."""
        return cls.pretrain_step is not Method.pretrain_step

    def reseed(self, seed: int, rank: int, step: int) -> None:  # noqa: B027
        """Give the method's own random generators (image pools...) a stream of their own on process ``rank``;
        called under torchrun after the engine has reseeded the global RNG the same way."""

    # -- tools for the step ----------------------------------------------------------------------------------

    def adam(self, recipe: Recipe, *networks: str) -> torch.optim.Adam:
        """An Adam optimiser over the parameters of ``networks`` with ``train.lr`` and ``train.betas`` (fused:
        one kernel for all parameters, 10x faster than the per-parameter loop on a CPU). With CUDA graphs it is
        capturable and its learning rate a device tensor, which :meth:`set_lr` fills."""
        parameters = itertools.chain.from_iterable(self.networks[name].parameters() for name in networks)
        lr = torch.tensor(recipe["train.lr"], device=self.device) if self.graphs else recipe["train.lr"]
        betas = tuple(recipe["train.betas"])
        return torch.optim.Adam(parameters, lr, betas, fused=True, capturable=self.graphs)

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` on the method's device, in its compute copies' dtype and memory format."""
        return next(iter(self.copies.values())).prepare(images.to(self.device))

    def pull_weights(self, *names: str) -> None:
        """Copy the master weights of ``names`` (default: every network) into their compute copies."""
        for name in names or self.copies:
            self.copies[name].pull_weights()

    def start_step(self, batch: Batch) -> tuple[torch.Tensor, torch.Tensor]:
        """Start a step: every compute copy takes its master weights, the augmentation probability of the step
        is noted; returns ``batch["A"]`` and ``batch["B"]`` prepared."""
        self.pull_weights()
        self._step_p = self.augment.p if self.augment is not None else None
        return self.prepare(batch["A"]), self.prepare(batch["B"])

    def finish_step(self, losses: Mapping[str, torch.Tensor | float], images: torch.Tensor) -> dict[str, float]:
        """End a step on ``images`` (a batch of it, for the adaptive augmentation's count): update the loss scale;
        returns ``losses`` as floats, with ``aug_p`` when augmenting (as tensors while a graph captures it)."""
        self.scaler.update()
        if self._capturing:
            return dict(losses)  # type: ignore[arg-type]
        result = {name: float(v.detach() if isinstance(v, torch.Tensor) else v) for name, v in losses.items()}
        if self.augment is not None:
            self.augment.step(len(images))
            result["aug_p"] = self._step_p
        return result

    def autocast(self) -> contextlib.AbstractContextManager:
        """fp16's autocast context; nothing in fp32 and bf16 (the compute copies hold the dtype)."""
        return autocast(self.precision, self.device)

    def augmented(self, images: torch.Tensor) -> torch.Tensor:
        """``images`` as a discriminator sees them, through the recipe's augmentation when it is on."""
        return images if self.augment is None else self.prepare(self.augment(images))

    def observe_reals(self, logits: torch.Tensor) -> None:
        """Hand a discriminator's outputs on real images to the adaptive augmentation."""
        if self.augment is not None:
            self.augment.observe(logits)

    def loss(self, name: str, prediction: torch.Tensor, target: Any) -> torch.Tensor:
        """Loss ``name`` (``loss.<name>``) of ``prediction`` against ``target``, in fp32 whatever precision the
        networks ran in, times its ``weight`` when its table has one."""
        value = fp32_loss(self.losses[name], prediction, target)
        return value * self.weights[name] if name in self.weights else value

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of ``loss`` through the compute copies (scaled in fp16)."""
        self.scaler.scale(loss).backward()

    @contextlib.contextmanager
    def optimizing(self, *optimizers: str) -> Iterator[None]:
        """Zero the gradients of ``optimizers``; after the block, hand the compute copies' gradients to the master
        weights and step them."""
        for name in optimizers:
            self.optimizers[name].zero_grad(set_to_none=True)
        yield
        for name in optimizers:
            for net in self._optimized_by(name):
                self.copies[net].push_gradients()
            self.scaler.step(self.optimizers[name])

    def _optimized_by(self, optimizer: str) -> list[str]:
        """The networks whose parameters optimiser ``optimizer`` steps (found once per optimiser)."""
        key = id(self.optimizers[optimizer])
        if key not in self._optimized:
            owned = {id(p) for group in self.optimizers[optimizer].param_groups for p in group["params"]}
            nets = self.networks.items()
            self._optimized[key] = [net for net, module in nets if any(id(p) in owned for p in module.parameters())]
        return self._optimized[key]

    def update(self, loss: torch.Tensor, *optimizers: str) -> None:
        """One optimiser step of ``optimizers`` on ``loss``: zero, backward, step."""
        with self.optimizing(*optimizers):
            self.backward(loss)

    @contextlib.contextmanager
    def frozen(self, *names: str) -> Iterator[dict[str, nn.Module]]:
        """The compute copies of ``names``, their parameters frozen in the block: a generator's loss passes
        through them without giving them gradients (nor, under torchrun, anything to average)."""
        modules = {name: self.copies[name].module for name in names}
        set_requires_grad(list(modules.values()), False)
        try:
            yield modules
        finally:
            set_requires_grad(list(modules.values()), True)

    def accumulating(self, *names: str) -> contextlib.ExitStack:
        """Inside, the trained networks ``names`` add up gradients over several backwards without averaging them
        over processes (torchrun); the last backward, after the block, averages them once."""
        stack = contextlib.ExitStack()
        for name in names:
            if hasattr(self.trained[name], "no_sync"):
                stack.enter_context(self.trained[name].no_sync())
        return stack

    @contextlib.contextmanager
    def evaluating(self, *names: str) -> Iterator[dict[str, nn.Module]]:
        """The compute copies of ``names`` (default all) with the master weights, in eval mode and fp16's autocast
        for the block, for sample images."""
        self.pull_weights(*names)
        self.train(False)
        try:
            with self.autocast():
                yield {name: self.copies[name].module for name in names or self.copies}
        finally:
            self.train(True)

    # -- what the engine calls -------------------------------------------------------------------------------

    def set_lr(self, lr: float) -> None:
        """Set the learning rate of every optimiser (the engine's schedule calls it before each step)."""
        for optimizer in self.optimizers.values():
            for group in optimizer.param_groups:
                if isinstance(group["lr"], torch.Tensor):
                    group["lr"].fill_(lr)  # the tensor a captured step reads
                else:
                    group["lr"] = lr

    def train(self, mode: bool = True) -> None:
        """Put every network in training (or eval) mode."""
        for compute_copy in self.copies.values():
            compute_copy.train(mode)

    def distribute(self) -> None:
        """Under torchrun (the process group exists): every process starts from rank 0's master weights, and
        the trained networks average their gradients over the processes (``DistributedDataParallel``)."""
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

    def state_dict(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        """Everything but the networks that resuming exactly needs, as tensors and JSON-able values: the
        optimisers (``opt_<name>``), the loss scaler and the augmentation. A method with more state extends
        it; the engine adds progress and RNG states."""
        tensors: dict[str, torch.Tensor] = {}
        state: dict[str, Any] = {"scaler": self.scaler.state_dict()}
        for name, optimizer in self.optimizers.items():
            opt_tensors, state[f"opt_{name}.param_groups"] = optimizer_state(f"opt_{name}", optimizer)
            tensors.update(opt_tensors)
        if self.augment is not None:
            state["augment"] = self.augment.state_dict()
        return tensors, state

    def load_state_dict(self, tensors: Mapping[str, torch.Tensor], state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state_dict` returned (``tensors`` may hold the engine's keys too)."""
        for name, optimizer in self.optimizers.items():
            load_optimizer_state(f"opt_{name}", optimizer, tensors, state[f"opt_{name}.param_groups"])
            if self.graphs:
                for group in optimizer.param_groups:
                    group["lr"] = torch.tensor(float(group["lr"]), device=self.device)
        if state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        if self.augment is not None and state.get("augment"):  # checkpoints from before augmentation have none
            self.augment.load_state_dict(state["augment"])


# -- helpers for methods --------------------------------------------------------------------------------------


def optimizer_state(prefix: str, optimizer: torch.optim.Optimizer) -> tuple[dict[str, torch.Tensor], list]:
    """An optimiser's state as tensors ``<prefix>.<index>.<slot>`` and its param groups as JSON-able lists."""
    state = optimizer.state_dict()
    tensors = {
        f"{prefix}.{index}.{name}": value.detach().cpu().contiguous()
        for index, slots in state["state"].items()
        for name, value in slots.items()
    }
    groups = [{k: _json_able(v) for k, v in g.items()} for g in state["param_groups"]]
    return tensors, groups


def _json_able(value: Any) -> Any:
    """A param-group value as JSON holds it: a tuple as a list, a tensor (a CUDA graph's learning rate) as a float."""
    if isinstance(value, torch.Tensor):
        return float(value)
    return list(value) if isinstance(value, tuple) else value


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
