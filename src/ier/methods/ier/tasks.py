"""The three IEr training stages (method.md §1.7) as tasks.

- ``ier_av`` (S1-a/b): L_av on matched/mismatched pairs; from ``cluster_from_epoch`` on, k-means
  pseudo-labels on object features and CE(v) + CE(a) on them; at the end P^v, P^a and the
  cluster → category matching.
- ``ier_aii`` (S1-c): Audio-Instance-Identifier on uneven-volume waveform mixtures with the §1.5
  curriculum (L^m_p), plus L_av on single clips; prototypes frozen.
- ``ier_cmr`` (S2): Cross-modal Referrer, L_cd = KL(p^va‖p^av) + KL(p^av‖p^va) + λ·L_av.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from ier import clustering, losses
from ier.distributed import broadcast_
from ier.tasks.base import BaseTask, StageData, register_task

logger = logging.getLogger(__name__)


# --- shared pieces -------------------------------------------------------------------------------


@torch.no_grad()
def feature_pass(model: torch.nn.Module, data: StageData) -> tuple[torch.Tensor, torch.Tensor]:
    """Object features o (N, D) (method.md §1.4) and audio features f^a (N, D) of a whole split.

    Runs un-augmented, in eval mode (batch-norm statistics frozen); restores the training mode.
    Every DDP process computes the same features from the same weights and data.
    """
    was_training = model.training
    model.eval()
    objects, audio = [], []
    for batch in data.eval_batches():
        features, fv, _ = model.encode_visual_all(batch["image"])
        fa, _ = model.encode_audio(batch["wave"])
        pf = model.prototype_features(features, fv)
        objects.append(model.object_features(pf, model.av_map(fv, fa)).cpu())
        audio.append(fa.cpu())
    model.train(was_training)
    return torch.cat(objects), torch.cat(audio)


def pair_av_loss(
    model: torch.nn.Module, fv: torch.Tensor, fa: torch.Tensor, *, negative_pooling: str
) -> torch.Tensor:
    """L_av: each clip's audio with its own frame (positive) and the previous clip's frame
    (negative, another video): a batch of B clips gives 2B pairs (method.md §1.3)."""
    positive = model.av_map(fv, fa)
    negative = model.av_map(fv.roll(1, dims=0), fa)
    return losses.av_bce_loss(positive, negative, negative_pooling=negative_pooling)


def _cluster(objects: torch.Tensor, k: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """k-means (rank 0's result broadcast to every process): labels (N,), centroids (K, D)."""
    labels, centroids = clustering.kmeans(objects, k, seed=seed)
    return broadcast_(labels.long()), broadcast_(centroids.float())


def _labelled_nmi(pseudo: torch.Tensor, gt: torch.Tensor) -> float:
    keep = gt >= 0
    return clustering.nmi(pseudo[keep], gt[keep]) if bool(keep.any()) else float("nan")


# --- S1-a/b --------------------------------------------------------------------------------------


@register_task("ier_av")
class AVCorrespondenceTask(BaseTask):
    """S1-a/b. Simplification: the pseudo-label CE is added to L_av in the same steps (one
    interleaved pass per epoch) instead of DSOL's separate 3 CE passes after each clustering."""

    name = "ier_av"

    def __init__(self, model: torch.nn.Module, stage, *, seed: int) -> None:
        super().__init__(model, stage, seed=seed)
        self.labels: torch.Tensor | None = None

    def begin_epoch(self, epoch: int, num_epochs: int, data: StageData) -> dict[str, float]:
        if not self.stage.cluster or epoch + 1 < self.stage.cluster_from_epoch:
            self.labels = None
            return {}
        objects, _ = feature_pass(self.model, data)
        self.labels, _ = _cluster(objects, self.model.num_clusters, self.seed + epoch)
        self.model.reset_classifier_heads()
        gt = data.dataset.annotations["label"]
        return {"nmi": _labelled_nmi(self.labels, gt)}

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fv = self.model.encode_visual(batch["image"])
        fa, _ = self.model.encode_audio(batch["wave"])
        loss_av = pair_av_loss(self.model, fv, fa, negative_pooling=self.stage.negative_pooling)
        out = {"loss_av": loss_av}
        loss = loss_av
        if self.labels is not None:
            target = self.labels.to(fv.device)[batch["index"]]
            ce_v = losses.pseudo_label_ce(self.model.visual_logits(fv), target)
            ce_a = losses.pseudo_label_ce(self.model.audio_logits(fa), target)
            loss = loss + self.stage.lambda_cls * (ce_v + ce_a)
            out.update(ce_v=ce_v, ce_a=ce_a)
        out["loss"] = loss
        return out

    def end_stage(self, data: StageData) -> dict[str, float]:
        """Final clustering → P^v (centroids), P^a (per-cluster mean of normalised f^a), and the
        Hungarian cluster → category matching against the split's labels (the only use of
        labels; method.md §3.3)."""
        if not self.stage.cluster:
            return {}
        objects, audio = feature_pass(self.model, data)
        k = self.model.num_clusters
        labels, centroids = _cluster(objects, k, self.seed + 10_000)
        self.model.set_prototypes(centroids, clustering.audio_prototypes(audio, labels, k))
        gt = data.dataset.annotations["label"]
        keep = gt >= 0
        if bool(keep.any()):
            mapping = clustering.match_clusters(labels[keep], gt[keep], len(data.classes), k)
            self.model.set_class_mapping(data.classes, mapping)
        used = int(torch.bincount(labels, minlength=k).gt(0).sum())
        return {"nmi": _labelled_nmi(labels, gt), "clusters_used": float(used)}

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {} if self.labels is None else {"labels": self.labels}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.labels = state.get("labels")


# --- S1-c ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MixSchedule:
    """Mixture distribution at one point of the AII curriculum.

    Attributes:
        mix_prob: Probability that a training clip is replaced by a mixture.
        sources: Allowed numbers of sources per mixture.
        gain_db: Each source's level is drawn from U(-gain_db, +gain_db) dB.
    """

    mix_prob: float
    sources: tuple[int, ...]
    gain_db: float


def curriculum(progress: float, *, enabled: bool = True, gain_db: float = 10.0) -> MixSchedule:
    """The method.md §1.5 schedule at ``progress`` ∈ [0, 1] of the AII epochs.

    0–20 %: single clips; 20–50 %: mix prob 0 → 0.5, 2 sources, ±6 dB; 50–80 %: 0.5 → 0.8, 2–3
    sources, ±10 dB; 80–100 %: 0.8, 2–3 sources, ±10 dB (the optional noise is left out).
    ``enabled=False`` gives the final phase throughout ("AII w/o curriculum"). ``gain_db``
    replaces the later phases' 10 dB (and caps the first mixing phase's 6 dB).
    """
    p = 1.0 if not enabled else min(max(progress, 0.0), 1.0)
    if p < 0.2:
        return MixSchedule(0.0, (1,), 0.0)
    if p < 0.5:
        return MixSchedule(0.5 * (p - 0.2) / 0.3, (2,), min(6.0, gain_db))
    if p < 0.8:
        return MixSchedule(0.5 + 0.3 * (p - 0.5) / 0.3, (2, 3), gain_db)
    return MixSchedule(0.8, (2, 3), gain_db)


def mix_waves(waves: list[torch.Tensor], gains_db: np.ndarray) -> torch.Tensor:
    """Σ_n 10^(g_n/20)·wave_n, peak-normalised to 1 if it would clip: list of (n,) → (n,)."""
    mixed = sum(w * float(10.0 ** (g / 20.0)) for w, g in zip(waves, gains_db))
    peak = float(mixed.abs().max())
    return mixed / peak if peak > 1.0 else mixed


@register_task("ier_aii")
class AudioInstanceIdentifierTask(BaseTask):
    """S1-c: L^m_p on waveform mixtures of clips from different clusters + λ·L_av on single clips.

    Pseudo-labels of the split come from the frozen prototypes (nearest P^v to each clip's object
    feature, i.e. the stage-1 cluster assignment), computed once at the start of the stage.
    """

    name = "ier_aii"

    def __init__(self, model: torch.nn.Module, stage, *, seed: int) -> None:
        super().__init__(model, stage, seed=seed)
        self.labels: torch.Tensor | None = None
        self.dataset = None
        self.epoch, self.num_epochs, self.steps_per_epoch, self.step_in_epoch = 0, 1, 1, 0

    def begin_epoch(self, epoch: int, num_epochs: int, data: StageData) -> dict[str, float]:
        if not self.model.has_prototypes:
            raise RuntimeError("ier_aii needs prototypes: run an ier_av stage (cluster=true) first")
        self.dataset = data.dataset
        self.epoch, self.num_epochs = epoch, num_epochs
        self.steps_per_epoch, self.step_in_epoch = max(1, data.steps_per_epoch), 0
        info: dict[str, float] = {}
        if self.labels is None:
            objects, _ = feature_pass(self.model, data)
            cosine = (
                torch.nn.functional.normalize(objects, dim=1)
                @ torch.nn.functional.normalize(self.model.visual_prototypes.cpu(), dim=1).T
            )
            self.labels = broadcast_(cosine.argmax(dim=1))
            info["nmi"] = _labelled_nmi(self.labels, data.dataset.annotations["label"])
        schedule = self._schedule()
        info.update(mix_prob=schedule.mix_prob, gain_db=schedule.gain_db)
        return info

    def _schedule(self) -> MixSchedule:
        progress = (self.epoch + self.step_in_epoch / self.steps_per_epoch) / self.num_epochs
        return curriculum(progress, enabled=self.stage.curriculum, gain_db=self.stage.mix_gain_db)

    def _mix(self, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """Mixtures (B, n) and multi-hot pseudo-label targets (B, K) for this step."""
        schedule = self._schedule()
        k = self.model.num_clusters
        rng = np.random.default_rng([self.seed, self.epoch, self.step_in_epoch])
        labels = self.labels.numpy()
        pools = {c: np.flatnonzero(labels == c) for c in np.unique(labels)}
        waves, targets = [], torch.zeros(len(batch["index"]), k)
        for row, index in enumerate(batch["index"].tolist()):
            members = [index]
            if rng.random() < schedule.mix_prob:
                others = [c for c in pools if c != labels[index]]
                n_extra = min(int(rng.choice(schedule.sources)) - 1, len(others))
                for c in rng.choice(others, size=n_extra, replace=False) if n_extra > 0 else []:
                    members.append(int(rng.choice(pools[c])))
            gains = rng.uniform(-schedule.gain_db, schedule.gain_db, size=len(members))
            if len(members) == 1:
                waves.append(batch["wave"][row].cpu())
            else:
                waves.append(mix_waves([self.dataset.wave(m) for m in members], gains))
            targets[row, labels[members]] = 1.0
        return torch.stack(waves).to(batch["wave"].device), targets.to(batch["wave"].device)

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        mixed, targets = self._mix(batch)
        self.step_in_epoch += 1
        fa_mix, mid_mix = self.model.encode_audio(mixed)
        scores = self.model.identity_scores(self.model.expand_audio(fa_mix, mid_mix))
        cfg = self.model.config.ier
        if cfg.aii_loss == "bce":
            loss_p = losses.prototype_bce_loss(scores, targets, tau=cfg.tau_a,
                                               margin=cfg.aii_margin)  # fmt: skip
        else:
            loss_p = losses.prototype_loss(scores, targets, tau=cfg.tau_a)
        fv = self.model.encode_visual(batch["image"])
        fa, _ = self.model.encode_audio(batch["wave"])
        loss_av = pair_av_loss(self.model, fv, fa, negative_pooling=self.stage.negative_pooling)
        return {
            "loss": loss_p + self.stage.lambda_av * loss_av,
            "loss_p": loss_p,
            "loss_av": loss_av,
            "mixed": (targets.sum(1) > 1).float().mean(),
        }

    def extra_state(self) -> dict[str, torch.Tensor]:
        return {} if self.labels is None else {"labels": self.labels}

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        self.labels = state.get("labels")


# --- S2 ------------------------------------------------------------------------------------------


@register_task("ier_cmr")
class CrossModalReferrerTask(BaseTask):
    """S2 on unconstrained scenes: λ_cd·L_cd between p^va and p^av + λ_av·L_av (quadrant
    negatives). ``lambda_cd = 0`` is the "no teacher" ablation: the unconstrained data with L_av
    alone.

    Samples where no prototype is visible (p^av = 0) are left out of L_cd.
    """

    name = "ier_cmr"

    def begin_epoch(self, epoch: int, num_epochs: int, data: StageData) -> dict[str, float]:
        if not self.model.has_prototypes:
            raise RuntimeError("ier_cmr needs prototypes: run an ier_av stage (cluster=true) first")
        return {}

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        features, fv, _ = self.model.encode_visual_all(batch["image"])
        fa, mid = self.model.encode_audio(batch["wave"])
        pf = self.model.prototype_features(features, fv)
        out = self.model.cmr(fv, self.model.expand_audio(fa, mid), pf)
        valid = out["p_av"].sum(dim=1) > 0.5
        if bool(valid.any()):
            loss_cd = losses.symmetric_kl(
                out["p_va"][valid], out["p_av"][valid], detach_targets=self.stage.detach_kl
            )
        else:
            loss_cd = out["p_va"].sum() * 0.0
        loss_av = pair_av_loss(self.model, fv, fa, negative_pooling=self.stage.negative_pooling)
        return {
            "loss": self.stage.lambda_cd * loss_cd + self.stage.lambda_av * loss_av,
            "loss_cd": loss_cd,
            "loss_av": loss_av,
        }
