"""Component checkpoint metadata is checked, and fitted to the file's tensors, before anything is built."""

from __future__ import annotations

import json
import time

import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import i2i_core
from i2i_core import hookimpl
from i2i_core.checkpoint import COMPONENT_FORMAT, MAX_OPTIONS_CHARS
from i2i_core.errors import CheckpointError, UnknownComponentError


def crafted(tmp_path, options: str | None = None, **metadata: str):
    """A checkpoint of resnet6 (ngf=8) weights whose metadata says what the test wants."""
    net = i2i_core.create("generator", "resnet6", ngf=8)
    fields = {"format": COMPONENT_FORMAT, "kind": "generator", "name": "resnet6", **metadata}
    if options is not None:
        fields["options"] = options
    path = tmp_path / "crafted.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, path, metadata=fields)
    return path


def test_huge_options_fail_fast_before_allocating(tmp_path):
    path = crafted(tmp_path, json.dumps({"ngf": 200000}))  # would be 2.88 TB of weights
    start = time.perf_counter()
    with pytest.raises(
        CheckpointError,
        match=r"crafted\.safetensors: weights do not fit the network\. shape mismatches \(\d+\): "
        r"model\.1\.weight: checkpoint \(8, 3, 7, 7\) vs network \(200000, 3, 7, 7\)",
    ):
        i2i_core.load_component(path)
    assert time.perf_counter() - start < 5


class _Spy:
    """A generator plugin that records the default device each time its factory runs."""

    def __init__(self) -> None:
        self.devices: list[torch.device] = []

    @hookimpl
    def register_generators(self, register):
        def spy(width: int = 4) -> nn.Module:
            self.devices.append(torch.get_default_device())
            return nn.Conv2d(3, width, 3)

        register("spy", spy)


def test_the_network_is_built_for_real_only_once_it_fits(tmp_path, i2i_plugin):
    spy = _Spy()
    i2i_plugin(spy, "spy-plugin")
    lying = i2i_core.save_component(
        tmp_path / "lie.safetensors", nn.Conv2d(3, 4, 3), "generator", "spy", {"width": 10**6}
    )
    with pytest.raises(CheckpointError, match=r"weight: checkpoint \(4, 3, 3, 3\) vs network \(1000000, 3, 3, 3\)"):
        i2i_core.load_component(lying)
    assert spy.devices == [torch.device("meta")]  # never built where it would take memory
    honest = i2i_core.save_component(tmp_path / "ok.safetensors", nn.Conv2d(3, 4, 3), "generator", "spy", {"width": 4})
    assert i2i_core.load_component(honest).weight.shape == (4, 3, 3, 3)
    assert spy.devices[1:] == [torch.device("meta"), torch.device("cpu")]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("ngf=8", r"metadata 'options' is not JSON .*'ngf=8'"),
        ("[8]", r"metadata 'options' must be a JSON object, got '\[8\]'"),
        ('{"ngf": {"a": 1}}', r"metadata option 'ngf' must be a number, string, boolean or a list of them"),
        ('{"norm": [["instance"]]}', r"metadata option 'norm' must be a number, string, boolean or a list of them"),
        ('{"ngf": "wide"}', r"metadata option ngf must be an integer, got 'wide' \(str\)"),
        ('{"dropout": 1}', r"metadata option dropout must be true or false, got 1"),
        ('{"ngff": 8}', r"generator 'resnet6' has no option 'ngff'\. Did you mean 'ngf'\?"),
        ('{"ngf": 0}', r"generator 'resnet6' with options \{\"ngf\": 0\}: parameter model\.1\.weight has no elements"),
        ('{"ngf": -8}', r"generator 'resnet6' with options \{\"ngf\": -8\}: .*negative dimension"),
        ('{"padding": "bogus"}', r"generator 'resnet6' with options \{\"padding\": \"bogus\"\}: unknown padding"),
        ("x" * (MAX_OPTIONS_CHARS + 1), rf"metadata 'options' is {MAX_OPTIONS_CHARS + 1} characters, more than"),
    ],
)
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_malformed_options_are_one_clear_error(tmp_path, options, message):
    with pytest.raises(CheckpointError, match=r"crafted\.safetensors: " + message):
        i2i_core.load_component(crafted(tmp_path, options))


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"kind": ""}, r"metadata 'kind' must name a component, got ''"),
        ({"name": "r" * 1000}, r"metadata 'name' must name a component, got 'rrr"),
        ({"kind": "generators"}, r"unknown component kind 'generators'\. Did you mean 'generator'\?"),
        ({"format": "i2i-component/99"}, r"not an i2i component checkpoint \(format 'i2i-component/99'\)"),
    ],
)
def test_bad_kind_name_or_format(tmp_path, metadata, message):
    with pytest.raises(CheckpointError, match=r"crafted\.safetensors: " + message):
        i2i_core.load_component(crafted(tmp_path, "{}", **metadata))


def test_missing_kind_and_unknown_name(tmp_path):
    path = tmp_path / "nokind.safetensors"
    save_file({"w": torch.zeros(2)}, path, metadata={"format": COMPONENT_FORMAT, "name": "resnet6"})
    with pytest.raises(CheckpointError, match=r"nokind\.safetensors: metadata 'kind' must name a component, got None"):
        i2i_core.load_component(path)
    with pytest.raises(UnknownComponentError, match=r"crafted\.safetensors: unknown generator 'resnet7'"):
        i2i_core.load_component(crafted(tmp_path, "{}", name="resnet7"))


def test_options_matching_the_weights_load(tmp_path):
    net = i2i_core.load_component(crafted(tmp_path, json.dumps({"ngf": 8, "padding": "reflect"})))
    assert net.model[1].weight.shape == (8, 3, 7, 7) and not net.training
