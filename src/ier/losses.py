"""Every training loss, as pure functions: DSOL's AV BCE, pseudo-label CE, the AII prototype loss,
the CMR cross-distillation (symmetric KL), and the baselines' losses (Senocak's margin
contrastive loss, EZ-VSL's and SLAVC's multiple-instance InfoNCE, Sound of Pixels' weighted mask
BCE, the supervised ceiling's box targets). Every loss returns a scalar tensor (batch mean).
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

logger = logging.getLogger(__name__)

PROB_EPS = 1e-8
PROB_FLOOR = 1e-30
SOP_WEIGHT_RANGE = (1e-3, 10.0)  # SoP clamps its log(1 + |X_mix|) loss weight to this range


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


# --- baselines -----------------------------------------------------------------------------------


def margin_contrastive_loss(
    pos_distance: torch.Tensor, neg_distance: torch.Tensor, *, margin: float
) -> torch.Tensor:
    """DSOL's attention-baseline loss: mean over all 2B pairs of 1/2 [y d^2 + (1-y) relu(m-d)^2].

    Args:
        pos_distance: (B,) distances of matched pairs.
        neg_distance: (B',) distances of mismatched pairs.
        margin: m.
    """
    terms = torch.cat([pos_distance.pow(2), F.relu(margin - neg_distance).pow(2)])
    return 0.5 * terms.mean()


def mil_logits(visual: torch.Tensor, audio: torch.Tensor, *, tau: float) -> torch.Tensor:
    """EZ-VSL pair logits: max_xy cos(v^n_xy, a^m) / tau, (B, D, h, w), (B, D) -> (B_img, B_aud)."""
    return torch.einsum("nchw,mc->nmhw", visual, audio).flatten(2).amax(dim=2) / tau


def mil_infonce_loss(visual: torch.Tensor, audio: torch.Tensor, *, tau: float) -> torch.Tensor:
    """EZ-VSL's symmetric multiple-instance InfoNCE: CE over audios + CE over images."""
    logits = mil_logits(visual, audio, tau=tau)
    labels = torch.arange(len(logits), device=logits.device)
    return F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)


def slavc_loss(out: dict[str, torch.Tensor], *, tau: float) -> torch.Tensor:
    """SLAVC's loss: for each direction, the probability that the pair matches is the sum over
    cells of softmax-over-partners (head 1) times softmax-over-cells (head 2); the online side is
    scored against the momentum targets, CE on the diagonal (SLAVC ``model.py``)."""

    def direction(v1, a1, v2, a2) -> torch.Tensor:  # noqa: ANN001
        over_partners = torch.softmax(torch.einsum("nchw,mc->nmhw", v1, a1).flatten(2) / tau, 1)
        over_cells = torch.softmax(torch.einsum("nchw,mc->nmhw", v2, a2).flatten(2) / tau, 2)
        return torch.log((over_partners * over_cells).sum(dim=2).clamp_min(PROB_FLOOR))

    i2a = direction(out["visual1"], out["audio1_t"], out["visual2"], out["audio2_t"])
    a2i = direction(out["visual1_t"], out["audio1"], out["visual2_t"], out["audio2"])
    labels = torch.arange(len(i2a), device=i2a.device)
    return F.cross_entropy(a2i, labels) + F.cross_entropy(i2a, labels)


def separation_loss(
    logits: torch.Tensor, targets: torch.Tensor, mixture: torch.Tensor
) -> torch.Tensor:
    """SoP's weighted BCE on binary masks, weight = clamp(log(1 + |X_mix|), 1e-3, 10), divided by
    its mean over the batch [ours].

    SoP's weight was made for STFT magnitudes of O(1) to O(100). Our mel magnitudes of 1-s windows
    are about 1e-3 (n_fft 160), so without the division most weights sit at the 1e-3 floor, the
    loss is about 1e-3 and Adam's L2 weight decay outweighs it (docs/baselines.md, Sound of
    Pixels). The division keeps SoP's relative weighting (louder bins count more) on the BCE's
    scale.

    Args:
        logits: (B, 1, T, M) mask logits; targets: same shape in {0, 1};
        mixture: (B, 1, T, M) mixture magnitude.
    """
    weight = separation_weight(mixture)
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weight / weight.mean())


def separation_weight(mixture: torch.Tensor) -> torch.Tensor:
    """SoP's per-bin loss weight clamp(log(1 + |X_mix|), 1e-3, 10), before ``separation_loss``
    divides it by its batch mean."""
    return torch.log1p(mixture).clamp(*SOP_WEIGHT_RANGE)


def box_coverage(boxes: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Fraction of each feature cell covered by each box.

    Args:
        boxes: (..., 4) normalised xyxy.

    Returns:
        (..., height, width) in [0, 1].
    """

    def overlap(lo: torch.Tensor, hi: torch.Tensor, n: int) -> torch.Tensor:
        edges = torch.arange(n + 1, device=boxes.device, dtype=boxes.dtype) / n
        inter = torch.minimum(hi[..., None], edges[1:]) - torch.maximum(lo[..., None], edges[:-1])
        # Clamped above too: (hi - lo) * n rounds to 1 + 1e-7 on some edges, and a BCE target
        # must lie in [0, 1].
        return (inter * n).clamp(0.0, 1.0)

    rows = overlap(boxes[..., 1], boxes[..., 3], height)
    cols = overlap(boxes[..., 0], boxes[..., 2], width)
    return rows[..., :, None] * cols[..., None, :]


def class_box_targets(
    batch: dict[str, torch.Tensor], num_classes: int, height: int, width: int, *, sounding: bool
) -> torch.Tensor:
    """Per-class cell coverage of a batch's boxes (max over a class's boxes).

    Args:
        batch: with ``boxes`` (B, M, 4), ``box_labels`` (B, M) (-1 = padding), ``box_sounding``.
        sounding: Only the sounding objects' boxes (else every visible object).

    Returns:
        (B, C, height, width) in [0, 1].
    """
    labels = batch["box_labels"]
    keep = labels >= 0
    if sounding:
        keep = keep & batch["box_sounding"].bool()
    onehot = F.one_hot(labels.clamp_min(0), num_classes).to(batch["boxes"].dtype)
    onehot = onehot * keep[..., None]  # (B, M, C)
    cover = box_coverage(batch["boxes"], height, width)  # (B, M, h, w)
    return (cover[:, :, None] * onehot[..., None, None]).amax(dim=1)
