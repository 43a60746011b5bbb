"""i2i: a plugin-based image-to-image translation toolkit.

Public API::

    import i2i_core
    i2i_core.list_components("generator")
    net = i2i_core.create("generator", "resnet9", ngf=64)
    net = i2i_core.load_component("generator.safetensors")
    result = i2i_core.train(i2i_core.load_recipe("recipes/quickstart.toml"))
    scores = i2i_core.evaluate("runs/quickstart").scores

Plugin authors implement hooks marked with :data:`i2i_core.hookimpl`.
"""

from i2i_core.checkpoint import load_component, save_component
from i2i_core.errors import CheckpointError, I2IError, PluginError, UnknownComponentError
from i2i_core.evaluation import Evaluation, evaluate
from i2i_core.host.hookspecs import hookimpl
from i2i_core.host.registry import Component, create, get_component, list_components
from i2i_core.infer.translate import Translator, load_translator
from i2i_core.recipe import Recipe, load_recipe
from i2i_core.training.build import build_trainer
from i2i_core.training.loop import TrainResult, train
from i2i_core.version import __version__

__all__ = [
    "CheckpointError",
    "Component",
    "Evaluation",
    "I2IError",
    "PluginError",
    "Recipe",
    "TrainResult",
    "Translator",
    "UnknownComponentError",
    "__version__",
    "build_trainer",
    "create",
    "evaluate",
    "get_component",
    "hookimpl",
    "list_components",
    "load_component",
    "load_recipe",
    "load_translator",
    "save_component",
    "train",
]
