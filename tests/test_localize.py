"""ier.localize and `ier localize`: sliding windows over a generated clip with a deterministic fake
model whose maps peak on coloured squares and whose scores follow tones in the audio."""

from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from ier.cli import main
from ier.errors import CheckpointError, IerError, MediaError
from ier.localization import (
    STATES,
    DecisionRule,
    LocalizeSettings,
    decide,
    load_model,
    localize,
    peak_and_box,
    validate_localization,
    window_times,
)
from ier.models.common import LocalizationOutput, audibility
from ier.video import probe
from ier.video_writer import write_mp4

SAMPLE_RATE = 16_000
FPS = 10
WIDTH, HEIGHT = 128, 96
SQUARE = 32  # px
TONES_HZ = {"red": 440.0, "green": 1500.0, "blue": 3000.0}
RGB = {"red": (230, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 230)}


class ColourToneModel(nn.Module):
    """Class k is colour k: its map is how much each pixel looks like the colour, times how much of
    the audio's energy lies near tone k; the score is that audio share; ``visual_presence`` is the
    colour map's peak. So "red square + 440 Hz" is red sounding-on-screen, a green square with no
    1500 Hz tone is green visible-silent, and a 3000 Hz tone with no blue is blue heard-off-screen.
    """

    classes = tuple(TONES_HZ)

    def __init__(self, *, with_visual: bool = True, map_size: int = 16) -> None:
        super().__init__()
        self.config = SimpleNamespace(
            name="colour-tone", input_size=64,
            frontend=SimpleNamespace(sample_rate=SAMPLE_RATE, clip_seconds=1.0),
        )  # fmt: skip
        self.map_size = map_size
        if with_visual:
            self.visual_presence = self._visual_presence
        self.calls = 0

    def _colour_maps(self, images: torch.Tensor) -> torch.Tensor:
        target = torch.tensor([RGB[c] for c in self.classes], dtype=images.dtype) / 255  # (C, 3)
        distance = (images[:, None] - target[None, :, :, None, None]).abs().mean(2)  # (B, C, S, S)
        likeness = (1 - 3 * distance).clamp(0, 1)
        return F.adaptive_avg_pool2d(likeness, self.map_size)

    def _heard(self, waves: torch.Tensor) -> torch.Tensor:
        power = torch.fft.rfft(waves).abs() ** 2  # (B, n // 2 + 1)
        freqs = torch.fft.rfftfreq(waves.shape[-1], 1 / SAMPLE_RATE)
        total = power.sum(-1, keepdim=True).clamp_min(1e-8)
        bands = [(freqs - TONES_HZ[c]).abs() < 100 for c in self.classes]
        share = torch.stack([power[:, band].sum(-1) for band in bands], 1) / total
        return (2.5 * share).clamp(0, 1)  # two equal tones -> 0.5 share each -> 1

    def _visual_presence(self, images: torch.Tensor) -> torch.Tensor:
        return self._colour_maps(images).amax((2, 3))

    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        assert images.shape[1:] == (3, 64, 64) and waves.shape == (images.shape[0], SAMPLE_RATE)
        self.calls += 1
        heard = self._heard(waves)
        return LocalizationOutput(self._colour_maps(images) * heard[:, :, None, None], heard)


def square_x(frame_index: int) -> int:
    """Left edge of the moving red square in frame ``frame_index``, pixels."""
    return 4 + 3 * frame_index


def make_clip(
    path: Path,
    *,
    seconds: float = 3.0,
    tones: tuple[str, ...] = ("red", "blue"),
    audio: bool = True,
) -> Path:
    """A red square moving right, a static green square, and a sum of tones."""
    frames = []
    for i in range(int(seconds * FPS)):
        frame = np.full((HEIGHT, WIDTH, 3), 90, np.uint8)
        x = square_x(i)
        frame[8 : 8 + SQUARE, x : x + SQUARE] = RGB["red"]
        frame[HEIGHT - 28 : HEIGHT - 4, WIDTH - 28 : WIDTH - 4] = RGB["green"]
        frames.append(frame)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = sum(0.3 * np.sin(2 * np.pi * TONES_HZ[c] * t) for c in tones)
    return write_mp4(
        path, np.stack(frames), fps=FPS, audio=wave.astype(np.float32) if audio else None,
        sample_rate=SAMPLE_RATE,
    )  # fmt: skip


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_clip(tmp_path_factory.mktemp("clip") / "clip.mp4")


# --------------------------------------------------------------------------- pure pieces


def test_decide_follows_the_documented_rule() -> None:
    rule = DecisionRule()
    state, confidence = decide(0.81, 0.64, rule)
    assert state == "sounding-on-screen" and confidence == pytest.approx(np.sqrt(0.81 * 0.64))
    state, confidence = decide(0.9, 0.1, rule)
    assert state == "heard-off-screen" and confidence == pytest.approx(np.sqrt(0.9 * 0.9))
    assert decide(0.2, 0.1, rule, visual=0.8) == (
        "visible-silent",
        pytest.approx(np.sqrt(0.8 * 0.8)),
    )
    assert decide(0.2, 0.1, rule, visual=0.3) == ("absent", pytest.approx(np.sqrt(0.8 * 0.7)))
    assert decide(0.2, 0.9, rule) == ("absent", pytest.approx(0.8))  # no visual cue: never silent
    # An audio-only cue replaces the score as "heard".
    assert decide(0.9, 0.9, rule, audio=0.1)[0] == "absent"
    assert decide(0.1, 0.9, rule, audio=0.9)[0] == "sounding-on-screen"


def test_peak_and_box_on_a_hand_made_map() -> None:
    fine = np.zeros((10, 20), np.float32)
    fine[2:5, 4:9] = 0.6
    fine[3, 6] = 1.0
    fine[8, 15] = 0.9  # a separate blob: not part of the peak's region
    peak, box = peak_and_box(fine, 0.5)
    assert peak == pytest.approx((6.5 / 20, 3.5 / 10))
    assert box == pytest.approx((4 / 20, 2 / 10, 9 / 20, 5 / 10))


def test_window_times() -> None:
    assert window_times(3.0, 1.0, 0.5).tolist() == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert window_times(2.9, 1.0, 0.5).tolist() == [0.0, 0.5, 1.0, 1.5]
    assert window_times(1.0, 1.0, 0.5).tolist() == [0.0]


def test_settings_reject_bad_values() -> None:
    with pytest.raises(IerError, match="smoothing"):
        LocalizeSettings(smoothing=1.0)
    with pytest.raises(IerError, match="window and hop"):
        LocalizeSettings(hop_seconds=0)


# --------------------------------------------------------------------------- end to end


def test_localize_states_and_peak_inside_the_box(clip: Path) -> None:
    result = localize(clip, model=ColourToneModel())
    assert [w.start_seconds for w in result.windows] == [0.0, 0.5, 1.0, 1.5, 2.0]
    assert result.classes == ("red", "green", "blue") and result.model_name == "colour-tone"
    for window in result.windows:
        red, green, blue = window.classes
        assert (red.state, green.state, blue.state) == (
            "sounding-on-screen", "visible-silent", "heard-off-screen",
        )  # fmt: skip
        frame_index = int(np.floor(window.time_seconds * FPS + 1e-6))
        x0, y0 = square_x(frame_index), 8
        px, py = red.peak[0] * WIDTH, red.peak[1] * HEIGHT
        assert x0 <= px <= x0 + SQUARE and y0 <= py <= y0 + SQUARE, (window.index, px, py, x0)
        bx0, by0, bx1, by1 = (v * s for v, s in zip(red.box, (WIDTH, HEIGHT, WIDTH, HEIGHT)))
        inter = max(0, min(bx1, x0 + SQUARE) - max(bx0, x0)) * max(
            0, min(by1, y0 + SQUARE) - max(by0, y0)
        )
        union = (bx1 - bx0) * (by1 - by0) + SQUARE**2 - inter
        assert inter / union > 0.3
    assert result.track("green")[0][1] == "visible-silent"
    assert set(result.timings) == {"total", "decode", "model", "render", "encode"}


def test_without_a_visual_cue_silent_objects_are_absent(clip: Path) -> None:
    result = localize(clip, model=ColourToneModel(with_visual=False))
    assert {w.classes[1].state for w in result.windows} == {"absent"}
    assert result.cues == {"visual_presence": False, "audio_presence": False, "presence": False}


def test_smoothing_is_an_ema_over_windows(clip: Path) -> None:
    raw = localize(clip, model=ColourToneModel(), smoothing=0.0)
    smooth = localize(clip, model=ColourToneModel(), smoothing=0.5)
    scores_raw = [w.classes[0].peak_value for w in raw.windows]
    scores_smooth = [w.classes[0].peak_value for w in smooth.windows]
    assert scores_smooth[0] == pytest.approx(scores_raw[0], abs=1e-6)
    # Peak of an average is at most the average of peaks (the square moves, so strictly less).
    assert scores_smooth[1] <= 0.5 * scores_raw[1] + 0.5 * scores_smooth[0] + 1e-6


def test_outputs_json_overlay_and_maps(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = localize(clip, model=ColourToneModel(), out_dir=out, save_maps=True)
    assert {p.name for p in out.iterdir()} == {
        "overlay.mp4", "localization.json", "report.html", "maps.npz",
    }  # fmt: skip
    document = json.loads((out / "localization.json").read_text())
    assert validate_localization(document) == []
    assert document["schema_version"] == 1 and document["states"] == list(STATES)
    assert document["video"]["width"] == WIDTH and document["model"]["classes"] == [
        "red",
        "green",
        "blue",
    ]
    assert document["windows"][0]["classes"][0]["state"] == "sounding-on-screen"
    assert len(document["windows"]) == len(result.windows)
    # The overlay keeps the input's duration and its audio at the original rate.
    source, overlay = probe(clip), probe(out / "overlay.mp4")
    assert overlay.has_audio and overlay.audio_sample_rate == source.audio_sample_rate
    assert overlay.duration_seconds == pytest.approx(source.duration_seconds, abs=0.15)
    assert (overlay.width, overlay.height) == (224, 168)  # enlarged to min_display_side
    with np.load(out / "maps.npz") as maps:
        assert maps["maps"].shape == (5, 3, 16, 16) and maps["maps"].dtype == np.float16
        assert maps["times"].tolist() == [0.5, 1.0, 1.5, 2.0, 2.5]
        assert maps["classes"].tolist() == ["red", "green", "blue"]


def test_overlay_carries_a_non_mp4_audio_codec(tmp_path: Path) -> None:
    import av

    source = tmp_path / "pcm.mkv"
    with av.open(str(source), "w") as container:
        video = container.add_stream("mpeg4", rate=FPS)
        video.width, video.height, video.pix_fmt = 64, 64, "yuv420p"
        audio = container.add_stream("pcm_s16le", rate=22_050, layout="stereo")
        for i in range(20):
            frame = av.VideoFrame.from_ndarray(
                np.full((64, 64, 3), 10 * i, np.uint8), format="rgb24"
            )
            frame.pts = i
            container.mux(video.encode(frame))
        container.mux(video.encode(None))
        t = np.arange(44_100) / 22_050
        wave = (0.3 * np.sin(2 * np.pi * 440 * t) * 32767).astype(np.int16)
        frame = av.AudioFrame.from_ndarray(
            np.stack([wave, wave]).T.reshape(1, -1), format="s16", layout="stereo"
        )
        frame.sample_rate, frame.pts = 22_050, 0
        container.mux(audio.encode(frame))
        container.mux(audio.encode(None))
    localize(source, model=ColourToneModel(), out_dir=tmp_path / "out", write_report=False)
    overlay = probe(tmp_path / "out" / "overlay.mp4")
    assert overlay.has_audio and overlay.audio_sample_rate == 22_050
    assert overlay.duration_seconds == pytest.approx(2.0, abs=0.15)


# --------------------------------------------------------------------------- bad input


def test_bad_inputs_raise_clear_media_errors(tmp_path: Path, clip: Path) -> None:
    model = ColourToneModel()
    with pytest.raises(MediaError, match="not found"):
        localize(tmp_path / "missing.mp4", model=model)
    garbage = tmp_path / "garbage.mp4"
    garbage.write_bytes(b"this is not a video" * 100)
    with pytest.raises(MediaError, match="cannot open"):
        localize(garbage, model=model)
    truncated = tmp_path / "truncated.mp4"
    data = clip.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError):
        localize(truncated, model=model)
    streamable = _faststart_copy(clip, tmp_path / "faststart.mp4")  # index first, data cut
    data = streamable.read_bytes()
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(MediaError, match="truncated or corrupt"):
        localize(truncated, model=model)
    silent = make_clip(tmp_path / "silent.mp4", audio=False)
    with pytest.raises(MediaError, match="no audio stream"):
        localize(silent, model=model)
    wav = tmp_path / "sound.wav"
    import soundfile

    soundfile.write(wav, np.zeros(SAMPLE_RATE * 2, np.float32), SAMPLE_RATE)
    with pytest.raises(MediaError, match="no video stream"):
        localize(wav, model=model)
    with pytest.raises(MediaError, match="shorter than one 4 s window"):
        localize(clip, model=model, window_seconds=4.0)


def test_output_folder_is_never_overwritten_silently(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("keep me")
    with pytest.raises(IerError, match="--overwrite"):
        localize(clip, model=ColourToneModel(), out_dir=out)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    localize(clip, model=ColourToneModel(), out_dir=out, overwrite=True, write_report=False)
    assert (out / "mine.txt").read_text() == "keep me" and (out / "overlay.mp4").exists()


def _faststart_copy(source: Path, target: Path) -> Path:
    import av

    with (
        av.open(str(source)) as src,
        av.open(str(target), "w", options={"movflags": "faststart"}) as out,
    ):
        streams = {s.index: out.add_stream_from_template(s) for s in src.streams}
        for packet in src.demux():
            if packet.dts is not None:
                packet.stream = streams[packet.stream.index]
                out.mux(packet)
    return target


def test_output_path_that_cannot_be_a_folder(clip: Path, tmp_path: Path) -> None:
    blocker = tmp_path / "file.txt"
    blocker.write_text("x")
    with pytest.raises(IerError, match="exists and is not a folder"):
        localize(clip, model=ColourToneModel(), out_dir=blocker)
    with pytest.raises(IerError, match="cannot write"):
        localize(clip, model=ColourToneModel(), out_dir=blocker / "out")


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores modes")
def test_read_only_output_folder(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "ro"
    out.mkdir()
    out.chmod(0o500)
    try:
        with pytest.raises(IerError, match="cannot write"):
            localize(clip, model=ColourToneModel(), out_dir=out, overwrite=True)
    finally:
        out.chmod(0o700)


def test_unknown_model_name_and_missing_bundled_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import importlib

    with pytest.raises(CheckpointError, match="neither a bundled model"):
        load_model("no-such-model")
    monkeypatch.setattr(importlib.import_module("ier.localization"), "WEIGHTS_DIR", tmp_path)
    with pytest.raises(CheckpointError, match="ier-wild-small' has no weights"):
        load_model("ier-wild-small")


def test_the_bundled_model_localizes_a_clip(clip: Path) -> None:
    from ier.localization import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "ier-wild-small.safetensors").exists():
        pytest.skip("the bundled weights are not in this checkout")
    result = localize(clip, model="ier-wild-small", hop_seconds=1.0)
    assert result.model_name == "ier-wild-small" and len(result.classes) > 1
    assert len(result.windows) == 3
    assert all(item.state in STATES for w in result.windows for item in w.classes)


# --------------------------------------------------------------------------- CLI


def test_cli_localize_writes_outputs_and_reports_errors(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import ier.localization as localize_module

    monkeypatch.setattr(localize_module, "load_model", lambda name: ColourToneModel())
    out = tmp_path / "cli"
    assert main(["localize", str(clip), "--model", "fake", "-o", str(out), "--hop", "1.0"]) == 0
    document = json.loads((out / "localization.json").read_text())
    assert [w["start_seconds"] for w in document["windows"]] == [0.0, 1.0, 2.0]
    assert "report.html" in capsys.readouterr().out
    assert main(["localize", str(clip), "--model", "fake", "-o", str(out)]) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main(["localize", str(clip), "--model", "fake", "-o", str(out), "--overwrite"]) == 0
    assert main(["localize", str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "x")]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["localize", str(clip), "--hop", "0", "-o", str(tmp_path / "y")]) == 2
    assert "window and hop must be > 0" in capsys.readouterr().err
    assert main(["localize", str(clip), "--threshold", "2", "-o", str(tmp_path / "y")]) == 2
    assert "must be in [0, 1]" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


def test_a_saved_checkpoint_loads_by_path_and_localizes(clip: Path, tmp_path: Path) -> None:
    from ier.checkpoint import save_model
    from ier.models import create_model
    from ier.models.config import model_config

    config = model_config("tiny")
    path = save_model(tmp_path / "tiny.safetensors", create_model(config), model_config=config)
    result = localize(clip, model=str(path), hop_seconds=1.0)
    assert result.model_name == str(path) and len(result.windows) == 3
    assert all(item.state in STATES for w in result.windows for item in w.classes)


def test_ier_localize_is_callable_as_the_package_attribute(clip: Path) -> None:
    import importlib

    import ier

    importlib.import_module("ier.localization")  # the implementation package never shadows it
    assert len(ier.localize(clip, model=ColourToneModel(), hop_seconds=1.0).windows) == 3


def test_a_soundtrack_shorter_than_the_picture_reads_as_silence(tmp_path: Path) -> None:
    frames = np.full((30, 64, 64, 3), 90, np.uint8)
    frames[:, 10:40, 10:40] = RGB["red"]
    t = np.arange(SAMPLE_RATE) / SAMPLE_RATE  # 1 s of 440 Hz under 3 s of video
    wave = (0.3 * np.sin(2 * np.pi * TONES_HZ["red"] * t)).astype(np.float32)
    clip = write_mp4(tmp_path / "short_audio.mp4", frames, fps=FPS, audio=wave)
    states = [s for _, s, _ in localize(clip, model=ColourToneModel(), smoothing=0).track("red")]
    assert states[0] == "sounding-on-screen" and states[-1] == "visible-silent"


# --------------------------------------------------------------------------- the user's data


def test_an_output_that_is_the_input_is_refused_whatever_the_flags(
    clip: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import ier.localization as localize_module

    monkeypatch.setattr(localize_module, "load_model", lambda name: ColourToneModel())
    video = tmp_path / "overlay.mp4"
    video.write_bytes(clip.read_bytes())
    before = video.read_bytes()
    monkeypatch.chdir(tmp_path)
    for flags in ([], ["--overwrite"], ["--overwrite", "--no-overlay"]):
        assert main(["localize", "overlay.mp4", "--model", "x", "-o", ".", *flags]) == 2
        assert "a file this command writes" in capsys.readouterr().err
    assert video.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == [
        "overlay.mp4"
    ]
    link = tmp_path / "out" / "localization.json"  # a hard link to the input is the input too
    link.parent.mkdir()
    os.link(video, link)
    with pytest.raises(IerError, match="a file this command writes"):
        localize(video, model=ColourToneModel(), out_dir=link.parent, overwrite=True)
    assert video.read_bytes() == before


def test_overwrite_removes_the_outputs_of_an_earlier_run(clip: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    localize(clip, model=ColourToneModel(), out_dir=out, save_maps=True)
    (out / "mine.txt").write_text("keep me")
    result = localize(clip, model=ColourToneModel(), out_dir=out, overwrite=True, hop_seconds=1.0,
                      write_report=False)  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == ["localization.json", "mine.txt", "overlay.mp4"]
    document = json.loads((out / "localization.json").read_text())
    assert document["outputs"] == {"json": "localization.json", "overlay": "overlay.mp4"}
    assert len(document["windows"]) == len(result.windows) == 3


def _still_image_video(path: Path, *, frames: int, fps: int, audio_seconds: float) -> Path:
    picture = np.full((frames, 64, 64, 3), 90, np.uint8)
    picture[:, 10:40, 10:40] = RGB["red"]
    t = np.arange(int(audio_seconds * SAMPLE_RATE)) / SAMPLE_RATE
    wave = (0.3 * np.sin(2 * np.pi * TONES_HZ["red"] * t)).astype(np.float32)
    return write_mp4(path, picture, fps=fps, audio=wave)


@pytest.mark.parametrize(("frames", "fps"), [(1, 25), (10, 10)])
def test_a_soundtrack_longer_than_the_picture_holds_the_last_frame(
    tmp_path: Path, frames: int, fps: int
) -> None:
    video = _still_image_video(tmp_path / "still.mp4", frames=frames, fps=fps, audio_seconds=3.97)
    info = probe(video)
    assert info.video_seconds == pytest.approx(frames / fps, abs=1e-3)
    assert info.duration_seconds == pytest.approx(3.97, abs=0.05)
    out = tmp_path / "out"
    result = localize(video, model=ColourToneModel(), out_dir=out, smoothing=0)
    assert len(result.windows) == 6 and result.last_frame_held
    assert result.frames_end_seconds == pytest.approx(frames / fps)
    last_frame = (frames - 1) / fps
    assert result.windows[-1].frame_seconds == pytest.approx(last_frame)
    assert {w.classes[0].state for w in result.windows} == {"sounding-on-screen"}
    document = json.loads((out / "localization.json").read_text())
    assert validate_localization(document) == []
    assert document["video"]["last_frame_held"] is True
    assert document["video"]["frames_end_seconds"] == pytest.approx(frames / fps)
    assert document["windows"][-1]["frame_seconds"] == pytest.approx(last_frame)
    assert "show the last frame" in document["notes"][0]
    overlay = probe(out / "overlay.mp4")  # the overlay holds the frame as long as the sound
    assert overlay.video_seconds == pytest.approx(3.97, abs=0.1)


def test_a_picture_as_long_as_its_sound_holds_nothing(clip: Path) -> None:
    result = localize(clip, model=ColourToneModel(), hop_seconds=1.0)
    assert not result.last_frame_held and result.notes == []
    assert result.frames_end_seconds == pytest.approx(3.0)
    assert [w.frame_seconds for w in result.windows] == pytest.approx([0.5, 1.5, 2.5])


def test_a_failed_run_leaves_no_output_folder(clip: Path, tmp_path: Path) -> None:
    streamable = _faststart_copy(clip, tmp_path / "faststart.mp4")
    data = streamable.read_bytes()
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes(data[: len(data) // 2])
    out = tmp_path / "a" / "b" / "out"
    with pytest.raises(MediaError, match="truncated or corrupt"):
        localize(truncated, model=ColourToneModel(), out_dir=out)
    assert not (tmp_path / "a").exists()
    existing = tmp_path / "mine"
    existing.mkdir()
    with pytest.raises(MediaError):
        localize(truncated, model=ColourToneModel(), out_dir=existing)
    assert existing.is_dir() and list(existing.iterdir()) == []  # the user's folder stays


def test_cuda_on_a_cpu_only_torch_is_a_clean_error(
    clip: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    out = tmp_path / "out"
    assert main(["localize", str(clip), "--device", "cuda", "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "--device cuda" in err and "Traceback" not in err and len(err.splitlines()) == 1
    assert not out.exists()
    assert main(["localize", str(clip), "--device", "gpu0", "-o", str(out)]) == 2
    assert "not a torch device" in capsys.readouterr().err and not out.exists()


def test_the_summary_counts_windows_and_says_how_long_it_took(clip: Path) -> None:
    from ier.commands.localize import summarize

    result = localize(clip, model=ColourToneModel(), hop_seconds=1.0)
    text = summarize(result)
    assert "red: sounding-on-screen in 3 of 3 windows" in text
    assert "green: visible-silent in 3 of 3 windows" in text
    assert "processed 3.0 s of video in " in text and "x real time" not in text


def test_a_dark_summary_names_the_threshold_that_would_draw_the_strongest_candidate(
    clip: Path,
) -> None:
    import re

    from ier.commands.localize import summarize

    dark = localize(clip, model=ColourToneModel(), hop_seconds=1.0, threshold=0.999)
    assert not any(c.state == "sounding-on-screen" for w in dark.windows for c in w.classes)
    text = summarize(dark)
    found = re.search(r"strongest candidate was (\w+), ([\d.]+) .*--threshold ([\d.]+) would", text)
    assert found, text
    name, evidence, suggested = found.group(1), float(found.group(2)), float(found.group(3))
    assert name == "red" and suggested <= evidence  # red sounds on screen in every window
    drawn = localize(clip, model=ColourToneModel(), hop_seconds=1.0, threshold=suggested)
    assert any(s == "sounding-on-screen" for _, s, _ in drawn.track(name))
    assert "nothing was drawn" not in summarize(drawn)


def test_threads_apply_to_the_run_only(clip: Path) -> None:
    seen = []

    class Spy(ColourToneModel):
        def localize(self, images, waves):
            seen.append(torch.get_num_threads())
            return super().localize(images, waves)

    before = torch.get_num_threads()
    wanted = 2 if before == 1 else 1
    localize(clip, model=Spy(), settings=LocalizeSettings(threads=wanted, hop_seconds=1.0))
    assert set(seen) == {wanted} and torch.get_num_threads() == before
    with pytest.raises(IerError, match="threads"):
        LocalizeSettings(threads=0)


def test_the_decision_threshold_defaults_to_the_models_calibrated_one(
    clip: Path, tmp_path: Path
) -> None:
    from ier.checkpoint import save_model
    from ier.inference import store_calibration
    from ier.models import create_model
    from ier.models.config import model_config

    model = ColourToneModel()
    plain = localize(clip, model=model, hop_seconds=1.0)
    assert plain.settings.rule.peak_threshold == 0.5 and "default" in plain.threshold_source
    model.calibration = {"tau": 0.8, "budget": 0.05, "splits": ["val/wild", "val/negative"]}
    strict = localize(clip, model=model, hop_seconds=1.0)
    assert strict.settings.rule.score_threshold == strict.settings.rule.peak_threshold == 0.8
    assert strict.threshold_source.startswith("calibrated on val/wild + val/negative")
    # red's smoothed peak is 0.99, 0.70, 0.71: at 0.8 only the first window keeps it on screen
    assert [w.classes[0].state for w in plain.windows] == ["sounding-on-screen"] * 3
    assert [w.classes[0].state for w in strict.windows] == ["sounding-on-screen",
                                                          "heard-off-screen",
                                                          "heard-off-screen"]  # fmt: skip
    document = strict.to_dict()
    assert document["settings"]["peak_threshold"] == 0.8
    assert document["settings"]["threshold_source"] == strict.threshold_source
    given = localize(clip, model=model, hop_seconds=1.0, threshold=0.5)
    assert given.threshold_source == "given"
    assert [w.classes[0].state for w in given.windows] == ["sounding-on-screen"] * 3
    # a checkpoint carries its calibration to load_model
    config = model_config("tiny")
    path = save_model(tmp_path / "m.safetensors", create_model(config), model_config=config)
    assert store_calibration(path, {"calibration": model.calibration})
    assert load_model(str(path)).calibration["tau"] == 0.8
    assert not store_calibration(path, {"test/wild": {}})


class PresenceModel(ColourToneModel):
    """``ColourToneModel`` that also returns the decision cues (``DECISION_CUES``) and carries a
    calibrated presence that needs both the class's colour and its tone: sigmoid(10 visual +
    10 score - 15)."""

    provides_decision_cues = True

    def __init__(self) -> None:
        super().__init__()
        self.calibration = {"tau": 0.9, "presence": {
            "cues": ["log_audio_prob", "visual_peak", "class_peak", "audible"],
            "weights": [0.0, 10.0, 10.0, 0.0], "bias": -15.0, "tau": 0.6, "budget": 0.1,
            "splits": ["val/wild", "val/negative"]}}  # fmt: skip

    def localize(self, images: torch.Tensor, waves: torch.Tensor) -> LocalizationOutput:
        out = super().localize(images, waves)
        heard = self._heard(waves)
        audible = audibility(waves)[:, None].expand_as(heard)
        av_peak = out.scores.amax(dim=1, keepdim=True).expand_as(heard)  # not in its presence
        cues = torch.stack([heard.clamp_min(1e-4).log(), self._visual_presence(images),
                            out.scores, audible, av_peak], dim=2)  # fmt: skip
        return LocalizationOutput(out.maps, out.scores, cues)


def test_a_calibrated_presence_decides_what_the_overlay_draws(clip: Path) -> None:
    """Red is seen and heard, green seen but silent, blue heard but not seen: the presence
    draws red only, and ``localization.json`` records it for every class."""
    result = localize(clip, model=PresenceModel(), hop_seconds=1.0)
    assert result.settings.rule.score_threshold == 0.6  # the presence's, not the map's 0.9
    assert result.threshold_source.startswith("calibrated presence on val/wild + val/negative")
    names = list(result.classes)
    for window in result.windows:
        states = {names[i]: c.state for i, c in enumerate(window.classes)}
        assert states == {"red": "sounding-on-screen", "green": "visible-silent", "blue": "absent"}
        red = window.classes[names.index("red")]
        assert red.presence is not None and red.presence >= 0.6 and red.confidence == red.presence
    document = result.to_dict()
    assert document["model"]["cues"]["presence"] is True
    assert all(c["presence"] is not None for w in document["windows"] for c in w["classes"])
    # a given threshold applies to the presence
    strict = localize(clip, model=PresenceModel(), hop_seconds=1.0, threshold=0.9999)
    assert all(c.state != "sounding-on-screen" for w in strict.windows for c in w.classes)
    plain = localize(clip, model=ColourToneModel(), hop_seconds=1.0)
    assert plain.to_dict()["model"]["cues"]["presence"] is False
