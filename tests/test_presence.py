"""Calibrated presence (``ier.presence``): IEr's decision cues, the logistic fit and its
threshold's budget, and the decision rule of ``ier localize`` that uses them."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ier.errors import ConfigError
from ier.localization.engine import decide
from ier.localization.results import DecisionRule, calibration_threshold, presence_calibration
from ier.models import create_model, model_config
from ier.models.common import DECISION_CUES, audibility
from ier.presence import fit_presence, presence_probability


@pytest.fixture(scope="module")
def ier_model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(model_config("tiny", num_clusters=4)).eval()
    gen = torch.Generator().manual_seed(0)
    model.set_prototypes(torch.randn(4, model.embed_dim, generator=gen),
                         torch.randn(4, model.embed_dim, generator=gen))  # fmt: skip
    model.set_class_mapping(("red", "green", "blue"), [0, 1, 2, 2])
    return model


def test_ier_localize_returns_the_named_decision_cues(ier_model) -> None:
    gen = torch.Generator().manual_seed(1)
    images = torch.rand(3, 3, 64, 64, generator=gen)
    waves = torch.randn(3, 16_000, generator=gen) * 0.1
    waves[2] = 0.0  # digital silence
    out = ier_model.localize(images, waves)
    assert ier_model.provides_decision_cues
    assert out.cues is not None and out.cues.shape == (3, 3, len(DECISION_CUES))
    log_q, visual, class_peak, audible, av_peak = out.cues.unbind(2)
    # the audio's category probabilities are a distribution over the categories (all mapped)
    assert torch.allclose(log_q.exp().sum(1), torch.ones(3), atol=1e-5)
    assert torch.equal(class_peak, out.scores)  # the class map's peak is the score
    assert bool(((visual >= 0) & (visual <= 1)).all())
    # visual evidence comes from the frame alone: the same frame with other audio keeps it
    again = ier_model.localize(images, waves.flip(0)).cues
    assert torch.allclose(again[:, :, 1], visual)
    # 0.1-sd noise is -20 dBFS: fully audible; digital silence is not
    assert torch.equal(audible, torch.tensor([[1.0] * 3, [1.0] * 3, [0.0] * 3]))
    # the class-agnostic AV map's peak: the stage-1 score of the clip, the same for every class
    stage1 = ier_model(images, waves)["score"]
    assert torch.allclose(av_peak, stage1[:, None].expand(-1, 3), atol=1e-6)
    assert not torch.allclose(again[:, 0, 4], av_peak[:, 0])  # it depends on the audio


def test_audibility_is_a_silence_detector_not_a_loudness_meter() -> None:
    t = torch.arange(16_000) / 16_000
    tone = torch.sin(2 * math.pi * 440 * t)  # RMS 1/sqrt(2): -3 dBFS

    def at(dbfs: float) -> float:
        return float(audibility((tone * 10 ** ((dbfs + 3.01) / 20))[None])[0])

    assert at(-3) == at(-20) == 1.0 and at(-30) == pytest.approx(1.0, abs=1e-3)  # any audible level
    assert at(-45) == pytest.approx(0.5, abs=1e-3)  # linear between -60 and -30 dBFS
    assert at(-60) == pytest.approx(0.0, abs=1e-3) and at(-90) == 0.0
    assert float(audibility(torch.zeros(1, 100))[0]) == 0.0


def test_a_model_without_prototypes_gives_no_cues() -> None:
    model = create_model(model_config("tiny", num_clusters=4)).eval()
    assert not model.provides_decision_cues
    assert model.localize(torch.rand(1, 3, 64, 64), torch.zeros(1, 16_000)).cues is None


def _synthetic_cues(n: int, rng: np.random.Generator, *, sounding: bool) -> tuple:
    """(cues (n, 3, len(DECISION_CUES)), targets (n, 3)): class 0 sounds in every clip with
    sound; only the second cue (visual peak) tells it, shifted by +2 for the sounding class."""
    cues = rng.normal(size=(n, 3, len(DECISION_CUES)))
    targets = np.zeros((n, 3), bool)
    if sounding:
        targets[:, 0] = True
        cues[:, 0, 1] += 2.0
    return cues, targets


def test_fit_presence_learns_the_informative_cue_and_keeps_the_budget() -> None:
    rng = np.random.default_rng(0)
    positives = _synthetic_cues(400, rng, sounding=True)
    negatives, _ = _synthetic_cues(200, rng, sounding=False)
    presence = fit_presence(positives, negatives, budget=0.1, splits=["val/a", "val/b"])
    weights = np.asarray(presence["weights"])
    assert presence["cues"] == list(DECISION_CUES) and presence["splits"] == ["val/a", "val/b"]
    assert weights[1] > 1.0 and np.abs(np.delete(weights, 1)).max() < 0.3
    assert presence["val_auroc"] > 0.9  # a +2 sd shift: AUROC = Phi(2 / sqrt 2) = 0.92
    # at most 10 % of the 200 negative clips reach tau, and tau is the smallest such value
    clip_max = presence_probability(negatives, presence).max(axis=1)
    assert (clip_max >= presence["tau"]).sum() <= 20 == int(0.1 * 200)
    assert (clip_max >= np.nextafter(presence["tau"], -np.inf)).sum() == 21  # continuous: no ties
    assert presence["val_negative_fp"] == pytest.approx((clip_max >= presence["tau"]).mean())
    positive_max = presence_probability(positives[0], presence).max(axis=1)
    assert presence["val_marked"] == pytest.approx((positive_max >= presence["tau"]).mean())
    assert presence["val_marked"] > 0.5
    # fitted on a subset of the cues: it names and weighs those only, and without the
    # informative cue it cannot tell the sounding class
    subset = ["class_peak", "log_audio_prob"]
    blind = fit_presence(positives, negatives, budget=0.1, cues=subset)
    assert blind["cues"] == subset and len(blind["weights"]) == 2
    assert blind["val_auroc"] < 0.6
    seeing = fit_presence(positives, negatives, budget=0.1, cues=["visual_peak"])
    assert seeing["val_auroc"] > 0.9 and len(seeing["weights"]) == 1


def test_fit_presence_rejects_bad_input() -> None:
    rng = np.random.default_rng(0)
    positives = _synthetic_cues(20, rng, sounding=True)
    negatives, _ = _synthetic_cues(10, rng, sounding=False)
    with pytest.raises(ConfigError, match="budget"):
        fit_presence(positives, negatives, budget=1.5)
    with pytest.raises(ConfigError, match="shapes"):
        fit_presence(positives, negatives[:, :, :2])
    with pytest.raises(ConfigError, match="sounding objects and negatives"):
        fit_presence((positives[0], np.zeros_like(positives[1])), negatives)
    for cues in ([], ["visual_peak", "visual_peak"], ["loudness"]):
        with pytest.raises(ConfigError, match="presence cues"):
            fit_presence(positives, negatives, cues=cues)


def test_presence_probability_agrees_in_numpy_and_torch_and_checks_the_cue_names() -> None:
    n = len(DECISION_CUES)
    weights = [0.5, 2.0, 1.0, -0.5, 1.5][:n]
    presence = {"cues": list(DECISION_CUES), "weights": weights, "bias": -1.0}
    cues = np.random.default_rng(0).normal(size=(5, 3, n))
    expected = 1 / (1 + np.exp(-(cues @ np.array(weights) - 1.0)))
    assert np.allclose(presence_probability(cues, presence), expected)
    assert np.allclose(presence_probability(torch.from_numpy(cues), presence).numpy(), expected)
    with pytest.raises(ConfigError, match="recalibrate"):
        presence_probability(cues, {**presence, "cues": ["something", "else"]})
    # a presence fitted on some of the cues (an older version's), in its own order, reads those
    older = {"cues": ["class_peak", "log_audio_prob"], "weights": [2.0, -1.0], "bias": 0.5}
    picked = cues[..., [DECISION_CUES.index("class_peak"), DECISION_CUES.index("log_audio_prob")]]
    expected = 1 / (1 + np.exp(-(picked @ np.array([2.0, -1.0]) + 0.5)))
    assert np.allclose(presence_probability(cues, older), expected)
    assert np.allclose(presence_probability(torch.from_numpy(cues), older).numpy(), expected)


def test_presence_alone_decides_sounding_on_screen() -> None:
    rule = DecisionRule(score_threshold=0.6, peak_threshold=0.6)
    # presence above the threshold wins even when score and peak are low
    assert decide(0.0, 0.0, rule, presence=0.7) == ("sounding-on-screen", 0.7)
    # below it, high score and peak do not draw the class
    state, confidence = decide(1.0, 1.0, rule, presence=0.2)
    assert state == "absent" and confidence == pytest.approx(0.8)
    state, _ = decide(1.0, 1.0, rule, presence=0.2, visual=0.9)
    assert state == "visible-silent"
    assert decide(1.0, 1.0, rule)[0] == "sounding-on-screen"  # without presence: as before


def test_the_presence_threshold_is_the_default_only_for_models_that_give_cues(ier_model) -> None:
    presence = {"cues": list(DECISION_CUES), "weights": [0, 1, 0, 0, 0], "bias": 0.0, "tau": 0.7,
                "budget": 0.1, "splits": ["val/wild", "val/negative"]}  # fmt: skip
    ier_model.calibration = {"tau": 0.3, "presence": presence}
    try:
        assert presence_calibration(ier_model) is presence
        tau, source = calibration_threshold(ier_model)
        assert tau == 0.7 and source.startswith("calibrated presence on val/wild + val/negative")
        ier_model.calibration = {"tau": 0.3}
        assert presence_calibration(ier_model) is None
        assert calibration_threshold(ier_model)[0] == 0.3
    finally:
        del ier_model.calibration

    class NoCues(torch.nn.Module):
        calibration = {"tau": 0.3, "presence": presence}

    assert presence_calibration(NoCues()) is None and calibration_threshold(NoCues())[0] == 0.3


def test_a_presence_fitted_on_other_cues_is_ignored_with_advice(ier_model, caplog) -> None:
    """A checkpoint calibrated by an older version (other cue names) falls back to the map
    threshold and says how to recalibrate, instead of failing in the middle of a video."""
    stale = {"cues": ["log_audio_prob", "visual_peak", "class_peak", "log_rms"],
             "weights": [0, 1, 0, 0], "bias": 0.0, "tau": 0.7}  # fmt: skip
    ier_model.calibration = {"tau": 0.3, "budget": 0.05, "presence": stale}
    try:
        with caplog.at_level("WARNING"):
            assert presence_calibration(ier_model) is None
            assert calibration_threshold(ier_model)[0] == 0.3
        assert "--store-calibration" in caplog.text
    finally:
        del ier_model.calibration
    # the four cues of the bundles calibrated before `av_peak` was added are all still given
    older = {**stale, "cues": ["log_audio_prob", "visual_peak", "class_peak", "audible"]}
    ier_model.calibration = {"tau": 0.3, "presence": older}
    try:
        assert presence_calibration(ier_model) is older
        assert calibration_threshold(ier_model)[0] == 0.7
    finally:
        del ier_model.calibration
