"""Component registry: listing, building, and the errors users see."""

from __future__ import annotations

import pytest
import torch

import i2i_core
from i2i_core import hookimpl
from i2i_core.errors import I2IError, PluginError, UnknownComponentError


def test_first_party_components_are_listed():
    names = {(c.kind, c.name) for c in i2i_core.list_components()}
    expected = {("generator", n) for n in ("resnet9", "resnet6", "unet128", "unet256")}
    expected |= {("discriminator", n) for n in ("vanilla", "patchgan", "pixel")}
    expected |= {("loss", n) for n in ("lsgan", "bce", "l1", "l2")}
    assert expected <= names


def test_list_filters_by_kind_and_sorts():
    losses = i2i_core.list_components("loss")
    assert [c.name for c in losses] == sorted(c.name for c in losses)
    assert {c.kind for c in losses} == {"loss"}


def test_create_passes_options():
    net = i2i_core.create("generator", "resnet6", ngf=8, norm="batch")
    assert net.model[1].out_channels == 8
    assert isinstance(net.model[2], torch.nn.BatchNorm2d)


def test_unknown_component_suggests_closest_name():
    with pytest.raises(UnknownComponentError, match=r"unknown generator 'resnet8'\. Did you mean 'resnet9'\?"):
        i2i_core.create("generator", "resnet8")


def test_unknown_component_lists_known_names():
    with pytest.raises(UnknownComponentError, match="Known discriminators: patchgan, pixel, vanilla"):
        i2i_core.create("discriminator", "nope")


def test_unknown_kind_suggests():
    with pytest.raises(I2IError, match="Did you mean 'generator'"):
        i2i_core.list_components("generators")


def test_unknown_option_suggests_and_lists_options():
    with pytest.raises(I2IError, match=r"no option 'ngff'\. Did you mean 'ngf'\? Its options: ngf, norm"):
        i2i_core.create("generator", "resnet9", ngff=32)


def test_summary_defaults_to_docstring_and_metadata_is_kept():
    lsgan = i2i_core.get_component("loss", "lsgan")
    assert lsgan.summary.startswith("Least-squares GAN loss")
    assert lsgan.metadata["role"] == "gan"
    assert lsgan.to_json()["role"] == "gan"


class _TinyPlugin:
    @hookimpl
    def register_generators(self, register):
        register("tiny", lambda scale=1.0: torch.nn.Identity(), summary="Identity generator for tests.")


def test_i2i_plugin_component_is_created(i2i_plugin):
    i2i_plugin(_TinyPlugin(), "tiny-plugin")
    component = i2i_core.get_component("generator", "tiny")
    assert component.plugin == "tiny-plugin" and component.summary == "Identity generator for tests."
    assert isinstance(i2i_core.create("generator", "tiny", scale=2.0), torch.nn.Identity)


def test_plugin_unregistered_after_test():
    with pytest.raises(UnknownComponentError):
        i2i_core.get_component("generator", "tiny")


def test_duplicate_name_across_plugins_names_both(i2i_plugin):
    class Clash:
        @hookimpl
        def register_losses(self, register):
            register("l1", torch.nn.L1Loss)

    i2i_plugin(Clash(), "clashing-plugin")
    with pytest.raises(PluginError, match=r"loss 'l1' is registered by two plugins, 'losses' and 'clashing-plugin'"):
        i2i_core.create("loss", "l1")
    assert i2i_core.create("loss", "l2") is not None  # the others still work


def test_hook_that_raises_does_not_hide_other_components(i2i_plugin):
    class Broken:
        @hookimpl
        def register_generators(self, register):
            raise RuntimeError("boom")

    with pytest.warns(RuntimeWarning, match="register_generators failed: RuntimeError: boom"):
        i2i_plugin(Broken(), "broken-hook")
        names = [c.name for c in i2i_core.list_components("generator")]
    assert "resnet9" in names


def test_misspelled_hook_is_rejected(i2i_plugin):
    class Misspelled:
        @hookimpl
        def register_generator(self, register):  # singular: not a hook
            pass

    with pytest.warns(RuntimeWarning, match="register_generator"):
        info = i2i_plugin(Misspelled(), "misspelled")
    assert info.error and "unknown hook" in info.error


def test_register_rejects_non_callable(i2i_plugin):
    class Bad:
        @hookimpl
        def register_losses(self, register):
            register("x", "not callable")

    with pytest.warns(RuntimeWarning, match="needs a non-empty name and a callable"):
        i2i_plugin(Bad(), "bad-register")
        i2i_core.list_components()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"padding": "bogus"}, r"generator 'resnet6' with options \{\"padding\": \"bogus\"\}: unknown padding 'bogus'"),
        ({"ngf": -1}, r"generator 'resnet6' with options \{\"ngf\": -1\}: Trying to create tensor with negative"),
        ({"ngf": "wide"}, r"generator 'resnet6' with options \{\"ngf\": \"wide\"\}: "),
    ],
)
def test_option_values_the_factory_refuses_name_the_component(options, message):
    with pytest.raises(I2IError, match=message):
        i2i_core.create("generator", "resnet6", **options)


@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_network_with_empty_parameters_is_refused():
    with pytest.raises(
        I2IError, match=r"\{\"ngf\": 0\}: parameter model\.1\.weight has no elements \(shape \(0, 3, 7, 7\)\)"
    ):
        i2i_core.create("generator", "resnet6", ngf=0)


@pytest.mark.parametrize("error", [TypeError, ValueError, RuntimeError, AssertionError])
def test_factory_errors_become_one_clear_error(i2i_plugin, error):
    class Picky:
        @hookimpl
        def register_losses(self, register):
            def picky(level: int = 1):
                raise error(f"level {level} is not supported")

            register("picky", picky)

    i2i_plugin(Picky(), "picky-plugin")
    with pytest.raises(I2IError, match=r"^loss 'picky' with options \{\"level\": 3\}: level 3 is not supported$"):
        i2i_core.create("loss", "picky", level=3)
