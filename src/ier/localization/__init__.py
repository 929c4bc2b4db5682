"""Sliding-window localization of a whole video: ``localize(video, model=...)`` streams the video
once, runs the model on batched windows, smooths over time, decides a state per class and window,
and writes the overlay / JSON / maps / HTML outputs. ``load_model`` loads bundled models.
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from torch import nn

from ier.errors import CheckpointError, IerError, MediaError
from ier.localization.engine import Run, decide, peak_and_box, window_times
from ier.localization.outputs import OutputSinks, validate_localization
from ier.localization.records import (
    OUTPUT_NAMES,
    SCHEMA_VERSION,
    STATES,
    ClassRecord,
    DecisionRule,
    LocalizationResult,
    LocalizeSettings,
    WindowRecord,
)
from ier.video import VideoInfo, probe

logger = logging.getLogger(__name__)

DEFAULT_MODEL = "ier-wild-small"
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"
# Bundled model name -> one-line description; the weights live in WEIGHTS_DIR/<name>.safetensors.
BUNDLED_MODELS: dict[str, str] = {
    "ier-wild-small": "IEr with a small backbone, trained on the built-in benchmark (ier scenes)",
}

__all__ = [
    "BUNDLED_MODELS", "DEFAULT_MODEL", "OUTPUT_NAMES", "SCHEMA_VERSION", "STATES", "WEIGHTS_DIR",
    "ClassRecord", "DecisionRule", "LocalizationResult", "LocalizeSettings", "WindowRecord",
    "check_video", "decide", "load_model", "localize", "peak_and_box", "prepare_out_dir",
    "validate_localization", "window_times",
]  # fmt: skip


# --------------------------------------------------------------------------- models


def load_model(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL) -> nn.Module:
    """Load a bundled model by name or any checkpoint by path, in eval mode.

    Raises:
        CheckpointError: Unknown name, missing bundled weights, or a bad checkpoint.
    """
    text = os.fspath(name_or_path)
    bundled = WEIGHTS_DIR / f"{text}.safetensors"
    if text in BUNDLED_MODELS or bundled.exists():
        if not bundled.exists():
            raise CheckpointError(
                f"bundled model {text!r} has no weights in this install yet ({bundled} is "
                "missing); pass a checkpoint path with --model, or install a release that ships it"
            )
        path = bundled
    elif Path(text).exists():
        path = Path(text)
    else:
        raise CheckpointError(
            f"{text!r} is neither a bundled model ({', '.join(sorted(BUNDLED_MODELS))}) "
            "nor an existing checkpoint file"
        )
    try:
        from ier.checkpoint import load_model as load_checkpoint_model
    except ImportError as err:  # pragma: no cover - only while ier.checkpoint is being written
        raise CheckpointError(f"cannot load {path}: ier.checkpoint is unavailable ({err})") from err
    model = load_checkpoint_model(path)
    model.name = text  # type: ignore[attr-defined]
    return model.eval()


def _resolve_model(model: nn.Module | str | os.PathLike[str] | None) -> tuple[nn.Module, str]:
    if model is None or isinstance(model, (str, os.PathLike)):
        name = os.fspath(model) if model is not None else DEFAULT_MODEL
        return load_model(name), name
    name = getattr(model, "name", None) or getattr(getattr(model, "config", None), "name", None)
    return model.eval(), str(name or type(model).__name__)


# --------------------------------------------------------------------------- the public entry


def check_video(path: str | os.PathLike[str], window_seconds: float) -> tuple[Path, VideoInfo]:
    """Probe a video and check it can be localized: video and audio streams, at least a window.

    Raises:
        MediaError: Missing, corrupt, no video or audio stream, or shorter than one window.
    """
    path = Path(path)
    info = probe(path)
    if not info.has_video or info.width <= 0:
        raise MediaError(f"{path}: has no video stream; localization needs frames")
    if not info.has_audio:
        raise MediaError(f"{path}: has no audio stream; localization needs the soundtrack")
    if info.duration_seconds + 1e-6 < window_seconds:
        raise MediaError(
            f"{path}: video is {info.duration_seconds:.2f} s long, shorter than one "
            f"{window_seconds:g} s window; pass a shorter window"
        )
    return path, info


def localize(
    video: str | os.PathLike[str],
    *,
    model: nn.Module | str | os.PathLike[str] | None = None,
    window_seconds: float = 1.0,
    hop_seconds: float = 0.5,
    smoothing: float = 0.3,
    threshold: float = 0.5,
    settings: LocalizeSettings | None = None,
    out_dir: str | os.PathLike[str] | None = None,
    overwrite: bool = False,
    save_maps: bool = False,
    write_overlay: bool = True,
    write_report: bool = True,
    progress: bool = False,
) -> LocalizationResult:
    """Localize every class over a whole video with sliding windows.

    Frames and audio stream through once; memory holds about one batch of windows, never all
    frames or maps. With ``out_dir`` it writes ``overlay.mp4`` (the original frames with
    heatmaps and labels, and the original audio), ``localization.json``, ``report.html`` and,
    with ``save_maps``, ``maps.npz``.

    Args:
        video: Video file with a video and an audio stream.
        model: A model object, a bundled model name or a checkpoint path (None: DEFAULT_MODEL).
        window_seconds: Analysis window length in seconds.
        hop_seconds: Step between windows in seconds.
        smoothing: EMA weight on the previous window (0 = none).
        threshold: Score and map-peak threshold of the decision rule.
        settings: Full settings; when given, the four arguments above are ignored.
        out_dir: Output folder, or None to only return the result.
        overwrite: Allow replacing outputs in an existing non-empty folder.
        save_maps: Also write the smoothed maps to ``maps.npz``.
        write_overlay: Write ``overlay.mp4`` (when ``out_dir`` is given).
        write_report: Write ``report.html`` (when ``out_dir`` is given).
        progress: Show a progress bar over windows (stderr).

    Raises:
        MediaError: Bad input video. IerError: Output folder exists or is not writable.
        CheckpointError: Model name or checkpoint cannot be loaded.
    """
    tick = time.perf_counter()
    if settings is None:
        rule = DecisionRule(score_threshold=threshold, peak_threshold=threshold)
        settings = LocalizeSettings(
            window_seconds=window_seconds, hop_seconds=hop_seconds, smoothing=smoothing, rule=rule
        )
    path, info = check_video(video, settings.window_seconds)
    out = prepare_out_dir(out_dir, overwrite=overwrite) if out_dir is not None else None
    net, name = _resolve_model(model)
    run = Run(path, info, net, settings, sinks=None, progress=progress)
    result = LocalizationResult(
        video_path=path, video=info, model_name=name, classes=run.classes, settings=settings,
        cues={"visual_presence": run.has_visual, "audio_presence": run.has_audio},
    )  # fmt: skip
    run.sinks = OutputSinks(
        result, out, n_windows=len(run.starts), save_maps=save_maps,
        write_overlay=write_overlay, write_report=write_report,
    )  # fmt: skip
    try:
        result.windows = run.run()
    except BaseException:
        run.sinks.abort()
        raise
    run.timings["render"] += run.sinks.close()
    result.timings = {"total": time.perf_counter() - tick, **run.timings}
    if out is not None:  # the JSON holds the timings so far; the result adds writing it
        written = time.perf_counter()
        run.sinks.write_documents()
        result.timings["render"] += time.perf_counter() - written
        result.timings["total"] = time.perf_counter() - tick
    logger.info(
        "localized %d windows of %s in %.1f s", len(result.windows), path, result.timings["total"]
    )
    return result


def prepare_out_dir(out_dir: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Create or check an output folder; an existing non-empty one needs ``overwrite``.

    Only the files in ``OUTPUT_NAMES`` are ever replaced; nothing else is deleted.

    Raises:
        IerError: Not a folder, non-empty without ``overwrite``, or not writable.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise IerError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise IerError(
            f"{out}: output folder exists and is not empty; pass --overwrite (overwrite=True) "
            f"to replace the outputs in it ({', '.join(OUTPUT_NAMES)})"
        )
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe_file = out / f".ier-write-test-{os.getpid()}"
        probe_file.touch()
        probe_file.unlink()
    except OSError as err:
        raise IerError(f"{out}: cannot write to the output folder ({err.strerror or err})") from err
    return out
