"""Maths on feature maps that every method shares: spatial pooling, cosine maps against one or K
vectors per sample or against shared prototypes, the visual objectness prior and the gating by it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

COSINE_EPS = 1e-8


def global_max_pool(maps: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C) spatial maximum."""
    return maps.flatten(2).amax(dim=2)


def global_avg_pool(maps: torch.Tensor) -> torch.Tensor:
    """(B, C, h, w) -> (B, C) spatial mean."""
    return maps.flatten(2).mean(dim=2)


def cosine_map(visual: torch.Tensor, vectors: torch.Tensor) -> torch.Tensor:
    """Per-position cosine between a feature map and one or K vectors per sample.

    Args:
        visual: (B, D, h, w) feature map.
        vectors: (B, D) one vector per sample, or (B, K, D) K vectors per sample.

    Returns:
        (B, 1, h, w) for (B, D) vectors, (B, K, h, w) for (B, K, D); values in [-1, 1].
    """
    v = F.normalize(visual, dim=1, eps=COSINE_EPS)
    u = F.normalize(vectors, dim=-1, eps=COSINE_EPS)
    if vectors.ndim == 2:
        return torch.einsum("bdhw,bd->bhw", v, u).unsqueeze(1)
    if vectors.ndim == 3:
        return torch.einsum("bdhw,bkd->bkhw", v, u)
    raise ValueError(f"vectors must be (B, D) or (B, K, D), got shape {tuple(vectors.shape)}")


def prototype_cosine_map(visual: torch.Tensor, prototypes: torch.Tensor) -> torch.Tensor:
    """Cosine of each position with each of K shared prototypes: (B,D,h,w), (K,D) -> (B,K,h,w)."""
    v = F.normalize(visual, dim=1, eps=COSINE_EPS)
    p = F.normalize(prototypes, dim=-1, eps=COSINE_EPS)
    return torch.einsum("bdhw,kd->bkhw", v, p)


def objectness(features: torch.Tensor) -> torch.Tensor:
    """Visual objectness O: (B, C, h, w) backbone map -> (B, 1, h, w) in [0, 1].

    The mean absolute activation over channels, min-max normalised per image (EZ-VSL's
    object-guided localization prior). A constant map gives zeros.
    """
    energy = features.abs().mean(dim=1, keepdim=True)
    low = energy.flatten(1).amin(dim=1)[:, None, None, None]
    high = energy.flatten(1).amax(dim=1)[:, None, None, None]
    return (energy - low) / (high - low).clamp_min(COSINE_EPS)


def gate_by_objectness(maps: torch.Tensor, prior: torch.Tensor, weight: float) -> torch.Tensor:
    """maps (B, C, h, w) in [0, 1] times (1 - weight) + weight * prior (B, 1, h, w); same range."""
    if weight == 0.0:
        return maps
    return maps * ((1.0 - weight) + weight * prior)
