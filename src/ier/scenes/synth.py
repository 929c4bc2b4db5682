"""Random melodies rendered with the General-MIDI soundfont (extra *training* audio only)."""

from __future__ import annotations

import functools
import logging
from typing import Any

import numpy as np

from ier.audio import SAMPLE_RATE
from ier.errors import AssetError
from ier.scenes.assets import source

logger = logging.getLogger(__name__)

_DRUM_BANK = 128
_DRUM_CHANNEL = 9
_DRUM_KEYS = (35, 36, 38, 40, 41, 42, 43, 45, 46, 47, 48, 49, 50, 51)  # kicks, snares, toms, hats
_PITCH_RANGES = {40: (55, 88), 42: (36, 67), 24: (40, 76), 25: (40, 76), 56: (55, 82)}
_MAJOR = (0, 2, 4, 5, 7, 9, 11)


@functools.lru_cache(maxsize=1)
def _synth() -> tuple[Any, int]:
    """One fluidsynth instance per process, with the GM soundfont loaded (about 0.5 s)."""
    sf2 = source("soundfont").path
    try:
        import fluidsynth
    except (ImportError, OSError) as err:
        raise AssetError(
            "soundfont renders need pyfluidsynth (pip install pyfluidsynth) and the Debian "
            f"package libfluidsynth3 (apt-get install fluidsynth): {err}"
        ) from err
    settings = {"synth.reverb.active": 0, "synth.chorus.active": 0}
    synth = fluidsynth.Synth(samplerate=float(SAMPLE_RATE), **settings)
    sfid = synth.sfload(str(sf2))
    if sfid < 0:
        raise AssetError(f"fluidsynth cannot load the soundfont {sf2}")
    return synth, sfid


def _drain(synth: Any, n_samples: int) -> np.ndarray:
    if n_samples <= 0:
        return np.zeros(0, np.float32)
    stereo = np.asarray(synth.get_samples(n_samples), dtype=np.float32).reshape(-1, 2)
    return stereo.mean(axis=1) / 32768.0


def render_melody(
    bank: int, program: int, rng: np.random.Generator, *, seconds: float
) -> np.ndarray:
    """Render a random melody (or drum pattern for bank 128) of ``seconds`` length.

    Args:
        bank: soundfont bank (0 = General MIDI; 128 = drum kits).
        program: preset number within the bank.
        rng: random generator that decides notes, lengths and velocities.
        seconds: output length in seconds.

    Returns:
        float32 (round(seconds * 16000),) mono wave at 16 kHz.
    """
    synth, sfid = _synth()
    channel = _DRUM_CHANNEL if bank == _DRUM_BANK else 0
    synth.program_select(channel, sfid, bank, program)
    n_total = round(seconds * SAMPLE_RATE)
    low, high = _PITCH_RANGES.get(program, (48, 84))
    root = int(rng.integers(low, max(low + 1, high - 12)))
    pieces, produced = [], 0
    while produced < n_total:
        note_seconds = float(rng.choice([0.125, 0.25, 0.25, 0.375, 0.5]))
        if channel == _DRUM_CHANNEL:
            key = int(rng.choice(_DRUM_KEYS))
        else:
            key = root + _MAJOR[int(rng.integers(0, 7))] + 12 * int(rng.integers(0, 2))
            key = int(np.clip(key, low, high))
        velocity = int(rng.integers(70, 115))
        synth.noteon(channel, key, velocity)
        n = round(note_seconds * SAMPLE_RATE)
        pieces.append(_drain(synth, n))
        synth.noteoff(channel, key)
        produced += n
    synth.system_reset()  # silence every voice, so the next render starts from a clean state
    _drain(synth, SAMPLE_RATE // 4)
    wave = np.concatenate(pieces)[:n_total]
    return wave.astype(np.float32, copy=False)
