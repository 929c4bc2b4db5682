"""The streaming engine of ``ier.localize``: window times, the decision rule, peaks and boxes,
chunked audio, EMA smoothing, and the single decoding pass that batches windows for the model."""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ier import viz
from ier.audio import load_audio
from ier.errors import ConfigError, MediaError
from ier.localization.frames import FrameReader, PictureEnd, PictureFrame, WindowFrame
from ier.localization.results import (
    DEFAULT_THRESHOLD,
    ClassRecord,
    DecisionRule,
    LocalizeSettings,
    WindowRecord,
    presence_calibration,
)
from ier.presence import presence_probability
from ier.video import VideoInfo

logger = logging.getLogger(__name__)

_AUDIO_CHUNK_SECONDS = 30.0  # audio is decoded in chunks of this length (bounded memory)
_AUDIO_LEAD_SECONDS = 0.5  # a chunk starts this early so resampling edges fall outside windows


def model_io(model: nn.Module) -> tuple[int, int, float]:
    """(input_size px, sample_rate Hz, clip_seconds) from ``model.config`` (architecture.md)."""
    config = getattr(model, "config", None)
    frontend = getattr(config, "frontend", None)
    size = getattr(config, "input_size", None)
    if not size or frontend is None or not getattr(model, "classes", None):
        raise ConfigError(
            f"{type(model).__name__} does not follow the model interface: it needs .classes, "
            ".config.input_size and .config.frontend (sample_rate, clip_seconds)"
        )
    return int(size), int(frontend.sample_rate), float(frontend.clip_seconds)


# --------------------------------------------------------------------------- decision and boxes


def decide(
    score: float,
    peak: float,
    rule: DecisionRule,
    *,
    visual: float | None = None,
    audio: float | None = None,
    presence: float | None = None,
) -> tuple[str, float]:
    """The state of one class in one window, with its confidence (docs/localize.md).

    Args:
        score: Model score in [0, 1] (sounding and visible).
        peak: Map peak in [0, 1].
        rule: Thresholds.
        visual: Optional visual-only presence in [0, 1].
        audio: Optional audio-only presence in [0, 1]; replaces ``score`` as the heard cue.
        presence: Optional calibrated probability that the class sounds on screen
            (``ier.presence``); when given it alone decides "sounding-on-screen", at
            ``rule.score_threshold``, and ``score``, ``peak`` and ``audio`` are not used.

    Returns:
        (state, confidence): the confidence is the geometric mean of the two cues' support
        (with ``presence``: the presence when sounding, else as without it with ``1 - presence``
        as the support of "not sounding").
    """
    rule = rule.resolved(DEFAULT_THRESHOLD)
    if presence is not None:
        if presence >= rule.score_threshold:
            return "sounding-on-screen", presence
        if visual is not None and visual >= rule.visual_threshold:
            return "visible-silent", math.sqrt((1 - presence) * visual)
        return "absent", 1 - presence
    heard = audio if audio is not None else score
    if heard >= rule.score_threshold:
        if peak >= rule.peak_threshold:
            return "sounding-on-screen", math.sqrt(heard * peak)
        return "heard-off-screen", math.sqrt(heard * (1 - peak))
    if visual is not None and visual >= rule.visual_threshold:
        return "visible-silent", math.sqrt((1 - heard) * visual)
    if visual is not None:
        return "absent", math.sqrt((1 - heard) * (1 - visual))
    return "absent", 1 - heard


def peak_and_box(
    fine_map: np.ndarray, box_fraction: float
) -> tuple[tuple[float, float], tuple[float, float, float, float]]:
    """Peak position and box of one (H, W) map, as fractions of W and H.

    The box bounds the connected region of ``fine_map >= box_fraction * peak`` (8-connected)
    that contains the peak; pixel i spans [i / W, (i + 1) / W).
    """
    from scipy import ndimage  # lazy: scipy costs start-up time that the first window can pay

    height, width = fine_map.shape
    row, col = np.unravel_index(int(np.argmax(fine_map)), fine_map.shape)
    mask = fine_map >= box_fraction * fine_map[row, col]
    labels, _ = ndimage.label(mask, structure=np.ones((3, 3), bool))
    rows, cols = np.nonzero(labels == labels[row, col])
    peak = (float((col + 0.5) / width), float((row + 0.5) / height))
    box = (
        float(cols.min() / width),
        float(rows.min() / height),
        float((cols.max() + 1) / width),
        float((rows.max() + 1) / height),
    )
    return peak, box


def window_times(duration_seconds: float, window_seconds: float, hop_seconds: float) -> np.ndarray:
    """Start times of every full window that fits in the video, seconds (n,)."""
    n = int(math.floor((duration_seconds - window_seconds) / hop_seconds + 1e-6)) + 1
    return np.arange(max(n, 0)) * hop_seconds


# --------------------------------------------------------------------------- streaming pieces


class _AudioReader:
    """Serves audio windows from chunks decoded on demand (memory holds one chunk)."""

    def __init__(self, path: Path, sample_rate: int, duration_seconds: float) -> None:
        self.path, self.rate, self.duration = path, sample_rate, duration_seconds
        self.chunk_start, self.chunk = 0.0, np.zeros(0, np.float32)

    def window(self, start_seconds: float, n_samples: int) -> np.ndarray:
        """(n_samples,) float32 from ``start_seconds``; zeros before 0 and after the end."""
        lead = max(0, int(round(-start_seconds * self.rate)))
        start = max(0.0, start_seconds)
        need = n_samples - lead
        offset = int(round((start - self.chunk_start) * self.rate))
        if offset < 0 or offset + need > len(self.chunk):
            self._load(max(0.0, start - _AUDIO_LEAD_SECONDS), need / self.rate)
            offset = int(round((start - self.chunk_start) * self.rate))
        piece = self.chunk[offset : offset + need]
        return np.pad(piece, (lead, n_samples - lead - len(piece)))

    def _load(self, start_seconds: float, min_seconds: float) -> None:
        span = max(_AUDIO_CHUNK_SECONDS, min_seconds + 2 * _AUDIO_LEAD_SECONDS)
        span = min(span, max(self.duration - start_seconds, min_seconds))
        self.chunk_start = start_seconds
        try:
            self.chunk = load_audio(
                self.path, sample_rate=self.rate, start_seconds=start_seconds,
                duration_seconds=span, end_tolerance_seconds=span,
            )  # fmt: skip
        except MediaError as err:
            if start_seconds <= 0:
                raise
            # The soundtrack ends before the picture: the rest of the video is silent.
            logger.warning("%s; treating audio from %.2f s on as silence", err, start_seconds)
            self.chunk = np.zeros(int(round(span * self.rate)), np.float32)


class _Smoother:
    """Exponential moving average over windows: s_t = (1 - a) x_t + a s_{t-1}."""

    def __init__(self, weight: float) -> None:
        self.weight = weight
        self.state: dict[str, np.ndarray] = {}

    def __call__(self, key: str, value: np.ndarray) -> np.ndarray:
        previous = self.state.get(key)
        out = value if previous is None else (1 - self.weight) * value + self.weight * previous
        self.state[key] = out
        return out


class Run:
    """One pass over a video: assigns centre frames to windows, runs the model in batches,
    smooths, decides, and hands each window and each display frame to the output sinks."""

    def __init__(
        self,
        path: Path,
        info: VideoInfo,
        model: nn.Module,
        settings: LocalizeSettings,
        sinks: Any,
        *,
        progress: bool = False,
    ) -> None:
        from tqdm import tqdm

        self.path, self.info, self.model = path, info, model
        self.settings, self.sinks = settings, sinks
        self.size, self.rate, self.clip_seconds = model_io(model)
        self.classes = tuple(str(c) for c in model.classes)
        self.starts = window_times(
            info.duration_seconds, settings.window_seconds, settings.hop_seconds
        )
        self.centres = self.starts + settings.window_seconds / 2
        self.audio = _AudioReader(path, self.rate, info.duration_seconds)
        self.smooth = _Smoother(settings.smoothing)
        self.device = next((p.device for p in model.parameters()), torch.device("cpu"))
        self.channels_last = any(
            p.dim() == 4 and p.is_contiguous(memory_format=torch.channels_last)
            and not p.is_contiguous() for p in model.parameters()
        )  # fmt: skip
        self.has_visual = callable(getattr(model, "visual_presence", None))
        self.has_audio = callable(getattr(model, "audio_presence", None))
        self.presence = presence_calibration(model)
        self.records: list[WindowRecord] = []
        self.picture_end: PictureEnd | None = None
        self.timings = {"decode": 0.0, "model": 0.0, "render": 0.0}
        self.bar = tqdm(total=len(self.starts), unit="window", disable=not progress, leave=False)

    def run(self) -> list[WindowRecord]:
        """Decode once (on a background thread), process every window, and return the records
        in time order."""
        reader = FrameReader(
            self.path, self.info, self.centres, model_size=self.size,
            display=(self.sinks.width, self.sinks.height), overlay=self.sinks.wants_frames,
            window_displays=self.sinks.report, hop_seconds=self.settings.hop_seconds,
        )  # fmt: skip
        pending: list[WindowFrame] = []
        try:
            for event in reader:
                if isinstance(event, WindowFrame):
                    pending.append(event)
                    if len(pending) >= self.settings.batch_size:
                        self._process(pending)
                        pending = []
                elif isinstance(event, PictureFrame):
                    self.sinks.frame(event.time, event.yuv, reader.matrix)
                elif isinstance(event, PictureEnd):
                    self.picture_end = event
            self._process(pending)
            self.sinks.finish(len(self.records))
        finally:
            reader.close()
            self.timings["decode"] += reader.busy_seconds
            self.bar.close()
        return self.records

    def _inputs(self, pending: list[WindowFrame]) -> tuple[torch.Tensor, torch.Tensor, int]:
        """Images (B, 3, S, S) in [0, 1] and waves (B * k, n): k sub-clips tile each window."""
        window = self.settings.window_seconds
        k = max(1, round(window / self.clip_seconds))
        n_samples = int(round(self.clip_seconds * self.rate))
        images = np.stack([p.image for p in pending])
        waves = []
        for p in pending:
            for j in range(k):
                centre = self.starts[p.index] + (j + 0.5) * window / k
                waves.append(self.audio.window(centre - self.clip_seconds / 2, n_samples))
        image_tensor = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255)
        if self.channels_last:
            image_tensor = image_tensor.contiguous(memory_format=torch.channels_last)
        return image_tensor.to(self.device), torch.from_numpy(np.stack(waves)).to(self.device), k

    def _forward(self, images: torch.Tensor, waves: torch.Tensor, k: int) -> dict[str, np.ndarray]:
        batch = images.shape[0]
        with torch.inference_mode():
            out = self.model.localize(images.repeat_interleave(k, dim=0), waves)
            cues = {
                "maps": out.maps.float().reshape(batch, k, *out.maps.shape[1:]).mean(1),
                "scores": out.scores.float().reshape(batch, k, -1).mean(1),
            }
            if self.has_visual:
                cues["visual"] = self.model.visual_presence(images).float()
            if self.has_audio:
                cues["audio"] = (
                    self.model.audio_presence(waves).float().reshape(batch, k, -1).mean(1)
                )
            if self.presence is not None and out.cues is not None:
                evidence = out.cues.float().reshape(batch, k, *out.cues.shape[1:]).mean(1)
                cues["presence"] = presence_probability(evidence, self.presence)
        return {key: value.clamp(0, 1).cpu().numpy() for key, value in cues.items()}

    def _process(self, pending: list[WindowFrame]) -> None:
        if not pending:
            return
        tick = time.perf_counter()
        images, waves, k = self._inputs(pending)
        self.timings["decode"] += time.perf_counter() - tick
        tick = time.perf_counter()
        cues = self._forward(images, waves, k)
        self.timings["model"] += time.perf_counter() - tick
        tick = time.perf_counter()
        for row, item in enumerate(pending):
            smoothed = {key: self.smooth(key, value[row]) for key, value in cues.items()}
            record = self._record(item.index, smoothed, item.time)
            self.records.append(record)
            self.sinks.window(record, smoothed["maps"], item.display)
        self.bar.update(len(pending))
        self.timings["render"] += time.perf_counter() - tick

    def _record(self, index: int, cues: dict[str, np.ndarray], frame_time: float) -> WindowRecord:
        rule = self.settings.rule
        maps = cues["maps"]
        map_height, map_width = maps.shape[-2:]  # boxes and peaks at 4x the map resolution
        fine = viz.upsample_maps(maps, 4 * map_height, 4 * map_width)
        classes = []
        for c, name in enumerate(self.classes):
            visual = float(cues["visual"][c]) if "visual" in cues else None
            audio = float(cues["audio"][c]) if "audio" in cues else None
            presence = float(cues["presence"][c]) if "presence" in cues else None
            score, peak_value = float(cues["scores"][c]), float(maps[c].max())
            state, confidence = decide(
                score, peak_value, rule, visual=visual, audio=audio, presence=presence
            )
            peak, box = peak_and_box(fine[c], rule.box_fraction)
            classes.append(
                ClassRecord(
                    name=name,
                    state=state,
                    confidence=confidence,
                    score=score,
                    peak_value=peak_value,
                    peak=peak,
                    box=box,
                    visual=visual,
                    audio=audio,
                    presence=presence,
                )  # fmt: skip
            )
        start = float(self.starts[index])
        return WindowRecord(
            index=index, start_seconds=start, end_seconds=start + self.settings.window_seconds,
            time_seconds=float(self.centres[index]), classes=tuple(classes),
            frame_seconds=float(frame_time),
        )  # fmt: skip
