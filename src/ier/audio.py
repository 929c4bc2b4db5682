"""Audio I/O: decoding (soundfile, PyAV; files are opened by ``ier.media``) and resampling.

Re-exports ``ier.logmel`` (the log-mel front end) and ``ier.mixing`` (wave lengths, levels, mixing).

Every waveform is mono float32 at ``SAMPLE_RATE`` unless a function says otherwise.
"""

from __future__ import annotations

import io
import logging
import math
import os
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

import av
import numpy as np
import soundfile as sf

from ier.errors import MediaError
from ier.logmel import (  # noqa: F401  (re-exported: the log-mel front end lives in ier.logmel)
    AMIN,
    F_MAX_HZ,
    HOP_LENGTH,
    N_FFT,
    N_MELS,
    SAMPLE_RATE,
    TOP_DB,
    LogMel,
    hz_to_mel,
    log_mel,
    mel_center_hz,
    mel_filterbank,
    mel_to_hz,
)
from ier.media import (
    END_TOLERANCE_SECONDS,
    check_media_path,
    open_container,
    time_origin_seconds,
)
from ier.mixing import (  # noqa: F401  (re-exported: the wave helpers live in ier.mixing)
    Wave,
    apply_gain_db,
    loop_to_length,
    mix_at_snr,
    normalize_rms,
    pad_or_trim,
    peak_normalize,
    rms,
    scale_to_snr,
)

logger = logging.getLogger(__name__)

CLIP_SECONDS = 1.0  # one audio window

# Extensions that libsndfile decodes; anything else (mp4, mkv, m4a, ...) goes through PyAV.
_SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".mp3", ".aiff", ".aif", ".au", ".w64"}


# --------------------------------------------------------------------------- decoding


def load_audio(
    path: str | os.PathLike[str],
    *,
    sample_rate: int = SAMPLE_RATE,
    start_seconds: float = 0.0,
    duration_seconds: float | None = None,
    end_tolerance_seconds: float = END_TOLERANCE_SECONDS,
) -> np.ndarray:
    """Decode a window of a sound or video file as mono float32 at ``sample_rate``.

    wav/flac/ogg/mp3 are read with soundfile (seeking to the window); other files, and sound files
    that libsndfile rejects, are decoded by PyAV from the first audio stream, seeking to the window.
    Channels are averaged.

    Args:
        path: Audio or video file.
        sample_rate: Output rate in Hz.
        start_seconds: Window start, seconds from the start of the stream.
        duration_seconds: Window length in seconds; None reads to the end of the stream.
        end_tolerance_seconds: How far a window may overrun the end of the stream; the overrun is
            zero padded. A window that overruns by more, or starts past the end, is an error.

    Returns:
        float32 array (n,); with a duration, n == round(duration_seconds * sample_rate).

    Raises:
        MediaError: Missing/corrupt file, no audio stream, empty stream, or window out of range.
    """
    path = check_media_path(path)
    _check_window(path, start_seconds, duration_seconds)
    plan = _WindowPlan(start_seconds, duration_seconds, sample_rate)
    wave: np.ndarray | None = None
    if path.suffix.lower() in _SOUNDFILE_EXTENSIONS:
        try:
            wave, native_rate, total = _read_soundfile(path, plan)
        except (sf.LibsndfileError, RuntimeError, TypeError) as exc:
            logger.debug("soundfile cannot read %s (%s); trying PyAV", path, exc)
    if wave is None:
        wave, native_rate, total = _read_av(path, plan)
    return _finish_window(path, wave, native_rate, total, plan, end_tolerance_seconds)


def _check_window(path: Path, start_seconds: float, duration_seconds: float | None) -> None:
    if not math.isfinite(start_seconds) or start_seconds < 0:
        raise MediaError(f"{path}: start_seconds must be a finite value >= 0, got {start_seconds}")
    if duration_seconds is not None and not (
        math.isfinite(duration_seconds) and duration_seconds > 0
    ):
        raise MediaError(f"{path}: duration_seconds must be > 0, got {duration_seconds}")


@dataclass(frozen=True)
class _WindowPlan:
    """Which native samples to decode for a window so that it equals a whole-file resample.

    The output grid is the whole file's: the window starts at output sample
    ``round(start_seconds * sample_rate)``. Decoding starts on a native sample that falls exactly
    on that grid, with enough context on both sides for the resampling filter, so a window is
    sample-for-sample the matching slice of ``resample(whole_file)``.
    """

    start_seconds: float
    duration_seconds: float | None
    sample_rate: int

    def native_span(self, rate: int) -> tuple[int, int, int | None]:
        """(first native sample to decode, output samples to drop, native count or None)."""
        ratio = Fraction(self.sample_rate, rate)  # up / down
        up, down = ratio.numerator, ratio.denominator
        context = 0 if ratio == 1 else math.ceil(10 * max(up, down) / up) + 2  # filter half-width
        k0 = int(round(self.start_seconds * self.sample_rate))
        first = max(0, down * math.floor((k0 * down / up - context) / down))
        skip = k0 - first * up // down
        if self.duration_seconds is None:
            return first, skip, None
        k1 = k0 + int(round(self.duration_seconds * self.sample_rate))
        return first, skip, math.ceil(k1 * down / up) - first + context + 1


def _read_soundfile(path: Path, plan: _WindowPlan) -> tuple[np.ndarray, int, float]:
    """Return (mono native-rate samples of the planned span, native rate, stream seconds)."""
    if path.suffix.lower() == ".mp3":
        # libsndfile 1.2 returns misaligned samples after an mp3 seek or a partial read, so
        # decode the whole file in one call and slice (mp3 assets are short sound effects).
        data, rate = sf.read(str(path), dtype="float32", always_2d=True)
        first, _, count = plan.native_span(rate)
        stop = None if count is None else first + count
        return data[first:stop].mean(axis=1, dtype=np.float32), rate, len(data) / rate
    with sf.SoundFile(str(path)) as f:
        rate, total_frames = f.samplerate, f.frames
        first, _, count = plan.native_span(rate)
        if first >= total_frames:
            return np.zeros(0, np.float32), rate, total_frames / rate
        if first > 0 and path.suffix.lower() in (".ogg", ".oga"):
            _skip_frames(f, first)  # libsndfile 1.2 can land off target when seeking near an
        elif first > 0:  # Ogg file's last pages; sequential reads are exact
            f.seek(first)
        data = f.read(-1 if count is None else count, dtype="float32", always_2d=True)
    return data.mean(axis=1, dtype=np.float32), rate, total_frames / rate


def _skip_frames(f: sf.SoundFile, n_frames: int, block: int = 1 << 16) -> None:
    while n_frames > 0:
        got = len(f.read(min(block, n_frames), dtype="float32", always_2d=True))
        if got == 0:
            return
        n_frames -= got


def _read_av(path: Path, plan: _WindowPlan) -> tuple[np.ndarray, int, float]:
    """PyAV counterpart of ``_read_soundfile``: seek near the window, decode only what it needs."""
    with open_container(path, str(path)) as container:
        if not container.streams.audio:
            raise MediaError(f"{path}: has no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or stream.sample_rate
        if not rate:
            raise MediaError(f"{path}: audio stream has no sample rate")
        origin = time_origin_seconds(container)
        total = _stream_seconds(container, stream)
        first, _, need = plan.native_span(rate)
        target = first / rate + origin
        wave, end_seconds = None, None
        if target - origin > 0.2:
            # Seek a little early: the demuxer lands on the packet at or before the offset.
            container.seek(int((target - 0.2) / stream.time_base), stream=stream, backward=True)
            try:
                wave, end_seconds = _decode_from(
                    container, stream, rate, target, need, lead_in=False
                )
            except _SeekOvershoot:
                logger.debug("%s: audio seek overshot %.3f s; decoding from 0", path, target)
                container.seek(0)
        if wave is None:
            wave, end_seconds = _decode_from(container, stream, rate, target, need)
    if end_seconds is not None:  # reached the end of the stream: the true duration is known
        total = end_seconds - origin
    return wave, rate, total


class _SeekOvershoot(Exception):
    """A seek landed after the window start (inexact index); the caller decodes from 0."""


def _timed_chunks(container: Any, stream: Any, rate: int) -> Iterator[tuple[float, np.ndarray]]:
    """Yield (start seconds, mono float32 samples) for each decoded frame.

    Decoded audio is contiguous, so times are counted in samples from an anchor, not read from
    each frame: some demuxers (Ogg) stamp the first packet of a page a few hundred samples off.
    The anchor is the first frame's timestamp, or the second's if the two disagree.
    """
    # Same-rate conversion to planar float mono keeps each frame's sample count.
    resampler = av.AudioResampler(format="fltp", layout="mono", rate=rate)
    held: tuple[float | None, np.ndarray] | None = None
    cursor: float | None = None  # time just after the last yielded sample
    for frame in container.decode(stream):
        outs = [out.to_ndarray()[0] for out in resampler.resample(frame)]
        samples = np.concatenate(outs) if outs else np.zeros(0, np.float32)
        time = float(frame.time) if frame.time is not None else None
        if held is None and cursor is None:
            held = time, samples
            continue
        if held is not None:
            first_time, first = held
            expected = None if first_time is None else first_time + len(first) / rate
            if time is not None and (expected is None or abs(time - expected) > 1.5 / rate):
                first_time = time - len(first) / rate
            cursor = (first_time or 0.0) + len(first) / rate
            yield cursor - len(first) / rate, first
            held = None
        yield cursor, samples
        cursor += len(samples) / rate
    if held is not None:
        yield (held[0] or 0.0), held[1]


def _decode_from(
    container: Any,
    stream: Any,
    rate: int,
    target_seconds: float,
    need: int | None,
    *,
    lead_in: bool = True,
) -> tuple[np.ndarray, float | None]:
    """Decode mono samples from ``target_seconds`` on (``need`` of them, or all).

    Returns the samples and, when the stream ended before ``need`` was met, the time at which
    it ended (None otherwise, or when nothing was decoded). If the first frame starts after
    ``target_seconds``, the gap is zero-filled when ``lead_in`` (the stream starts late), else
    ``_SeekOvershoot`` is raised.
    """
    chunks: list[np.ndarray] = []
    have = 0
    end: float | None = None
    for t0, samples in _timed_chunks(container, stream, rate):
        end = t0 + len(samples) / rate
        skip = int(round((target_seconds - t0) * rate)) if math.isfinite(target_seconds) else 0
        if skip >= len(samples):
            continue
        if skip > 0:
            samples = samples[skip:]
        elif skip < 0 and not chunks:
            if not lead_in:
                raise _SeekOvershoot
            samples = np.concatenate([np.zeros(-skip, np.float32), samples])
        chunks.append(samples)
        have += len(samples)
        if need is not None and have >= need:
            return np.concatenate(chunks)[:need].astype(np.float32, copy=False), None
    wave = np.concatenate(chunks) if chunks else np.zeros(0, np.float32)
    return wave.astype(np.float32, copy=False), end


def _stream_seconds(container: Any, stream: Any) -> float:
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1e6
    return math.inf


def _finish_window(
    path: Path,
    wave: np.ndarray,
    native_rate: int,
    total_seconds: float,
    plan: _WindowPlan,
    end_tolerance_seconds: float,
) -> np.ndarray:
    """Resample, drop the filter context, check the window against the stream, trim/pad it."""
    start_seconds, duration_seconds = plan.start_seconds, plan.duration_seconds
    if total_seconds <= 0 or (start_seconds == 0 and wave.size == 0) or native_rate <= 0:
        raise MediaError(f"{path}: audio stream is empty (0 samples)")
    if wave.size == 0 or start_seconds >= total_seconds:
        raise MediaError(
            f"{path}: window starts at {start_seconds:.3f} s, past the end of the audio "
            f"({total_seconds:.3f} s long)"
        )
    _, skip, _ = plan.native_span(native_rate)
    wave = resample(wave, native_rate, plan.sample_rate)[skip:]
    if duration_seconds is None:
        return wave
    n_out = int(round(duration_seconds * plan.sample_rate))
    if wave.size < n_out:
        if (n_out - wave.size) / plan.sample_rate > end_tolerance_seconds:
            raise MediaError(
                f"{path}: window {start_seconds:.3f}-{start_seconds + duration_seconds:.3f} s "
                f"extends past the end of the audio ({total_seconds:.3f} s long)"
            )
        wave = np.pad(wave, (0, n_out - wave.size))
    return np.ascontiguousarray(wave[:n_out], dtype=np.float32)


def decode_audio_bytes(
    data: bytes, *, sample_rate: int = SAMPLE_RATE, name: str = "<in-memory audio>"
) -> np.ndarray:
    """Decode a whole in-memory sound file (wav, ogg, flac, ...; e.g. an archive member).

    Args:
        data: The encoded file's bytes.
        sample_rate: Output rate in Hz.
        name: How error messages refer to the payload (e.g. ``"archive.cat:boom.wav"``).

    Returns:
        float32 array (n,), mono, at ``sample_rate``.

    Raises:
        MediaError: Empty, undecodable, or silent-length (0 samples) payloads.
    """
    if not data:
        raise MediaError(f"{name}: empty audio payload (0 bytes)")
    try:
        raw, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        wave = raw.mean(axis=1, dtype=np.float32)
    except (sf.LibsndfileError, RuntimeError, TypeError):
        with open_container(io.BytesIO(data), name) as container:
            if not container.streams.audio:
                raise MediaError(f"{name}: has no audio stream") from None
            stream = container.streams.audio[0]
            rate = stream.codec_context.sample_rate
            wave, _ = _decode_from(container, stream, rate, -math.inf, None)
    if wave.size == 0:
        raise MediaError(f"{name}: audio stream is empty (0 samples)")
    return resample(wave, rate, sample_rate)


def resample(wave: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling (``scipy.signal.resample_poly``) along the last axis.

    Args:
        wave: Array (..., n) at ``orig_rate`` Hz.
        orig_rate: Input rate in Hz.
        target_rate: Output rate in Hz.

    Returns:
        float32 array (..., ceil(n * target_rate / orig_rate)).
    """
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} -> {target_rate}")
    wave = np.asarray(wave, dtype=np.float32)
    if orig_rate == target_rate or wave.shape[-1] == 0:
        return wave
    from scipy.signal import resample_poly  # lazy: scipy.signal costs about a second to import

    ratio = Fraction(int(target_rate), int(orig_rate))
    out = resample_poly(wave, ratio.numerator, ratio.denominator, axis=-1)
    return out.astype(np.float32, copy=False)
