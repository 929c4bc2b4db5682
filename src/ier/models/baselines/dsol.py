"""DSOL (Hu et al., NeurIPS 2020): discriminative sounding-object localization, both stages.

Stage 1 is IEr's stage 1 (AV map + k-means object dictionary + pseudo-label heads), so the model
subclasses ``IERModel`` without the Audio-Instance-Identifier. Stage 2 (method.md §2.4) adds DSOL's
class-aware maps: the dot product of each cell with each dictionary row through a learnable scalar
affine, multiplied by the AV map (the silent-area filter), pooled to K logits that are matched to
a frozen stage-1 copy's audio pseudo-class distribution.
"""

from __future__ import annotations

import dataclasses

import torch
from torch import nn

from ier.models import register_model
from ier.models.common import LocalizationOutput, TwoTowerModel, global_avg_pool, global_max_pool
from ier.models.config import ModelConfig
from ier.models.ier import IERModel

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

    def __init__(self, config: ModelConfig) -> None:
        super().__init__(
            dataclasses.replace(config, ier=dataclasses.replace(config.ier, use_aii=False))
        )
        self.class_scale = nn.Parameter(torch.tensor(1.0))
        self.class_bias = nn.Parameter(torch.tensor(0.0))

    def class_maps(self, fv: torch.Tensor) -> torch.Tensor:
        """Dictionary response a <f^v_xy, P^v_k> + c: (B, D, h, w) -> (B, K, h, w) (any sign)."""
        dots = torch.einsum("bdhw,kd->bkhw", fv, self.visual_prototypes)
        return self.class_scale * dots + self.class_bias

    def forward(self, images: torch.Tensor | None, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns fa (B, D), a_logits (B, K); with images fv (B, D, h, w), av_map (B, 1, h, w),
        score (B,), v_logits (B, K); once the dictionary exists also class_maps and dsol_maps
        (B, K, h, w) and dsol_logits (B, K) = GAP(dsol_maps)."""
        fa, _ = self.encode_audio(waves)
        out = {"fa": fa, "a_logits": self.audio_logits(fa)}
        if images is None:
            return out
        fv = self.encode_visual(images)
        av_map = self.av_map(fv, fa)
        out.update(fv=fv, av_map=av_map, score=global_max_pool(av_map)[:, 0],
                   v_logits=self.visual_logits(fv))  # fmt: skip
        if self.has_prototypes:
            class_maps = self.class_maps(fv)
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
