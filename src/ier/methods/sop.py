"""Sound of Pixels (Zhao et al., ECCV 2018), kept small: mix-and-separate with per-pixel masks.

Two clips' waveforms are mixed; a light U-Net turns the mixture's mel magnitude into K sound
channels; the visual backbone gives K pixel channels (sigmoid); a linear synthesizer predicts each
video's spectrogram mask from its max-pooled pixel vector (training) or from every pixel
(inference). The localization map is each pixel's share of the mixture's sound energy.

Registers the model ``sop``, its task and its recipe (``ier.methods``).
"""

from __future__ import annotations

import dataclasses
import logging

import torch
import torch.nn.functional as F
from torch import nn

from ier import losses
from ier.audio import mel_filterbank
from ier.config import ExperimentConfig, StageConfig
from ier.methods import Method, register_method
from ier.methods._budget import experiment, ier_budget
from ier.models import register_model
from ier.models.backbones import to_conv_layout, use_conv_layout
from ier.models.common import AVModel, ImageNormalizer, backbone_features, visual_backbone
from ier.models.config import ModelConfig
from ier.models.maps import global_max_pool
from ier.models.output import LocalizationOutput
from ier.tasks.base import BaseTask, other_clips, register_task

logger = logging.getLogger(__name__)

SOP_CHANNELS = 32  # K, SoP's --num_channels
UNET_LEVELS = 3  # light U-Net: 3 down/up levels (SoP: unet7)
MAGNITUDE_FLOOR = 1e-4  # log floor of the U-Net input
LOCALIZE_CELLS_PER_CHUNK = 64  # cells whose masks are built at once in ``energy_maps``


def _conv(in_channels: int, out_channels: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, stride, 1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.LeakyReLU(0.2, inplace=True),
    )


class LightUNet(nn.Module):
    """U-Net on a (B, 1, T, M) log magnitude: ``levels`` stride-2 encoder convs, bilinear
    up-sampling decoder with skip connections, 1x1 output conv to ``out_channels``.

    Inputs of any size work: T and M are replicate-padded to a multiple of 2**levels and the
    output is cropped back.
    """

    def __init__(self, *, width: int, out_channels: int, levels: int = UNET_LEVELS) -> None:
        super().__init__()
        self.levels = levels
        channels = [width * 2**i for i in range(levels + 1)]
        self.input_norm = nn.BatchNorm2d(1)
        self.encoder = nn.ModuleList(
            [_conv(1, channels[0])]
            + [_conv(channels[i], channels[i + 1], stride=2) for i in range(levels)]
        )
        self.decoder = nn.ModuleList(
            [_conv(channels[i + 1] + channels[i], channels[i]) for i in reversed(range(levels))]
        )
        self.output = nn.Conv2d(channels[0], out_channels, 1)
        use_conv_layout(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Args: x (B, 1, T, M). Returns: (B, out_channels, T, M)."""
        t, m = x.shape[-2:]
        unit = 2**self.levels
        x = F.pad(x, (0, -m % unit, 0, -t % unit), mode="replicate")
        x = to_conv_layout(x)
        skips = []
        x = self.input_norm(x)
        for block in self.encoder:
            x = block(x)
            skips.append(x)
        skips.pop()
        for block in self.decoder:
            skip = skips.pop()
            x = F.interpolate(x, size=skip.shape[-2:], mode="bilinear", align_corners=False)
            x = block(torch.cat([x, skip], dim=1))
        return self.output(x)[..., :t, :m].contiguous()


@register_model("sop")
class SoundOfPixelsModel(AVModel):
    """Sound of Pixels with a mel magnitude, a light U-Net and a linear synthesizer.

    mask(t, m) = sigmoid(sum_k v_k * scale_k * s_k(t, m) + bias), where v (K,) is a pixel's (or a
    video's max-pooled) sigmoid visual vector and s (K, T, M) the U-Net's sound channels.

    Args:
        config: Architecture (backbone, width, front end).
    """

    def __init__(self, config: ModelConfig) -> None:
        super().__init__()
        self.config = config
        fe = config.frontend
        if config.audio_backbone != "resnet18":
            logger.warning("Sound of Pixels separates the mixture's spectrogram with its own U-Net:"
                           " model.audio_backbone=%r does not apply to it",
                           config.audio_backbone)  # fmt: skip
        self.image_normalizer = ImageNormalizer()
        self.visual_backbone = visual_backbone(config)
        self.pixel_proj = nn.Conv2d(self.visual_backbone.out_channels, SOP_CHANNELS, 1)
        self.unet = LightUNet(width=config.width, out_channels=SOP_CHANNELS)
        self.synth_scale = nn.Parameter(torch.ones(SOP_CHANNELS))
        self.synth_bias = nn.Parameter(torch.zeros(()))
        mel = mel_filterbank(
            sample_rate=fe.sample_rate, n_fft=fe.n_fft, n_mels=fe.n_mels, f_max_hz=fe.f_max_hz
        )
        self.register_buffer("mel_matrix", torch.as_tensor(mel).float(), persistent=False)
        self.register_buffer("window", torch.hann_window(fe.n_fft), persistent=False)

    @property
    def classes(self) -> tuple[str, ...]:
        """Class-agnostic: ("*",)."""
        return ("*",)

    def magnitude(self, waves: torch.Tensor) -> torch.Tensor:
        """Mel magnitude (linear): waves (B, n_samples) -> (B, 1, T, M), T frames x M mels."""
        fe = self.config.frontend
        spec = torch.stft(
            waves.float(), fe.n_fft, hop_length=fe.hop_length, window=self.window,
            center=True, pad_mode="reflect", return_complex=True,
        ).abs()  # (B, n_freqs, T)  # fmt: skip
        return torch.matmul(self.mel_matrix, spec).transpose(1, 2).unsqueeze(1)

    def sound_features(self, magnitude: torch.Tensor) -> torch.Tensor:
        """U-Net sound channels of a mixture: (B, 1, T, M) magnitude -> (B, K, T, M)."""
        return self.unet(torch.log(magnitude + MAGNITUDE_FLOOR))

    def pixel_features(self, images: torch.Tensor) -> torch.Tensor:
        """Args: images (B, 3, S, S) in [0, 1]. Returns: (B, K, h, w) in (0, 1)."""
        features = backbone_features(self.visual_backbone, self.image_normalizer, images)
        return torch.sigmoid(self.pixel_proj(features))

    def mask_logits(self, vectors: torch.Tensor, sound: torch.Tensor) -> torch.Tensor:
        """Synthesizer: vectors (B, K) and sound (B, K, T, M) -> mask logits (B, 1, T, M)."""
        weighted = vectors * self.synth_scale
        return (torch.einsum("bk,bktm->btm", weighted, sound) + self.synth_bias).unsqueeze(1)

    def forward(self, images: torch.Tensor, waves: torch.Tensor) -> dict[str, torch.Tensor]:
        """Returns pixels (B, K, h, w), vector (B, K) = max-pooled pixels, magnitude
        (B, 1, T, M), sound (B, K, T, M) and mask_logits (B, 1, T, M) of each clip for its own
        audio (the ``sop`` task builds the mixtures)."""
        pixels = self.pixel_features(images)
        vector = global_max_pool(pixels)
        magnitude = self.magnitude(waves)
        sound = self.sound_features(magnitude)
        return {"pixels": pixels, "vector": vector, "magnitude": magnitude, "sound": sound,
                "mask_logits": self.mask_logits(vector, sound)}  # fmt: skip

    def energy_maps(
        self, pixels: torch.Tensor, sound: torch.Tensor, magnitude: torch.Tensor
    ) -> torch.Tensor:
        """Each pixel's share of the sound energy: sum_tm mask_xy * |X| / sum_tm |X|.

        Args:
            pixels: (B, K, h, w); sound: (B, K, T, M); magnitude: (B, 1, T, M).

        Returns:
            (B, 1, h, w) in [0, 1].
        """
        b, k, h, w = pixels.shape
        cells = (pixels * self.synth_scale[:, None, None]).flatten(2).transpose(1, 2)  # (B,hw,K)
        energy = magnitude[:, 0]  # (B, T, M)
        total = energy.flatten(1).sum(dim=1).clamp_min(1e-12)  # (B,)
        shares = []
        for start in range(0, h * w, LOCALIZE_CELLS_PER_CHUNK):
            chunk = cells[:, start : start + LOCALIZE_CELLS_PER_CHUNK]  # (B, c, K)
            masks = torch.sigmoid(torch.einsum("bck,bktm->bctm", chunk, sound) + self.synth_bias)
            shares.append((masks * energy.unsqueeze(1)).flatten(2).sum(dim=2) / total[:, None])
        return torch.cat(shares, dim=1).view(b, 1, h, w).clamp(0.0, 1.0)

    @torch.no_grad()
    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        """Per-pixel sound-energy map of the clip's audio (B, 1, h, w); score = its peak."""
        magnitude = self.magnitude(waves)
        maps = self.energy_maps(
            self.pixel_features(images), self.sound_features(magnitude), magnitude
        )
        return LocalizationOutput(maps=maps, scores=global_max_pool(maps))

    @torch.no_grad()
    def localize_single(self, images: torch.Tensor, waves: torch.Tensor) -> torch.Tensor:
        """Single-source map (the same class-agnostic map): (B, 1, h, w) in [0, 1]."""
        return self.localize(images, waves).maps


@register_task("sop")
class SoundOfPixelsTask(BaseTask):
    """Mix-and-separate: each clip's wave is mixed with the previous clip's; each video's
    max-pooled pixel vector predicts its ideal binary mask [|X_n| >= |X_other|] in the mixture."""

    name = "sop"
    head_keywords = ("unet", "synth_")  # SoP: lr 1e-3 for the sound net and synthesizer

    def step(self, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        model, waves = self.model, batch["wave"]
        own = model.magnitude(waves)
        other = other_clips(own)
        mixture = model.magnitude(0.5 * (waves + other_clips(waves)))
        sound = model.sound_features(mixture)
        vectors = model.pixel_features(batch["image"]).flatten(2).amax(dim=2)  # (B, K)
        target = (own >= other).to(own.dtype)
        loss_own = losses.separation_loss(model.mask_logits(vectors, sound), target, mixture)
        loss_other = losses.separation_loss(
            model.mask_logits(other_clips(vectors), sound), 1 - target, mixture
        )
        return {"loss": 0.5 * (loss_own + loss_other)}


def sop_recipe(preset_name: str) -> ExperimentConfig:
    """Sound of Pixels: mix-and-separate on train/solo for IEr's epochs on both splits."""
    budget = ier_budget(preset_name)
    stage = StageConfig(
        name="solo", task="sop", split="train/solo",
        epochs=budget.solo_epochs + budget.wild_epochs, **budget.optimizer,
    )  # fmt: skip
    cfg = experiment("sop", preset_name, (stage,), budget)
    # No audio tower to swap: the U-Net reads the spectrogram, whatever the preset's other
    # methods use (the cpu preset's aisfx); the model warns only when a user sets one.
    return dataclasses.replace(cfg, model=dataclasses.replace(cfg.model, audio_backbone="resnet18"))


register_method(Method(
    "sop", sop_recipe, label="Sound of Pixels", order=30,
    summary="Sound of Pixels: mix-and-separate; the map is each pixel's share of the sound energy",
))  # fmt: skip
