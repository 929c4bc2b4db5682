"""Turn sample specs into manifest records: check or decode only the annotated frame and its audio
window, optionally cache them, run in parallel with a progress bar, and resume after interruption.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from ier.adapters.common import Problem, SampleSpec, safe_stem
from ier.adapters.logmel_inversion import check_logmel, logmel_error_db, logmel_to_wave
from ier.adapters.safe_pickle import load_array
from ier.audio import SAMPLE_RATE, load_audio
from ier.data.manifest import Sample
from ier.errors import ManifestError, MediaError
from ier.files import atomic_path
from ier.video import load_frames, load_image, probe

logger = logging.getLogger(__name__)

STATE_NAME = ".prepare_state.jsonl"
_BATCH = 16  # specs per worker task: consecutive specs usually share a video (probe cache hits)
_SOUNDFILE_SUFFIXES = {".wav", ".flac", ".ogg"}


@dataclass(frozen=True)
class PrepareOptions:
    """How media are handled.

    Attributes:
        cache: write the annotated frame (jpg/png) and the audio window (16 kHz mono wav) next to
            the manifest and reference those, instead of the raw files.
        check: ``decode`` decodes the frame and the audio window of every sample (what training
            will read) so corrupt files are caught now; ``probe`` only reads headers (faster).
        jpeg_quality: quality of frames extracted from videos.
    """

    cache: bool = False
    check: str = "decode"
    jpeg_quality: int = 95

    def __post_init__(self) -> None:
        if self.check not in ("decode", "probe"):
            raise ValueError(f"check must be 'decode' or 'probe', got {self.check!r}")


# --------------------------------------------------------------------------- one sample


@functools.lru_cache(maxsize=256)
def _probe(path: str) -> Any:

    return probe(path)


@functools.lru_cache(maxsize=256)
def _audio_seconds(path: str) -> float:
    """Duration of the audio in ``path`` (header only), raising MediaError if it has none."""
    if Path(path).suffix.lower() in _SOUNDFILE_SUFFIXES:
        import soundfile as sf

        try:
            info = sf.info(path)
            if info.frames > 0:
                return info.frames / info.samplerate
        except (RuntimeError, sf.LibsndfileError):
            pass  # let PyAV try (and produce the error message)
    info = _probe(path)
    if not info.has_audio:
        raise MediaError(f"{path}: has no audio stream")
    if info.duration_seconds <= 0:
        raise MediaError(f"{path}: audio stream is empty")
    return info.duration_seconds


def _rel(path: Path, base: Path) -> str:
    return Path(os.path.relpath(path.resolve(), base.resolve())).as_posix()


def _require(path: Path | None, what: str) -> Path:
    if path is None or not path.is_file():
        raise FileNotFoundError(f"{what} not found: {path}")
    return path


def _timing(spec: SampleSpec, duration: float) -> tuple[float, tuple[float, float]]:
    """(frame time, audio window) on the audio timeline, both inside [0, duration]."""
    if spec.window is not None:
        start, end = spec.window
        if end > duration + 0.1:
            raise MediaError(f"audio window {start:g}-{end:g} s is past the end ({duration:.2f} s)")
        end = min(end, duration)
        time = spec.time_seconds if spec.time_seconds is not None else (start + end) / 2
        return min(max(time, start), end), (start, end)
    time = spec.time_seconds if spec.time_seconds is not None else duration / 2
    if time > duration + 1e-3:
        raise MediaError(
            f"annotated time {time:g} s is past the end of the media ({duration:.2f} s)"
        )
    length = spec.window_seconds
    if duration < length - 0.1:
        raise MediaError(f"audio is {duration:.2f} s long, shorter than the {length:g} s window")
    length = min(length, duration)
    start = min(max(time - length / 2, 0.0), duration - length)
    return min(time, duration), (start, start + length)


def _write_jpeg(path: Path, image: np.ndarray, quality: int) -> None:
    from PIL import Image

    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="JPEG", quality=quality)


def _write_wav(path: Path, wave: np.ndarray, sample_rate: int) -> None:
    import soundfile as sf

    with atomic_path(path) as tmp:
        sf.write(tmp, np.clip(wave, -1.0, 1.0), sample_rate, subtype="PCM_16", format="WAV")


def _frame_entry(spec: SampleSpec, out_dir: Path, opts: PrepareOptions, time: float) -> Path | None:
    """Check/extract the frame; returns the image to reference (None: reference ``video``)."""

    stem = safe_stem(spec.id)
    if spec.frame is not None:
        image = _require(spec.frame, "frame image")
        if opts.check == "decode" or opts.cache:
            load_image(image)
        if not opts.cache:
            return image
        cached = out_dir / "frames" / f"{stem}{image.suffix.lower()}"
        cached.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(image, cached)
        return cached
    video = _require(spec.video, "video")
    info = _probe(str(video))
    if not info.has_video:
        raise MediaError(f"{video}: has no video stream")
    frame_time = spec.frame_time_seconds if spec.frame_time_seconds is not None else time
    if frame_time > info.duration_seconds + 1e-3:
        raise MediaError(
            f"{video}: frame time {frame_time:g} s is past the end ({info.duration_seconds:.2f} s)"
        )
    separate_audio = spec.audio is not None and spec.audio != spec.video
    if not (opts.cache or separate_audio or opts.check == "decode"):
        return None
    frame = load_frames(video, [min(frame_time, max(0.0, info.duration_seconds - 1e-3))])[0]
    if not (opts.cache or separate_audio):
        return None
    cached = out_dir / "frames" / f"{stem}.jpg"
    _write_jpeg(cached, frame, opts.jpeg_quality)
    return cached


def _features_audio(spec: SampleSpec, out_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Safely load a log-mel pickle, keep it as .npy and write its reconstructed waveform."""

    source = _require(spec.features, "audio pickle")
    features = check_logmel(load_array(source))
    stem = safe_stem(spec.id)
    npy = out_dir / "features" / f"{stem}.npy"
    npy.parent.mkdir(parents=True, exist_ok=True)
    np.save(npy, features)
    wave = logmel_to_wave(features)
    wav = out_dir / "audio" / f"{stem}.wav"
    _write_wav(wav, wave, SAMPLE_RATE)
    extra = {
        "audio_features": _rel(npy, out_dir),
        "audio_reconstructed": "griffin-lim from the released log-mel",
        "audio_reconstruction_error_db": round(logmel_error_db(wave, features), 3),
    }
    return wav, extra


def materialize(
    spec: SampleSpec, out_dir: Path, opts: PrepareOptions
) -> tuple[dict[str, Any] | None, Problem | None]:
    """Check (or decode and cache) one sample's media and build its manifest record.

    Returns:
        (record, None) on success, or (None, problem) naming what is missing or unreadable.
    """
    try:
        return _materialize(spec, out_dir, opts), None
    except FileNotFoundError as err:
        return None, Problem(spec.split, spec.id, str(err), kind="missing")
    except MediaError as err:
        return None, Problem(spec.split, spec.id, str(err), kind="unreadable")
    except ManifestError as err:
        return None, Problem(spec.split, spec.id, str(err), kind="annotation")
    except (ValueError, OSError) as err:  # bad pickle/shape, undecodable image, I/O failure
        kind = "unsafe" if type(err).__name__ == "UnsafePickleError" else "unreadable"
        return None, Problem(spec.split, spec.id, f"{type(err).__name__}: {err}", kind=kind)


def _materialize(spec: SampleSpec, out_dir: Path, opts: PrepareOptions) -> dict[str, Any]:

    extra: dict[str, Any] = {}
    source = spec.audio_source
    if source is None:
        if spec.features is None:
            raise FileNotFoundError("no audio source (no audio/video file and no pickle)")
        audio_path, extra = _features_audio(spec, out_dir)
        offset = spec.window[0] if spec.window is not None else 0.0
        if spec.window is not None:  # the rebuilt wav holds exactly the window: shift to 0
            extra.update(source_time=spec.time_seconds, source_window=list(spec.window))
            spec = replace(
                spec,
                window=(0.0, spec.window[1] - offset),
                time_seconds=None if spec.time_seconds is None else spec.time_seconds - offset,
            )
        time, window = _timing(spec, _audio_seconds(str(audio_path)))
    else:
        audio_path = _require(source, "audio source")
        time, window = _timing(spec, _audio_seconds(str(audio_path)))
    image = _frame_entry(spec, out_dir, opts, time)
    length = window[1] - window[0]
    if opts.cache and source is not None:
        wave = load_audio(audio_path, start_seconds=window[0], duration_seconds=length)
        cached = out_dir / "audio" / f"{safe_stem(spec.id)}.wav"
        _write_wav(cached, wave, SAMPLE_RATE)
        extra.update(source_time=round(time, 6), source_window=[window[0], window[1]])
        audio_path, time, window = cached, time - window[0], (0.0, length)
    elif opts.check == "decode" and source is not None:
        load_audio(audio_path, start_seconds=window[0], duration_seconds=length)
    record: dict[str, Any] = {"id": spec.id, "split": spec.split}
    if image is None:
        record["video"] = _rel(audio_path, out_dir)
    else:
        record.update(frame=_rel(image, out_dir), audio=_rel(audio_path, out_dir))
    record.update(
        time=round(time, 6),
        window=[round(window[0], 6), round(window[1], 6)],
        objects=[o.to_dict() for o in spec.objects],
        offscreen=list(spec.offscreen),
        noise=None,
    )
    if spec.negative:
        record["negative"] = True
    record.update(dict(spec.extra))
    record.update(extra)
    Sample.from_dict(record)  # the record must be valid exactly as read_manifest checks it
    return record


def _materialize_batch(
    batch: Sequence[tuple[SampleSpec, str]], opts: PrepareOptions
) -> list[tuple[dict[str, Any] | None, Problem | None]]:
    return [materialize(spec, Path(out_dir), opts) for spec, out_dir in batch]


# --------------------------------------------------------------------------- resume state


def spec_fingerprint(spec: SampleSpec, opts: PrepareOptions) -> str:
    """A hash of everything that determines a sample's record (annotations, paths, options)."""
    text = repr((spec, asdict(opts)))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _record_files_exist(record: dict[str, Any], out_dir: Path) -> bool:
    keys = ("video", "frame", "audio", "audio_features")
    return all((out_dir / record[k]).is_file() for k in keys if k in record)


class ResumeState:
    """Records of finished samples of one split (``<split>/.prepare_state.jsonl``), by id."""

    def __init__(self, out_dir: Path) -> None:
        self.path = out_dir / STATE_NAME
        self.out_dir = out_dir
        self.done: dict[str, tuple[str, dict[str, Any]]] = {}
        if self.path.is_file():
            with self.path.open(encoding="utf-8") as handle:
                for line in handle:
                    try:
                        entry = json.loads(line)
                        self.done[entry["id"]] = (entry["fp"], entry["record"])
                    except (json.JSONDecodeError, KeyError, TypeError):
                        continue  # a line cut short by an interruption
        self._handle: Any = None

    def lookup(self, spec: SampleSpec, fingerprint: str) -> dict[str, Any] | None:
        """The stored record if ``spec`` was finished with the same fingerprint and files exist."""
        hit = self.done.get(spec.id)
        if hit is None or hit[0] != fingerprint or not _record_files_exist(hit[1], self.out_dir):
            return None
        return hit[1]

    def add(self, fingerprint: str, record: dict[str, Any]) -> None:
        """Append one finished record."""
        if self._handle is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._handle = self.path.open("a", encoding="utf-8")
        entry = {"id": record["id"], "fp": fingerprint, "record": record}
        self._handle.write(json.dumps(entry, ensure_ascii=False) + "\n")
        self._handle.flush()

    def close(self) -> None:
        """Close the append handle."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None


# --------------------------------------------------------------------------- running


def run_specs(
    jobs: Sequence[tuple[SampleSpec, Path]],
    opts: PrepareOptions,
    *,
    workers: int = 1,
    progress: bool = True,
) -> tuple[dict[str, dict[str, Any]], list[Problem], int]:
    """Materialize every (spec, split folder) job, reusing finished ones from the resume state.

    Returns:
        (records by sample id, problems, number of samples reused from a previous run).
    """
    from tqdm import tqdm

    states: dict[Path, ResumeState] = {}
    records: dict[str, dict[str, Any]] = {}
    problems: list[Problem] = []
    todo: list[tuple[SampleSpec, Path, str]] = []
    for spec, out_dir in jobs:
        state = states.setdefault(out_dir, ResumeState(out_dir))
        fingerprint = spec_fingerprint(spec, opts)
        hit = state.lookup(spec, fingerprint)
        if hit is not None:
            records[f"{out_dir}\0{spec.id}"] = hit
        else:
            todo.append((spec, out_dir, fingerprint))
    reused = len(jobs) - len(todo)
    bar = tqdm(total=len(jobs), initial=reused, disable=not progress, unit="item", desc="prepare")

    def finish(item: tuple[SampleSpec, Path, str], result: tuple[Any, Problem | None]) -> None:
        record, problem = result
        spec, out_dir, fingerprint = item
        if record is not None:
            records[f"{out_dir}\0{spec.id}"] = record
            states[out_dir].add(fingerprint, record)
        if problem is not None:  # name the output split, not the manifest's `split` field
            problems.append(replace(problem, split=out_dir.name))
        bar.update(1)

    try:
        _dispatch(todo, opts, workers, finish)
    finally:
        bar.close()
        for state in states.values():
            state.close()
    return records, problems, reused


def _dispatch(
    todo: list[tuple[SampleSpec, Path, str]],
    opts: PrepareOptions,
    workers: int,
    finish: Callable[[tuple[SampleSpec, Path, str], tuple[Any, Problem | None]], None],
) -> None:
    if workers <= 1 or len(todo) <= _BATCH:
        for item in todo:
            finish(item, materialize(item[0], item[1], opts))
        return
    batches = [todo[i : i + _BATCH] for i in range(0, len(todo), _BATCH)]
    context = multiprocessing.get_context("spawn")  # PyAV/torch threads do not survive fork
    with ProcessPoolExecutor(max_workers=workers, mp_context=context) as pool:
        futures = {
            pool.submit(_materialize_batch, [(s, str(d)) for s, d, _ in batch], opts): batch
            for batch in batches
        }
        for future in as_completed(futures):
            for item, result in zip(futures[future], future.result()):
                finish(item, result)
