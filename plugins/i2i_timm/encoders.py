"""timm backbones as multi-scale encoders: name checks, ``features_only`` models and offline-friendly errors."""

from __future__ import annotations

import difflib

import timm
from timm.models import get_pretrained_cfg
from torch import nn

from i2i_core.errors import I2IError

#: Encoders to suggest when a name cannot be used: small, convolutional, any input size.
EXAMPLES = "resnet18, efficientnet_b0 or convnext_atto"


def _close_names(name: str, names: list[str]) -> str:
    """``" Did you mean 'a', 'b' or 'c'?"`` for up to three close names, or ``""``."""
    matches = [f"'{m}'" for m in difflib.get_close_matches(name, names, n=3, cutoff=0.6)]
    if not matches:
        return ""
    listed = matches[0] if len(matches) == 1 else f"{', '.join(matches[:-1])} or {matches[-1]}"
    return f" Did you mean {listed}?"


def check_encoder(encoder: str, pretrained: bool) -> None:
    """Check that ``encoder`` names a timm model (``arch`` or ``arch.tag``) that takes any input size, and that
    it has pretrained weights when ``pretrained``.

    Example:
        >>> check_encoder("resnet18", pretrained=False)
    """
    weights = timm.list_models(pretrained=True)  # "arch.tag" names
    with_weights = {w.partition(".")[0] for w in weights}
    if pretrained:
        known = [*sorted(with_weights), *weights]
        if encoder not in known:
            if encoder in timm.list_models():
                raise I2IError(
                    f"timm encoder '{encoder}' has no pretrained weights; set pretrained = false, or choose one "
                    f"that has them (timm.list_models(pretrained=True)).{_close_names(encoder, known)}"
                )
            raise I2IError(
                f"unknown timm encoder '{encoder}' (with pretrained weights).{_close_names(encoder, known)} "
                f"See timm.list_models(pretrained=True)."
            )
    else:
        known = [*timm.list_models(), *weights]
        if encoder not in known:
            raise I2IError(
                f"unknown timm encoder '{encoder}'.{_close_names(encoder, known)} "
                f"See timm.list_models(), e.g. timm.list_models('resnet*')."
            )
    cfg = get_pretrained_cfg(encoder, allow_unregistered=True)
    if cfg is not None and cfg.fixed_input_size:
        size = "x".join(str(s) for s in cfg.input_size[1:])
        raise I2IError(
            f"timm encoder '{encoder}' only takes {size} inputs (a fixed input size), but a generator must take any "
            f"multiple of its size multiple; choose an encoder without one, e.g. {EXAMPLES}."
        )


def create_encoder(encoder: str, pretrained: bool = False) -> nn.Module:
    """``timm.create_model(encoder, features_only=True, pretrained=pretrained)``, checked first, with clear errors
    for encoders without ``features_only`` and for weights that cannot be downloaded or found in the cache.

    The module maps (B, 3, H, W) to a list of feature maps described by its ``feature_info``.

    Example:
        >>> create_encoder("resnet18").feature_info.reduction()
        [2, 4, 8, 16, 32]
    """
    check_encoder(encoder, pretrained)
    try:
        return timm.create_model(encoder, features_only=True, pretrained=pretrained)
    except OSError as exc:  # huggingface_hub's LocalEntryNotFoundError, urllib's URLError, ...
        if not pretrained:
            raise
        raise I2IError(
            f"cannot load the pretrained weights of timm encoder '{encoder}': they could not be downloaded and are "
            f"not in the local cache ({type(exc).__name__}). Download them once where there is internet access "
            f"(python -c \"import timm; timm.create_model('{encoder}', pretrained=True)\") and copy the Hugging Face "
            "cache (~/.cache/huggingface/hub, or $HF_HUB_CACHE) to this machine; HF_HUB_OFFLINE=1 then reads it "
            "without retrying the network. Or set pretrained = false to start from timm's random init."
        ) from exc
    except Exception as exc:
        raise I2IError(
            f"timm encoder '{encoder}' cannot be built with features_only=True, which timm-unet needs for its "
            f"multi-scale features ({type(exc).__name__}: {exc}); choose another encoder, e.g. {EXAMPLES}."
        ) from exc
