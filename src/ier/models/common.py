"""The model interface and the parts of the two-tower network: ``AVModel`` (the base class of
every method's model, which checks ``localize``'s inputs), the image normaliser, the audio front
end, the visual backbone's features from pixels or the feature cache, the DSOL AV head and the
two-tower base class (visual + audio encoders + AV head) that IEr and the baselines build on.

The output type and decision cues are ``ier.models.output``, the feature-map maths
``ier.models.maps``, the names carried by a ``state_dict`` ``ier.models.names``; this module
re-exports them.
"""

from __future__ import annotations

import functools
import logging

import torch
from torch import nn

from ier.audio import LogMel
from ier.models.backbones import build_audio_backbone, build_visual_backbone
from ier.models.config import FrontendConfig, ModelConfig
from ier.models.maps import (  # noqa: F401  (re-exported)
    COSINE_EPS,
    cosine_map,
    gate_by_objectness,
    global_avg_pool,
    global_max_pool,
    objectness,
    prototype_cosine_map,
)
from ier.models.names import (  # noqa: F401  (re-exported)
    names_from_bytes,
    names_to_bytes,
    resize_names_buffer,
)
from ier.models.output import (  # noqa: F401  (re-exported)
    AUDIBLE_FLOOR_DBFS,
    AUDIBLE_FULL_DBFS,
    DECISION_CUES,
    LOG_FLOOR_PROB,
    LocalizationOutput,
    audibility,
)

logger = logging.getLogger(__name__)

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
IMAGE_RANGE_SLACK = 1e-3  # images within [0, 1] up to this (resampling overshoot)


class ImageNormalizer(nn.Module):
    """(B, 3, H, W) float images in [0, 1] -> ImageNet mean/std normalised images."""

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images (B, 3, H, W) in [0, 1]. Returns: (B, 3, H, W) normalised."""
        if images.ndim != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(images.shape)}")
        if images.dtype == torch.uint8:
            raise ValueError("images must be float in [0, 1], got uint8 (divide by 255 first)")
        return (images - self.mean) / self.std


class AudioFrontend(nn.Module):
    """(B, n_samples) waves at ``sample_rate`` -> (B, 1, n_frames, n_mels) log-mel in dB."""

    def __init__(self, config: FrontendConfig) -> None:
        super().__init__()

        self.config = config
        self.log_mel = LogMel(
            sample_rate=config.sample_rate, n_fft=config.n_fft, hop_length=config.hop_length,
            n_mels=config.n_mels, f_max_hz=config.f_max_hz, power=config.power,
        )  # fmt: skip

    def forward(self, waves: torch.Tensor) -> torch.Tensor:
        """Args: waves (B, n_samples) float. Returns: (B, 1, n_frames, n_mels) dB."""
        if waves.ndim != 2:
            raise ValueError(f"waves must be (B, n_samples), got shape {tuple(waves.shape)}")
        if waves.shape[1] < self.config.n_fft:
            raise ValueError(f"waves need >= {self.config.n_fft} samples, got {waves.shape[1]}")
        return self.log_mel(waves)


def visual_backbone(config: ModelConfig) -> nn.Module:
    """The visual backbone of ``config``, frozen as ``config.visual_trunk`` says."""
    backbone = build_visual_backbone(
        config.visual_backbone, width=config.width, pretrained=config.pretrained
    )
    if config.frozen_trunk:
        backbone.freeze(keep_head=config.train_last_block)
    return backbone


def audio_input(model: nn.Module, waves: torch.Tensor) -> torch.Tensor:
    """What ``model.audio_backbone`` reads: the 16 kHz waves for a backbone with its own front
    end (``takes_waves``, the aisfx encoder), else ``model.frontend``'s log-mel map."""
    if getattr(model.audio_backbone, "takes_waves", False):
        return waves
    return model.frontend(waves)


def backbone_features(
    backbone: nn.Module, normalizer: ImageNormalizer, visual: torch.Tensor
) -> torch.Tensor:
    """The visual backbone's output from pixels or from the feature cache.

    Args:
        backbone: A split backbone (``ier.models.backbones.SplitBackbone``).
        normalizer: The model's ImageNet normaliser (pixels only).
        visual: Pixels (B, 3, S, S) in [0, 1]; or cached features (``ier.data.features``), the
            trunk's output (B, trunk_channels, S/16, S/16), in any float dtype.

    Returns:
        (B, out_channels, S/16, S/16) in the backbone's dtype.
    """
    if visual.ndim == 4 and visual.shape[1] == backbone.trunk_channels != 3:
        return backbone.head(visual.to(backbone_dtype(backbone)))
    images = normalizer(visual)  # checks (B, 3, H, W) float
    if backbone.trunk_frozen:
        with torch.no_grad():
            trunk = backbone.trunk(images)
        return backbone.head(trunk)
    return backbone(images)


def backbone_dtype(backbone: nn.Module) -> torch.dtype:
    """The floating dtype of a module's parameters."""
    return next(backbone.parameters()).dtype


class AVHead(nn.Module):
    """DSOL's audio-visual head (method.md §2.2): project, cosine, learnable scale/bias, sigmoid.

    Visual: 1x1 conv C_v->D, ReLU, 1x1 conv D->D. Audio: FC C_a->D, ReLU, FC D->D. With
    ``projection=False`` both are identities (then C_v == C_a == D is required). The map is
    sigma(beta * cos(f^v_xy, f^a) + b) with beta initialised to ``beta_init`` and b to 0.

    Args:
        visual_channels: Channels of the visual backbone map.
        audio_channels: Channels of the pooled audio backbone vector.
        embed_dim: D when projecting.
        projection: Use the two-layer projections.
        beta_init: Initial scale beta.
    """

    def __init__(
        self,
        *,
        visual_channels: int,
        audio_channels: int,
        embed_dim: int = 128,
        projection: bool = True,
        beta_init: float = 5.0,
    ) -> None:
        super().__init__()
        if projection:
            self.visual_proj: nn.Module = nn.Sequential(
                nn.Conv2d(visual_channels, embed_dim, 1),
                nn.ReLU(inplace=True),
                nn.Conv2d(embed_dim, embed_dim, 1),
            )
            self.audio_proj: nn.Module = nn.Sequential(
                nn.Linear(audio_channels, embed_dim), nn.ReLU(inplace=True),
                nn.Linear(embed_dim, embed_dim),
            )  # fmt: skip
        else:
            if visual_channels != audio_channels:
                raise ValueError(
                    f"projection=False needs equal visual/audio channels, got {visual_channels} "
                    f"and {audio_channels}"
                )
            embed_dim = visual_channels
            self.visual_proj, self.audio_proj = nn.Identity(), nn.Identity()
        self.embed_dim = embed_dim
        self.beta = nn.Parameter(torch.tensor(float(beta_init)))
        self.bias = nn.Parameter(torch.tensor(0.0))

    def project_visual(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C_v, h, w) backbone map -> f^v (B, D, h, w)."""
        return self.visual_proj(features)

    def project_audio(self, features: torch.Tensor) -> torch.Tensor:
        """(B, C_a) pooled backbone vector -> f^a (B, D)."""
        return self.audio_proj(features)

    def activate(self, cosine: torch.Tensor) -> torch.Tensor:
        """Cosines of any shape -> sigma(beta * cos + b), same shape, in (0, 1)."""
        return torch.sigmoid(self.beta * cosine + self.bias)

    def forward(self, fv: torch.Tensor, fa: torch.Tensor) -> torch.Tensor:
        """AV map: fv (B, D, h, w), fa (B, D) or (B, K, D) -> (B, 1 or K, h, w) in (0, 1)."""
        return self.activate(cosine_map(fv, fa))


def check_localize_inputs(visual: torch.Tensor, waves: torch.Tensor) -> None:
    """The checks every model's ``localize`` runs first; ValueError with a clear message.

    Args:
        visual: Pixels (B, 3, S, S) float in [0, 1], or cached trunk features (B, C, h, w).
        waves: (B, n_samples) float, finite.
    """
    if not isinstance(visual, torch.Tensor) or not isinstance(waves, torch.Tensor):
        raise ValueError("images and waves must be torch tensors")
    if visual.ndim != 4:
        raise ValueError(f"images must be (B, 3, H, W), got shape {tuple(visual.shape)}")
    if waves.ndim != 2:
        raise ValueError(f"waves must be (B, n_samples), got shape {tuple(waves.shape)}")
    if visual.shape[0] != waves.shape[0]:
        raise ValueError(
            f"images and waves must hold the same number of clips, got {visual.shape[0]} images "
            f"and {waves.shape[0]} waves"
        )
    if not visual.is_floating_point():
        raise ValueError(f"images must be float in [0, 1], got {visual.dtype} (divide by 255)")
    if not bool(torch.isfinite(waves).all()):
        raise ValueError("waves contain NaN or infinite values")
    if not bool(torch.isfinite(visual).all()):
        raise ValueError("images contain NaN or infinite values")
    if visual.shape[1] == 3:
        low, high = float(visual.min()), float(visual.max())
        if low < -IMAGE_RANGE_SLACK or high > 1.0 + IMAGE_RANGE_SLACK:
            raise ValueError(
                f"images must be in [0, 1], got values in [{low:g}, {high:g}]"
                + (" (0-255 images: divide by 255)" if high > 2.0 else "")
            )


def _checked(method):  # noqa: ANN001, ANN202
    @functools.wraps(method)
    def wrapper(self, images, waves, *args, **kwargs):  # noqa: ANN001, ANN202
        check_localize_inputs(images, waves)
        return method(self, images, waves, *args, **kwargs)

    wrapper._inputs_checked = True
    return wrapper


class AVModel(nn.Module):
    """Base class of every method's model (the model interface, docs/architecture.md).

    A subclass's ``localize(images, waves)`` and ``localize_single(images, waves)`` are wrapped so
    that bad input (a batch-size mismatch, NaN audio, 0-255 images, wrong shapes) raises a clear
    ``ValueError`` before any computation (``check_localize_inputs``).
    """

    def frozen_trunk(self) -> nn.Module | None:
        """The frozen visual trunk whose cached output this model reads (``ier.data.features``),
        or None when its visual backbone trains. Models with several copies of the backbone
        (SLAVC's momentum towers) hold identical frozen trunks; the first one serves."""
        for module in self.modules():
            if getattr(module, "trunk_frozen", False):
                return module
        return None

    def __init_subclass__(cls, **kwargs) -> None:  # noqa: ANN003
        super().__init_subclass__(**kwargs)
        for name in ("localize", "localize_single"):
            method = cls.__dict__.get(name)
            if method is not None and not getattr(method, "_inputs_checked", False):
                setattr(cls, name, _checked(method))


class TwoTowerModel(AVModel):
    """Visual + audio encoders with a DSOL AV head: the stage-1 network (an AVOL/OTS model).

    Subclasses add heads; this class already satisfies the model interface with one
    class-agnostic map (``classes == ("*",)``), so it also serves as the OTS baseline.

    Args:
        config: Model architecture.
    """

    supports_object_prior = True  # ``localize``/``localize_single`` honour config.object_prior

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        self.image_normalizer = ImageNormalizer()
        self.frontend = AudioFrontend(config.frontend)
        self.visual_backbone = visual_backbone(config)
        self.audio_backbone = build_audio_backbone(
            config.audio_backbone, width=config.width, pretrained=config.pretrained
        )
        self.av_head = AVHead(
            visual_channels=self.visual_backbone.out_channels,
            audio_channels=self.audio_backbone.out_channels,
            embed_dim=config.embed_dim, projection=config.projection,
            beta_init=config.ier.beta_init,
        )  # fmt: skip

    @property
    def embed_dim(self) -> int:
        """D, the width of f^v and f^a."""
        return self.av_head.embed_dim

    @property
    def classes(self) -> tuple[str, ...]:
        """Output categories of ``localize``; class-agnostic: ("*",)."""
        return ("*",)

    def encode_visual(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images (B, 3, S, S) in [0, 1]. Returns: f^v (B, D, S/16, S/16)."""
        return self.encode_visual_with_prior(images)[0]

    def encode_visual_with_prior(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: images (B, 3, S, S) in [0, 1].

        Returns:
            f^v (B, D, S/16, S/16) and the backbone's objectness O (B, 1, S/16, S/16) in [0, 1]
            (``ModelConfig.object_prior``).
        """
        _, fv, prior = self.encode_visual_all(images)
        return fv, prior

    def encode_visual_all(
        self, images: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Args: images (B, 3, S, S) in [0, 1], or cached trunk features.

        Returns:
            The backbone's features (B, C, S/16, S/16), their projection f^v (B, D, S/16, S/16)
            and their objectness O (B, 1, S/16, S/16) in [0, 1].
        """
        features = backbone_features(self.visual_backbone, self.image_normalizer, images)
        return features, self.av_head.project_visual(features), objectness(features)

    def encode_audio(self, waves: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Args: waves (B, n_samples) at 16 kHz.

        Returns:
            f^a (B, D): projected global max-pool of layer4; mid: the AII's mid-level feature,
            the global max-pool of the layer3 map (B, 4 * width), or with ``ier.aii_input =
            "pooled"`` the max- and mean-pools of layer3 and layer4 (B, 24 * width).
        """
        mid_map, top_map = self.audio_backbone.forward_features(audio_input(self, waves))
        top = global_max_pool(top_map)
        fa = self.av_head.project_audio(top)
        if self.config.ier.aii_input == "pooled":
            pools = (global_max_pool(mid_map), global_avg_pool(mid_map), top,
                     global_avg_pool(top_map))  # fmt: skip
            return fa, torch.cat(pools, dim=1)
        return fa, global_max_pool(mid_map)

    @property
    def mid_channels(self) -> int:
        """Channels of ``encode_audio``'s mid-level feature."""
        backbone = self.audio_backbone
        if self.config.ier.aii_input == "pooled":
            return 2 * (backbone.mid_channels + backbone.out_channels)
        return backbone.mid_channels

    def av_map(self, fv: torch.Tensor, fa: torch.Tensor) -> torch.Tensor:
        """Stage-1 AV map sigma(beta cos(f^v, f^a) + b): (B,D,h,w), (B,D) -> (B,1,h,w) in [0,1]."""
        return self.av_head(fv, fa)

    def forward(self, images: torch.Tensor, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns fv (B,D,h,w), fa (B,D), mid (B,C3), av_map (B,1,h,w), score (B,) = GMP(map)."""
        fv = self.encode_visual(images)
        fa, mid = self.encode_audio(waves)
        av_map = self.av_map(fv, fa)
        return {"fv": fv, "fa": fa, "mid": mid, "av_map": av_map,
                "score": global_max_pool(av_map)[:, 0]}  # fmt: skip

    @torch.no_grad()
    def localize_single(self, images: torch.Tensor, waves: torch.Tensor) -> torch.Tensor:
        """Stage-1 AV map for the single-source metrics: (B, 1, h, w) in [0, 1].

        With ``config.object_prior`` = w > 0 the map is gated by the visual objectness.
        """
        fa, _ = self.encode_audio(waves)
        fv, prior = self.encode_visual_with_prior(images)
        return gate_by_objectness(self.av_map(fv, fa), prior, self.config.object_prior)

    @torch.no_grad()
    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        """Class-agnostic output: the AV map as the single class "*", score = its peak."""
        maps = self.localize_single(images, waves)
        return LocalizationOutput(maps=maps, scores=global_max_pool(maps))
