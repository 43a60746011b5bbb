"""Building blocks shared by networks: normalisation layers, reference weight init, input checks.

Plugin authors may use these so their networks behave like the first-party ones.
"""

from __future__ import annotations

import torch
from torch import nn

from i2i_core.errors import I2IError

NORMS = ("instance", "batch", "none")


def norm_layer(norm: str, channels: int) -> nn.Module:
    """The reference CycleGAN's normalisation: ``instance`` (no affine, no running stats), ``batch`` or ``none``.

    Example:
        >>> norm_layer("instance", 64)
        InstanceNorm2d(64, eps=1e-05, momentum=0.1, affine=False, track_running_stats=False)
    """
    if norm == "instance":
        return nn.InstanceNorm2d(channels, affine=False, track_running_stats=False)
    if norm == "batch":
        return nn.BatchNorm2d(channels, affine=True, track_running_stats=True)
    if norm == "none":
        return nn.Identity()
    raise I2IError(f"unknown norm '{norm}'; choose one of {', '.join(NORMS)}")


def conv_bias(norm: str) -> bool:
    """Whether convolutions carry a bias: not before batch norm, whose shift makes it redundant."""
    return norm != "batch"


@torch.no_grad()
def init_reference_weights(module: nn.Module, std: float = 0.02) -> nn.Module:
    """The reference initialisation: normal(0, std) on Conv/ConvTranspose/Linear weights, zero biases,
    normal(1, std) on batch-norm weights. Returns ``module``."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.normal_(m.weight, 0.0, std)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, std)
            nn.init.zeros_(m.bias)
    return module


def check_images(x: torch.Tensor, name: str = "input", multiple: int = 1) -> None:
    """Check that ``x`` is a (B, 3, H, W) floating tensor whose H and W are multiples of ``multiple``."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim != 4 or x.shape[1] != 3:
        raise ValueError(f"{name} must have shape (B, 3, H, W), got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{name} must be a floating tensor in [-1, 1], got {x.dtype}")
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise ValueError(f"{name} height and width must be multiples of {multiple}, got {h}x{w}")
