"""The hooks a plugin can implement.

Every ``register_*`` hook receives a ``register`` callback::

    register(name, factory, summary=None, **metadata)

``factory(**options)`` builds the component from the options a recipe gives. ``summary`` defaults to the
first line of the factory's docstring; other metadata is kept on the registered component.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pluggy

hookspec = pluggy.HookspecMarker("i2i")
hookimpl = pluggy.HookimplMarker("i2i")

Register = Callable[..., None]


@hookspec
def register_generators(register: Register) -> None:
    """Register generators: ``nn.Module`` s mapping (B,3,H,W) in [-1,1] to (B,3,H,W) in [-1,1].

    The module declares ``size_multiple``: H and W must be multiples of it.
    """


@hookspec
def register_discriminators(register: Register) -> None:
    """Register discriminators: ``nn.Module`` s mapping (B,3,H,W) to real/fake logits of any shape."""


@hookspec
def register_losses(register: Register) -> None:
    """Register losses. Pass ``role="gan"`` for ``loss(prediction, target_is_real) -> scalar``
    or ``role="reconstruction"`` for ``loss(x, y) -> scalar``, or ``role="contrastive"`` for
    ``loss(query, key) -> scalar`` over (N, D) or (B, N, D) embeddings of matching patches (row i of ``query``
    matches row i of ``key``; the other rows of the same image are the negatives)."""


@hookspec
def register_heads(register: Register) -> None:
    """Register feature heads: ``nn.Module`` s mapping sampled encoder features to embeddings (CUT's patch MLP).

    A head maps a list of (N, C_l) tensors, one per feature layer, to a list of (N, D) tensors.
    """


@hookspec
def register_methods(register: Register) -> None:
    """Register training methods: subclasses of :class:`i2i_core.method.Method` (CycleGAN, CUT...).

    The engine builds one with ``Method.from_recipe(recipe, device, layout)`` and runs its steps.
    """


@hookspec
def register_datasets(register: Register) -> None:
    """Register datasets: factories building a training data source from recipe options."""


@hookspec
def register_metrics(register: Register) -> None:
    """Register metrics: subclasses of :class:`i2i_core.metric.Metric` scoring a translation against the target
    domain, the ground truth or its own input (KID, SWD, PSNR...); ``i2i eval`` and ``output.eval_every`` run them."""


@hookspec
def register_reporters(register: Register) -> None:
    """Register reporters: objects that analyse images during or after training."""


@hookspec
def register_pretrained(register: Register) -> None:
    """Register trained models shipped with a plugin: ``factory()`` returns the path of a component checkpoint
    (a generator ``.safetensors`` file), named ``builtin:<name>`` wherever a checkpoint is accepted.

    Metadata: ``direction`` (what the generator translates, default ``AtoB``), ``card`` (path of its model
    card) and ``default=True`` for the model ``i2i translate`` uses when no checkpoint is given.
    """


@hookspec
def register_commands(cli: Any) -> None:
    """Add commands to the ``i2i`` command line; ``cli`` is its ``click.Group``."""
