"""The optional pretrained audio encoder (``model.audio_backbone = "aisfx"``) and its front end."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch

from ier.models import create_model
from ier.models.aisfx import AisfxAudio, htk_mel_filterbank
from ier.models.backbones import build_audio_backbone
from ier.models.config import ModelConfig

needs_aisfx = pytest.mark.skipif(
    importlib.util.find_spec("aisfx") is None,
    reason="pip install --no-deps aisfx==0.1.2 (scripts/setup.sh does)",
)


def test_htk_mel_filterbank_rows_sum_to_one_and_peak_in_order() -> None:
    bank = htk_mel_filterbank(sample_rate=44_100.0, n_fft=2048, n_mels=96)
    assert bank.shape == (96, 1025)
    np.testing.assert_allclose(bank.sum(axis=1), 1.0, rtol=1e-6)
    peaks = bank.argmax(axis=1)
    assert np.all(np.diff(peaks) >= 0) and peaks[-1] > peaks[0]
    # HTK mel: band 48's centre is the mel midpoint of 0 … 22,050 Hz
    mel_mid = 2595.0 * np.log10(1.0 + 22_050.0 / 700.0) * 49 / 97
    centre_hz = 700.0 * (10.0 ** (mel_mid / 2595.0) - 1.0)
    assert abs(peaks[48] * 44_100.0 / 2048 - centre_hz) <= 44_100.0 / 2048


def test_config_rejects_unknown_audio_backbone_and_keeps_old_configs_readable() -> None:
    with pytest.raises(ValueError, match="audio_backbone"):
        ModelConfig(audio_backbone="vggish")
    assert "audio_backbone" not in ModelConfig().to_dict()
    assert ModelConfig(audio_backbone="aisfx").to_dict()["audio_backbone"] == "aisfx"
    with pytest.raises(ValueError, match="unknown audio backbone"):
        build_audio_backbone("vggish")


def test_aisfx_front_end_matches_its_44k_spectrogram_on_a_tone() -> None:
    """The 16 kHz front end puts a 1 kHz tone in the same mel band, at the same level, as aisfx's
    44.1 kHz front end does (same 21.5 Hz bins, window-length power scaling)."""
    net = AisfxAudio(pretrained=False, memo_size=0)
    t16 = torch.arange(16_000) / 16_000
    ours = net.spectrogram((0.5 * torch.sin(2 * torch.pi * 1000 * t16))[None])[0, 0]  # (T, 96)
    t44 = torch.arange(44_100) / 44_100
    wave44 = torch.sin(2 * torch.pi * 1000 * t44)  # peak-normalised, as aisfx does
    spec = torch.stft(wave44, 2048, hop_length=1024, window=torch.hann_window(2048),
                      center=True, pad_mode="reflect", return_complex=True).abs() ** 2  # fmt: skip
    bank = torch.from_numpy(htk_mel_filterbank(sample_rate=44_100.0, n_fft=2048, n_mels=96))
    ref = (torch.log10(bank.float() @ spec * 1e4 + 1.0) / 9.457798957824707).T  # (T, 96)
    assert ours.shape[0] == ref.shape[0] == 44
    mid_ours, mid_ref = ours[5:-5].mean(0), ref[5:-5].mean(0)
    assert int(mid_ours.argmax()) == int(mid_ref.argmax())
    band = int(mid_ref.argmax())
    assert abs(float(mid_ours[band] - mid_ref[band])) < 0.02 * float(mid_ref[band])


@needs_aisfx
def test_aisfx_is_frozen_and_remembers_each_wave() -> None:
    net = AisfxAudio()
    assert not any(p.requires_grad for p in net.parameters())
    net.train()
    assert not net.training and not net.conv_block1.bn1.training
    waves = torch.randn(3, 16_000) * 0.1
    mid, top = net.forward_features(waves)
    assert mid.shape == (3, 256, 1, 1) and top.shape == (3, 512, 1, 1)
    again = net.forward_features(waves[[2, 0]])  # served from the memo
    torch.testing.assert_close(again[1], top[[2, 0]])
    fresh = AisfxAudio(memo_size=0).forward_features(waves)
    torch.testing.assert_close(fresh[1], top, rtol=1e-5, atol=1e-5)
    assert len(net._memo) == 3


@needs_aisfx
def test_ier_with_aisfx_trains_its_projection_only() -> None:
    model = create_model(ModelConfig(audio_backbone="aisfx", width=8, input_size=64, embed_dim=32))
    out = model(torch.rand(2, 3, 64, 64), torch.randn(2, 16_000) * 0.1)
    assert out["mid"].shape == (2, 256) and out["fa"].shape == (2, 32)
    out["av_map"].mean().backward()
    assert all(p.grad is None for p in model.audio_backbone.parameters())
    assert any(p.grad is not None for p in model.av_head.parameters())


@needs_aisfx
def test_a_checkpoint_with_aisfx_loads_without_the_wheel(tmp_path, monkeypatch) -> None:
    from ier.checkpoint import load_model, save_model
    from ier.models import aisfx

    config = ModelConfig(name="dsol", audio_backbone="aisfx", width=8, input_size=64,
                         embed_dim=32, visual_backbone="efficientnet_lite0",
                         pretrained=True)  # fmt: skip
    model = create_model(config).eval()
    path = save_model(tmp_path / "m.safetensors", model, model_config=config)

    def no_wheel() -> str:
        raise ImportError("aisfx is not installed")

    monkeypatch.setattr(aisfx, "aisfx_weights_path", no_wheel)
    with pytest.raises(ImportError):
        create_model(config)
    loaded = load_model(path)
    images, waves = torch.rand(2, 3, 64, 64), torch.randn(2, 16_000) * 0.1
    torch.testing.assert_close(loaded.localize(images, waves).maps,
                               model.localize(images, waves).maps)  # fmt: skip


def test_a_missing_aisfx_wheel_is_one_clean_cli_error(tmp_path, monkeypatch, capsys) -> None:
    """The cpu preset needs the wheel: without it ``ier train`` says how to get it, no traceback."""
    import importlib.util as util

    from ier.cli import main
    from ier.data.toy import build_toy_benchmark
    from ier.errors import MissingDependencyError

    data = build_toy_benchmark(tmp_path / "toy", n_train=4, n_test=2)
    real = util.find_spec
    monkeypatch.setattr(util, "find_spec",
                        lambda name, *a: None if name == "aisfx" else real(name, *a))  # fmt: skip
    with pytest.raises(ImportError):  # still an ImportError for code that catches those
        AisfxAudio()
    with pytest.raises(MissingDependencyError):
        AisfxAudio()
    code = main(["train", "--method", "ier", "--preset", "cpu", "--data", str(data),
                 "--out", str(tmp_path / "run"), "--no-progress"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and "pip install --no-deps aisfx==0.1.2" in err
    assert "model.audio_backbone=resnet18" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing to clean up before the next try
