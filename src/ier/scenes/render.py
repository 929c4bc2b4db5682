"""Render a ``ScenePlan``: frames (drifting cut-outs), the audio mix and the manifest record."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ier.audio import SAMPLE_RATE
from ier.scenes import assets, compose
from ier.scenes.recipes import ScenePlan, SoundChoice
from ier.scenes.synth import render_melody


@dataclass(frozen=True)
class ClipFormat:
    """Clip geometry: ``size`` px square frames, ``fps``, ``seconds`` long; the annotated frame
    is the middle one and the audio window is ``window_seconds`` centred on it."""

    size: int = 224
    fps: int = 8
    seconds: float = 3.0
    window_seconds: float = 1.0

    @property
    def n_frames(self) -> int:
        return round(self.fps * self.seconds)

    @property
    def time(self) -> float:
        """Annotated frame time (s): the frame nearest the middle of the clip."""
        return (self.n_frames // 2) / self.fps

    @property
    def window(self) -> tuple[float, float]:
        half = self.window_seconds / 2
        return (self.time - half, self.time + half)


# Scale of each object's longer side, as a fraction of the (tile) side, by number of objects.
_SCALES = {1: (0.45, 0.7), 2: (0.32, 0.48), 3: (0.26, 0.4), 4: (0.22, 0.34), 5: (0.2, 0.3)}
_MOSAIC_SCALE = (0.55, 0.8)


def _background(asset_id: str, rng: np.random.Generator, width: int, height: int) -> np.ndarray:
    if asset_id.startswith("generated:"):
        return compose.generated_background(rng, width, height)
    return compose.background_crop(assets.load_photo(asset_id), rng, width, height)


def _layers(plan: ScenePlan, rng: np.random.Generator, size: int):
    """Tiles ``(background, x, y, placements)`` and each object's box in canvas pixels."""
    cutouts = [assets.load_cutout(o.image) for o in plan.objects]
    if not plan.mosaic:
        scale = _SCALES[min(len(cutouts), 5)]
        background = _background(plan.backgrounds[0], rng, size, size)
        placed = compose.place_cutouts(cutouts, rng, width=size, height=size, scale_range=scale)
        return [(background, 0, 0, placed)], [p.box_pixels() for p in placed]
    half = size // 2
    layers, boxes = [], []
    for k, cutout in enumerate(cutouts):
        tx, ty = (k % 2) * half, (k // 2) * half
        tw, th = (size - half if k % 2 else half), (size - half if k // 2 else half)
        background = _background(plan.backgrounds[k], rng, tw, th)
        (p,) = compose.place_cutouts([cutout], rng, width=tw, height=th, scale_range=_MOSAIC_SCALE)
        layers.append((background, tx, ty, [p]))
        x0, y0, x1, y1 = p.box_pixels()
        boxes.append((x0 + tx, y0 + ty, x1 + tx, y1 + ty))
    return layers, boxes


def _source_wave(
    choice: SoundChoice, rng: np.random.Generator, fmt: ClipFormat
) -> tuple[np.ndarray, SoundChoice]:
    """The clip-long wave of one source and its choice updated with the range actually used."""
    if choice.asset.startswith("soundfont:"):
        _, bank, program = choice.asset.split(":")
        melody_rng = np.random.default_rng(choice.render_seed)
        wave = render_melody(int(bank), int(program), melody_rng, seconds=fmt.seconds)
        return wave, choice
    full = assets.load_wave(choice.asset)
    a, b = round(choice.start_seconds * SAMPLE_RATE), round(choice.end_seconds * SAMPLE_RATE)
    wave, start, end = compose.fill_window(full[a:b], rng, seconds=fmt.seconds, window=fmt.window)
    used = SoundChoice(
        choice.label, choice.asset, round(choice.start_seconds + start, 4),
        round(choice.start_seconds + end, 4), choice.gain_db, choice.role, choice.render_seed,
    )  # fmt: skip
    return wave, used


def _source_record(choice: SoundChoice, *, onscreen: bool) -> dict[str, Any]:
    record: dict[str, Any] = {
        "role": choice.role,
        "label": choice.label,
        "asset": choice.asset,
        "onscreen": onscreen,
        "sounding": True,
    }
    if choice.render_seed is not None:
        record["render_seed"] = choice.render_seed
    else:
        record["start_seconds"] = choice.start_seconds
        record["end_seconds"] = choice.end_seconds
    if choice.role != "noise":
        record["gain_db"] = round(choice.gain_db, 3)
    return record


def _audio(plan: ScenePlan, rng: np.random.Generator, fmt: ClipFormat):
    """The mixed clip audio and the provenance records of its sources."""
    n = round(fmt.seconds * SAMPLE_RATE)
    waves, records = [], []
    sounds = [(o.sound, True) for o in plan.objects if o.sound is not None]
    sounds += [(s, False) for s in plan.offscreen]
    for choice, onscreen in sounds:
        wave, used = _source_wave(choice, rng, fmt)
        waves.append(compose.level(wave, choice.gain_db))
        records.append(_source_record(used, onscreen=onscreen))
    noise = None
    if plan.noise is not None:
        noise, used = _source_wave(plan.noise, rng, fmt)
        record = _source_record(used, onscreen=False)
        if not waves:
            record["level_dbfs"] = compose.SOURCE_LEVEL_DBFS
        records.append(record)
    audio = compose.mix(waves, noise, plan.snr_db if waves else None, n_samples=n)
    return audio, records


def _noise_record(plan: ScenePlan, over_sound: bool) -> dict[str, Any] | None:
    """The manifest's ``noise``: its kind and SNR under the sounds, or, for a noise bed alone
    (nothing to take a ratio to), its kind and level with ``snr_db`` null."""
    if plan.noise is None:
        return None
    if over_sound and plan.snr_db is not None:
        return {"kind": plan.noise.label, "snr_db": round(plan.snr_db, 3)}
    return {"kind": plan.noise.label, "snr_db": None, "level_dbfs": compose.SOURCE_LEVEL_DBFS}


def render_clip(
    plan: ScenePlan, rng: np.random.Generator, fmt: ClipFormat, *, clip_id: str, video: str
) -> tuple[np.ndarray, np.ndarray, dict[str, Any]]:
    """Render a plan.

    Returns:
        ``(frames uint8 (T, S, S, 3), audio float32 (n,) at 16 kHz, manifest record)``.
    """
    layers, boxes = _layers(plan, rng, fmt.size)
    frames = compose.render_frames(
        layers, size=fmt.size, n_frames=fmt.n_frames, annotated_index=fmt.n_frames // 2
    )
    audio, sound_records = _audio(plan, rng, fmt)
    audio_sources = [r for r in sound_records if r.get("role") != "noise"]
    objects, image_records = [], []
    for obj, box in zip(plan.objects, boxes, strict=True):
        norm = [round(min(max(v / fmt.size, 0.0), 1.0), 5) for v in box]
        objects.append({"label": obj.label, "box": norm, "sounding": obj.sounding})
        image_records.append({
            "role": "distractor" if obj.distractor else "image", "label": obj.label,
            "asset": obj.image, "onscreen": True, "sounding": obj.sounding,
        })  # fmt: skip
    background_records = [
        {"role": "background", "asset": b, "onscreen": True, "sounding": False}
        for b in plan.backgrounds
    ]
    record: dict[str, Any] = {
        "id": clip_id,
        "split": plan.kind,
        "video": video,
        "time": fmt.time,
        "window": [round(v, 6) for v in fmt.window],
        "duration": fmt.seconds,
        "objects": objects,
        "offscreen": [s.label for s in plan.offscreen],
        "noise": _noise_record(plan, bool(audio_sources)),
        "sources": sound_records + image_records + background_records,
    }
    if plan.kind == "negative":
        record["negative"] = True
        record["audio_content"] = plan.audio_content
    return frames, audio, record
