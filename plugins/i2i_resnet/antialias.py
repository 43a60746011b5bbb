"""Anti-aliased resampling (Zhang, "Making Convolutional Networks Shift-Invariant Again", ICML 2019), as CUT uses
it: a fixed binomial blur fused with the stride, in place of strided and transposed convolutions.

The blur kernels are buffers named ``filt`` (one copy per channel), so state-dict keys match reference CUT
checkpoints.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from i2i_core.layers import reflection_pad2d


def _binomial_kernel(taps: list[float], channels: int, gain: float) -> torch.Tensor:
    """The separable kernel ``outer(taps, taps)``, summing to ``gain``, once per channel: (C, 1, k, k)."""
    row = torch.tensor(taps, dtype=torch.float32)
    kernel = torch.outer(row, row)
    return (kernel * (gain / kernel.sum())).expand(channels, 1, -1, -1).contiguous()


class Downsample(nn.Module):
    """Blur-pool: reflect-pad by 1, blur with [1,2,1]x[1,2,1]/16, keep every second pixel.

    (B, C, H, W) -> (B, C, ceil(H/2), ceil(W/2)).

    Example:
        >>> Downsample(2)(torch.ones(1, 2, 6, 6)).shape
        torch.Size([1, 2, 3, 3])
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", _binomial_kernel([1.0, 2.0, 1.0], channels, gain=1.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(reflection_pad2d(x, (1, 1, 1, 1)), self.filt, stride=2, groups=x.shape[1])


class Upsample(nn.Module):
    """Blurred up-sampling: replicate-pad by 1, transposed blur with [1,3,3,1]x[1,3,3,1]*4/64 and stride 2,
    cropped to twice the input size (one row and column off each border of the padded result).

    (B, C, H, W) -> (B, C, 2H, 2W); a constant image stays constant.

    Example:
        >>> y = Upsample(2)(torch.ones(1, 2, 3, 3))
        >>> y.shape, bool((y == 1).all())
        (torch.Size([1, 2, 6, 6]), True)
    """

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("filt", _binomial_kernel([1.0, 3.0, 3.0, 1.0], channels, gain=4.0))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (H + 2) padded rows give 2H + 4 - 2 * 2 = 2H + 2 output rows with padding 2; drop the outer two
        y = F.conv_transpose2d(
            F.pad(x, (1, 1, 1, 1), mode="replicate"), self.filt, stride=2, padding=2, groups=x.shape[1]
        )
        return y[..., 1:-1, 1:-1]
