"""Contract checks for generator and discriminator plugins: the checks i2i runs on its own components.

Plugin authors call them from their own tests::

    from i2i_core.testing import check_generator


    def test_my_generator():
        check_generator("mygen", width=8)

Each check builds the component (after ``torch.manual_seed(0)``), runs it on small seeded batches of two images
and raises an ``AssertionError`` that names the component and the check that failed. It returns the module it
built (in eval mode). The contracts themselves are described in ``docs/components.md``.
"""

from __future__ import annotations

import copy
import math
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

import torch
from safetensors.torch import load_file
from torch import nn

from i2i_core.checkpoint import load_component, load_state_dict_checked, save_component
from i2i_core.compute_copy import ComputeCopy
from i2i_core.host.registry import Component, get_component

Target = str | Component | nn.Module

#: Smallest image sides the checks use: generators get at least 32 pixels, discriminators 64 and 96.
GENERATOR_SIDE = 32
DISCRIMINATOR_SIDES = (64, 96)


@dataclass
class _Subject:
    """The module under test and what is needed to name it and save it."""

    kind: str
    label: str
    net: nn.Module
    component: Component | None
    options: dict[str, Any]

    def fail(self, check: str, detail: str) -> NoReturn:
        raise AssertionError(f"{self.label} fails the '{check}' check: {detail}")

    def require(self, ok: bool, check: str, detail: str) -> None:
        if not ok:
            self.fail(check, detail)

    def run(self, check: str, x: torch.Tensor) -> torch.Tensor:
        """``net(x)``, turning any exception into a failure of ``check``."""
        try:
            y = self.net(x)
        except Exception as exc:
            self.fail(check, f"raised {type(exc).__name__} on input {tuple(x.shape)}: {exc}")
        self.require(isinstance(y, torch.Tensor), check, f"returned {type(y).__name__}, not a tensor")
        return y


def _subject(kind: str, target: Target, options: dict[str, Any]) -> _Subject:
    if isinstance(target, nn.Module):
        if options:
            raise TypeError("options build a registered component; pass its name, not a module, with options")
        return _Subject(kind, f"{kind} {type(target).__name__}", target, None, {})
    component = target if isinstance(target, Component) else get_component(kind, target)
    if component.kind != kind:
        raise TypeError(f"{component.kind} '{component.name}' is not a {kind}")
    label = f"{kind} '{component.name}'"
    torch.manual_seed(0)
    try:
        net = component.create(**options)
    except Exception as exc:
        raise AssertionError(f"{label} fails the 'build' check: {type(exc).__name__}: {exc}") from exc
    if not isinstance(net, nn.Module):
        raise AssertionError(f"{label} fails the 'build' check: its factory returned {type(net).__name__}")
    return _Subject(kind, label, net, component, dict(options))


def _images(*shape: int) -> torch.Tensor:
    """Seeded uniform images in [-1, 1]."""
    return torch.rand(shape, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _at_least(side: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is at least ``side``."""
    return multiple * math.ceil(side / multiple)


def _size_multiple(s: _Subject, default: int | None) -> int:
    """The module's ``size_multiple`` (``default`` when it declares none; required when ``default`` is None)."""
    m = getattr(s.net, "size_multiple", default)
    ok = isinstance(m, int) and not isinstance(m, bool) and m >= 1
    s.require(ok, "size_multiple", f"the module must declare size_multiple, a positive int; got {m!r}")
    declared = s.component.metadata.get("size_multiple", m) if s.component else m
    s.require(declared == m, "size_multiple", f"registered with size_multiple={declared!r} but the module says {m}")
    return m


def _check_backward(s: _Subject, y: torch.Tensor) -> None:
    params = [(name, p) for name, p in s.net.named_parameters() if p.requires_grad]
    if not params:
        return  # nothing to train: nothing to check
    try:
        y.float().mean().backward()
    except Exception as exc:
        s.fail("backward", f"{type(exc).__name__}: {exc}")
    bad = [name for name, p in params if p.grad is None or not torch.isfinite(p.grad).all()]
    s.require(not bad, "backward", f"no finite gradient for {len(bad)} parameter(s): {', '.join(bad[:5])}")


def _check_bf16_channels_last(s: _Subject, x: torch.Tensor) -> None:
    """Training with ``precision = "bf16"`` (the default where the hardware has it) runs a bf16, channels-last
    copy of the network: forward and backward must work there too."""
    check = "bf16 channels-last"
    compute = ComputeCopy(s.net, torch.bfloat16, torch.channels_last)
    try:
        y = compute.module(compute.prepare(x))
        y.float().mean().backward()
    except Exception as exc:
        s.fail(
            check,
            f"raised {type(exc).__name__} on a bf16 channels-last input, which is how training with precision "
            f"bf16 runs it (a .view() that needs contiguous memory? .reshape() works in both layouts; users can "
            f'set train.memory_format = "contiguous"): {exc}',
        )
    s.require(bool(torch.isfinite(y.float()).all()), check, "NaN or infinite values in bf16")


def _check_rejects(s: _Subject, check: str, x: torch.Tensor, why: str) -> None:
    """``net(x)`` must raise ValueError."""
    try:
        with torch.no_grad():
            s.net(x)
    except ValueError:
        return
    except Exception as exc:
        s.fail(check, f"input {tuple(x.shape)} ({why}) raised {type(exc).__name__} instead of ValueError: {exc}")
    s.fail(check, f"input {tuple(x.shape)} ({why}) was accepted; it must raise ValueError")


def _check_off_multiple(s: _Subject, m: int, side: int) -> None:
    if m == 1:
        return
    for h, w in ((side + 1, side), (side, side + 1)):
        _check_rejects(s, "size_multiple", _images(1, 3, h, w), f"{h}x{w} is not a multiple of {m}")


def _reload(s: _Subject, folder: Path) -> nn.Module:
    """Save through :func:`save_component` and load back: a registered component is rebuilt by
    :func:`load_component`; a bare module's weights are loaded into a copy whose parameters were zeroed."""
    name = s.component.name if s.component else type(s.net).__name__
    path = save_component(folder / f"{name}.safetensors", s.net, s.kind, name, s.options)
    if s.component is not None:
        return load_component(path)
    clone = copy.deepcopy(s.net)
    for p in clone.parameters():
        p.zero_()
    load_state_dict_checked(clone, load_file(str(path)), source=str(path))
    return clone.eval()


def _check_round_trip(s: _Subject, x: torch.Tensor) -> None:
    s.net.eval()
    with torch.no_grad():
        expected = s.run("state-dict round trip", x)
        with tempfile.TemporaryDirectory() as folder:
            try:
                loaded = _reload(s, Path(folder))
            except Exception as exc:
                s.fail("state-dict round trip", f"save/load failed: {type(exc).__name__}: {exc}")
        try:
            got = loaded(x)
        except Exception as exc:
            s.fail("state-dict round trip", f"the reloaded module raised {type(exc).__name__}: {exc}")
    s.require(
        isinstance(got, torch.Tensor) and got.shape == expected.shape and torch.equal(got, expected),
        "state-dict round trip",
        "the module saved with save_component and loaded back gives different outputs",
    )


def check_generator(target: Target, /, **options: Any) -> nn.Module:
    """Check a generator against the contract: ``net(x)`` maps (B, 3, H, W) in [-1, 1] to the same shape in
    [-1, 1] for H and W multiples of its ``size_multiple`` and raises ValueError for other sizes.

    Args:
        target: a registered generator name, its :class:`~i2i_core.Component`, or a built module.
        options: the factory's options (only with a name or a component), e.g. ``ngf=8`` to keep it small.

    Checks, in order: ``size_multiple`` (a positive int attribute, equal to the registered metadata),
    forward on a batch of 2 (output shape, values in [-1, 1]), backward (a finite gradient on every
    parameter), forward and backward in bf16 channels-last (how bf16 training runs it), sizes off the multiple
    (ValueError), and a state-dict round trip through
    :func:`~i2i_core.save_component` / :func:`~i2i_core.load_component` (identical outputs).
    """
    s = _subject("generator", target, options)
    m = _size_multiple(s, default=None)
    side = _at_least(GENERATOR_SIDE, m)
    x = _images(2, 3, side, 2 * side)
    s.net.train()
    y = s.run("forward", x)
    s.require(y.shape == x.shape, "output shape", f"input {tuple(x.shape)} gave output {tuple(y.shape)}")
    finite = bool(torch.isfinite(y).all())
    s.require(finite, "output range", "the output has NaN or infinite values")
    low, high = y.min().item(), y.max().item()
    s.require(low >= -1 and high <= 1, "output range", f"values in [{low:.4g}, {high:.4g}], not in [-1, 1]")
    _check_backward(s, y)
    _check_bf16_channels_last(s, x)
    _check_off_multiple(s, m, side)
    _check_round_trip(s, x[:1])
    return s.net


def check_discriminator(target: Target, /, **options: Any) -> nn.Module:
    """Check a discriminator against the contract: ``net(x)`` maps (B, 3, H, W) to real/fake logits of any
    shape with B first, and raises ValueError for inputs that are not (B, 3, H, W).

    Args:
        target: a registered discriminator name, its :class:`~i2i_core.Component`, or a built module.
        options: the factory's options (only with a name or a component), e.g. ``ndf=8``.

    Checks, in order: an optional ``size_multiple`` (a positive int attribute, 1 when absent), forward on
    batches of 2 at two sizes (finite floating logits, one row per image), backward (a finite gradient on
    every parameter), forward and backward in bf16 channels-last, 4-channel inputs and sizes off the multiple (ValueError), and a state-dict round trip
    through :func:`~i2i_core.save_component` / :func:`~i2i_core.load_component` (identical outputs).
    """
    s = _subject("discriminator", target, options)
    m = _size_multiple(s, default=1)
    sides = [_at_least(side, m) for side in DISCRIMINATOR_SIDES]
    s.net.train()
    for side in sides:
        x = _images(2, 3, side, side)
        logits = s.run("forward", x)
        s.require(logits.is_floating_point(), "logits", f"logits of dtype {logits.dtype}, not floating point")
        s.require(
            logits.ndim >= 1 and logits.shape[0] == 2, "logits", f"a batch of 2 gave logits {tuple(logits.shape)}"
        )
        s.require(bool(torch.isfinite(logits).all()), "logits", "the logits have NaN or infinite values")
    _check_backward(s, logits)
    _check_bf16_channels_last(s, x)
    _check_rejects(s, "input shape", torch.zeros(1, 4, sides[0], sides[0]), "4 channels, not 3")
    _check_off_multiple(s, m, sides[0])
    _check_round_trip(s, x[:1])
    return s.net
