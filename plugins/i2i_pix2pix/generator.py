"""pix2pix's U-Net generators: ``unet256`` / ``unet128`` with batch norm and dropout, translating as the reference's
``test.py`` does unless told to translate in eval mode.

pix2pix runs its generator at test time exactly as in training (Isola et al. 2017, section 3.2): batch statistics,
not running averages, and dropout on. The reference's ``test.py`` does so unless run with ``--eval``. i2i loads a
generator in eval mode wherever it translates (``i2i translate``, ``i2i eval``, evaluations and samples during
training, ``i2i demo``), so these generators carry that choice themselves: with ``eval_mode=False``, eval mode
leaves their batch norms on the statistics of the batch (without updating the running averages) and their dropout
on. The layout, the state-dict keys and the training computation are ``unet256``'s and ``unet128``'s.
"""

from __future__ import annotations

import json

import torch
from i2i_unet import UnetGenerator
from torch import nn

from i2i_core.errors import I2IError

#: pix2pix's U-Net options, as its factories default them.
DEFAULTS = {"ngf": 64, "norm": "batch", "dropout": True}


class Pix2PixUnet(UnetGenerator):
    """A :class:`~i2i_unet.UnetGenerator` that, with ``eval_mode=False``, translates in eval mode as in training.

    Args:
        num_downs: down-samplings (7: ``unet128``, 8: ``unet256``).
        ngf: filters of the outermost level.
        norm: ``batch`` (pix2pix's), ``instance`` or ``none``.
        dropout: dropout 0.5 in the 8ngf levels below the innermost (pix2pix's).
        eval_mode: True: eval mode is eval mode (running statistics, no dropout; deterministic). False: the
            reference's ``test.py``: in eval mode each image is normalised with its own statistics (the
            reference tests one image at a time) and dropout stays on, so two translations of an image differ.

    Example:
        >>> net = Pix2PixUnet(num_downs=5, ngf=4, eval_mode=False).eval()
        >>> [type(m).__name__ for m in net.modules() if m.training][:2]
        ['BatchNorm2d', 'BatchNorm2d']
    """

    def __init__(
        self, num_downs: int = 8, ngf: int = 64, norm: str = "batch", dropout: bool = True, eval_mode: bool = True
    ) -> None:
        super().__init__(num_downs, ngf=ngf, norm=norm, dropout=dropout)
        self.eval_mode = eval_mode
        #: The options that differ from the defaults, as ``i2i import-weights --option`` takes them.
        self.changed = {k: v for k, v in {"ngf": ngf, "norm": norm, "dropout": dropout}.items() if v != DEFAULTS[k]}

    @property
    def as_in_training(self) -> bool:
        """Whether the generator is in eval mode and translates as in training (``eval_mode=False``)."""
        return not self.training and not self.eval_mode

    def train(self, mode: bool = True) -> Pix2PixUnet:
        """Set training (or eval) mode; with ``eval_mode=False`` eval mode keeps the batch norms on batch
        statistics (without updating their running averages) and dropout on."""
        super().train(mode)
        if not self.eval_mode:
            for module in self.modules():
                if isinstance(module, nn.modules.batchnorm._BatchNorm):
                    module.train(True)
                    module.track_running_stats = mode  # off: batch statistics, running averages left as they are
                elif isinstance(module, nn.Dropout):
                    module.train(True)
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.as_in_training and torch.onnx.is_in_onnx_export():
            options = " ".join(f"--option {k}={json.dumps(v)}" for k, v in self.changed.items())
            raise I2IError(
                "this pix2pix generator translates as the reference's test.py (batch statistics, dropout on: "
                "random), which ONNX cannot check; export a copy that translates in eval mode, made with `i2i "
                f"import-weights --from pix2pix-reference GENERATOR.safetensors -o EVAL.safetensors --arch "
                f"pix2pix-unet{self.size_multiple} {options + ' ' if options else ''}--option eval_mode=true`"
            )
        if self.as_in_training and len(x) > 1:  # the reference tests one image at a time: statistics per image
            return torch.cat([super(Pix2PixUnet, self).forward(image) for image in x.split(1)])
        return super().forward(x)


def pix2pix_unet256(ngf: int = 64, norm: str = "batch", dropout: bool = True, eval_mode: bool = True) -> Pix2PixUnet:
    """pix2pix's U-Net 256 (batch norm, dropout); eval_mode=false translates as the reference's test.py."""
    return Pix2PixUnet(8, ngf, norm, dropout, eval_mode)


def pix2pix_unet128(ngf: int = 64, norm: str = "batch", dropout: bool = True, eval_mode: bool = True) -> Pix2PixUnet:
    """pix2pix's U-Net 128 (batch norm, dropout); eval_mode=false translates as the reference's test.py."""
    return Pix2PixUnet(7, ngf, norm, dropout, eval_mode)
