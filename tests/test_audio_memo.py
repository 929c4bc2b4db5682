"""Persisted audio encodings (``ier.data.audio_memo``): written once, read by later runs, never
stale, and the same numbers as encoding in the run."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from ier.data import audio_memo
from ier.data.audio_memo import MEMO_BATCH, attach_encodings, memo_encoders
from ier.data.toy import build_toy_benchmark
from ier.models.aisfx import AisfxAudio


class CountingEncoder(nn.Module):
    """The memo protocol around a linear map, counting the clips it encodes."""

    memo_version = 1
    memo_key = staticmethod(AisfxAudio.memo_key)

    def __init__(self, scale: float = 1.0, memo_size: int = 1000) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.full((4,), scale), requires_grad=False)
        self.memo_size, self.encoded, self.memo = memo_size, 0, {}

    def encode_waves(self, waves: torch.Tensor) -> torch.Tensor:
        self.encoded += len(waves)
        return waves[:, :4] * self.weight + waves.sum(1, keepdim=True)

    def remember(self, keys, rows) -> None:
        for key, row in zip(keys, rows):
            self.memo.setdefault(key, row)


def _waves(n: int, seed: int = 0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal((n, 40)) * 0.1).astype(np.float16)


def test_a_later_run_reads_the_encodings_instead_of_encoding(tmp_path) -> None:
    waves = _waves(MEMO_BATCH + 5)
    first = CountingEncoder()
    path = attach_encodings([first], waves, tmp_path, "train/solo")
    assert path is not None and path.is_file() and path.name.startswith("train_solo-")
    assert first.encoded == len(waves) and len(first.memo) == len(waves)
    second, copy = CountingEncoder(), CountingEncoder()  # a new process; a momentum copy
    assert attach_encodings([second, copy], waves, tmp_path, "train/solo") == path
    assert second.encoded == 0 and copy.encoded == 0
    for key, row in first.memo.items():
        assert torch.equal(second.memo[key], row) and torch.equal(copy.memo[key], row)
    key = AisfxAudio.memo_key(waves[3].astype(np.float32))
    expected = torch.from_numpy(waves[3:4].astype(np.float32))
    torch.testing.assert_close(second.memo[key], CountingEncoder().encode_waves(expected)[0])


def test_the_file_is_never_stale(tmp_path) -> None:
    waves = _waves(6)
    path = attach_encodings([CountingEncoder()], waves, tmp_path, "test/wild")
    changed = waves.copy()
    changed[2, 7] += np.float16(0.5)
    other = CountingEncoder()
    assert attach_encodings([other], changed, tmp_path, "test/wild") != path  # other waves
    assert other.encoded == 6
    retrained = CountingEncoder(scale=2.0)
    assert attach_encodings([retrained], waves, tmp_path, "test/wild") != path  # other weights
    assert retrained.encoded == 6


def test_a_damaged_file_is_encoded_again(tmp_path) -> None:
    waves = _waves(5)
    path = attach_encodings([CountingEncoder()], waves, tmp_path, "val/wild")
    np.save(path, np.zeros((2, 4), np.float32))  # e.g. written by hand
    again = CountingEncoder()
    assert attach_encodings([again], waves, tmp_path, "val/wild") == path
    assert again.encoded == 5 and np.load(path).shape == (5, 4)


def test_nothing_happens_without_an_encoder_or_waves(tmp_path) -> None:
    assert attach_encodings([], _waves(3), tmp_path, "x") is None
    assert attach_encodings([CountingEncoder()], _waves(0), tmp_path, "x") is None
    assert not (tmp_path / audio_memo.MEMO_FOLDER).exists()


def test_memo_encoders_finds_cpu_encoders_with_a_memo() -> None:
    model = nn.Sequential(nn.Linear(2, 2), CountingEncoder(), CountingEncoder(memo_size=0))
    assert memo_encoders(model) == [model[1]]
    assert memo_encoders(nn.Linear(2, 2)) == []


def test_aisfx_serves_the_persisted_rows_and_they_equal_a_batch_encoding(tmp_path) -> None:
    torch.manual_seed(0)
    net = AisfxAudio(pretrained=False)
    waves = (np.random.default_rng(1).standard_normal((MEMO_BATCH + 3, 16_000)) * 0.1).astype(
        np.float16
    )
    path = attach_encodings([net], waves, tmp_path, "train/solo")
    assert path.parent.name.startswith("aisfxaudio-v1-")
    batch = torch.from_numpy(waves.astype(np.float32))
    expected = net.encode_waves(batch[:MEMO_BATCH])
    assert torch.equal(torch.from_numpy(np.load(path)[:MEMO_BATCH]), expected)

    def no_encoding(_waves: torch.Tensor) -> torch.Tensor:
        raise AssertionError("encoded a clip whose encoding was persisted")

    net._encode = no_encoding  # every clip must now come from the memo
    mid, top = net.forward_features(batch[[4, 0]])
    assert torch.equal(top[:, :, 0, 0], expected[[4, 0], 256:])
    assert torch.equal(mid[:, :, 0, 0], expected[[4, 0], :256])


def test_training_and_evaluation_share_the_encodings(tmp_path) -> None:
    """Two runs with the aisfx encoder on the same data: the first writes each split's file, the
    second encodes nothing that a file holds, and both train to the same weights."""
    from ier.codec import apply_overrides
    from ier.methods import preset
    from ier.train import fit

    data = build_toy_benchmark(tmp_path / "data", n_train=24, n_test=8)
    cfg = apply_overrides(preset("dsol", "tiny"), [
        "model.audio_backbone=aisfx", "model.pretrained=false", "stages.0.epochs=1",
        "stop_stage=0", "eval.at_end=false",
    ])  # fmt: skip
    calls = {"n": 0}
    real = AisfxAudio._encode

    def counted(self: AisfxAudio, waves: torch.Tensor) -> torch.Tensor:
        calls["n"] += len(waves)
        return real(self, waves)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(AisfxAudio, "_encode", counted)
        one = fit(cfg, data, tmp_path / "one", progress=False)
        first_calls, calls["n"] = calls["n"], 0
        two = fit(cfg, data, tmp_path / "two", progress=False)
    files = list((data / ".ier-cache" / audio_memo.MEMO_FOLDER).rglob("*.npy"))
    assert files and first_calls > 0
    assert calls["n"] == 0, calls  # DSOL stage 1 encodes only whole clips, all in the files
    from ier.checkpoint import load_model

    weights = [load_model(r.model_path).state_dict() for r in (one, two)]
    for name, tensor in weights[0].items():
        assert torch.equal(tensor, weights[1][name]), name
