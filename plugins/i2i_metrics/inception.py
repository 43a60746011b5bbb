"""InceptionV3 feature extractors for ``kid`` and ``fid``, built from local weight files only (never downloaded).

Two files are accepted, told apart by their contents:

- :data:`FIDELITY_FILE`, the 2015-12-05 TensorFlow Inception converted for PyTorch (``fc.weight`` of 1008 rows),
  the network behind published FID and KID numbers, run through torchmetrics' ``NoTrainInceptionV3`` exactly as
  torch-fidelity runs it (8-bit inputs, TensorFlow-1 compatible bilinear resize to 299 x 299);
- :data:`TORCHVISION_FILE`, torchvision's ImageNet InceptionV3 (``fc.weight`` of 1000 rows): its features, and so
  its scores, are not comparable with published FID/KID.

Either yields the 2048-d pool features of (N, 3, H, W) images in [-1, 1]. A loaded extractor is kept per file
(path, size and modification time) for the rest of the process.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from i2i_core.errors import I2IError

#: The environment variable naming the weight file when the metric option ``weights`` is empty.
ENV = "I2I_INCEPTION_WEIGHTS"
FIDELITY_FILE = "weights-inception-2015-12-05-6726825d.pth"
FIDELITY_URL = f"https://github.com/toshas/torch-fidelity/releases/download/v0.2.0/{FIDELITY_FILE}"
TORCHVISION_FILE = "inception_v3_google-0cc3c7bd.pth"
TORCHVISION_URL = f"https://download.pytorch.org/models/{TORCHVISION_FILE}"
#: Rows of ``fc.weight`` in each accepted file: the TensorFlow network has 1008 classes, torchvision's 1000.
FIDELITY_CLASSES, TORCHVISION_CLASSES = 1008, 1000
FEATURES = 2048
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)

WEIGHTS_HELP = (
    f"Accepted files: torch-fidelity's {FIDELITY_FILE} (also distributed as pt_inception-2015-12-05-6726825d.pth; "
    f"the network behind published FID/KID), from {FIDELITY_URL} ; or torchvision's {TORCHVISION_FILE}, from "
    f"{TORCHVISION_URL} (its scores are not comparable with published ones)."
)
MISSING = (
    "kid and fid need local InceptionV3 weights, and i2i never downloads weights: pass --inception-weights PATH "
    f"to `i2i eval` (or the metric option weights = PATH), or set {ENV}=PATH. {WEIGHTS_HELP}"
)

_cache: dict[tuple[str, int, int], InceptionFeatures] = {}


class InceptionFeatures(nn.Module):
    """2048-d features of images: (N, 3, H, W) in [-1, 1] -> (N, 2048) float32. Always in evaluation mode."""

    num_features = FEATURES
    #: Whether scores over these features are comparable with published FID/KID.
    standard: bool = False

    def __init__(self, net: nn.Module, path: Path) -> None:
        super().__init__()
        self.net = net.eval().requires_grad_(False)
        self.path = path

    def train(self, mode: bool = True) -> InceptionFeatures:
        return super().train(False)


class FidelityInception(InceptionFeatures):
    """The FID Inception of torch-fidelity: images rounded to 8 bits (``round((x + 1) * 127.5)``, clamped first),
    resized to 299 x 299 like TensorFlow 1 and mapped to [-1, 1] inside; pool features."""

    standard = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(((x.to(torch.float32).clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8))


class TorchvisionInception(InceptionFeatures):
    """torchvision's ImageNet InceptionV3: images on [0, 1] resized to 299 x 299 (bilinear, antialiased), ImageNet
    normalisation (which the network's ``transform_input`` maps to the [-1, 1] scale its weights expect), pool
    features. Not comparable with published FID/KID."""

    #: The side of the network's input, in pixels.
    size = 299

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = (x.to(torch.float32) + 1) / 2
        u = F.interpolate(u, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=True)
        mean = torch.tensor(IMAGENET_MEAN, device=u.device).view(1, 3, 1, 1)
        std = torch.tensor(IMAGENET_STD, device=u.device).view(1, 3, 1, 1)
        return self.net((u - mean) / std)


def resolve_weights(weights: str = "") -> Path:
    """The weight file: ``weights``, else ``$I2I_INCEPTION_WEIGHTS``; I2IError when neither is set or it is missing."""
    given = weights or os.environ.get(ENV, "")
    if not given:
        raise I2IError(MISSING)
    path = Path(given).expanduser()
    if not path.is_file():
        source = "option weights" if weights else ENV
        raise I2IError(f"InceptionV3 weights '{path}' (from {source}) not found. {WEIGHTS_HELP}")
    return path


def _read_state(path: Path) -> dict[str, torch.Tensor]:
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not a PyTorch file, truncated, or pickling more than tensors
        raise I2IError(
            f"InceptionV3 weights '{path}' cannot be read as a PyTorch state dict: {exc}. {WEIGHTS_HELP}"
        ) from exc
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise I2IError(f"InceptionV3 weights '{path}' are not a state dict of tensors. {WEIGHTS_HELP}")
    return state


def _build(path: Path) -> InceptionFeatures:
    state = _read_state(path)
    fc = state.get("fc.weight")
    rows = fc.shape[0] if fc is not None and fc.shape[1:] == (FEATURES,) else None
    aux = any(k.startswith("AuxLogits.") for k in state)
    try:
        if rows == FIDELITY_CLASSES and not aux:
            from torchmetrics.image.fid import NoTrainInceptionV3

            net = NoTrainInceptionV3(
                name="inception-v3-compat",
                features_list=[str(FEATURES)],
                feature_extractor_weights_path=str(path),
                antialias=False,
            )
            return FidelityInception(net, path)
        if rows == TORCHVISION_CLASSES and aux:
            from torchvision.models import inception_v3

            net = inception_v3(weights=None, aux_logits=True, init_weights=False, transform_input=True)
            net.load_state_dict(state)
            net.fc = nn.Identity()
            return TorchvisionInception(net, path)
    except RuntimeError as exc:  # load_state_dict: missing, unexpected or misshapen tensors
        raise I2IError(f"InceptionV3 weights '{path}' do not fit the network: {exc}. {WEIGHTS_HELP}") from exc
    found = f"fc.weight of shape {tuple(fc.shape)}" if fc is not None else "no fc.weight"
    raise I2IError(
        f"InceptionV3 weights '{path}' have an unknown layout ({found}, {len(state)} tensors; expected fc.weight of "
        f"{FIDELITY_CLASSES} x {FEATURES} without AuxLogits, or {TORCHVISION_CLASSES} x {FEATURES} with them). "
        f"{WEIGHTS_HELP}"
    )


def load_inception(weights: str = "") -> InceptionFeatures:
    """The feature extractor of a local weight file (see :func:`resolve_weights`), loaded once per file.

    Raises:
        I2IError: no file given, missing, unreadable, or of neither accepted layout (the message names the file).
    """
    path = resolve_weights(weights).resolve()
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key not in _cache:
        with torch.no_grad():
            _cache[key] = _build(path)
    return _cache[key]
