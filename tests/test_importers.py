"""Importing reference CycleGAN, CUT and pix2pix checkpoints (.pth state dicts, including old zoo files)."""

from __future__ import annotations

from pathlib import Path

import cut_golden
import pix2pix_golden
import pytest
import torch
from click.testing import CliRunner
from conftest import golden_tensors, portable_state_dict
from PIL import Image

import i2i_core
from i2i_core.checkpoint import read_metadata
from i2i_core.cli import cli
from i2i_core.errors import CheckpointError, I2IError
from i2i_core.importers import import_weights


def _reference_resnet9_pth(tmp_path, golden_nets, zoo_quirks: bool):
    """A .pth as the reference writes it (portable golden weights); zoo files add instance-norm stats."""
    state = portable_state_dict(golden_nets["resnet9_G"]["portable"]["state_dict_manifest"], seed=1234)
    if zoo_quirks:
        state = {f"module.{k}": v for k, v in state.items()}
        state["module.model.2.running_mean"] = torch.zeros(64)
        state["module.model.2.running_var"] = torch.ones(64)
        state["module.model.2.num_batches_tracked"] = torch.tensor(0)
    path = tmp_path / "latest_net_G_A.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("zoo_quirks", [False, True])
def test_imported_reference_generator_reproduces_golden_output(tmp_path, golden_nets, zoo_quirks):
    src = _reference_resnet9_pth(tmp_path, golden_nets, zoo_quirks)
    dst = import_weights(src, tmp_path / "G_A.safetensors", arch="resnet9")
    net = i2i_core.load_component(dst)
    tensors = golden_tensors("resnet9_G.safetensors")
    with torch.no_grad():
        torch.testing.assert_close(net(tensors["input"]), tensors["output_portable"], atol=1e-4, rtol=1e-4)


def test_dropout_mismatch_says_how_to_fix(tmp_path):
    src = tmp_path / "dropout.pth"
    torch.save(i2i_core.create("generator", "resnet6", ngf=8, dropout=True).state_dict(), src)
    with pytest.raises(
        CheckpointError, match=r"conv_block\.6.*trained with dropout: set the generator option dropout=true"
    ):
        import_weights(src, tmp_path / "out.safetensors", arch="resnet6", options={"ngf": 8})
    import_weights(src, tmp_path / "out.safetensors", arch="resnet6", options={"ngf": 8, "dropout": True})


def test_architecture_mismatch_names_first_keys(tmp_path):
    src = tmp_path / "resnet6.pth"
    torch.save(i2i_core.create("generator", "resnet6", ngf=8).state_dict(), src)
    with pytest.raises(CheckpointError, match=r"missing keys \(16\): model\.16\.conv_block\.1\.weight"):
        import_weights(src, tmp_path / "out.safetensors", arch="resnet9", options={"ngf": 8})
    assert not (tmp_path / "out.safetensors").exists()


class Payload:
    def __reduce__(self):
        return (print, ("code ran",))


def test_pickle_with_code_is_refused(tmp_path, capsys):
    src = tmp_path / "evil.pth"
    torch.save({"model.1.weight": Payload()}, src)
    with pytest.raises(CheckpointError, match="never code"):
        import_weights(src, tmp_path / "out.safetensors", arch="resnet9")
    assert "code ran" not in capsys.readouterr().out


def test_corrupt_and_missing_sources(tmp_path):
    with pytest.raises(CheckpointError, match="no such file"):
        import_weights(tmp_path / "missing.pth", tmp_path / "o.safetensors", arch="resnet9")
    bad = tmp_path / "bad.pth"
    bad.write_bytes(b"garbage" * 10)
    with pytest.raises(CheckpointError, match=r"bad\.pth: cannot be read as a state dict"):
        import_weights(bad, tmp_path / "o.safetensors", arch="resnet9")


def test_unknown_arch_and_source(tmp_path):
    with pytest.raises(I2IError, match="Did you mean 'resnet9'"):
        import_weights(tmp_path / "x.pth", tmp_path / "o.safetensors", arch="resnet_9")
    with pytest.raises(I2IError, match="unknown weights source"):
        import_weights(tmp_path / "x.pth", tmp_path / "o.safetensors", arch="resnet9", source="mmagic")


# -- reference CUT / FastCUT checkpoints ------------------------------------------------------------------------


def _reference_cut_pth(tmp_path, net, prefix: str = "") -> Path:
    """A .pth as reference CUT writes it: the plain state dict (blur kernels included), maybe DataParallel's."""
    path = tmp_path / "latest_net.pth"
    torch.save({f"{prefix}{k}": v for k, v in net.state_dict().items()}, path)
    return path


@pytest.mark.parametrize("prefix", ["", "module."])
def test_imported_cut_generator_reproduces_golden_output_and_features(tmp_path, prefix):
    src = _reference_cut_pth(tmp_path, cut_golden.generator("cut"), prefix)
    dst = import_weights(src, tmp_path / "G.safetensors", arch="resnet9", source="cut-reference")
    net = i2i_core.load_component(dst)
    assert read_metadata(dst)["options"] == '{"antialias": true, "antialias_up": true}'
    golden = cut_golden.tensors("cut")
    with torch.no_grad():
        torch.testing.assert_close(net(golden["net.input"]), golden["net.G_output"], atol=1e-4, rtol=1e-4)
        feat16 = net.features(golden["net.input"], [16])[0]
    torch.testing.assert_close(feat16, golden["net.G_feat16"], atol=1e-4, rtol=1e-4)


def test_imported_cut_discriminator_reproduces_golden_output(tmp_path):
    src = _reference_cut_pth(tmp_path, cut_golden.discriminator("cut"))
    net = i2i_core.load_component(
        import_weights(src, tmp_path / "D.safetensors", arch="patchgan", source="cut-reference")
    )
    golden = cut_golden.tensors("cut")
    with torch.no_grad():
        torch.testing.assert_close(net(golden["net.input"]), golden["net.D_output"], atol=1e-4, rtol=1e-4)


def test_antialiasing_mismatches_say_how_to_fix(tmp_path):
    cut = _reference_cut_pth(
        tmp_path, i2i_core.create("generator", "resnet6", ngf=8, antialias=True, antialias_up=True)
    )
    with pytest.raises(CheckpointError, match=r"unexpected keys.*model\.7\.filt.*use --from cut-reference"):
        import_weights(cut, tmp_path / "o.safetensors", arch="resnet6", options={"ngf": 8})
    plain = tmp_path / "plain.pth"
    torch.save(i2i_core.create("generator", "resnet6", ngf=8).state_dict(), plain)
    with pytest.raises(CheckpointError, match=r"not anti-aliased.*antialias=false"):
        import_weights(plain, tmp_path / "o.safetensors", arch="resnet6", source="cut-reference", options={"ngf": 8})
    options = {"ngf": 8, "antialias": False, "antialias_up": False}
    import_weights(plain, tmp_path / "o.safetensors", arch="resnet6", source="cut-reference", options=options)
    with pytest.raises(I2IError, match=r"unknown cut-reference architecture 'unet128'.*resnet9, resnet6, patchgan"):
        import_weights(plain, tmp_path / "o.safetensors", arch="unet128", source="cut-reference")


def test_cli_imports_a_cut_generator(tmp_path):
    src = _reference_cut_pth(
        tmp_path, i2i_core.create("generator", "resnet6", ngf=8, antialias=True, antialias_up=True)
    )
    args = ["import-weights", str(src), "-o", str(tmp_path / "G.safetensors"), "--from", "cut-reference"]
    result = CliRunner().invoke(cli, [*args, "--arch", "resnet6", "--option", "ngf=8"])
    assert result.exit_code == 0, result.output
    assert i2i_core.load_component(tmp_path / "G.safetensors").feature_layers == (0, 4, 8, 12, 16)


# -- reference pix2pix checkpoints ------------------------------------------------------------------------------


def _reference_pix2pix_pth(tmp_path, zoo_quirks: bool = False) -> Path:
    """``latest_net_G.pth`` as reference pix2pix's ``save_networks`` wrote it (tests/golden/pix2pix, ngf 2); with
    ``zoo_quirks`` DataParallel's ``module.`` prefixes and no batch counts (files saved before PyTorch 0.4.1)."""
    state = {key: pix2pix_golden.tensors()[f"import.G.{key}"] for key in pix2pix_golden.record()["import"]["keys"]}
    if zoo_quirks:
        state = {f"module.{k}": v for k, v in state.items() if not k.endswith("num_batches_tracked")}
    path = tmp_path / "latest_net_G.pth"
    torch.save(state, path)
    return path


@pytest.mark.parametrize("zoo_quirks", [False, True])
def test_imported_pix2pix_generator_translates_as_reference_test_py_with_eval(tmp_path, zoo_quirks):
    src = _reference_pix2pix_pth(tmp_path, zoo_quirks)
    options = {"ngf": 2, "eval_mode": True}
    dst = import_weights(src, tmp_path / "G.safetensors", source="pix2pix-reference", options=options)
    assert read_metadata(dst)["name"] == "pix2pix-unet256"
    with torch.no_grad():
        output = i2i_core.load_component(dst)(pix2pix_golden.net_input())
    torch.testing.assert_close(output, pix2pix_golden.tensors()["import.G_eval"], atol=1e-4, rtol=1e-4)


def test_cli_imports_a_pix2pix_generator_and_translates_with_it(tmp_path):
    """``i2i import-weights --from pix2pix-reference latest_net_G.pth -o G.safetensors`` (no --arch: the model
    zoo's U-Net 256), then ``i2i translate``."""
    src, dst = _reference_pix2pix_pth(tmp_path), tmp_path / "G.safetensors"
    runner = CliRunner()
    result = runner.invoke(
        cli, ["import-weights", str(src), "--from", "pix2pix-reference", "-o", str(dst), "--option", "ngf=2"]
    )
    assert result.exit_code == 0, result.output
    assert f"Wrote generator 'pix2pix-unet256' to {dst}" in result.output
    assert read_metadata(dst)["options"] == '{"eval_mode": false, "ngf": 2}'
    photo = tmp_path / "photo.png"
    Image.fromarray((torch.rand(256, 256, 3) * 255).byte().numpy()).save(photo)
    result = runner.invoke(cli, ["translate", str(photo), "-c", str(dst), "-o", str(tmp_path / "out")])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "photo.png").size == (256, 256)


def test_pix2pix_discriminators_and_architectures(tmp_path):
    src = tmp_path / "latest_net_D.pth"
    torch.save(i2i_core.create("discriminator", "patchgan", ndf=4, norm="batch", in_channels=6).state_dict(), src)
    dst = import_weights(
        src, tmp_path / "D.safetensors", arch="patchgan", source="pix2pix-reference", options={"ndf": 4}
    )
    assert i2i_core.load_component(dst).in_channels == 6
    with pytest.raises(
        I2IError, match=r"unknown pix2pix-reference architecture 'unet_256'.*pix2pix-unet256, pix2pix-unet128"
    ):
        import_weights(src, tmp_path / "o.safetensors", arch="unet_256", source="pix2pix-reference")
    with pytest.raises(I2IError, match=r"unknown cyclegan-reference architecture 'pix2pix-unet256'"):
        import_weights(src, tmp_path / "o.safetensors", arch="pix2pix-unet256")
