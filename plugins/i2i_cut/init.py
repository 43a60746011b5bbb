"""CUT's initialisation of its networks (the reference's ``init_type = "xavier"``, gain 0.02)."""

from __future__ import annotations

import torch
from torch import nn

from i2i_core.layers import restore_identity_init

INIT_TYPES = ("xavier", "component")


@torch.no_grad()
def xavier_init(module: nn.Module, gain: float = 0.02) -> nn.Module:
    """Xavier-normal weights with ``gain`` on every Conv/ConvTranspose/Linear, zero biases; batch norms get
    normal(1, gain) weights and zero biases. Buffers (blur kernels) keep their values. Returns ``module``.

    Deliberate initialisations survive: modules that define ``reset_identity()`` (a generator built with
    ``residual=True``, whose zero output convolution makes it start as the identity) re-apply it afterwards,
    through :func:`i2i_core.layers.restore_identity_init`."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d | nn.ConvTranspose2d | nn.Linear):
            nn.init.xavier_normal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)
    return restore_identity_init(module)
