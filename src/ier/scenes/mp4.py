"""A fast clip writer for the benchmark: H.264 (x264 ``ultrafast``, one thread) + mono AAC.

``ier.video.write_mp4`` uses the ``veryfast`` preset, which is 3-5x slower on tiny clips; the
benchmark writes thousands of 3 s clips, so it uses this writer (same container, codecs, layout).
"""

from __future__ import annotations

import os
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

AUDIO_CHUNK = 1024  # samples per AAC frame


def write_clip(
    path: str | os.PathLike[str],
    frames: np.ndarray,
    *,
    fps: int,
    audio: np.ndarray,
    sample_rate: int,
    crf: int = 23,
) -> Path:
    """Write uint8 (T, H, W, 3) frames (even H, W) and a mono float wave atomically to ``path``."""
    path = Path(path)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            video = container.add_stream("libx264", rate=fps)
            video.height, video.width = frames.shape[1:3]
            video.pix_fmt = "yuv420p"
            video.options = {"crf": str(crf), "preset": "ultrafast", "threads": "1"}
            sound = container.add_stream("aac", rate=sample_rate, layout="mono")
            sound.options = {"aac_coder": "fast"}
            for k, frame in enumerate(frames):
                av_frame = av.VideoFrame.from_ndarray(frame, format="rgb24")
                av_frame.pts, av_frame.time_base = k, Fraction(1, fps)
                container.mux(video.encode(av_frame))
            container.mux(video.encode(None))
            wave = np.clip(np.asarray(audio, np.float32), -1.0, 1.0)
            for start in range(0, len(wave), AUDIO_CHUNK):
                piece = np.ascontiguousarray(wave[None, start : start + AUDIO_CHUNK])
                av_frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="mono")
                av_frame.sample_rate, av_frame.pts = sample_rate, start
                av_frame.time_base = Fraction(1, sample_rate)
                container.mux(sound.encode(av_frame))
            container.mux(sound.encode(None))
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path
