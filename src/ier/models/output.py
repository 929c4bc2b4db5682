"""What a model's ``localize`` returns: ``LocalizationOutput`` (maps, scores, decision cues), the
names of the decision cues, and ``audibility``, the cue that needs only the waves.

Consumers of a model's output (``ier.presence``, ``ier.localization``) need only this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LocalizationOutput:
    """What ``model.localize`` returns.

    Attributes:
        maps: (B, C, h, w) float in [0, 1], one map per entry of ``model.classes``, at the model's
            feature resolution (the evaluator resizes bilinearly).
        scores: (B, C) float in [0, 1], confidence that the class is sounding and visible.
        cues: optional (B, C, len(DECISION_CUES)) float, the evidence that the class is sounding
            on screen, one entry per name in ``DECISION_CUES``; ``ier.presence`` turns it into a
            calibrated probability. None for models that do not give it.
    """

    maps: torch.Tensor
    scores: torch.Tensor
    cues: torch.Tensor | None = None


DECISION_CUES = ("log_audio_prob", "visual_peak", "class_peak", "audible", "av_peak")
"""The per-class evidence a model may return with its maps (``LocalizationOutput.cues``):
log of the audio's probability of the category (the AII's softmax, summed over the category's
clusters); the peak of the category's visual map (is it visible?); the peak of its class map
(visible where the sound matches?), i.e. ``scores``; whether the audio window is audible at
all (``audibility``); and the peak of the class-agnostic audio-visual map (does the sound match
anything on screen? the same for every class). docs/localize.md "Calibrated presence". A stored
presence names the cues it was fitted on (``ier.presence.presence_probability`` picks them), so
adding a cue here leaves older calibrations valid."""

LOG_FLOOR_PROB = 1e-4  # floor of log_audio_prob
AUDIBLE_FLOOR_DBFS = -60.0  # audibility 0 at and below this RMS level (dB full scale)
AUDIBLE_FULL_DBFS = -30.0  # audibility 1 at and above this level


def audibility(waves: torch.Tensor) -> torch.Tensor:
    """(B, n) waves in [-1, 1] -> (B,) in [0, 1]: the RMS level mapped linearly from
    ``AUDIBLE_FLOOR_DBFS`` (0) to ``AUDIBLE_FULL_DBFS`` (1) and clamped. A silence detector
    that ignores how loud an audible recording is: absolute levels depend on the microphone and
    the mix, so a cue that rose with loudness would darken quiet recordings."""
    rms = waves.float().pow(2).mean(dim=1).sqrt().clamp_min(1e-12)
    level = 20.0 * rms.log10()
    span = AUDIBLE_FULL_DBFS - AUDIBLE_FLOOR_DBFS
    return ((level - AUDIBLE_FLOOR_DBFS) / span).clamp(0.0, 1.0)
