"""The ``i2i`` command line."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner

import i2i_core
from i2i_core.cli import cli


@pytest.fixture
def runner():
    return CliRunner()


def test_version(runner):
    result = runner.invoke(cli, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"i2i, version {i2i_core.__version__}"


def test_help_lists_commands(runner):
    result = runner.invoke(cli, ["--help"])
    assert result.exit_code == 0
    assert "plugins" in result.output and "import-weights" in result.output


def test_plugins_table(runner):
    result = runner.invoke(cli, ["plugins"])
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:4] == ["KIND", "NAME", "PLUGIN", "DISTRIBUTION"]
    assert any(line.split()[:3] == ["generator", "resnet9", "resnet"] for line in lines)


def test_plugins_json_lists_every_first_party_component(runner):
    result = runner.invoke(cli, ["plugins", "--json"])
    rows = json.loads(result.output)
    assert {r["name"] for r in rows} >= {
        "resnet9",
        "resnet6",
        "unet128",
        "unet256",
        "vanilla",
        "patchgan",
        "pixel",
        "lsgan",
        "bce",
        "l1",
        "l2",
    }
    for row in rows:
        assert {"name", "kind", "plugin", "distribution", "version", "summary"} <= set(row)
    assert {r["distribution"] for r in rows if r["name"] == "resnet9"} == {"i2i"}


def test_plugins_json_by_kind(runner):
    rows = json.loads(runner.invoke(cli, ["plugins", "--json", "--kind", "discriminator"]).output)
    assert [r["name"] for r in rows] == ["patchgan", "pixel", "vanilla"]


def test_import_weights_command(runner, tmp_path):
    src = tmp_path / "latest_net_D_A.pth"
    torch.save(i2i_core.create("discriminator", "pixel", ndf=4).state_dict(), src)
    dst = tmp_path / "D_A.safetensors"
    args = ["import-weights", "--from", "cyclegan-reference", "--arch", "pixel", str(src), "-o", str(dst)]
    result = runner.invoke(cli, [*args, "--option", "ndf=4"])
    assert result.exit_code == 0, result.output
    assert "Wrote discriminator 'pixel'" in result.output
    assert i2i_core.load_component(dst).net[0].out_channels == 4


def test_errors_are_one_line_without_traceback(runner, tmp_path):
    result = runner.invoke(cli, ["import-weights", "--arch", "resnet9", str(tmp_path / "x.pth"), "-o", "y"])
    assert result.exit_code == 1
    assert result.output.strip() == f"Error: {tmp_path / 'x.pth'}: no such file"


def test_debug_shows_the_exception(runner, tmp_path):
    args = ["--debug", "import-weights", "--arch", "resnet9", str(tmp_path / "x.pth"), "-o", "y"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    assert isinstance(result.exception, i2i_core.CheckpointError)


def test_bad_option_syntax(runner, tmp_path):
    args = ["import-weights", "--arch", "resnet9", "x.pth", "-o", "y", "--option", "ngf"]
    result = runner.invoke(cli, args)
    assert result.exit_code == 1 and "expected KEY=VALUE" in result.output


def test_plugins_flag_lists_plugins_as_json(runner):
    result = runner.invoke(cli, ["plugins", "--plugins", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["name"]: row for row in json.loads(result.stdout)}
    assert {"datasets", "discriminators", "fourier", "losses", "resnet", "unet"} <= set(rows)
    assert rows["resnet"] == {
        "name": "resnet",
        "module": "i2i_resnet",
        "distribution": "i2i",
        "version": i2i_core.__version__,
        "hooks": ["register_generators"],
        "error": None,
    }


def test_plugins_flag_table_shows_hooks_and_errors(runner, i2i_plugin):
    class Broken:
        @i2i_core.hookimpl
        def register_generators(self, register):
            raise RuntimeError("boom")

        @i2i_core.hookimpl
        def register_losses(self, register):
            pass

    i2i_plugin(Broken(), "broken-hook")
    with pytest.warns(RuntimeWarning, match="boom"):
        i2i_core.list_components()  # runs the hooks: the failure is recorded on the plugin
    result = runner.invoke(cli, ["plugins", "--plugins"])
    assert result.exit_code == 0, result.output
    header, *lines = result.stdout.splitlines()
    assert header.split() == ["NAME", "MODULE", "DISTRIBUTION", "HOOKS", "ERROR"]
    broken = next(line for line in lines if line.startswith("broken-hook "))
    assert broken.split()[1:4] == ["Broken", "-", "register_generators,register_losses"]
    assert broken.endswith("register_generators failed: RuntimeError: boom")
    assert any(line.split()[:4] == ["resnet", "i2i_resnet", "i2i", i2i_core.__version__] for line in lines)
    assert "Plugin 'broken-hook' failed to load: register_generators failed" in result.stderr


def test_plugins_flag_refuses_kind(runner):
    result = runner.invoke(cli, ["plugins", "--plugins", "--kind", "loss"])
    assert result.exit_code == 2 and "cannot be combined with --plugins" in result.output


QUICKSTART = str(Path(__file__).parents[1] / "recipes" / "quickstart.toml")


@pytest.mark.parametrize(
    ("override", "message"),
    [
        (
            "model.generator.padding=bogus",
            r"quickstart\.toml: model\.generator: generator 'resnet6' with options \{\"ngf\": 32, \"padding\": \"bogus\"\}: "
            r"unknown padding 'bogus'; choose one of reflect, replicate, zero",
        ),
        (
            "model.generator.ngf=0",
            r"model\.generator: generator 'resnet6' .*parameter model\.1\.weight has no elements",
        ),
        ("model.discriminator.ndf=-2", r"model\.discriminator: discriminator 'patchgan' .*negative dimension"),
        ("name=../../x", r"quickstart\.toml: name must be a plain folder name"),
    ],
)
@pytest.mark.filterwarnings("ignore:Initializing zero-element tensors")
def test_dry_run_reports_bad_options_in_one_line(runner, override, message):
    result = runner.invoke(cli, ["run", QUICKSTART, "--set", override, "--dry-run"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    errors = [line for line in result.output.splitlines() if not line.startswith("Warning:")]
    assert len(errors) == 1 and re.fullmatch(r"Error: .*" + message + ".*", errors[0]), result.output


def test_dry_run_says_which_options_a_name_change_dropped(runner):
    result = runner.invoke(cli, ["run", QUICKSTART, "--set", "model.generator.name=unet128", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "# model.generator: name changed from resnet6 to unet128 by --set; dropped its options ngf=32\n" in (
        result.output
    )
    assert "# model.generator: generator 'unet128' {}" in result.output


def test_run_forwards_every_option_to_torchrun_but_nproc():
    from i2i_core.cli.run import _command_line
    from i2i_core.cli.run import run_command as run

    given = ["r.toml", "--set", "a=1", "--set", "b='x y'", "--restart", "--no-progress", "--nproc", "2"]
    assert _command_line(run.make_context("run", list(given)), leave_out={"nproc"}) == given[:-2]
    assert _command_line(run.make_context("run", ["r.toml", "--progress"]), leave_out={"nproc"}) == [
        "r.toml",
        "--progress",
    ]
