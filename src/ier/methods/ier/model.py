"""Interference Eraser (IEr): stage-1 AV network, prototypes, Audio-Instance-Identifier and the
Cross-modal Referrer (method.md §1; equations as implemented in docs/method.md).

Dimensions: B batch, D embedding width, K clusters (prototypes), C categories, h x w feature map.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ier.clustering import attended_object_features, object_features
from ier.models import register_model
from ier.models.common import TwoTowerModel
from ier.models.config import ModelConfig
from ier.models.maps import (
    COSINE_EPS,
    cosine_map,
    gate_by_objectness,
    global_avg_pool,
    global_max_pool,
    prototype_cosine_map,
)
from ier.models.names import names_from_bytes, names_to_bytes, resize_names_buffer
from ier.models.output import LOG_FLOOR_PROB, LocalizationOutput, audibility

logger = logging.getLogger(__name__)

CLASSIFIER_INIT_STD = 0.01  # DSOL re-initialises its pseudo-label heads with N(0, 0.01)


class IdentifyBranch(nn.Module):
    """AII "Identify" branch: pooled mid-level audio feature (B, C3) -> offsets Delta (B, K, D).

    LayerNorm(C3), then an MLP C3 -> hidden -> K*D with a ReLU. The last layer starts near zero
    (method.md Q4) so that F^a_k = f^a + Delta_k ~ f^a before training; the LayerNorm keeps that
    true whatever the scale of the mid-level feature (log-mel dB inputs are not normalised).
    """

    def __init__(
        self, *, in_channels: int, hidden: int, num_clusters: int, embed_dim: int, init_std: float
    ) -> None:
        super().__init__()
        self.num_clusters, self.embed_dim = num_clusters, embed_dim
        self.mlp = nn.Sequential(
            nn.LayerNorm(in_channels),
            nn.Linear(in_channels, hidden), nn.ReLU(inplace=True),
            nn.Linear(hidden, num_clusters * embed_dim),
        )  # fmt: skip
        nn.init.normal_(self.mlp[-1].weight, std=init_std)
        nn.init.zeros_(self.mlp[-1].bias)

    def forward(self, mid: torch.Tensor) -> torch.Tensor:
        """Args: mid (B, C3). Returns: Delta (B, K, D)."""
        return self.mlp(mid).view(-1, self.num_clusters, self.embed_dim)


@register_model("ier")
class IERModel(TwoTowerModel):
    """IEr: class-aware sound localization that erases off-screen sounds and silent objects.

    Stage-1 parts (AV map, pseudo-label heads) come from ``TwoTowerModel`` plus two linear heads;
    prototypes, the cluster -> category mapping and the category names are buffers, so a
    ``state_dict`` carries everything ``localize`` needs.

    Args:
        config: Architecture; ``config.ier`` holds temperatures, thresholds and ablation switches.
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(config)
        k, d = config.num_clusters, self.embed_dim
        self.num_clusters = k
        self.identify: IdentifyBranch | None = None
        if config.ier.use_aii:
            self.identify = IdentifyBranch(
                in_channels=self.mid_channels, hidden=config.ier.aii_hidden,
                num_clusters=k, embed_dim=d, init_std=config.ier.aii_init_std,
            )  # fmt: skip
        self.visual_classifier = nn.Linear(d, k)
        self.audio_classifier = nn.Linear(d, k)
        self.reset_classifier_heads()
        backbone_space = config.ier.prototype_space == "backbone"
        self.prototype_dim = self.visual_backbone.out_channels if backbone_space else d
        self.register_buffer("visual_prototypes", torch.zeros(k, self.prototype_dim))
        self.register_buffer("audio_prototypes", torch.zeros(k, d))
        self.register_buffer("cluster_to_class", torch.arange(k))
        self.register_buffer("class_names_utf8", torch.zeros(0, dtype=torch.uint8))

    # ------------------------------------------------------------------ state: prototypes, classes

    @property
    def has_prototypes(self) -> bool:
        """True once ``set_prototypes`` stored non-zero prototypes (stage 1b done)."""
        return bool(self.visual_prototypes.abs().sum() > 0)

    @property
    def provides_decision_cues(self) -> bool:
        """``localize`` returns ``cues`` (``DECISION_CUES``) once the prototypes exist."""
        return self.has_prototypes

    @property
    def classes(self) -> tuple[str, ...]:
        """Names of the localize maps: set names, else "cluster_k", else ("*",) (no prototypes)."""
        if self.class_names_utf8.numel():
            return names_from_bytes(self.class_names_utf8)
        if self.has_prototypes:
            return tuple(f"cluster_{k}" for k in range(self.num_clusters))
        return ("*",)

    def set_prototypes(
        self, visual: torch.Tensor | np.ndarray, audio: torch.Tensor | np.ndarray
    ) -> None:
        """Store P^v (K, prototype_dim: D, or the backbone's channels with ``prototype_space =
        "backbone"``) and P^a (K, D) as frozen buffers."""
        for name, value, dim in (("visual", visual, self.prototype_dim),
                                 ("audio", audio, self.embed_dim)):  # fmt: skip
            shape = tuple(value.shape)
            if shape != (self.num_clusters, dim):
                raise ValueError(
                    f"{name} prototypes must be (K, {dim}) = ({self.num_clusters}, {dim}), "
                    f"got {shape}"
                )
        with torch.no_grad():
            self.visual_prototypes.copy_(torch.as_tensor(visual, dtype=torch.float32))
            self.audio_prototypes.copy_(torch.as_tensor(audio, dtype=torch.float32))

    def set_class_mapping(
        self, classes: Sequence[str], cluster_to_class: torch.Tensor | np.ndarray | Sequence[int]
    ) -> None:
        """Name the output categories and map every cluster to one (-1 = cluster unused).

        Args:
            classes: C category names (the order of ``localize`` maps).
            cluster_to_class: (K,) integer category index per cluster, in [-1, C).
        """
        classes = tuple(str(c) for c in classes)
        mapping = torch.as_tensor(cluster_to_class).detach().cpu().long().reshape(-1)
        if not classes or len(set(classes)) != len(classes):
            raise ValueError(f"classes must be non-empty and unique, got {classes}")
        if mapping.numel() != self.num_clusters:
            raise ValueError(
                f"cluster_to_class needs {self.num_clusters} entries, got {mapping.numel()}"
            )
        if mapping.min() < -1 or mapping.max() >= len(classes):
            raise ValueError(
                f"cluster_to_class values must be in [-1, {len(classes)}), got {mapping.tolist()}"
            )
        self.class_names_utf8 = names_to_bytes(classes, device=self.cluster_to_class.device)
        self.cluster_to_class.copy_(mapping)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        # The class-name buffer has a data-dependent length: resize before the strict copy.
        resize_names_buffer(self, "class_names_utf8", state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    # ------------------------------------------------------------------ stage 1: pseudo-label heads

    def reset_classifier_heads(self) -> None:
        """Re-initialise both pseudo-label heads: weights N(0, 0.01), bias 0 (after clustering)."""
        for head in (self.visual_classifier, self.audio_classifier):
            nn.init.normal_(head.weight, std=CLASSIFIER_INIT_STD)
            nn.init.zeros_(head.bias)

    def visual_logits(self, fv: torch.Tensor) -> torch.Tensor:
        """Pseudo-label logits from GAP(f^v): (B, D, h, w) -> (B, K)."""
        return self.visual_classifier(global_avg_pool(fv))

    def audio_logits(self, fa: torch.Tensor) -> torch.Tensor:
        """Pseudo-label logits from f^a: (B, D) -> (B, K)."""
        return self.audio_classifier(fa)

    # ------------------------------------------------------------------ AII

    def expand_audio(self, fa: torch.Tensor, mid: torch.Tensor) -> torch.Tensor:
        """Expanded audio F^a_k = f^a + Delta_k: fa (B, D), mid (B, C3) -> (B, K, D).

        With ``use_aii=False`` every F^a_k equals f^a (the "single vector" ablation).
        """
        base = fa.unsqueeze(1)
        if self.identify is None:
            return base.expand(-1, self.num_clusters, -1)
        return base + self.identify(mid)

    def identity_scores(self, expanded: torch.Tensor) -> torch.Tensor:
        """s_k = cos(F^a_k, P^a_k): (B, K, D) -> (B, K) in [-1, 1]."""
        prototypes = self.audio_prototypes.unsqueeze(0).expand_as(expanded)
        return F.cosine_similarity(expanded, prototypes, dim=-1, eps=COSINE_EPS)

    # ------------------------------------------------------------------ CMR

    def prototype_features(self, features: torch.Tensor, fv: torch.Tensor) -> torch.Tensor:
        """The visual features the prototypes live in: the backbone's ``features`` (B, C, h, w)
        with ``prototype_space = "backbone"``, else f^v (B, D, h, w)."""
        return features if self.config.ier.prototype_space == "backbone" else fv

    def object_features(self, pf: torch.Tensor, av_map: torch.Tensor) -> torch.Tensor:
        """Stage 1b's object feature of each clip, in the prototypes' space: (B, P, h, w) and the
        AV map (B, 1, h, w) -> (B, P), pooled as ``config.ier.object_pooling`` says."""
        cfg = self.config.ier
        if cfg.object_pooling == "attention":
            return attended_object_features(pf, av_map, temperature=cfg.object_temperature)
        return object_features(pf, av_map)

    def visual_maps(self, pf: torch.Tensor) -> torch.Tensor:
        """L^v_k = max(0, cos(P^v_k, pf_xy)): (B, P, h, w) -> (B, K, h, w) in [0, 1]; ``pf`` is
        ``prototype_features``."""
        return prototype_cosine_map(pf, self.visual_prototypes).clamp_min(0.0)

    def class_av_maps(self, fv: torch.Tensor, expanded: torch.Tensor) -> torch.Tensor:
        """A_k = sigma(beta cos(F^a_k, f^v_xy) + b): (B,D,h,w), (B,K,D) -> (B,K,h,w) in (0,1)."""
        return self.av_head.activate(cosine_map(fv, expanded))

    def cmr(
        self, fv: torch.Tensor, expanded: torch.Tensor, pf: torch.Tensor | None = None
    ) -> dict[str, torch.Tensor]:
        """Cross-modal Referrer (method.md §1.6) on f^v (B, D, h, w) and F^a (B, K, D); ``pf`` is
        ``prototype_features`` (default f^v: needed with ``prototype_space = "backbone"``).

        Returns:
            visual_maps L^v, class_av_maps A, cmr_maps L^av (each (B, K, h, w) in [0, 1]);
            masks m (B, K, h, w) in {0, 1} (no gradient); weights w = GAP(m) (B, K);
            scores s (B, K); distributions p_va, p_a, p_av (B, K), each summing to 1 (p_av sums
            to 0 when no class is visible).
        """
        cfg = self.config.ier
        if pf is None:
            if cfg.prototype_space == "backbone":
                raise ValueError("prototype_space='backbone': pass the backbone features as pf")
            pf = fv
        visual = self.visual_maps(pf)
        class_av = self.class_av_maps(fv, expanded)
        cmr_maps = visual * class_av if cfg.silent_filter else visual
        p_va = torch.softmax(global_avg_pool(cmr_maps) / cfg.tau_v, dim=1)
        masks, weights = object_masks(visual, theta_rel=cfg.theta_rel, theta_abs=cfg.theta_abs)
        scores = self.identity_scores(expanded)
        p_a = torch.softmax(scores / cfg.tau_a, dim=1)
        p_av = offscreen_filter(p_a, weights, eps=cfg.eps) if cfg.offscreen_filter else p_a
        return {
            "visual_maps": visual, "class_av_maps": class_av, "cmr_maps": cmr_maps,
            "masks": masks, "weights": weights, "scores": scores,
            "p_va": p_va, "p_a": p_a, "p_av": p_av,
        }  # fmt: skip

    # ------------------------------------------------------------------ forward / inference

    def forward(self, images: torch.Tensor | None, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """All maps and features the training tasks need; no loss is computed here.

        Args:
            images: (B, 3, S, S) in [0, 1], or None for audio-only steps (AII training).
            waves: (B, n_samples) at 16 kHz.

        Returns:
            fa (B, D), mid (B, C3), a_logits (B, K); with images also fv (B, D, h, w),
            pf (the prototypes' features, ``prototype_features``),
            av_map (B, 1, h, w), score (B,) = GMP(av_map), v_logits (B, K). Once prototypes
            exist also F (B, K, D) and scores (B, K), and with images every ``cmr`` entry.
        """
        fa, mid = self.encode_audio(waves)
        out = {"fa": fa, "mid": mid, "a_logits": self.audio_logits(fa)}
        fv = None
        if images is not None:
            features, fv, _ = self.encode_visual_all(images)
            av_map = self.av_map(fv, fa)
            pf = self.prototype_features(features, fv)
            out.update(fv=fv, pf=pf, av_map=av_map, score=global_max_pool(av_map)[:, 0],
                       v_logits=self.visual_logits(fv))  # fmt: skip
        if self.has_prototypes:
            expanded = self.expand_audio(fa, mid)
            out["F"] = expanded
            if fv is None:
                out["scores"] = self.identity_scores(expanded)
            else:
                out.update(self.cmr(fv, expanded, pf))
        return out

    @torch.no_grad()
    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        """Per-category maps (B, C, h, w) in [0, 1] at feature resolution, and scores (B, C).

        A cluster's map is L^av_k (optionally DSOL-sharpened); a category's map is the max (or
        clamped sum) of its clusters' maps; its score is the peak of its unsharpened map. Before
        prototypes exist this is the stage-1 AV map as the single class "*". With
        ``config.object_prior`` > 0 the (sharpened) maps and the scores' maps are gated by the
        visual objectness.
        """
        if not self.has_prototypes:
            return super().localize(images, waves)
        features, fv, prior = self.encode_visual_all(images)
        fa, mid = self.encode_audio(waves)
        pf = self.prototype_features(features, fv)
        referred = self.cmr(fv, self.expand_audio(fa, mid), pf)
        cluster_maps = referred["cmr_maps"]
        weight, sharpen = self.config.object_prior, self.config.ier.test_sharpen
        maps = self._to_categories(gate_by_objectness(cluster_maps, prior, weight))
        scores = global_max_pool(maps)
        if sharpen > 0:
            sharpened = torch.softmax(sharpen * cluster_maps, dim=1)
            maps = self._to_categories(gate_by_objectness(sharpened, prior, weight))
        av_peak = global_max_pool(self.av_map(fv, fa))[:, 0]
        cues = self._decision_cues(referred, scores, waves, av_peak)
        return LocalizationOutput(maps=maps, scores=scores, cues=cues)

    def _decision_cues(
        self,
        referred: dict[str, torch.Tensor],
        scores: torch.Tensor,
        waves: torch.Tensor,
        av_peak: torch.Tensor,
    ) -> torch.Tensor:
        """``DECISION_CUES`` per category: (B, C, 5) from the Referrer's outputs, the category
        scores (B, C), the waves (B, n) and the stage-1 AV map's peak (B,)."""
        p_a = torch.softmax(referred["scores"] / self.config.ier.tau_a, dim=1)  # (B, K)
        log_q = (p_a @ self._category_assignment(p_a.dtype)).clamp_min(LOG_FLOOR_PROB).log()
        visual = global_max_pool(self._to_categories(referred["visual_maps"]))
        audible = audibility(waves).to(scores.dtype)
        per_clip = torch.stack([audible, av_peak.to(scores.dtype)], dim=1)  # (B, 2)
        per_clip = per_clip[:, None, :].expand(-1, scores.shape[1], -1)
        return torch.cat([torch.stack([log_q, visual, scores], dim=2), per_clip], dim=2)

    def _category_assignment(self, dtype: torch.dtype) -> torch.Tensor:
        """(K, C) one-hot cluster -> category matrix from ``cluster_to_class`` (-1: zero row)."""
        mapping = self.cluster_to_class
        assign = F.one_hot(mapping.clamp_min(0), len(self.classes)).to(dtype)
        return assign * (mapping >= 0).unsqueeze(1).to(dtype)

    def _to_categories(self, cluster_maps: torch.Tensor) -> torch.Tensor:
        """(B, K, h, w) cluster maps -> (B, C, h, w) category maps via ``cluster_to_class``."""
        assign = self._category_assignment(cluster_maps.dtype)
        if self.config.ier.category_reduce == "sum":
            return torch.einsum("bkhw,kc->bchw", cluster_maps, assign).clamp(0.0, 1.0)
        masked = cluster_maps.unsqueeze(2) * assign[None, :, :, None, None]  # (B, K, C, h, w)
        return masked.amax(dim=1)


def object_masks(
    visual_maps: torch.Tensor, *, theta_rel: float, theta_abs: float = 0.0
) -> tuple[torch.Tensor, torch.Tensor]:
    """Binarised object masks and visual weights (method.md §1.6 step 5), without gradient.

    m_k = 1[L^v_k > max(theta_rel * max_xy L^v_k, theta_abs)], w_k = GAP(m_k).

    Args:
        visual_maps: L^v (B, K, h, w), non-negative.
        theta_rel: Fraction of each map's own maximum.
        theta_abs: Absolute floor of the threshold.

    Returns:
        masks (B, K, h, w) in {0, 1} and weights (B, K) in [0, 1].
    """
    maps = visual_maps.detach()
    peak = maps.flatten(2).amax(dim=2)[:, :, None, None]
    threshold = (theta_rel * peak).clamp_min(theta_abs)
    masks = (maps > threshold).to(maps.dtype)
    return masks, global_avg_pool(masks)


def offscreen_filter(p_a: torch.Tensor, weights: torch.Tensor, *, eps: float) -> torch.Tensor:
    """p^av_k = p^a_k w_k / (sum_j p^a_j w_j + eps): (B, K), (B, K) -> (B, K).

    A class with w_k = 0 (heard but nowhere visible) gets exactly 0.
    """
    weighted = p_a * weights
    return weighted / (weighted.sum(dim=1, keepdim=True) + eps)
