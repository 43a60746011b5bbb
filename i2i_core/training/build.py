"""Building a run from its recipe: the method (with its starting weights), the compute layout, the data."""

from __future__ import annotations

import inspect
import json
import os
import warnings
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import Dataset

from i2i_core.checkpoint import load_state_dict_checked, network_file, read_metadata, read_tensors
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.host.registry import create, get_component
from i2i_core.host_memory import keep_freed_memory
from i2i_core.method import Method, NetworkSpec
from i2i_core.precision import Layout, resolve_device, resolve_precision
from i2i_core.recipe import Recipe
from i2i_core.training.autotune import choose_layout


def build_trainer(recipe: Recipe, device: str | torch.device | None = None, layout: Layout | None = None) -> Method:
    """The recipe's training method (networks, losses, optimisers), with starting weights loaded, on its device
    and precision (``layout``: how the networks run, by default :func:`compute_layout`). The process keeps the
    memory each step frees for the next (:func:`~i2i_core.host_memory.keep_freed_memory`).

    Example:
        >>> method = build_trainer(load_recipe("recipes/quickstart.toml"))  # doctest: +SKIP
        >>> losses = method.train_step({"A": real_A, "B": real_B})  # doctest: +SKIP
    """
    device = torch.device(device) if device is not None else resolve_device(recipe["train.device"])
    layout = layout or compute_layout(recipe, device)
    keep_freed_memory()
    torch.manual_seed(recipe["train.seed"])  # deterministic initialisation
    method = recipe.method.from_recipe(recipe, device, layout)
    for net, path in starting_weights(recipe, method.network_specs).items():
        load_starting_weights(method.networks[net], path, method.network_specs[net])
    return method


def compute_layout(recipe: Recipe, device: torch.device) -> Layout:
    """The precision and memory format the recipe's networks train in on ``device``: as the recipe sets them, and
    for ``auto`` what trains its generator fastest there (measured once per machine, see :mod:`i2i_core.training.autotune`)."""
    precision, memory_format = recipe["train.precision"], recipe["train.memory_format"]
    if precision != "auto" or int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # under torchrun every process must run the same layout: the rule by CPU flags, not a measurement
        precision = resolve_precision(precision, device)  # refuses fp16 without CUDA
        memory_format = (
            memory_format if memory_format != "auto" else "channels_last" if precision == "bf16" else "contiguous"
        )
    name, options = recipe["model.generator.name"], recipe.component_options("model", "generator")
    return choose_layout(
        lambda: recipe.create("model", "generator"),
        f"generator {name} {json.dumps(options, sort_keys=True)}",
        recipe["data.crop_size"],
        device,
        precision,
        memory_format,
    )


def starting_weights(recipe: Recipe, specs: dict[str, NetworkSpec]) -> dict[str, Path]:
    """Network -> the file its weights start from (``model.<network>.init_from``, else that of the table of its
    kind: ``model.generator.init_from``...), for the networks that have one."""
    files = {}
    for net, (kind, _, _) in specs.items():
        key = f"model.{net}.init_from" if recipe.get(f"model.{net}.init_from") else f"model.{kind}.init_from"
        if path := recipe.get(key):
            try:
                files[net] = network_file(path, net)
            except CheckpointError as exc:
                raise CheckpointError(f"{key} = {path!r}: {exc}") from None
    return files


def load_starting_weights(module: nn.Module, path: Path, spec: NetworkSpec) -> None:
    """Load a component checkpoint into ``module``, after checking it holds the same component and options."""
    kind, name, options = spec
    meta = read_metadata(path)
    saved_options = json.loads(meta.get("options", "{}"))
    defaults = {k: v for k, v in get_component(kind, name).options().items() if v is not inspect.Parameter.empty}
    if (meta.get("kind"), meta.get("name"), {**defaults, **saved_options}) != (kind, name, {**defaults, **options}):
        raise I2IError(
            f"init_from {path}: holds {meta.get('kind')} '{meta.get('name')}' with options {saved_options}, but "
            f"the recipe builds {kind} '{name}' with options {options}; make them match"
        )
    load_state_dict_checked(module, read_tensors(path), source=f"init_from {path}")


def build_dataset(recipe: Recipe, split: str) -> Dataset:
    """The recipe's dataset component for ``split`` (``train`` or ``test``)."""
    return create("dataset", recipe["data.dataset"], split=split, **recipe.component_options("data"))


def fixed_sample_batch(recipe: Recipe, train_set: Dataset) -> dict[str, torch.Tensor]:
    """The images every sample grid shows: the first test pairs, or fixed training crops without a test split."""
    count = recipe["output.num_samples"]
    try:
        dataset = build_dataset(recipe, "test")
    except I2IError as exc:
        warnings.warn(f"sample grids use training images: {exc}", stacklevel=2)
        dataset = train_set
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        items = [dataset[i] for i in range(min(count, len(dataset)))]
    return {"A": torch.stack([it["A"] for it in items]), "B": torch.stack([it["B"] for it in items])}
