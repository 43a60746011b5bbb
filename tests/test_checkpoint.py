"""Component checkpoints: round trip, atomic writes, and clear errors for bad files."""

from __future__ import annotations

import errno
import os

import pytest
import torch
from safetensors.torch import save_file

import i2i_core
from i2i_core.checkpoint import atomic_write_bytes, read_metadata
from i2i_core.errors import CheckpointError


@pytest.fixture
def saved(tmp_path):
    net = i2i_core.create("generator", "resnet6", ngf=8)
    return net, i2i_core.save_component(tmp_path / "g.safetensors", net, "generator", "resnet6", {"ngf": 8})


def test_round_trip_rebuilds_the_same_network(saved):
    net, path = saved
    meta = read_metadata(path)
    assert meta["kind"] == "generator" and meta["name"] == "resnet6" and meta["i2i_version"] == i2i_core.__version__
    loaded = i2i_core.load_component(path)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), net.eval()(x), atol=0, rtol=0)


def test_missing_file(tmp_path):
    with pytest.raises(CheckpointError, match=r"nope\.safetensors: no such checkpoint file"):
        i2i_core.load_component(tmp_path / "nope.safetensors")


@pytest.mark.parametrize("content", [b"", b"not a checkpoint at all", b"\xff" * 64])
def test_corrupt_file(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match=r"bad\.safetensors: not a readable safetensors file"):
        i2i_core.load_component(path)


def test_truncated_file(saved, tmp_path):
    _, path = saved
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(CheckpointError, match="truncated"):
        i2i_core.load_component(truncated)


def test_plain_safetensors_without_i2i_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({"w": torch.zeros(2)}, path)
    with pytest.raises(CheckpointError, match=r"not an i2i component checkpoint.*i2i import-weights"):
        i2i_core.load_component(path)


def test_weights_that_do_not_fit_name_the_keys(saved, tmp_path):
    net, _ = saved
    path = i2i_core.save_component(tmp_path / "lie.safetensors", net, "generator", "resnet6", {"ngf": 16})
    with pytest.raises(CheckpointError, match=r"shape mismatches \(\d+\): model\.1\.weight: checkpoint \(8, 3, 7, 7\)"):
        i2i_core.load_component(path)


def test_checkpoint_of_unknown_component(saved, tmp_path):
    net, _ = saved
    path = i2i_core.save_component(tmp_path / "x.safetensors", net, "generator", "resnet7", {})
    with pytest.raises(i2i_core.UnknownComponentError, match="Did you mean"):
        i2i_core.load_component(path)


def test_atomic_write_gives_the_usual_permissions(tmp_path):
    previous = os.umask(0o022)
    try:
        atomic_write_bytes(tmp_path / "f.bin", b"x")
    finally:
        os.umask(previous)
    assert (tmp_path / "f.bin").stat().st_mode & 0o777 == 0o644


def test_atomic_write_keeps_old_file_when_writing_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt.bin"
    atomic_write_bytes(path, b"old")

    def failing_fsync(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(OSError, match="disk full"):
        atomic_write_bytes(path, b"new content")
    assert path.read_bytes() == b"old"
    assert os.listdir(tmp_path) == ["ckpt.bin"]  # no temporary file left behind


def test_atomic_write_error_names_the_file(tmp_path, monkeypatch):
    def full_disk(fd):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fsync", full_disk)
    with pytest.raises(OSError, match=r"No space left on device: '.*ckpt\.bin'"):
        atomic_write_bytes(tmp_path / "ckpt.bin", b"data")
    assert os.listdir(tmp_path) == []
