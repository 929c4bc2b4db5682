"""Tests for ier.video and ier.video_writer: mp4 round trips, frame decoding by time,
streaming, images, bad input."""

from __future__ import annotations

import types

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from ier import audio, mixing, video
from ier.errors import MediaError
from ier.video_writer import write_mp4

SR = audio.SAMPLE_RATE
# Strongly distinct colours, one per second (or per frame) of a test video.
PALETTE = np.array(
    [[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255], [255, 0, 255],
     [255, 255, 255], [0, 0, 0], [128, 128, 128], [255, 128, 0]],
    dtype=np.uint8,
)  # fmt: skip


def solid(colour: np.ndarray, height: int = 32, width: int = 48) -> np.ndarray:
    return np.broadcast_to(colour, (height, width, 3)).copy()


def tone(freq_hz: float, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * SR))) / SR
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def mean_colour(frame: np.ndarray) -> np.ndarray:
    return frame.reshape(-1, 3).mean(axis=0)


@pytest.fixture(scope="module")
def seconds_video(tmp_path_factory) -> tuple:
    """4 s at 10 fps, each second a solid PALETTE colour, with a 440 Hz tone."""
    fps, seconds = 10, 4
    frames = np.stack([solid(PALETTE[i // fps]) for i in range(fps * seconds)])
    path = tmp_path_factory.mktemp("video") / "seconds.mp4"
    write_mp4(path, frames, fps=fps, audio=tone(440.0, seconds))
    return path, fps


def test_probe_reports_streams(seconds_video):
    path, fps = seconds_video
    info = video.probe(path)
    assert isinstance(info, video.VideoInfo)
    assert (info.width, info.height, info.fps) == (48, 32, fps)
    assert info.n_frames == 40
    assert info.duration_seconds == pytest.approx(4.0, abs=0.05)
    assert info.has_video and info.has_audio and info.audio_sample_rate == SR
    with pytest.raises(AttributeError):
        info.fps = 1.0  # frozen


def test_load_frames_returns_the_frame_shown_at_each_time(seconds_video):
    path, _ = seconds_video
    times = [3.5, 0.0, 1.95, 2.0, 3.99, 1.0, 0.5, 2.0]
    frames = video.load_frames(path, times)
    assert frames.shape == (len(times), 32, 48, 3) and frames.dtype == np.uint8
    for t, frame in zip(times, frames):
        np.testing.assert_allclose(mean_colour(frame), PALETTE[int(t)], atol=6)


def test_load_frames_resizes(seconds_video):
    path, _ = seconds_video
    assert video.load_frames(path, [1.0], size=16).shape == (1, 16, 16, 3)
    resized = video.load_frames(path, [1.0, 2.5], size=(10, 20))
    assert resized.shape == (2, 10, 20, 3)
    np.testing.assert_allclose(mean_colour(resized[1]), PALETTE[2], atol=6)
    assert video.load_frames(path, [], size=8).shape == (0, 8, 8, 3)


def test_load_frames_is_frame_exact_at_boundaries(tmp_path):
    fps, n_frames = 25, 50
    frames = np.stack([solid(PALETTE[i % len(PALETTE)]) for i in range(n_frames)])
    path = write_mp4(tmp_path / "per_frame.mp4", frames, fps=fps, crf=12)
    indices = [0, 1, 9, 10, 24, 25, 37, 49]
    at_start = video.load_frames(path, [i / fps for i in indices])
    just_before_next = video.load_frames(path, [(i + 0.95) / fps for i in indices])
    for i, a, b in zip(indices, at_start, just_before_next):
        np.testing.assert_allclose(mean_colour(a), PALETTE[i % len(PALETTE)], atol=8)
        np.testing.assert_allclose(mean_colour(b), PALETTE[i % len(PALETTE)], atol=8)


def test_iter_frames_streams_a_window(seconds_video):
    path, fps = seconds_video
    stream = video.iter_frames(path, start_seconds=1.0, end_seconds=2.0, size=8)
    assert isinstance(stream, types.GeneratorType)
    items = list(stream)
    times = [t for t, _ in items]
    assert times == pytest.approx([1.0 + k / fps for k in range(fps)])
    for _, frame in items:
        assert frame.shape == (8, 8, 3)
        np.testing.assert_allclose(mean_colour(frame), PALETTE[1], atol=6)
    assert len(list(video.iter_frames(path))) == 40
    assert len(list(video.iter_frames(path, start_seconds=3.55))) == 4


def test_round_trip_colours_tone_and_level(tmp_path):
    fps = 25
    frames = np.stack([solid(PALETTE[i % len(PALETTE)], 40, 64) for i in range(50)])
    wave = tone(1000.0, 2.0, amplitude=0.4)
    path = write_mp4(tmp_path / "round.mp4", frames, fps=fps, audio=wave)
    decoded = list(video.iter_frames(path))
    assert len(decoded) == 50
    for i, (t, frame) in enumerate(decoded):
        assert t == pytest.approx(i / fps)
        np.testing.assert_allclose(mean_colour(frame), PALETTE[i % len(PALETTE)], atol=10)
    back = audio.load_audio(path, start_seconds=0.5, duration_seconds=1.0)
    spectrum = np.abs(np.fft.rfft(back * np.hanning(len(back))))
    assert np.fft.rfftfreq(len(back), 1 / SR)[np.argmax(spectrum)] == pytest.approx(1000.0, abs=2)
    assert mixing.rms(back) == pytest.approx(0.4 / np.sqrt(2), rel=0.03)


def test_audio_and_video_stay_aligned(tmp_path):
    fps, n_frames, flash = 25, 75, 40  # the flash is frame 40, shown at 1.6 s
    frames = np.zeros((n_frames, 32, 32, 3), np.uint8)
    frames[flash] = 255
    wave = np.zeros(3 * SR, np.float32)
    click = int(flash / fps * SR)
    wave[click : click + 16] = 0.9  # a 1 ms click at the same instant
    path = write_mp4(tmp_path / "sync.mp4", frames, fps=fps, audio=wave)
    flash_seconds = [t for t, f in video.iter_frames(path) if f.mean() > 128]
    assert flash_seconds == [pytest.approx(1.6)]
    decoded = audio.load_audio(path)
    click_seconds = int(np.argmax(np.abs(decoded))) / SR
    assert abs(click_seconds - flash_seconds[0]) < 1 / fps
    assert abs(click_seconds - 1.6) < 0.005  # in practice the offset is ~1 ms


def test_write_mp4_pads_odd_sizes_and_accepts_a_generator(tmp_path):
    def frames():
        for i in range(12):
            frame = solid(PALETTE[i % 3], 33, 45)
            frame[:, -1] = [255, 255, 255]  # a white last column must survive the padding
            yield frame

    path = write_mp4(tmp_path / "sub" / "odd.mp4", frames(), fps=12)
    info = video.probe(path)
    assert (info.height, info.width, info.n_frames, info.has_audio) == (34, 46, 12, False)
    frame = video.load_frames(path, [0.0])[0]
    np.testing.assert_allclose(mean_colour(frame[:, :40]), PALETTE[0], atol=8)
    assert frame[:, 45].mean() > 240 and frame[:, 44].mean() > 240  # replicated edge
    assert [p.name for p in path.parent.iterdir()] == ["odd.mp4"]  # no partial file left


def test_write_mp4_int16_audio_fast_preset_and_ntsc_rate(tmp_path):
    pcm = (tone(500.0, 1.0, amplitude=0.5) * 32768).astype(np.int16)
    frames = np.stack([solid(PALETTE[i % 4]) for i in range(30)])
    path = write_mp4(
        tmp_path / "pcm.mp4", frames, fps=30000 / 1001, audio=pcm, preset="ultrafast"
    )
    info = video.probe(path)
    assert info.fps == pytest.approx(29.97, abs=0.01) and info.n_frames == 30
    back = audio.load_audio(path, start_seconds=0.2, duration_seconds=0.5)
    assert mixing.rms(back) == pytest.approx(0.5 / np.sqrt(2), rel=0.03)
    third = video.load_frames(path, [2 * 1001 / 30000])[0]
    np.testing.assert_allclose(mean_colour(third), PALETTE[2], atol=10)


def test_write_mp4_rejects_bad_frames_and_leaves_nothing(tmp_path):
    target = tmp_path / "bad.mp4"
    with pytest.raises(ValueError, match="uint8"):
        write_mp4(target, np.zeros((3, 8, 8, 3), np.float32), fps=10)
    with pytest.raises(ValueError, match="no frames"):
        write_mp4(target, [], fps=10)
    with pytest.raises(ValueError, match="size"):
        write_mp4(target, [solid(PALETTE[0], 8, 8), solid(PALETTE[0], 16, 16)], fps=10)
    with pytest.raises(ValueError, match="fps"):
        write_mp4(target, [solid(PALETTE[0], 8, 8)], fps=0)
    assert list(tmp_path.iterdir()) == []


def test_write_mp4_encoder_options_reach_the_encoders(tmp_path):
    frames = np.stack([solid(PALETTE[i % 4]) for i in range(8)])
    path = write_mp4(
        tmp_path / "opts.mp4", frames, fps=8, audio=tone(500.0, 1.0),
        preset="ultrafast", threads=1, aac_coder="fast",
    )  # fmt: skip
    info = video.probe(path)
    assert (info.n_frames, info.has_audio) == (8, True)
    back = audio.load_audio(path, start_seconds=0.2, duration_seconds=0.5)
    assert mixing.rms(back) == pytest.approx(0.5 / np.sqrt(2), rel=0.03)
    with pytest.raises(ValueError, match="aac_coder"):  # FFmpeg rejects an unknown coder
        write_mp4(tmp_path / "bad.mp4", frames, fps=8, audio=tone(500.0, 1.0), aac_coder="?")
    assert [p.name for p in tmp_path.iterdir()] == ["opts.mp4"]


# --------------------------------------------------------------------------- images


def test_load_image_rgb_alpha_and_resize(tmp_path):
    rgb = np.zeros((20, 30, 3), np.uint8)
    rgb[:, :15] = [200, 100, 50]
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(video.load_image(tmp_path / "rgb.png"), rgb)
    assert video.load_image(tmp_path / "rgb.png", size=(10, 12)).shape == (10, 12, 3)
    assert video.load_image(tmp_path / "rgb.png", size=7).shape == (7, 7, 3)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[:, :2, 3] = 255
    rgba[:, 2:, 3] = 128
    Image.fromarray(rgba, mode="RGBA").save(tmp_path / "alpha.png")
    image = video.load_image(tmp_path / "alpha.png")
    assert image.shape == (4, 4, 3)
    assert (image[:, :2] == 200).all() and (image[:, 2:] == 100).all()  # composited on black
    Image.fromarray(rgb[..., 0], mode="L").save(tmp_path / "grey.jpg")
    assert video.load_image(tmp_path / "grey.jpg").shape == (20, 30, 3)


def test_load_image_errors(tmp_path):
    with pytest.raises(MediaError, match=r"missing\.png: file not found"):
        video.load_image(tmp_path / "missing.png")
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 20)
    with pytest.raises(MediaError, match=r"broken\.png: cannot read image"):
        video.load_image(tmp_path / "broken.png")


# --------------------------------------------------------------------------- bad input


def test_missing_and_corrupt_videos(tmp_path, seconds_video):
    for function in (video.probe, lambda p: video.load_frames(p, [0.0])):
        with pytest.raises(MediaError, match=r"gone\.mp4: file not found"):
            function(tmp_path / "gone.mp4")
    (tmp_path / "noise.mp4").write_bytes(np.random.default_rng(1).bytes(20_000))
    with pytest.raises(MediaError, match=r"noise\.mp4: cannot open"):
        video.load_frames(tmp_path / "noise.mp4", [0.0])
    truncated = tmp_path / "truncated.mp4"
    data = seconds_video[0].read_bytes()
    truncated.write_bytes(data[: len(data) // 2])  # the index (moov) is at the end
    with pytest.raises(MediaError, match=r"truncated\.mp4: (cannot open|corrupt)"):
        video.load_frames(truncated, [0.0])
    with pytest.raises(MediaError, match=r"truncated\.mp4: (cannot open|corrupt)"):
        audio.load_audio(truncated)


def test_missing_streams(tmp_path):
    silent = write_mp4(tmp_path / "silent.mp4", np.zeros((5, 8, 8, 3), np.uint8), fps=5)
    with pytest.raises(MediaError, match=r"silent\.mp4: has no audio stream"):
        audio.load_audio(silent, start_seconds=0.0, duration_seconds=0.5)
    sf.write(tmp_path / "sound.wav", tone(440.0, 0.5), SR)
    with pytest.raises(MediaError, match=r"sound\.wav: has no video stream"):
        video.load_frames(tmp_path / "sound.wav", [0.1])
    with pytest.raises(MediaError, match="has no video stream"):
        list(video.iter_frames(tmp_path / "sound.wav"))
    info = video.probe(tmp_path / "sound.wav")
    assert (info.has_video, info.has_audio, info.audio_sample_rate) == (False, True, SR)


def test_empty_audio_stream_in_a_video(tmp_path):
    frames = np.zeros((5, 8, 8, 3), np.uint8)
    path = write_mp4(tmp_path / "hollow.mp4", frames, fps=5, audio=np.zeros(0, np.float32))
    with pytest.raises(
        MediaError, match=r"hollow\.mp4: (has no audio stream|audio stream is empty)"
    ):
        audio.load_audio(path)


def test_times_past_the_end(seconds_video):
    path, _ = seconds_video
    # The video ends at 4.0 s; END_TOLERANCE_SECONDS (0.1 s) past it still gives the last frame.
    last = video.load_frames(path, [3.95, 4.0, 4.09])
    for frame in last:
        np.testing.assert_allclose(mean_colour(frame), PALETTE[3], atol=6)
    with pytest.raises(MediaError, match=r"time 4\.200 s is past the end of the video \(4\.000 s"):
        video.load_frames(path, [4.2])
    with pytest.raises(MediaError, match=r"seconds\.mp4: time 5\.000 s is past the end"):
        video.load_frames(path, [1.0, 5.0])
    with pytest.raises(MediaError, match="must be finite and >= 0"):
        video.load_frames(path, [-1.0])
    with pytest.raises(MediaError, match=r"past the end of the audio \(4\.0\d\d s long\)"):
        audio.load_audio(path, start_seconds=3.5, duration_seconds=1.0)


def test_corrupt_media_data_is_a_media_error(tmp_path, seconds_video):
    # The header is intact but the start of the media data (the first keyframe) is zeroed.
    data = bytearray(seconds_video[0].read_bytes())
    start = data.find(b"mdat") + 4
    data[start : start + 400] = bytes(400)
    damaged = tmp_path / "damaged.mp4"
    damaged.write_bytes(bytes(data))
    with pytest.raises(MediaError, match=r"damaged\.mp4: (corrupt|cannot open)"):
        video.load_frames(damaged, [0.0, 3.0])
    with pytest.raises(MediaError, match=r"damaged\.mp4: (corrupt|cannot open)"):
        list(video.iter_frames(damaged))
    with pytest.raises(MediaError, match="not a regular file"):
        video.probe(tmp_path)
