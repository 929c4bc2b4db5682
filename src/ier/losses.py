"""Training losses as pure functions: DSOL's AV BCE, pseudo-label CE, the AII prototype loss and
the CMR cross-distillation (symmetric KL). Every loss returns a scalar tensor (batch mean).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

PROB_EPS = 1e-8


def _flat_maps(maps: torch.Tensor, name: str) -> torch.Tensor:
    """(B, 1, h, w) or (B, h, w) -> (B, h, w)."""
    if maps.ndim == 4 and maps.shape[1] == 1:
        return maps[:, 0]
    if maps.ndim == 3:
        return maps
    raise ValueError(f"{name} must be (B, 1, h, w) or (B, h, w), got shape {tuple(maps.shape)}")


def av_bce_loss(
    pos_maps: torch.Tensor, neg_maps: torch.Tensor, *, negative_pooling: str = "global"
) -> torch.Tensor:
    """DSOL's localization loss on AV maps in [0, 1] (method.md §1.3, §1.7, §2.4).

    L = 1/2 [ mean_b BCE(GMP(pos_b), 1) + mean BCE(neg pools, 0) ], where the negative pools are
    GMP(neg_b) ("global", stage 1: every clip's audio with another video's frame) or the four
    2x2 max-pooled quadrants of neg_b ("quadrants", multi-source scenes: no quadrant may respond).

    Args:
        pos_maps: (B, 1, h, w) maps of matched image/audio pairs.
        neg_maps: (B', 1, h, w) maps of mismatched pairs.
        negative_pooling: "global" or "quadrants".

    Returns:
        Scalar loss.
    """
    pos = _flat_maps(pos_maps, "pos_maps")
    neg = _flat_maps(neg_maps, "neg_maps")
    pos_scores = pos.flatten(1).amax(dim=1)
    if negative_pooling == "global":
        neg_scores = neg.flatten(1).amax(dim=1)
    elif negative_pooling == "quadrants":
        if min(neg.shape[-2:]) < 2:
            raise ValueError(f"quadrant pooling needs maps of at least 2x2, got {tuple(neg.shape)}")
        neg_scores = F.adaptive_max_pool2d(neg.unsqueeze(1), 2).flatten()
    else:
        raise ValueError(
            f"negative_pooling must be 'global' or 'quadrants', got {negative_pooling!r}"
        )
    pos_loss = -_safe_log(pos_scores).mean()
    neg_loss = -_safe_log(1.0 - neg_scores).mean()
    return 0.5 * (pos_loss + neg_loss)


def _safe_log(x: torch.Tensor) -> torch.Tensor:
    """log in float32 clamped at -100, exactly as ``F.binary_cross_entropy`` (but autocast-safe)."""
    return torch.log(x.float()).clamp_min(-100.0)


def pseudo_label_ce(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of (B, K) logits against (B,) integer pseudo-labels (k-means clusters)."""
    return F.cross_entropy(logits, labels.long())


def _target_distribution(targets: torch.Tensor, num_classes: int) -> torch.Tensor:
    """(B,) labels or (B, K) multi-hot -> (B, K) float target normalised to sum 1 per row."""
    if targets.ndim == 1:
        return F.one_hot(targets.long(), num_classes).float()
    if targets.ndim != 2 or targets.shape[1] != num_classes:
        raise ValueError(f"targets must be (B,) or (B, {num_classes}), got {tuple(targets.shape)}")
    targets = targets.float()
    totals = targets.sum(dim=1, keepdim=True)
    if bool((totals <= 0).any()):
        raise ValueError("every target row needs at least one positive class")
    return targets / totals


def prototype_loss(
    scores: torch.Tensor, targets: torch.Tensor, *, tau: float = 0.1
) -> torch.Tensor:
    """AII loss L^m_p (method.md §1.5, Q5): softmax-CE against the L1-normalised multi-hot target.

    L = -mean_b sum_k yhat_bk log softmax_k(s_bk / tau), yhat = y / ||y||_1.

    Args:
        scores: (B, K) cosines s_k = cos(F^a_k, P^a_k).
        targets: (B, K) multi-hot (or non-negative weights), or (B,) integer labels.
        tau: Temperature tau_a.
    """
    target = _target_distribution(targets, scores.shape[1])
    log_probs = torch.log_softmax(scores / tau, dim=1)
    return -(target * log_probs).sum(dim=1).mean()


def prototype_bce_loss(
    scores: torch.Tensor, targets: torch.Tensor, *, tau: float = 0.1, margin: float = 0.5
) -> torch.Tensor:
    """Multi-label ablation of ``prototype_loss``: BCE on sigma((s_k - margin) / tau).

    Args:
        scores: (B, K) cosines.
        targets: (B, K) multi-hot in {0, 1}, or (B,) integer labels.
        tau: Temperature.
        margin: Cosine at which a class counts as half present.
    """
    if targets.ndim == 1:
        targets = F.one_hot(targets.long(), scores.shape[1])
    return F.binary_cross_entropy_with_logits((scores - margin) / tau, targets.float())


def kl_divergence(p: torch.Tensor, q: torch.Tensor, *, eps: float = PROB_EPS) -> torch.Tensor:
    """Batch-mean KL(p || q) = mean_b sum_k p log(p / q) for (B, K) distributions.

    Terms with p_k = 0 contribute exactly 0; ``eps`` only guards log(0) on q and p.
    """
    if p.shape != q.shape or p.ndim != 2:
        raise ValueError(f"p and q must both be (B, K), got {tuple(p.shape)} and {tuple(q.shape)}")
    terms = p * (torch.log(p.clamp_min(eps)) - torch.log(q.clamp_min(eps)))
    return terms.sum(dim=1).mean()


def symmetric_kl(
    p: torch.Tensor, q: torch.Tensor, *, detach_targets: bool = True, eps: float = PROB_EPS
) -> torch.Tensor:
    """CMR cross-distillation L_cd = KL(p || q) + KL(q || p) (method.md §1.6 step 8, Q9).

    With ``detach_targets`` each term treats its first argument as the teacher: KL(p.detach() || q)
    trains only q, KL(q.detach() || p) trains only p (mutual learning).

    Args:
        p: (B, K) distribution, e.g. p^va.
        q: (B, K) distribution, e.g. p^av.
        detach_targets: Stop the gradient through the teacher side of each term.
        eps: Log floor.
    """
    p_teacher = p.detach() if detach_targets else p
    q_teacher = q.detach() if detach_targets else q
    return kl_divergence(p_teacher, q, eps=eps) + kl_divergence(q_teacher, p, eps=eps)
