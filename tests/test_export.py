"""``i2i export onnx``: the exported model computes what PyTorch computes."""

from __future__ import annotations

import onnxruntime
import pytest
import torch
from click.testing import CliRunner

import i2i_core
from i2i_core.checkpoint import read_metadata
from i2i_core.cli import cli
from i2i_core.errors import I2IError
from i2i_core.infer.export import export_component, export_onnx


def test_dynamic_export_matches_pytorch_at_several_sizes(generator_file, tmp_path):
    result = export_onnx(generator_file, tmp_path / "g.onnx", dynamic_size=True, size=64)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4
    assert len(result.checked_shapes) == 2
    session = onnxruntime.InferenceSession(str(tmp_path / "g.onnx"))
    x = torch.rand(1, 3, 48, 80) * 2 - 1
    with torch.no_grad():
        expected = i2i_core.load_component(generator_file)(x).numpy()
    assert abs(session.run(None, {"input": x.numpy()})[0] - expected).max() < 1e-4


@pytest.mark.parametrize(
    "options",
    [
        {"residual": True, "upsample": "antialias", "guided_radius": 1},
        {"upsample": "resize"},
        {"residual": True, "guided_radius": 1, "posterize_levels": 10},
        {"residual": True, "guided_radius": 1, "outline_strength": 0.85, "outline_width": 2, "posterize_levels": 10},
    ],
)
def test_the_cartoon_generators_options_export(options, tmp_path):
    """A generator that starts as the identity, up-samples without checkerboard and filters its output exports and
    computes what PyTorch computes."""
    torch.manual_seed(0)
    net = i2i_core.create("generator", "resnet6", ngf=8, **options)
    torch.nn.init.normal_(net.head.weight, std=0.02)  # not the identity any more
    path = i2i_core.save_component(tmp_path / "G.safetensors", net, "generator", "resnet6", {"ngf": 8, **options})
    result = export_onnx(path, tmp_path / "g.onnx", dynamic_size=True, size=64)
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-4


def test_fixed_size_export_and_bad_size(generator_file, tmp_path):
    session_path = export_onnx(generator_file, tmp_path / "g.onnx", size=32).path
    shape = onnxruntime.InferenceSession(str(session_path)).get_inputs()[0].shape
    assert shape == [1, 3, 32, 32]
    with pytest.raises(I2IError, match="not a multiple of 4"):
        export_onnx(generator_file, tmp_path / "h.onnx", size=30)
    assert not (tmp_path / "h.onnx").exists()


def test_cli_reports_the_difference(generator_file, tmp_path):
    out = tmp_path / "m.onnx"
    result = CliRunner().invoke(cli, ["export", "onnx", "-c", str(generator_file), "-o", str(out), "--size", "32"])
    assert result.exit_code == 0, result.output
    assert "max abs difference" in result.output and out.stat().st_size > 0


def test_export_component_halves_the_file_and_keeps_the_network(tmp_path):
    torch.manual_seed(0)
    net = i2i_core.create("generator", "resnet6", ngf=8)
    full = i2i_core.save_component(tmp_path / "G.safetensors", net, "generator", "resnet6", {"ngf": 8})
    half = export_component(full, tmp_path / "G16.safetensors", extra={"steps": "1234"})
    assert half.stat().st_size < 0.55 * full.stat().st_size
    assert read_metadata(half)["steps"] == "1234" and read_metadata(half)["kind"] == "generator"
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(i2i_core.load_component(half)(x), net.eval()(x), atol=2e-2, rtol=0)
    with pytest.raises(I2IError, match="is the checkpoint being exported"):
        export_component(full, full)
