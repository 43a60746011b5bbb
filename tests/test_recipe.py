"""Recipes: defaults, inheritance, overrides, and one clear error for every kind of mistake."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from i2i_core import I2IError, hookimpl, load_recipe
from i2i_core.recipe import recipe_from_dict

ROOT = Path(__file__).parents[1]
RECIPES = ROOT / "recipes"


def write(tmp_path: Path, text: str, name: str = "r.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_photo2anime_is_the_papers_configuration():
    r = load_recipe(RECIPES / "photo2anime.toml")
    assert r.name == "photo2anime"
    assert (r["model.generator.name"], r["model.discriminator.name"], r["loss.gan.name"]) == (
        "resnet9",
        "vanilla",
        "lsgan",
    )
    assert (r["loss.cycle.weight"], r["loss.identity.weight"]) == (10.0, 5.0)
    assert (r["train.lr"], r["train.betas"], r["train.batch_size"], r["train.pool_size"]) == (2e-4, [0.5, 0.999], 1, 50)
    assert (r["train.epochs"], r["train.decay_epochs"], r["data.load_size"], r["data.crop_size"]) == (
        100,
        100,
        286,
        256,
    )
    assert r["data.root"] == "builtin:mini-photo2cartoon"


@pytest.mark.parametrize("name", ["photo2anime", "photo2anime-unet", "quickstart"])
def test_shipped_recipes_validate(name):
    assert load_recipe(RECIPES / f"{name}.toml").name == name


def test_extends_merges_and_a_new_component_drops_the_old_options():
    r = load_recipe(RECIPES / "quickstart.toml")
    assert r["data.crop_size"] == 128 and r["data.flip"] is True  # inherited
    assert r["model.discriminator.name"] == "patchgan"
    assert r.component_options("model", "generator") == {"ngf": 32}  # photo2anime's resnet9 norm= not carried over
    assert r.component_options("loss", "cycle") == {}


def test_overrides_are_typed_and_applied_last():
    r = load_recipe(RECIPES / "quickstart.toml", ["train.lr=1e-4", "model.generator.ngf=16", 'output.dir="x/y"'])
    assert r["train.lr"] == 1e-4 and r["model.generator.ngf"] == 16 and r["output.dir"] == "x/y"
    assert load_recipe(RECIPES / "quickstart.toml", {"train.seed": 7})["train.seed"] == 7
    assert load_recipe(RECIPES / "quickstart.toml", ["data.root=/some/where"])["data.root"] == "/some/where"


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.lrr=1", r"unknown key 'train\.lrr'\. Did you mean 'lr'\?"),
        ("trian.lr=1", r"unknown key 'trian'\. Did you mean 'train'\?"),
        (
            "model.generator.ngff=3",
            r"unknown key 'model\.generator\.ngff' for generator 'resnet6'\. Did you mean 'ngf'\?",
        ),
        ("train.lr='fast'", r"train\.lr must be a number, got 'fast'"),
        ("train.steps=1.5", r"train\.steps must be an integer"),
        ("data.flip=1", r"data\.flip must be true or false"),
        ("model.generator.ngf='wide'", r"model\.generator\.ngf must be an integer"),
        ("data.crop_size=300", r"data\.crop_size \(300\) is larger than data\.load_size \(143\)"),
        ("data.crop_size=126", r"data\.crop_size \(126\) is not a multiple of 4.*try 124"),
        (
            "model.generator.name='resnet8'",
            r"model\.generator\.name: unknown generator 'resnet8'\. Did you mean 'resnet9'",
        ),
        ("loss.gan.name='l1'", r"loss\.gan\.name: loss 'l1' is a reconstruction loss, not a gan loss"),
        ("train.precision='bf17'", r"train\.precision must be one of auto, fp32, bf16, fp16.*Did you mean 'bf16'"),
        (
            "train.memory_format='channel_last'",
            r"train\.memory_format must be one of auto, channels_last, contiguous.*Did you mean 'channels_last'",
        ),
        ("train.lr=0", r"train\.lr must be > 0"),
        ("train.betas=[0.5]", r"train\.betas must be two numbers"),
        ("train.batch_size=0", r"train\.batch_size must be >= 1"),
        ("loss.cycle.weight=-1", r"loss\.cycle\.weight must be >= 0"),
        ("data=3", r"'data' must be a table"),
    ],
)
def test_mistakes_get_one_clear_message(override, message):
    with pytest.raises(I2IError, match=message):
        load_recipe(RECIPES / "quickstart.toml", [override])


def test_unet_size_multiple_is_checked():
    with pytest.raises(I2IError, match=r"not a multiple of 256, which generator 'unet256' needs"):
        load_recipe(RECIPES / "photo2anime-unet.toml", ["data.crop_size=128", "data.load_size=143"])


def test_file_errors(tmp_path):
    with pytest.raises(I2IError, match="no such recipe file"):
        load_recipe(tmp_path / "missing.toml")
    with pytest.raises(I2IError, match="invalid TOML"):
        load_recipe(write(tmp_path, "[train\nlr = 1"))
    write(tmp_path, 'extends = "b.toml"\n', "a.toml")
    write(tmp_path, 'extends = "a.toml"\n', "b.toml")
    with pytest.raises(I2IError, match="'extends' forms a cycle"):
        load_recipe(tmp_path / "a.toml")
    with pytest.raises(I2IError, match="expected KEY=VALUE"):
        load_recipe(RECIPES / "quickstart.toml", ["train.lr"])


def test_name_defaults_to_file_stem_and_output_dir(tmp_path):
    r = load_recipe(write(tmp_path, "[train]\nsteps = 5\n", "my-run.toml"))
    assert r.name == "my-run" and r["train.steps"] == 5 and r["model.generator.name"] == "resnet9"


def test_resolved_recipe_round_trips_through_toml(tmp_path):
    r = load_recipe(RECIPES / "quickstart.toml", ["train.steps=3"])
    again = load_recipe(write(tmp_path, r.to_toml(), "resolved.toml"))
    assert again.values == r.values


@pytest.mark.parametrize("name", ["../../x", "/tmp/x", "a/b", "a\\b", "..", "."])
def test_name_must_be_a_plain_folder_name(tmp_path, name):
    message = r"name must be a plain folder name \(no '/' or '\\', not '\.' or '\.\.'\).*set output\.dir"
    with pytest.raises(I2IError, match=message):
        load_recipe(RECIPES / "quickstart.toml", {"name": name})
    with pytest.raises(I2IError, match=rf"r\.toml: {message}"):
        load_recipe(write(tmp_path, f"name = {name!r}\n"))
    with pytest.raises(I2IError, match=message):
        recipe_from_dict({"name": name})


def test_name_with_dots_and_output_dir_anywhere_are_fine(tmp_path):
    r = load_recipe(RECIPES / "quickstart.toml", {"name": "v1.2..final", "output.dir": str(tmp_path / "a" / "b")})
    assert r.name == "v1.2..final" and r["output.dir"] == str(tmp_path / "a" / "b")


def test_set_name_drops_the_old_components_options():
    r = load_recipe(RECIPES / "quickstart.toml", ["model.generator.name=unet128"])
    assert r["model.generator.name"] == "unet128" and r.component_options("model", "generator") == {}
    assert r.notes == ["model.generator: name changed from resnet6 to unet128 by --set; dropped its options ngf=32"]
    same = load_recipe(RECIPES / "quickstart.toml", ["model.generator.name=resnet6"])
    assert same.component_options("model", "generator") == {"ngf": 32} and same.notes == []


@pytest.mark.parametrize(
    "overrides",
    [
        ["model.generator.name=unet128", "model.generator.ngf=16"],
        ["model.generator.ngf=16", "model.generator.name=unet128"],
    ],
)
def test_options_set_with_the_new_name_are_kept(overrides):
    r = load_recipe(RECIPES / "quickstart.toml", overrides)
    assert r.component_options("model", "generator") == {"ngf": 16} and r.notes == []


def test_set_name_to_a_component_without_the_old_options(i2i_plugin):
    class Plain:
        @hookimpl
        def register_generators(self, register):
            register("plain", lambda scale=1.0: torch.nn.Identity())

    i2i_plugin(Plain(), "plain-plugin")
    r = load_recipe(RECIPES / "quickstart.toml", {"model.generator.name": "plain", "model.discriminator.name": "pixel"})
    assert r.component_options("model", "generator") == {} and r.component_options("model", "discriminator") == {}
    assert r.notes[1] == "model.discriminator: name changed from patchgan to pixel by --set; dropped its options ndf=64"


def test_check_networks_names_the_table_of_a_bad_option():
    r = load_recipe(RECIPES / "quickstart.toml", ["model.generator.padding='bogus'"])
    message = (
        r"quickstart\.toml: model\.generator: generator 'resnet6' with options \{\"ngf\": 32, \"padding\": \"bogus\"\}: "
        r"unknown padding 'bogus'"
    )
    with pytest.raises(I2IError, match=message):
        r.check_networks()
    load_recipe(RECIPES / "photo2anime-unet.toml").check_networks()  # on the meta device: no memory, no time
