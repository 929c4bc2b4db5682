"""Where a MUSIC clip's media live: DSOL's ``video_frames``/``audio_frames`` folders and raw videos
or audio files, which source gives a second's audio, and the time of a DSOL frame.

``ier.adapters.music`` builds the splits from the annotations with it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ier.adapters.common import AUDIO_EXTENSIONS, VIDEO_EXTENSIONS, MediaIndex, music_ytid

DSOL_FPS = 30.0  # the annotation keys imply 30 fps sources (frames 30s, 30s+7, 30s+14, 30s+21)


class MusicMedia:
    """Where each clip's media live: DSOL frame/audio folders and raw videos or audio files."""

    def __init__(self, root: Path, skip: tuple[Path, ...]) -> None:
        self.frames: dict[str, Path] = {}
        self.pickles: dict[str, Path] = {}
        for base in _named_dirs(root, {"video_frames", "audio_frames"}, skip):
            target = self.frames if base.name == "video_frames" else self.pickles
            for entry in sorted(os.scandir(base), key=lambda e: e.name):
                if entry.is_dir():
                    target.setdefault(entry.name, Path(entry.path))
        self.raw = MediaIndex(root, VIDEO_EXTENSIONS + AUDIO_EXTENSIONS, skip_paths=skip)

    def raw_source(self, clip: str) -> Path | None:
        """Raw audio/video of a clip: ``<clip>.wav|flac|mp4`` or ``<ytid>.*`` (whole video)."""
        for stem in (clip, music_ytid(clip)):
            found = self.raw.find(stem, AUDIO_EXTENSIONS + VIDEO_EXTENSIONS)
            if found is not None:
                return found
        return None

    def raw_video(self, clip: str) -> Path | None:
        """Raw video of a clip, if any."""
        for stem in (clip, music_ytid(clip)):
            found = self.raw.find(stem, VIDEO_EXTENSIONS)
            if found is not None:
                return found
        return None


def _named_dirs(root: Path, names: set[str], skip: tuple[Path, ...], depth: int = 4) -> list[Path]:
    found, level = [], [root]
    skipped = {p.resolve() for p in skip}
    for _ in range(depth + 1):
        nxt = []
        for folder in level:
            try:
                entries = sorted(os.scandir(folder), key=lambda e: e.name)
            except OSError:
                continue
            for e in entries:
                if not e.is_dir() or Path(e.path).resolve() in skipped:
                    continue
                (found if e.name in names else nxt).append(Path(e.path))
        level = nxt
    return found


def second_media(media: MusicMedia, clip: str, second: int) -> dict[str, Any] | None:
    """Audio of second ``second``: the raw source with window (s, s+1), else its log-mel pickle."""
    raw = media.raw_source(clip)
    if raw is not None:
        return {"audio": raw}
    folder = media.pickles.get(clip)
    if folder is not None and (folder / f"{second:03d}.pkl").is_file():
        return {"features": folder / f"{second:03d}.pkl"}
    return None


def frame_time(second: int, index: int) -> float:
    """Time of DSOL frame ``index`` in folder ``frame_<second>``, kept inside that second."""
    offset = (index - round(second * DSOL_FPS)) / DSOL_FPS
    return second + min(max(offset, 0.0), 1.0 - 1.0 / DSOL_FPS)
