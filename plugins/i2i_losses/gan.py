"""Adversarial losses: ``loss(prediction, target_is_real) -> scalar``, averaged over every logit.

A GAN loss object may declare ``decision_threshold``: the discriminator output halfway between its real and fake
targets, above which an output says "real". Adaptive augmentation (:mod:`i2i_core.augment`) measures how sure the
discriminator is of reals against it; a loss that declares none gets 0 (right for losses on raw logits).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def lsgan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Least-squares GAN loss (Mao et al., 2017): mean of (prediction - target)^2, target 1 or 0.

    Example:
        >>> lsgan_loss(torch.tensor([[0.2, 0.9], [-0.3, 1.4]]), True)
        tensor(0.6250)
    """
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.mse_loss(prediction, target)


def bce_gan_loss(prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
    """Vanilla GAN loss: binary cross-entropy of raw logits against 1 (real) or 0 (fake).

    Example:
        >>> bce_gan_loss(torch.tensor([[0.2, 0.9], [-0.3, 1.4]]), False)
        tensor(1.0535)
    """
    target = torch.ones_like(prediction) if target_is_real else torch.zeros_like(prediction)
    return F.binary_cross_entropy_with_logits(prediction, target)


class LSGANLoss(nn.Module):
    """Module twin of :func:`lsgan_loss`."""

    #: halfway between the targets 1 (real) and 0 (fake)
    decision_threshold = 0.5

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        return lsgan_loss(prediction, target_is_real)


class BCEGANLoss(nn.Module):
    """Module twin of :func:`bce_gan_loss`."""

    #: the logit of probability 1/2
    decision_threshold = 0.0

    def forward(self, prediction: torch.Tensor, target_is_real: bool) -> torch.Tensor:
        return bce_gan_loss(prediction, target_is_real)


def lsgan() -> LSGANLoss:
    """Least-squares GAN loss (CycleGAN's and the paper's choice)."""
    return LSGANLoss()


def bce() -> BCEGANLoss:
    """Vanilla GAN loss: binary cross-entropy with logits."""
    return BCEGANLoss()
