"""Sliding-window localization of a whole video: ``localize(video, model=...)`` streams the video
once, runs the model on batched windows, smooths over time, decides a state per class and window,
and writes the overlay / JSON / maps / HTML outputs. ``load_model`` loads bundled models.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from torch import nn

from ier.bundled import BUNDLED_MODELS, DEFAULT_MODEL, MODEL_CARD, UNKNOWN_QUALITY, quality_line
from ier.checkpoint import load_checkpoint, model_from_checkpoint
from ier.errors import CheckpointError, IerError, MediaError
from ier.localization.engine import Run, decide, peak_and_box, window_times
from ier.localization.outputs import OutputSinks
from ier.localization.results import (
    DEFAULT_THRESHOLD,
    OUTPUT_NAMES,
    SCHEMA_VERSION,
    STATES,
    ClassRecord,
    DecisionRule,
    LocalizationResult,
    LocalizeSettings,
    WindowRecord,
    calibration_threshold,
    default_threads,
    drawing_threshold,
    sounding_evidence,
    strongest_candidates,
)
from ier.localization.schema import validate_localization
from ier.video import VideoInfo, probe

logger = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"  # == ier.bundled.WEIGHTS_DIR

__all__ = [
    "BUNDLED_MODELS", "DEFAULT_MODEL", "DEFAULT_THRESHOLD", "OUTPUT_NAMES", "SCHEMA_VERSION",
    "STATES", "WEIGHTS_DIR", "ClassRecord", "DecisionRule", "LocalizationResult",
    "LocalizeSettings", "WindowRecord", "calibration_threshold", "default_threads",
    "check_out_dir", "check_outputs_spare_input", "check_video", "decide", "drawing_threshold",
    "fast_inference",
    "load_model", "localize",
    "model_card", "peak_and_box",
    "prepare_out_dir", "resolve_model_path", "sounding_evidence", "strongest_candidates",
    "validate_localization", "window_times",
]  # fmt: skip


# --------------------------------------------------------------------------- models


def resolve_model_path(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL) -> Path:
    """The checkpoint file of a bundled model name, or ``name_or_path`` if it is a file.

    Raises:
        CheckpointError: Unknown name, or a bundled name whose weights are not installed.
    """
    text = os.fspath(name_or_path)
    bundled = WEIGHTS_DIR / f"{text}.safetensors"
    if text in BUNDLED_MODELS or (Path(text).name == text and bundled.exists()):
        if not bundled.exists():
            raise CheckpointError(
                f"bundled model {text!r} has no weights in this install yet ({bundled} is "
                "missing); pass a checkpoint path with --model, or install a release that ships it"
            )
        return bundled
    if Path(text).is_file():
        return Path(text)
    if Path(text).exists():
        raise CheckpointError(f"{text}: is a folder, not a checkpoint file")
    raise CheckpointError(
        f"{text!r} is neither a bundled model ({', '.join(sorted(BUNDLED_MODELS))}) "
        "nor an existing checkpoint file"
    )


def load_model(name_or_path: str | os.PathLike[str] = DEFAULT_MODEL) -> nn.Module:
    """Load a bundled model by name or any checkpoint by path, in eval mode.

    The model carries ``name`` (what was asked for), ``quality`` (its measured quality in one
    line: the checkpoint's ``quality`` entry, see ``model_card``), ``card`` (where its card is)
    and ``calibration`` (its operating point chosen on validation splits, or None).

    Raises:
        CheckpointError: Unknown name, missing bundled weights, or a bad checkpoint.
    """
    text = os.fspath(name_or_path)
    path = resolve_model_path(text)

    ckpt = load_checkpoint(path)
    model = model_from_checkpoint(ckpt)
    model.name = text  # type: ignore[attr-defined]
    model.quality = quality_line(ckpt.meta, ckpt.digest)  # type: ignore[attr-defined]
    model.card = str(ckpt.meta.get("card") or MODEL_CARD)  # type: ignore[attr-defined]
    model.calibration = ckpt.meta.get("calibration")  # type: ignore[attr-defined]
    return model.eval()


def model_card(model: nn.Module | None) -> tuple[str, str]:
    """(quality line, card location) of a model from ``load_model``; a model object built some
    other way gets ``UNKNOWN_QUALITY`` and the bundled models' card."""
    quality = getattr(model, "quality", None) or UNKNOWN_QUALITY
    return str(quality), str(getattr(model, "card", None) or MODEL_CARD)


def _resolve_model(model: nn.Module | str | os.PathLike[str] | None) -> tuple[nn.Module, str]:
    if model is None or isinstance(model, (str, os.PathLike)):
        name = os.fspath(model) if model is not None else DEFAULT_MODEL
        return fast_inference(load_model(name)), name
    name = getattr(model, "name", None) or getattr(getattr(model, "config", None), "name", None)
    return model.eval(), str(name or type(model).__name__)


def fast_inference(model: nn.Module) -> nn.Module:
    """Store all of the model's 4-D weights in the conv layout (in place; same outputs to float
    rounding). The built-in backbones already are (``ier.models.backbones.CONV_LAYOUT``); this also
    covers a plugin model's own conv layers, whose input the engine then converts too."""
    from ier.models.backbones import use_conv_layout

    return use_conv_layout(model)


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
    threshold: float | None = None,
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
        threshold: Score and map-peak threshold of the decision rule; None: the model's
            threshold calibrated on validation splits when its checkpoint stores one, else 0.5
            (``calibration_threshold``).
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
    out, created = None, []
    if out_dir is not None:
        check_outputs_spare_input(path, out_dir)
        out, created = _prepare_out_dir(out_dir, overwrite=overwrite)
    try:
        result = _localize(path, info, model, settings, out, save_maps=save_maps,
                           write_overlay=write_overlay, write_report=write_report,
                           progress=progress, tick=tick)  # fmt: skip
    except BaseException:
        _remove_empty_dirs(created)  # a failed run leaves no empty output folder behind
        raise
    logger.info(
        "localized %d windows of %s in %.1f s", len(result.windows), path, result.timings["total"]
    )
    return result


def _localize(
    path: Path, info: VideoInfo, model: nn.Module | str | os.PathLike[str] | None,
    settings: LocalizeSettings, out: Path | None, *, save_maps: bool, write_overlay: bool,
    write_report: bool, progress: bool, tick: float,
) -> LocalizationResult:  # fmt: skip
    net, name = _resolve_model(model)
    source = "given"
    if settings.rule.score_threshold is None or settings.rule.peak_threshold is None:
        threshold, source = calibration_threshold(net)
        settings = replace(settings, rule=settings.rule.resolved(threshold))
    with _torch_threads(settings.threads):
        return _run(path, info, net, name, settings, out, save_maps=save_maps,
                    write_overlay=write_overlay, write_report=write_report, progress=progress,
                    tick=tick, threshold_source=source)  # fmt: skip


@contextmanager
def _torch_threads(threads: int | None) -> Iterator[None]:
    """torch's CPU threads set to ``threads`` inside the block (None: unchanged)."""
    if threads is None:
        yield
        return
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _run(
    path: Path, info: VideoInfo, net: nn.Module, name: str, settings: LocalizeSettings,
    out: Path | None, *, save_maps: bool, write_overlay: bool, write_report: bool,
    progress: bool, tick: float, threshold_source: str = "given",
) -> LocalizationResult:  # fmt: skip
    run = Run(path, info, net, settings, sinks=None, progress=progress)
    result = LocalizationResult(
        video_path=path, video=info, model_name=name, classes=run.classes, settings=settings,
        cues={"visual_presence": run.has_visual, "audio_presence": run.has_audio,
              "presence": run.presence is not None},  # fmt: skip
        threshold_source=threshold_source,
    )  # fmt: skip
    run.sinks = OutputSinks(
        result, out, n_windows=len(run.starts), save_maps=save_maps,
        write_overlay=write_overlay, write_report=write_report,
    )  # fmt: skip
    try:
        result.windows = run.run()
        run.sinks.close()
    except BaseException:
        run.sinks.abort()
        raise
    if run.picture_end is not None:
        result.frames_end_seconds = run.picture_end.frames_end_seconds
        result.last_frame_held = run.picture_end.held

    def timings() -> dict[str, float]:
        spent = {"total": time.perf_counter() - tick, **run.timings, "encode": 0.0}
        for key, value in run.sinks.timings.items():
            spent[key] += value
        return spent

    result.timings = timings()
    if out is not None:
        run.sinks.write_documents()  # the JSON holds the timings up to here
        _remove_stale_outputs(out, result)
        result.timings = timings()
    return result


def check_outputs_spare_input(
    video: str | os.PathLike[str], out_dir: str | os.PathLike[str]
) -> None:
    """Refuse an output folder where one of the files ``localize`` writes is the input video
    (``ier localize overlay.mp4 -o .``), whatever ``overwrite`` says.

    Raises:
        IerError: An output path resolves to the input (same path, link or hard link).
    """
    video = Path(video)
    for name in OUTPUT_NAMES:
        target = Path(out_dir) / name
        same = target.resolve() == video.resolve()
        if not same and target.exists() and video.exists():
            same = os.path.samefile(target, video)
        if same:
            raise IerError(
                f"{video}: the input is {target}, a file this command writes; choose another "
                "output folder (-o) or rename the video"
            )


def _remove_stale_outputs(out: Path, result: LocalizationResult) -> None:
    """Delete the output files of an earlier run that this run did not write (``overwrite``):
    a folder never holds, say, a maps.npz of another video beside this run's JSON."""
    written = {Path(p).name for p in result.outputs.values()}
    for name in OUTPUT_NAMES:
        if name not in written and (out / name).is_file():
            logger.info("removing %s: an earlier run's output that this run did not write", name)
            (out / name).unlink()


def _remove_empty_dirs(created: list[Path]) -> None:
    for folder in created:  # deepest first
        try:
            folder.rmdir()
        except OSError:
            return


def prepare_out_dir(out_dir: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """Create or check an output folder; an existing non-empty one needs ``overwrite``.

    Only the files in ``OUTPUT_NAMES`` are ever replaced or removed; nothing else is deleted.

    Raises:
        IerError: Not a folder, non-empty without ``overwrite``, or not writable.
    """
    return _prepare_out_dir(out_dir, overwrite=overwrite)[0]


def check_out_dir(out_dir: str | os.PathLike[str], *, overwrite: bool) -> Path:
    """The checks of ``prepare_out_dir`` without creating anything (run them before slow work).

    Raises:
        IerError: Not a folder, or non-empty without ``overwrite``.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise IerError(f"{out}: exists and is not a folder")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise IerError(
            f"{out}: output folder exists and is not empty; pass --overwrite (overwrite=True) "
            f"to replace the outputs in it ({', '.join(OUTPUT_NAMES)})"
        )
    return out


def _prepare_out_dir(
    out_dir: str | os.PathLike[str], *, overwrite: bool
) -> tuple[Path, list[Path]]:
    """``prepare_out_dir``, also returning the folders it created (deepest first)."""
    out = check_out_dir(out_dir, overwrite=overwrite)
    created = []
    folder = out.absolute()
    while not folder.exists() and folder.parent != folder:
        created.append(folder)
        folder = folder.parent
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe_file = out / f".ier-write-test-{os.getpid()}"
        probe_file.touch()
        probe_file.unlink()
    except OSError as err:
        _remove_empty_dirs(created)
        raise IerError(f"{out}: cannot write to the output folder ({err.strerror or err})") from err
    return out, created
