"""The PatchNCE loss of CUT (Park et al., 2020): each query patch must pick its own key among the other patches
of the same image."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

#: The logit given to a patch paired with itself among the negatives: it is the positive, not a negative.
SELF_LOGIT = -10.0


def patchnce_loss(query: torch.Tensor, key: torch.Tensor, temperature: float = 0.07) -> torch.Tensor:
    """InfoNCE over matching patches, negatives from the same image.

    Args:
        query, key: (N, D) embeddings of N patches of one image, or (B, N, D) for B images; row ``i`` of the key
            is the positive of row ``i`` of the query, the image's other key rows its negatives. Keys are
            constants (detached).
        temperature: the logits' divisor.

    Returns:
        The cross-entropy of [positive, negatives] / temperature against the positive, averaged over patches.

    Example:
        >>> k = torch.eye(4)
        >>> round(patchnce_loss(k, k).item(), 4)
        0.0
    """
    if query.shape != key.shape or query.ndim not in (2, 3):
        raise ValueError(
            f"query and key must both be (N, D) or (B, N, D), got {tuple(query.shape)}, {tuple(key.shape)}"
        )
    q, k = (t.unsqueeze(0) if t.ndim == 2 else t for t in (query, key.detach()))
    positive = (q * k).sum(-1, keepdim=True)  # (B, N, 1)
    negatives = q @ k.transpose(1, 2)  # (B, N, N)
    diagonal = torch.eye(q.shape[1], dtype=torch.bool, device=q.device)
    negatives = negatives.masked_fill(diagonal, SELF_LOGIT)
    logits = torch.cat([positive, negatives], -1).flatten(0, 1) / temperature
    return F.cross_entropy(logits, torch.zeros(logits.shape[0], dtype=torch.long, device=q.device))


class PatchNCELoss(nn.Module):
    """Module form of :func:`patchnce_loss`: ``loss(query, key) -> scalar``."""

    def __init__(self, temperature: float = 0.07) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def forward(self, query: torch.Tensor, key: torch.Tensor) -> torch.Tensor:
        return patchnce_loss(query, key, self.temperature)


def patchnce(temperature: float = 0.07) -> PatchNCELoss:
    """PatchNCE: contrastive loss between matching patches of a source and its translation (CUT)."""
    return PatchNCELoss(temperature)
