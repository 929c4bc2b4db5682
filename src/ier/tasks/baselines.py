"""Training tasks and recipes of the baselines (``ier.models.baselines``; docs/baselines.md).

One task per objective: ``ots`` (AV BCE), ``attention`` (margin contrastive), ``sop``
(mix-and-separate), ``dsol_cat`` (DSOL stage 2; stage 1 is IEr's ``ier_av``), ``ezvsl`` (MIL
InfoNCE), ``slavc`` (momentum MIL InfoNCE) and ``supervised`` (per-pixel box BCE). Recipes register
each method's stage list with ``ier.config`` so ``preset(method, name)`` works for all of them.
"""

from __future__ import annotations

import copy
import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from scipy.optimize import linear_sum_assignment

import ier.models.baselines  # noqa: F401  (registers the baseline models)
from ier import losses
from ier.config import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    StageConfig,
    preset,
    register_recipe,
)
from ier.models.config import model_config
from ier.tasks.base import BaseTask, StageData, register_task

logger = logging.getLogger(__name__)

PROB_FLOOR = 1e-30
SOP_WEIGHT_RANGE = (1e-3, 10.0)  # SoP clamps its log(1 + |X_mix|) loss weight to this range


def _others(x: torch.Tensor) -> torch.Tensor:
    """Pair each clip with the previous clip of the batch (another video): roll by one."""
    return x.roll(1, dims=0)


# --- losses --------------------------------------------------------------------------------------


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
    """SoP's weighted BCE on binary masks, weight = clamp(log(1 + |X_mix|), 1e-3, 10).

    Args:
        logits: (B, 1, T, M) mask logits; targets: same shape in {0, 1};
        mixture: (B, 1, T, M) mixture magnitude.
    """
    weight = torch.log1p(mixture).clamp(*SOP_WEIGHT_RANGE)
    return F.binary_cross_entropy_with_logits(logits, targets, weight=weight)


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
        return inter.clamp_min(0.0) * n

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


# --- tasks ---------------------------------------------------------------------------------------


@register_task("ots")
class ObjectsThatSoundTask(BaseTask):
    """AVOL-Net: L_av = BCE(GMP(map(own frame, audio)), 1) + BCE(pool(map(other frame)), 0)."""

    name = "ots"

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        fv = self.model.encode_visual(batch["image"])
        fa, _ = self.model.encode_audio(batch["wave"])
        loss = losses.av_bce_loss(
            self.model.av_map(fv, fa),
            self.model.av_map(_others(fv), fa),
            negative_pooling=self.stage.negative_pooling,
        )
        return {"loss": loss}


@register_task("attention")
class AttentionTask(BaseTask):
    """Senocak attention: margin contrastive loss on the attended-visual/audio distance of
    matched pairs (own frame) and mismatched pairs (another clip's frame)."""

    name = "attention"

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(batch["image"], batch["wave"])
        negative = self.model.attend(_others(out["cells"]), out["audio"])
        loss = margin_contrastive_loss(
            out["distance"], negative["distance"], margin=self.model.margin
        )
        return {
            "loss": loss,
            "distance_pos": out["distance"].mean().detach(),
            "distance_neg": negative["distance"].mean().detach(),
        }


@register_task("sop")
class SoundOfPixelsTask(BaseTask):
    """Mix-and-separate: each clip's wave is mixed with the previous clip's; each video's
    max-pooled pixel vector predicts its ideal binary mask [|X_n| >= |X_other|] in the mixture."""

    name = "sop"
    head_keywords = ("unet", "synth_")  # SoP: lr 1e-3 for the sound net and synthesizer

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        model, waves = self.model, batch["wave"]
        own = model.magnitude(waves)
        other = _others(own)
        mixture = model.magnitude(0.5 * (waves + _others(waves)))
        sound = model.sound_features(mixture)
        vectors = model.pixel_features(batch["image"]).flatten(2).amax(dim=2)  # (B, K)
        target = (own >= other).to(own.dtype)
        loss_own = separation_loss(model.mask_logits(vectors, sound), target, mixture)
        loss_other = separation_loss(
            model.mask_logits(_others(vectors), sound), 1 - target, mixture
        )
        return {"loss": 0.5 * (loss_own + loss_other)}


@register_task("dsol_cat")
class DSOLCategoryTask(BaseTask):
    """DSOL stage 2 (method.md §2.4): L_cat = KL(teacher audio distribution || softmax(GAP(class
    maps x AV map))) + lambda_av * L_loc with 2x2-quadrant negatives (another scene's frame).

    The teacher is a frozen copy of the model at the start of the stage (the stage-1 model); its
    weights are task state, so a resumed run keeps the same teacher. Its classifier's class order
    is aligned to the dictionary rows once (Hungarian on its logits of the audio prototypes),
    because k-means indices can permute between the clustering its head was trained on and the
    final one that built the dictionary.
    """

    name = "dsol_cat"

    def __init__(self, model: torch.nn.Module, stage: StageConfig, *, seed: int) -> None:
        super().__init__(model, stage, seed=seed)
        self.teacher = copy.deepcopy(model).eval()
        for param in self.teacher.parameters():
            param.requires_grad_(False)
        self.order: torch.Tensor | None = None

    def _align(self) -> torch.Tensor:
        """Teacher class index for each dictionary row k: (K,) long."""
        with torch.no_grad():
            logits = self.teacher.audio_logits(self.teacher.audio_prototypes)  # (K rows, K cls)
        probs = torch.softmax(logits, dim=1).cpu().numpy()
        rows, cols = linear_sum_assignment(probs, maximize=True)
        order = np.arange(len(probs))
        order[rows] = cols
        return torch.as_tensor(order, dtype=torch.long)

    def begin_epoch(self, epoch: int, num_epochs: int, data: StageData) -> dict[str, float]:
        if not self.model.has_prototypes:
            raise RuntimeError("dsol_cat needs the dictionary: run an ier_av stage before it")
        if self.order is None:
            self.order = self._align()
        self.teacher.to(data.device)
        identity = torch.arange(len(self.order))
        return {"teacher_order_changed": float((self.order != identity).float().mean())}

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(batch["image"], batch["wave"])
        with torch.no_grad():
            fa_t, _ = self.teacher.encode_audio(batch["wave"])
            logits_t = self.teacher.audio_logits(fa_t)[:, self.order.to(fa_t.device)]
            target = torch.softmax(logits_t, dim=1)
        loss_cat = losses.kl_divergence(target, torch.softmax(out["dsol_logits"], dim=1))
        negative = self.model.av_map(_others(out["fv"]), out["fa"])
        loss_loc = losses.av_bce_loss(
            out["av_map"], negative, negative_pooling=self.stage.negative_pooling
        )
        return {
            "loss": loss_cat + self.stage.lambda_av * loss_loc,
            "loss_cat": loss_cat,
            "loss_loc": loss_loc,
        }

    def extra_state(self) -> dict[str, torch.Tensor]:
        state = {f"teacher.{k}": v for k, v in self.teacher.state_dict().items()}
        if self.order is not None:
            state["order"] = self.order
        return state

    def load_extra_state(self, state: dict[str, torch.Tensor]) -> None:
        teacher = {k[len("teacher.") :]: v for k, v in state.items() if k.startswith("teacher.")}
        if teacher:
            self.teacher.load_state_dict(teacher)
        self.order = state.get("order")


@register_task("ezvsl")
class EZVSLTask(BaseTask):
    """EZ-VSL: symmetric multiple-instance InfoNCE over the batch (tau = 0.03)."""

    name = "ezvsl"

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(batch["image"], batch["wave"])
        return {"loss": mil_infonce_loss(out["visual"], out["audio"], tau=self.model.tau)}


@register_task("slavc")
class SLAVCTask(BaseTask):
    """SLAVC: momentum update of the target towers, then SLAVC's two-head MIL InfoNCE."""

    name = "slavc"

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        self.model.momentum_update()
        out = self.model(batch["image"], batch["wave"])
        return {"loss": slavc_loss(out, tau=self.model.tau)}


@register_task("supervised")
class SupervisedTask(BaseTask):
    """Per-pixel BCE of the class maps against each class's sounding-box coverage, plus the
    auxiliary BCEs of the two factors: visual logits vs every visible box, audio logits vs the
    classes heard (sounding + off-screen). Names the model's classes after the training data."""

    name = "supervised"

    def begin_epoch(self, epoch: int, num_epochs: int, data: StageData) -> dict[str, float]:
        if tuple(self.model.classes) != tuple(data.classes):
            self.model.set_classes(data.classes)
        return {}

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        out = self.model(batch["image"], batch["wave"])
        c, h, w = out["maps"].shape[1:]
        sounding = class_box_targets(batch, c, h, w, sounding=True)
        visible = class_box_targets(batch, c, h, w, sounding=False)
        loss_map = F.binary_cross_entropy(out["maps"].clamp(1e-6, 1 - 1e-6), sounding)
        loss_visual = F.binary_cross_entropy_with_logits(out["visual_logits"], visible)
        loss_audio = F.binary_cross_entropy_with_logits(out["audio_logits"], batch["audible"])
        return {
            "loss": loss_map + loss_visual + loss_audio,
            "loss_map": loss_map,
            "loss_visual": loss_visual,
            "loss_audio": loss_audio,
        }


# --- recipes -------------------------------------------------------------------------------------

# Methods whose objective applies to multi-source scenes train on both splits (stages "solo" then
# "wild"); Sound of Pixels mixes single-source clips, so it spends all its epochs on train/solo.
_TWO_SPLIT_TASKS = {
    "ots": "ots",
    "attention": "attention",
    "ezvsl": "ezvsl",
    "slavc": "slavc",
    "supervised": "supervised",
}


@dataclass(frozen=True)
class Budget:
    """A preset's training budget, taken from IEr's recipe so every method gets the same passes.

    Attributes:
        solo_epochs: Epochs over train/solo (IEr: its av + aii stages).
        wild_epochs: Epochs over train/unconstrained (IEr: its cmr stage).
        optimizer: batch_size, lr, lr_heads and weight_decay of IEr's first stage.
        data: IEr's data options.
    """

    solo_epochs: int
    wild_epochs: int
    optimizer: dict[str, Any]
    data: DataConfig


def ier_budget(preset_name: str) -> Budget:
    """The training budget of IEr's recipe at ``preset_name`` (``tiny``, ``quick``, ``paper``)."""
    reference = preset("ier", preset_name)
    first = reference.stages[0]
    return Budget(
        solo_epochs=sum(s.epochs for s in reference.stages if s.split == "train/solo"),
        wild_epochs=sum(s.epochs for s in reference.stages if s.split == "train/unconstrained"),
        optimizer={
            "batch_size": first.batch_size,
            "lr": first.lr,
            "lr_heads": first.lr_heads,
            "weight_decay": first.weight_decay,
        },  # fmt: skip
        data=reference.data,
    )


def _experiment(
    method: str, preset_name: str, stages: tuple[StageConfig, ...], budget: Budget, *,
    single_source_stage: int = -1,
) -> ExperimentConfig:  # fmt: skip
    return ExperimentConfig(
        method=method,
        preset=preset_name,
        model=model_config(preset_name, name=method),
        stages=stages,
        data=budget.data,
        eval=EvalConfig(single_source_stage=single_source_stage),
        log_every=5 if preset_name == "tiny" else 20,
    )


def _two_split_recipe(method: str):  # noqa: ANN202
    def recipe(preset_name: str) -> ExperimentConfig:
        budget, task = ier_budget(preset_name), _TWO_SPLIT_TASKS[method]
        stages = (
            StageConfig(
                name="solo",
                task=task,
                split="train/solo",
                epochs=budget.solo_epochs,
                **budget.optimizer,
            ),  # fmt: skip
            StageConfig(
                name="wild",
                task=task,
                split="train/unconstrained",
                epochs=budget.wild_epochs,
                **budget.optimizer,
            ),  # fmt: skip
        )
        return _experiment(method, preset_name, stages, budget)

    recipe.__doc__ = (
        f"{method}: task {_TWO_SPLIT_TASKS[method]!r} on train/solo, then on train/unconstrained, "
        "for IEr's epochs on each split."
    )
    return recipe


for _method in _TWO_SPLIT_TASKS:
    register_recipe(_method)(_two_split_recipe(_method))


@register_recipe("sop")
def sop_recipe(preset_name: str) -> ExperimentConfig:
    """Sound of Pixels: mix-and-separate on train/solo for IEr's epochs on both splits."""
    budget = ier_budget(preset_name)
    stage = StageConfig(
        name="solo", task="sop", split="train/solo",
        epochs=budget.solo_epochs + budget.wild_epochs, **budget.optimizer,
    )  # fmt: skip
    return _experiment("sop", preset_name, (stage,), budget)


@register_recipe("dsol")
def dsol_recipe(preset_name: str) -> ExperimentConfig:
    """DSOL: stage 1 = IEr's ``ier_av`` (L_av + clustering + pseudo-label CE) on train/solo;
    stage 2 = ``dsol_cat`` on train/unconstrained with quadrant negatives, lambda 0.5; IEr's
    epochs on each split. The single-source maps come from the stage-1 model (method.md §2.5)."""
    budget = ier_budget(preset_name)
    stages = (
        StageConfig(
            name="stage1",
            task="ier_av",
            split="train/solo",
            epochs=budget.solo_epochs,
            **budget.optimizer,
        ),  # fmt: skip
        StageConfig(
            name="stage2",
            task="dsol_cat",
            split="train/unconstrained",
            epochs=budget.wild_epochs,
            negative_pooling="quadrants",
            lambda_av=0.5,
            cluster=False,
            **budget.optimizer,
        ),  # fmt: skip
    )
    return _experiment("dsol", preset_name, stages, budget, single_source_stage=0)
