"""The ``animegan2`` generator: the AnimeGANv2 port's outputs to 1e-4 (golden, with seeded weights), and its released
files imported (``i2i import-weights --from animegan2``) and translated."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from click.testing import CliRunner
from i2i_animegan import animegan2
from safetensors.torch import load_file

import i2i_core
from i2i_core.cli import cli
from i2i_core.importers import import_weights

GOLDEN = Path(__file__).parents[1] / "golden" / "animegan2"


def portable_weights(manifest: list[dict], seed: int) -> dict[str, torch.Tensor]:
    """The golden weights (see golden/animegan2/README.md): uniform draws walking the port's state dict in order,
    scaled by 1/sqrt(fan-in), 1 + 0.1 u for normalisation weights, 0.1 u for biases; checked by their SHA-256."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    for entry in manifest:
        u = torch.rand(entry["shape"], generator=g, dtype=torch.float32) * 2 - 1
        if len(entry["shape"]) >= 2:
            t = u / torch.tensor(entry["shape"][1:]).prod().item() ** 0.5
        else:
            t = 1 + 0.1 * u if entry["key"].endswith("weight") else 0.1 * u
        assert hashlib.sha256(t.numpy().tobytes()).hexdigest() == entry["sha256"], entry["key"]
        state[entry["key"]] = t
    return state


@pytest.fixture(scope="module")
def golden() -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
    manifest = json.loads((GOLDEN / "animegan2_manifest.json").read_text())
    return portable_weights(manifest["manifest"], manifest["seed"]), load_file(GOLDEN / "animegan2_outputs.safetensors")


def test_the_layout_is_the_ports(golden):
    weights, _ = golden
    net = animegan2()
    assert list(net.state_dict()) == list(weights)  # the released files' keys, in order
    assert sum(p.numel() for p in net.parameters()) == 2_143_552


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("size", ["square", "wide"])
def test_outputs_equal_the_ports(golden, size, align_corners):
    weights, tensors = golden
    net = animegan2(align_corners=align_corners).eval()
    net.load_state_dict(weights)
    with torch.no_grad():
        y = net(tensors[f"{size}.input"])
    expected = tensors[f"{size}.{'aligned' if align_corners else 'unaligned'}"]
    assert torch.allclose(y, expected, atol=1e-4, rtol=0), (y - expected).abs().max()


@pytest.mark.parametrize("prefix", ["", "module."])
def test_a_released_file_is_imported_and_translates_as_the_port(golden, tmp_path, prefix):
    weights, tensors = golden
    released = tmp_path / "paprika.pt"
    torch.save({prefix + k: v for k, v in weights.items()}, released)  # how the port's files are written
    result = CliRunner().invoke(
        cli, ["import-weights", str(released), "--from", "animegan2", "-o", str(tmp_path / "paprika.safetensors")]
    )
    assert result.exit_code == 0, result.output
    assert "Wrote generator 'animegan2'" in result.output
    translator = i2i_core.load_translator(tmp_path / "paprika.safetensors", precision="fp32")
    y = translator.translate_tensor(tensors["wide.input"][0])
    assert torch.allclose(y, tensors["wide.aligned"][0].clamp(-1, 1), atol=1e-4, rtol=0)


def test_the_test_py_layout_is_an_option(golden, tmp_path):
    weights, _ = golden
    released = tmp_path / "face_paint_512_v2.pt"
    torch.save(weights, released)
    out = import_weights(released, tmp_path / "fp.safetensors", source="animegan2", options={"align_corners": False})
    assert not i2i_core.load_component(out).align_corners


def test_a_checkpoint_of_another_architecture_is_refused_by_name(tmp_path):
    released = tmp_path / "latest_net_G.pth"
    torch.save(i2i_core.create("generator", "resnet6", ngf=8).state_dict(), released)
    result = CliRunner().invoke(
        cli, ["import-weights", str(released), "--from", "animegan2", "-o", str(tmp_path / "x.safetensors")]
    )
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert str(released) in result.output and "animegan2" in result.output
    assert not (tmp_path / "x.safetensors").exists()
