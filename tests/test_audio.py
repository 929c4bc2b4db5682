"""Tests for ier.audio (decoding windows, resampling, the DSOL log-mel front end) and ier.mixing."""

from __future__ import annotations

import math
from pathlib import Path

import av
import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ier import audio, mixing
from ier.errors import MediaError

SR = audio.SAMPLE_RATE


def tone(freq_hz: float, seconds: float, rate: int = SR, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(round(seconds * rate))) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def dominant_hz(wave: np.ndarray, rate: int = SR) -> float:
    spectrum = np.abs(np.fft.rfft(wave * np.hanning(len(wave))))
    return float(np.fft.rfftfreq(len(wave), 1 / rate)[np.argmax(spectrum)])


def two_tone(rate: int, low_hz: float = 500.0, high_hz: float = 2000.0) -> np.ndarray:
    """1.5 s at ``low_hz`` then 1.5 s at ``high_hz`` (3 s in all)."""
    return np.concatenate([tone(low_hz, 1.5, rate), tone(high_hz, 1.5, rate)])


# --------------------------------------------------------------------------- log-mel


def test_log_mel_default_shape_is_dsol_201_by_64():
    module = audio.LogMel()
    out = module(torch.randn(3, SR))
    assert out.shape == (3, 1, 201, 64)
    assert out.dtype == torch.float32
    assert module.n_frames(SR) == 201


def test_mel_scale_known_values():
    # Slaney scale: 200/3 Hz per mel below 1 kHz; 27 mels per factor 6.4 above it.
    np.testing.assert_allclose(audio.hz_to_mel([200 / 3, 1000.0, 6400.0]), [1.0, 15.0, 42.0])
    freqs = np.array([50.0, 700.0, 1000.0, 3000.0, 7900.0])
    np.testing.assert_allclose(audio.mel_to_hz(audio.hz_to_mel(freqs)), freqs, rtol=1e-9)


def test_filterbank_matches_librosa_reference_values():
    # Reference numbers from librosa 0.11 `filters.mel(sr=16000, n_fft=160, n_mels=64, fmax=8000)`.
    mel = audio.mel_filterbank()
    assert mel.shape == (64, 81)
    np.testing.assert_allclose(mel[3, 2], 0.014872984, rtol=1e-5)
    np.testing.assert_allclose(mel[20, 10], 0.009845906, rtol=1e-5)
    np.testing.assert_allclose(
        mel[45, 31:34], [0.001209359, 0.005513702, 0.003301447], rtol=1e-5, atol=1e-9
    )
    assert np.count_nonzero(mel[45]) == 3
    assert (mel.sum(axis=1) == 0).sum() == 2  # librosa's "empty filters" at n_fft=160


def test_log_mel_matches_librosa_dsol_pipeline():
    # librosa 0.11: power_to_db(mel @ |stft(x, 160, 80, center, reflect, hann)|), transposed.
    t = np.arange(SR) / SR
    x = (0.5 * np.sin(2 * np.pi * 1000 * t) + 0.1 * np.sin(2 * np.pi * 3000 * t)).astype(np.float32)
    db = audio.log_mel(x).numpy()
    expected_frame_100 = [-7.0571432, -6.5507312, -10.4248533, -15.9174051, -16.0842112]
    np.testing.assert_allclose(db[100, [20, 21, 22, 43, 44]], expected_frame_100, atol=0.01)
    np.testing.assert_allclose(db[0, [21, 44]], [-20.661219, -17.221167], atol=0.01)
    np.testing.assert_allclose(db.max(), -6.550731, atol=0.01)
    np.testing.assert_allclose(db.min(), db.max() - 80.0, atol=1e-4)  # top_db clipping


@pytest.mark.parametrize("band", [40, 48, 55, 62])
def test_pure_tone_peaks_in_its_mel_band(band):
    centers = audio.mel_center_hz()
    out = audio.log_mel(tone(centers[band], 1.0))
    assert int(out.mean(dim=0).argmax()) == band


@pytest.mark.parametrize("band", [15, 25, 32])
def test_low_tone_peaks_within_one_band(band):
    # Below ~1.5 kHz the mel bands are narrower than the 100 Hz FFT bins of n_fft=160.
    centers = audio.mel_center_hz()
    out = audio.log_mel(tone(centers[band], 1.0))
    assert abs(int(out.mean(dim=0).argmax()) - band) <= 1


def test_log_mel_gradient_flows_to_the_wave():
    waves = (0.1 * torch.randn(2, 4000)).requires_grad_()
    audio.LogMel(top_db=None)(waves).sum().backward()
    assert waves.grad is not None
    assert torch.isfinite(waves.grad).all()
    assert waves.grad.abs().sum() > 0


@pytest.mark.parametrize(
    ("kwargs", "n_samples", "shape"),
    [
        ({}, 2 * SR, (401, 64)),
        ({"n_mels": 40}, SR, (201, 40)),
        ({"hop_length": 160}, SR, (101, 64)),
        ({"n_fft": 400, "hop_length": 160, "n_mels": 80}, SR, (101, 80)),
        ({"center": False}, SR, (199, 64)),
        (
            {"sample_rate": 22050, "n_fft": 512, "hop_length": 256, "f_max_hz": None},
            22050,
            (87, 64),
        ),
    ],
)
def test_parameters_change_the_shape(kwargs, n_samples, shape):
    module = audio.LogMel(**kwargs)
    out = module(0.1 * torch.randn(1, n_samples))
    assert out.shape == (1, 1, *shape)
    assert module.n_frames(n_samples) == shape[0]


def test_log_mel_runs_in_float32_under_autocast():
    waves = 0.1 * torch.randn(2, SR)
    module = audio.LogMel()
    with torch.autocast(device_type="cpu", dtype=torch.bfloat16):
        inside = module(waves)
    assert inside.dtype == torch.float32
    torch.testing.assert_close(inside, module(waves))


def test_buffers_are_not_persistent_and_functional_matches_module():
    module = audio.LogMel()
    assert dict(module.state_dict()) == {}
    assert {name for name, _ in module.named_buffers()} == {"mel_matrix", "window"}
    waves = 0.1 * torch.randn(2, 3, SR)
    functional = audio.log_mel(waves)
    assert functional.shape == (2, 3, 201, 64)
    torch.testing.assert_close(functional[1], module(waves[1])[:, 0])


def test_top_db_is_per_example_and_power_changes_scale():
    generator = torch.Generator().manual_seed(0)
    waves = torch.stack([0.5 * torch.randn(SR, generator=generator),
                         0.001 * torch.randn(SR, generator=generator)])  # fmt: skip
    together = audio.LogMel()(waves)
    alone = audio.LogMel()(waves[1:])
    torch.testing.assert_close(together[1], alone[0])
    assert (together.amax(dim=(1, 2, 3)) - together.amin(dim=(1, 2, 3)) <= 80.0 + 1e-4).all()
    # A gain of 20 dB moves DSOL's magnitude-mel "dB" by 10 dB, and a power-mel by 20 dB.
    for power, shift_db in [(1.0, 10.0), (2.0, 20.0)]:
        module = audio.LogMel(top_db=None, power=power)
        base, louder = module(waves[:1]), module(10.0 * waves[:1])
        # Bins within 60 dB of the peak: float32 STFT noise (~1e-7 of the peak) moves bins far
        # below it by a few 1e-3 dB, and the two empty mel filters sit at the amin floor.
        live = base > base.max() - 60.0
        shift = louder[live] - base[live]
        torch.testing.assert_close(shift, torch.full_like(shift, shift_db), atol=1e-3, rtol=0)


# --------------------------------------------------------------------------- resampling


@pytest.mark.parametrize(("orig", "target"), [(44_100, 16_000), (8_000, 16_000), (48_000, 22_050)])
def test_resample_preserves_frequency_and_duration(orig, target):
    wave = tone(1000.0, 2.0, orig)
    out = audio.resample(wave, orig, target)
    assert out.dtype == np.float32
    assert len(out) == math.ceil(len(wave) * target / orig)
    assert abs(dominant_hz(out, target) - 1000.0) <= 1.0
    assert abs(mixing.rms(out[200:-200]) - mixing.rms(wave)) < 0.01


@given(
    n=st.integers(min_value=1, max_value=3000),
    orig=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
    target=st.sampled_from([8000, 16000, 22050, 48000]),
)
@settings(max_examples=30, deadline=None)
def test_resample_length_invariant(n, orig, target):
    out = audio.resample(np.ones(n, np.float32), orig, target)
    assert out.shape == (math.ceil(n * target / orig),)


def test_resample_rejects_bad_rates():
    with pytest.raises(ValueError, match="positive"):
        audio.resample(np.zeros(10), 0, 16000)


# --------------------------------------------------------------------------- loading files


@pytest.mark.parametrize("ext", ["wav", "flac", "ogg", "mp3"])
def test_load_audio_window_from_each_format(tmp_path, ext):
    rate = 44_100
    path = tmp_path / f"two_tone.{ext}"
    sf.write(path, two_tone(rate), rate)
    window = audio.load_audio(path, start_seconds=1.0, duration_seconds=1.0)
    assert window.dtype == np.float32
    assert window.shape == (SR,)
    # The frequency changes 0.5 s into the window.
    assert abs(dominant_hz(window[: SR // 2 - 800]) - 500.0) < 5
    assert abs(dominant_hz(window[SR // 2 + 800 :]) - 2000.0) < 5
    assert abs(mixing.rms(window) - 0.5 / math.sqrt(2)) < 0.02
    # A window is exactly the matching slice of the whole resampled file, edges included, even
    # when its start falls between native samples (the resampler gets context on both sides).
    whole = audio.load_audio(path)
    assert len(whole) == pytest.approx(3 * SR, abs=2000 if ext == "mp3" else 1)
    np.testing.assert_array_equal(window, whole[SR : 2 * SR])
    for start_seconds in (0.0, 0.001, 1.2345, 2.6):
        part = audio.load_audio(path, start_seconds=start_seconds, duration_seconds=0.3)
        first = round(start_seconds * SR)
        np.testing.assert_array_equal(part, whole[first : first + len(part)])


def test_load_audio_native_rate_is_sample_exact_and_stereo_is_averaged(tmp_path):
    left, right = tone(440.0, 2.0), tone(1000.0, 2.0, amplitude=0.25)
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([left, right], axis=1), SR, subtype="FLOAT")
    window = audio.load_audio(path, start_seconds=0.5, duration_seconds=0.25)
    np.testing.assert_allclose(window, (left + right)[8000:12000] / 2, atol=1e-7)
    odd = audio.load_audio(path, start_seconds=0.1, duration_seconds=1 / 3)
    assert odd.shape == (round(SR / 3),)
    assert audio.load_audio(path, start_seconds=1.5).shape == (SR // 2,)


def test_load_audio_pads_only_a_small_overrun_at_the_end(tmp_path):
    path = tmp_path / "three_seconds.wav"
    sf.write(path, tone(440.0, 3.0), SR)
    window = audio.load_audio(path, start_seconds=2.0, duration_seconds=1.05)
    assert window.shape == (16_800,)
    assert np.all(window[SR:] == 0) and mixing.rms(window[: SR - 10]) > 0.3
    with pytest.raises(MediaError, match=r"extends past the end.*3\.000 s long") as info:
        audio.load_audio(path, start_seconds=2.5, duration_seconds=1.0)
    assert "three_seconds.wav" in str(info.value)
    with pytest.raises(MediaError, match=r"starts at 3\.200 s, past the end.*3\.000 s long"):
        audio.load_audio(path, start_seconds=3.2, duration_seconds=0.5)


def test_decode_audio_bytes_matches_file_decoding(tmp_path):
    for ext in ("ogg", "wav"):
        path = tmp_path / f"clip.{ext}"
        sf.write(path, tone(700.0, 0.5, 22_050), 22_050)
        from_bytes = audio.decode_audio_bytes(path.read_bytes())
        np.testing.assert_array_equal(from_bytes, audio.load_audio(path))
        assert abs(dominant_hz(from_bytes) - 700.0) < 5


def test_decode_audio_bytes_errors_name_the_payload():
    with pytest.raises(MediaError, match="sfx.cat:boom.wav: empty"):
        audio.decode_audio_bytes(b"", name="sfx.cat:boom.wav")
    with pytest.raises(MediaError, match="sfx.cat:boom.wav: cannot open"):
        audio.decode_audio_bytes(b"not audio at all" * 10, name="sfx.cat:boom.wav")


def _write_av_audio(path: Path, wave: np.ndarray, rate: int, fmt: str) -> None:
    """An audio-only file (AAC in mp4, or mp3) written with PyAV, chunked like an encoder wants."""
    with av.open(str(path), mode="w", format=fmt) as container:
        stream = container.add_stream("aac" if fmt == "mp4" else "libmp3lame", rate=rate)
        stream.layout = "mono"
        for start in range(0, len(wave), 1024):
            frame = av.AudioFrame.from_ndarray(
                wave[None, start : start + 1024], format="fltp", layout="mono"
            )
            frame.sample_rate, frame.pts = rate, start
            container.mux(stream.encode(frame))
        container.mux(stream.encode(None))


class _CountingContainer:
    """Proxy for a PyAV input container that counts decoded frames."""

    def __init__(self, container):
        self._container, self.decoded = container, 0

    def __getattr__(self, name):
        return getattr(self._container, name)

    def decode(self, *args, **kwargs):
        for frame in self._container.decode(*args, **kwargs):
            self.decoded += 1
            yield frame


def _best_lag(window: np.ndarray, reference: np.ndarray, max_lag: int = 100) -> int:
    """The shift (samples) of ``reference`` that best matches ``window``."""
    n = len(window) - 2 * max_lag
    scores = [
        np.dot(window[max_lag : max_lag + n], reference[max_lag + lag : max_lag + lag + n])
        for lag in range(-max_lag, max_lag + 1)
    ]
    return int(np.argmax(scores)) - max_lag


def test_load_audio_from_a_long_file_seeks_to_the_window(tmp_path, monkeypatch):
    rate = 16_000
    noise = (0.3 * np.random.default_rng(0).standard_normal(42 * rate)).astype(np.float32)
    path = tmp_path / "long.m4a"
    _write_av_audio(path, noise, rate, "mp4")
    opened = []
    real_open = av.open

    def counting_open(*args, **kwargs):
        opened.append(_CountingContainer(real_open(*args, **kwargs)))
        return opened[-1]

    monkeypatch.setattr(av, "open", counting_open)
    for start_seconds in (0.0, 0.5, 39.5):
        window = audio.load_audio(path, start_seconds=start_seconds, duration_seconds=1.0)
        first = int(start_seconds * rate)
        reference = noise[first : first + rate]
        assert _best_lag(window, reference) == 0  # sample-exact, AAC priming handled
        assert np.corrcoef(window[200:-200], reference[200:-200])[0, 1] > 0.95
        assert opened[-1].decoded < 40  # 1 s is ~16 AAC frames; the whole file is ~660


def test_load_audio_falls_back_to_pyav_for_other_containers(tmp_path):
    path = tmp_path / "clip.mp4"
    _write_av_audio(path, tone(880.0, 2.0), SR, "mp4")
    window = audio.load_audio(path, start_seconds=0.5, duration_seconds=1.0, sample_rate=8000)
    assert window.shape == (8000,)
    assert abs(dominant_hz(window, 8000) - 880.0) < 5


# --------------------------------------------------------------------------- bad input


def test_missing_empty_and_directory_paths(tmp_path):
    with pytest.raises(MediaError, match=r"nope\.wav: file not found"):
        audio.load_audio(tmp_path / "nope.wav")
    (tmp_path / "empty.wav").write_bytes(b"")
    with pytest.raises(MediaError, match=r"empty\.wav: file is empty"):
        audio.load_audio(tmp_path / "empty.wav")
    with pytest.raises(MediaError, match="not a regular file"):
        audio.load_audio(tmp_path)


@pytest.mark.parametrize("name", ["garbage.wav", "garbage.mp4", "garbage.ogg"])
def test_corrupt_file_is_a_media_error(tmp_path, name):
    path = tmp_path / name
    path.write_bytes(np.random.default_rng(0).bytes(5000))
    with pytest.raises(MediaError, match=f"{name}: (cannot open|corrupt)"):
        audio.load_audio(path)


def test_zero_length_stream_and_bad_window(tmp_path):
    path = tmp_path / "silent.wav"
    sf.write(path, np.zeros(0, np.float32), SR)
    with pytest.raises(MediaError, match=r"silent\.wav: audio stream is empty"):
        audio.load_audio(path)
    sf.write(path, tone(440.0, 1.0), SR)
    with pytest.raises(MediaError, match="start_seconds must be"):
        audio.load_audio(path, start_seconds=-1.0)
    with pytest.raises(MediaError, match="duration_seconds must be > 0"):
        audio.load_audio(path, duration_seconds=0.0)


# ---------------------------------------------------------------------- mixing helpers (ier.mixing)


def test_gain_rms_and_rms_normalisation_known_values():
    wave = np.full(100, 0.5, np.float32)
    assert mixing.rms(wave) == pytest.approx(0.5)
    assert mixing.apply_gain_db(wave, 6.0)[0] == pytest.approx(0.5 * 1.99526, rel=1e-5)
    assert mixing.apply_gain_db(wave, -20.0)[0] == pytest.approx(0.05)
    assert mixing.rms(mixing.normalize_rms(tone(440, 1.0), -20.0)) == pytest.approx(0.1, rel=1e-6)
    silence = np.zeros(10, np.float32)
    assert mixing.normalize_rms(silence, -20.0) is silence
    tensor = mixing.apply_gain_db(torch.ones(4), 20.0)
    assert isinstance(tensor, torch.Tensor) and float(tensor[0]) == pytest.approx(10.0)


def test_mix_at_snr_hits_the_target_and_loops_short_noise():
    rng = np.random.default_rng(0)
    signal = tone(440.0, 1.0)
    noise = rng.standard_normal(3000).astype(np.float32)
    mixture = mixing.mix_at_snr(signal, noise, 10.0)
    assert mixture.shape == signal.shape
    residual = mixture - signal
    measured = 10 * math.log10(np.mean(signal**2) / np.mean(residual**2))
    assert measured == pytest.approx(10.0, abs=1e-3)
    np.testing.assert_allclose(residual[:3000], residual[3000:6000], atol=1e-6)  # looped
    torch_mix = mixing.mix_at_snr(torch.from_numpy(signal), torch.from_numpy(noise), 10.0)
    np.testing.assert_allclose(torch_mix.numpy(), mixture, atol=1e-6)
    with pytest.raises(ValueError, match="silent"):
        mixing.mix_at_snr(signal, np.zeros(10, np.float32), 0.0)


@given(
    snr_db=st.floats(min_value=-20, max_value=30),
    seed=st.integers(min_value=0, max_value=2**16),
    n_noise=st.integers(min_value=50, max_value=4000),
)
@settings(max_examples=40, deadline=None)
def test_mix_at_snr_invariant(snr_db, seed, n_noise):
    rng = np.random.default_rng(seed)
    signal = rng.standard_normal(2000)
    noise = rng.uniform(-1, 1, n_noise)
    residual = mixing.mix_at_snr(signal, noise, snr_db) - signal
    measured = 10 * math.log10(np.mean(signal**2) / np.mean(residual**2))
    assert measured == pytest.approx(snr_db, abs=1e-6)


def test_peak_normalize_scales_down_only():
    quiet = tone(440.0, 0.1, amplitude=0.5)
    assert mixing.peak_normalize(quiet) is quiet
    loud = 3.0 * quiet
    out = mixing.peak_normalize(loud, peak=0.9)
    assert np.abs(out).max() == pytest.approx(0.9, rel=1e-6)
    np.testing.assert_allclose(out, loud * (0.9 / np.abs(loud).max()), rtol=1e-6)
    tensor = mixing.peak_normalize(torch.tensor([2.0, -4.0]), peak=1.0)
    assert tensor.tolist() == [0.5, -1.0]


@given(
    scale=st.floats(min_value=1e-3, max_value=100),
    peak=st.floats(min_value=0.1, max_value=1.0),
    seed=st.integers(min_value=0, max_value=2**16),
)
@settings(max_examples=40, deadline=None)
def test_peak_normalize_invariant(scale, peak, seed):
    wave = scale * np.random.default_rng(seed).standard_normal(500)
    out = mixing.peak_normalize(wave, peak=peak)
    assert np.abs(out).max() <= peak * (1 + 1e-12) or np.array_equal(out, wave)
    ratio = out / wave
    assert np.allclose(ratio, ratio[0]) and ratio[0] <= 1.0  # one factor, never amplifying


def test_pad_or_trim_and_loop_to_length():
    wave = np.arange(5, dtype=np.float32)
    np.testing.assert_array_equal(mixing.pad_or_trim(wave, 7), [0, 1, 2, 3, 4, 0, 0])
    np.testing.assert_array_equal(mixing.pad_or_trim(wave, 3), [0, 1, 2])
    assert mixing.pad_or_trim(torch.ones(2, 3), 5).shape == (2, 5)
    np.testing.assert_array_equal(mixing.loop_to_length(wave, 12), [0, 1, 2, 3, 4] * 2 + [0, 1])
    assert mixing.loop_to_length(torch.arange(3.0), 7).tolist() == [0, 1, 2, 0, 1, 2, 0]
