"""DSOL (Hu et al., NeurIPS 2020): discriminative sounding-object localization, both stages.

Stage 1 is IEr's stage 1 (AV map + k-means object dictionary + pseudo-label heads), so the model
subclasses ``IERModel`` without the Audio-Instance-Identifier. Stage 2 (method.md §2.4) adds DSOL's
class-aware maps: the dot product of each cell with each dictionary row through a learnable scalar
affine, multiplied by the AV map (the silent-area filter), pooled to K logits that are matched to
a frozen stage-1 copy's audio pseudo-class distribution.

Registers the model ``dsol``, the stage-2 task ``dsol_cat`` and the recipe (``ier.methods``).
"""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment
from torch import nn

from ier import losses
from ier.config import ExperimentConfig, StageConfig
from ier.methods import Method, register_method
from ier.methods._budget import experiment, ier_budget
from ier.methods.ier.model import IERModel
from ier.models import register_model
from ier.models.common import TwoTowerModel
from ier.models.config import ModelConfig
from ier.models.maps import global_avg_pool, global_max_pool
from ier.models.output import LocalizationOutput
from ier.tasks.base import BaseTask, StageData, other_clips, register_task

DSOL_TEST_SHARPEN = 3.0  # inference: softmax over classes of 3 x (class map x AV map), §2.5


@register_model("dsol")
class DSOLModel(IERModel):
    """DSOL: IEr stage-1 parts + the stage-2 class-map head.

    class_map_k(x, y) = a * <f^v_xy, P^v_k> + c (a, c learnable scalars: DSOL's 1x1x1 Conv3d);
    dsol_map_k = class_map_k * av_map; logits_k = GAP(dsol_map_k).

    Args:
        config: Architecture; ``config.ier.use_aii`` is ignored (DSOL has no AII).
    """

    supports_object_prior = False  # its class-aware localize is DSOL's own
    provides_decision_cues = False  # ... and returns no decision cues (no AII, no presence)

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(
            dataclasses.replace(config, ier=dataclasses.replace(config.ier, use_aii=False))
        )
        self.class_scale = nn.Parameter(torch.tensor(1.0))
        self.class_bias = nn.Parameter(torch.tensor(0.0))

    def class_maps(self, pf: torch.Tensor) -> torch.Tensor:
        """Dictionary response a <pf_xy, P^v_k> + c: (B, P, h, w) -> (B, K, h, w) (any sign);
        ``pf`` is ``prototype_features`` (the backbone's map with ``prototype_space =
        "backbone"``, DSOL's own choice: it clusters the raw 512-d map)."""
        dots = torch.einsum("bdhw,kd->bkhw", pf, self.visual_prototypes)
        return self.class_scale * dots + self.class_bias

    def forward(self, images: torch.Tensor | None, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns fa (B, D), a_logits (B, K); with images fv (B, D, h, w), av_map (B, 1, h, w),
        score (B,), v_logits (B, K); once the dictionary exists also class_maps and dsol_maps
        (B, K, h, w) and dsol_logits (B, K) = GAP(dsol_maps)."""
        fa, _ = self.encode_audio(waves)
        out = {"fa": fa, "a_logits": self.audio_logits(fa)}
        if images is None:
            return out
        features, fv, _ = self.encode_visual_all(images)
        av_map = self.av_map(fv, fa)
        out.update(fv=fv, av_map=av_map, score=global_max_pool(av_map)[:, 0],
                   v_logits=self.visual_logits(fv))  # fmt: skip
        if self.has_prototypes:
            class_maps = self.class_maps(self.prototype_features(features, fv))
            dsol_maps = class_maps * av_map
            out.update(class_maps=class_maps, dsol_maps=dsol_maps,
                       dsol_logits=global_avg_pool(dsol_maps))  # fmt: skip
        return out

    @torch.no_grad()
    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        """Category maps softmax_k(3 * class_map_k * av_map), combined per category by the
        cluster -> category mapping; score = each category map's peak. Before the dictionary
        exists: the stage-1 AV map as the single class "*"."""
        if not self.has_prototypes:
            return TwoTowerModel.localize(self, images, waves)
        dsol_maps = self(images, waves)["dsol_maps"]
        maps = self._to_categories(torch.softmax(DSOL_TEST_SHARPEN * dsol_maps, dim=1))
        return LocalizationOutput(maps=maps, scores=global_max_pool(maps))


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
        negative = self.model.av_map(other_clips(out["fv"]), out["fa"])
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
    return experiment("dsol", preset_name, stages, budget, single_source_stage=0)


register_method(Method(
    "dsol", dsol_recipe, label="DSOL", order=60,
    summary="DSOL: stage-1 AV map + object dictionary, stage-2 class-aware distribution matching",
))  # fmt: skip
