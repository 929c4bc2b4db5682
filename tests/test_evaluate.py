"""The evaluation path: per-sample scoring on tiny grids, policies, and the ``ier evaluate`` CLI."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest

from ier.cli import main
from ier.data.manifest import Sample, write_manifest
from ier.errors import ConfigError
from ier.evaluate import (
    evaluate,
    format_table,
    split_kind,
    split_protocol,
)
from ier.predictions import Predictions, save_predictions
from ier.protocol import EvalSettings
from ier.sample_scoring import score_sample

RESULT_KEYS = {
    "iou@0.5",
    "auc",
    "ciou@0.3",
    "ciou@0.5",
    "ciou_auc",
    "nsa",
    "silent_fp",
    "negative_fp",
    "pia",
    "ap",
    "max_f1",
    "pointing",
    "pointing_tau",
    "pointing_chance",
    "silent_auroc",
    "peak_auroc",
    "n",
    "n_missing",
    "split",
    "settings",
}
TOP_LEFT = [0.0, 0.0, 0.5, 0.5]  # rows 0-1, columns 0-1 on a 4 x 4 grid
BOTTOM_RIGHT = [0.5, 0.5, 1.0, 1.0]


def _record(sample_id: str, objects: list[dict], split: str = "synthetic") -> dict:
    return {
        "id": sample_id,
        "split": split,
        "video": f"{sample_id}.mp4",
        "time": 0.5,
        "window": [0.0, 1.0],
        "objects": objects,
        "offscreen": [],
        "noise": None,
    }


def _sample(sample_id: str, objects: list[dict], split: str = "synthetic") -> Sample:
    return Sample.from_dict(_record(sample_id, objects, split))


def _obj(label: str, box: list[float], sounding: bool, **extra) -> dict:
    return {"label": label, "box": box, "sounding": sounding, **extra}


def _class_aware_maps() -> np.ndarray:
    maps = np.zeros((3, 4, 4), np.float32)  # classes: cello, violin, dog
    maps[1, 0:2, 0:3] = 1.0  # violin: 6 pixels, 4 of them in its box
    maps[0, 3, 3] = 0.6  # cello: one pixel inside the silent cello's box
    maps[2] = 0.2  # dog: uniform and low
    return maps


CLASSES = ("cello", "violin", "dog")


def test_score_sample_class_aware_hand_computed() -> None:
    sample = _sample("a", [_obj("violin", TOP_LEFT, True), _obj("cello", BOTTOM_RIGHT, False)])
    scores = score_sample(
        _class_aware_maps(), CLASSES, sample, alpha=0.5, settings=EvalSettings(grid=4)
    )
    assert scores.positive
    assert scores.ciou == pytest.approx(4 / 6)  # violin map vs violin box
    # Sound map = max over classes: violin's 6 pixels and cello's 0.6 pixel exceed 0.5.
    assert scores.iou == pytest.approx(4 / 7)
    assert scores.nsa == pytest.approx((15 / 16 + 16 / 16) / 2)  # cello and dog maps
    assert (scores.silent_objects, scores.silent_hits) == (1, 1)
    assert scores.confidence == pytest.approx(1.0)
    assert scores.any_above_tau and scores.area_above_tau == pytest.approx(7 / 16)


def test_score_sample_class_agnostic_on_positive_and_negative_samples() -> None:
    settings = EvalSettings(grid=4)
    agnostic = np.full((1, 4, 4), 0.3, np.float32)
    positive = _sample("p", [_obj("violin", TOP_LEFT, True)])
    scores = score_sample(agnostic, ("*",), positive, alpha=0.5, settings=settings)
    assert scores.iou == pytest.approx(4 / 16)  # uniform map: everything is on
    assert scores.ciou == pytest.approx(4 / 16)
    assert scores.nsa is None  # "*" is sounding on a sample with a sounding object
    negative = _sample("n", [_obj("violin", TOP_LEFT, False)], split="negative")
    scores = score_sample(agnostic, ("*",), negative, alpha=0.5, settings=settings)
    assert not scores.positive and scores.iou is None and scores.ciou is None
    assert scores.nsa == 1.0 and scores.silent_hits == 0
    assert not scores.any_above_tau and scores.area_above_tau == 0.0


def test_empty_map_scores_zero_and_missing_class_is_recorded() -> None:
    sample = _sample("a", [_obj("trumpet", TOP_LEFT, True), _obj("violin", BOTTOM_RIGHT, True)])
    maps = np.zeros((3, 4, 4), np.float32)
    maps[1, 2:, 2:] = 0.9  # violin perfect; trumpet has no map at all
    missing: set[str] = set()
    scores = score_sample(
        maps, CLASSES, sample, alpha=0.5, settings=EvalSettings(grid=4), labels_without_map=missing
    )
    assert scores.ciou == pytest.approx((0.0 + 1.0) / 2)
    assert missing == {"trumpet"}
    empty = score_sample(
        np.zeros((3, 4, 4), np.float32), CLASSES, sample, alpha=0.1, settings=EvalSettings(grid=4)
    )
    assert empty.iou == 0.0 and empty.ciou == 0.0 and empty.confidence == 0.0


def test_ciou_uses_only_the_sounding_instances_of_a_category() -> None:
    sample = _sample("a", [_obj("violin", TOP_LEFT, True), _obj("violin", BOTTOM_RIGHT, False)])
    maps = np.zeros((3, 4, 4), np.float32)
    maps[1, :2, :2] = 1.0
    scores = score_sample(maps, CLASSES, sample, alpha=0.5, settings=EvalSettings(grid=4))
    assert scores.ciou == 1.0 and (scores.silent_objects, scores.silent_hits) == (1, 0)


def _preds(ids: list[str], maps: np.ndarray, classes=CLASSES) -> Predictions:
    return Predictions(ids=ids, classes=classes, maps=maps)


def _box_map(value_outside: float) -> np.ndarray:
    maps = np.full((1, 4, 4), value_outside, np.float32)
    maps[0, :2, :2] = 1.0
    return maps


def test_alpha_defaults_follow_the_split_kind_and_can_be_overridden() -> None:
    preds = _preds(["a"], _box_map(0.3)[None], classes=("*",))
    objects = [_obj("violin", TOP_LEFT, True)]
    synthetic = evaluate(preds, [_sample("a", objects, "synthetic")], EvalSettings(grid=4))
    duet = evaluate(preds, [_sample("a", objects, "test/duet")], EvalSettings(grid=4))
    assert synthetic["settings"]["alpha"] == 0.5 and synthetic["iou@0.5"] == 1.0
    # alpha 0.2: 0.3 > 0.2 everywhere, so the whole image is on: IoU 4/16.
    assert duet["settings"]["alpha"] == 0.2 and duet["settings"]["split_kind"] == "duet"
    assert duet["iou@0.5"] == 0.0 and duet["ciou@0.3"] == 0.0
    forced = evaluate(preds, [_sample("a", objects, "duet")], EvalSettings(grid=4, alpha=0.5))
    assert forced["iou@0.5"] == 1.0 and forced["settings"]["alpha"] == 0.5
    by_kind = evaluate(
        preds, [_sample("a", objects, "duet")], EvalSettings(grid=4, alpha_by_kind={"duet": 0.4})
    )
    assert by_kind["iou@0.5"] == 1.0 and by_kind["settings"]["alpha_by_kind"]["solo"] == 0.1


def test_missing_predictions_are_counted_skipped_or_zeroed() -> None:
    samples = [_sample(i, [_obj("violin", TOP_LEFT, True)]) for i in ("a", "b")]
    preds = _preds(["a", "zz"], np.stack([_box_map(0.0), _box_map(0.0)]), classes=("*",))
    skipped = evaluate(preds, samples, EvalSettings(grid=4))
    assert (skipped["n"], skipped["n_missing"], skipped["iou@0.5"]) == (2, 1, 1.0)
    zeroed = evaluate(preds, samples, EvalSettings(grid=4, missing="zero"))
    assert (zeroed["n"], zeroed["n_missing"], zeroed["iou@0.5"]) == (2, 1, 0.5)
    assert zeroed["settings"]["missing"] == "zero"


def test_results_have_exactly_the_documented_keys_and_settings() -> None:
    samples = [
        _sample("a", [_obj("violin", TOP_LEFT, True), _obj("cello", BOTTOM_RIGHT, False)]),
        _sample("n", [_obj("cello", BOTTOM_RIGHT, False)], split="negative"),
    ]
    maps = np.stack([_class_aware_maps(), np.zeros((3, 4, 4), np.float32)])
    results = evaluate(_preds(["a", "n"], maps), samples, EvalSettings(grid=4))
    assert set(results) == RESULT_KEYS
    assert results["split"] == "synthetic+negative"
    assert results["settings"]["split_kind"] == "synthetic"
    for key in ("grid", "alpha", "tau", "iou_threshold", "ciou_thresholds", "top_fraction"):
        assert key in results["settings"]
    assert results["negative_fp"] == 0.0 and results["pia"] == 0.0
    assert results["silent_fp"] == pytest.approx(1 / 2)
    assert results["ap"] is not None and results["max_f1"] == 1.0
    json.dumps(results)  # JSON-serialisable as is
    table = format_table(results)
    assert "ciou@0.3" in table and "n=2" in table


def test_low_resolution_maps_and_batching_give_the_same_results() -> None:
    rng = np.random.default_rng(0)
    samples = [
        _sample(f"s{i}", [_obj("violin", TOP_LEFT, True), _obj("dog", BOTTOM_RIGHT, i % 2 == 0)])
        for i in range(7)
    ]
    low = rng.random((7, 3, 3, 3)).astype(np.float32)
    preds = _preds([s.id for s in samples], low)
    whole = evaluate(preds, samples, EvalSettings(grid=16))
    batched = evaluate(preds, samples, EvalSettings(grid=16, max_batch_values=2 * 3 * 16 * 16))
    from ier.map_metrics import resize_maps

    pre = _preds([s.id for s in samples], resize_maps(low, 16))
    assert whole == batched
    assert {k: v for k, v in whole.items() if k != "settings"} == {
        k: v for k, v in evaluate(pre, samples, EvalSettings(grid=16)).items() if k != "settings"
    }


def test_consensus_option_uses_annotator_boxes() -> None:
    annotators = [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0]]
    sample = _sample("f", [_obj("*", [0.0, 0.0, 1.0, 1.0], True, annotators=annotators)], "flickr")
    maps = np.zeros((1, 1, 4, 4), np.float32)
    maps[0, 0, :2, :2] = 1.0
    preds = _preds(["f"], maps, classes=("*",))
    dsol = {"grid": 4, "threshold_policy": "relative"}
    plain = evaluate(preds, [sample], EvalSettings(**dsol, consensus=False))
    consensus = evaluate(preds, [sample], EvalSettings(**dsol, consensus=True))
    assert plain["settings"]["split_kind"] == "solo" and plain["settings"]["alpha"] == 0.1
    assert plain["auc"] == pytest.approx(5 * 0.05 + 0.05 / 2)  # r(t) = 1 up to t = 0.25
    # IoU 4/16 with the reference box, 4/12 against the soft consensus map.
    assert plain["ciou@0.3"] == 0.0 and consensus["ciou@0.3"] == 1.0
    assert (plain["settings"]["consensus"], consensus["settings"]["consensus"]) == (False, True)


# Flickr-like sample on a 4 x 4 grid. Annotators: rows 0-1 x cols 0-1, rows 0-3 x cols 0-1,
# rows 0-1 x cols 2-3, so the consensus map is 1 (top-left), 0.5 (bottom-left, top-right) and
# 0 (bottom-right): sum 8. The envelope box is the whole image.
FLICKR_ANNOTATORS = [[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.5, 1.0], [0.5, 0.0, 1.0, 0.5]]


def _flickr_case(split: str = "flickr") -> tuple[Predictions, Sample]:
    obj = _obj("*", [0.0, 0.0, 1.0, 1.0], True, annotators=FLICKR_ANNOTATORS)
    maps = np.zeros((1, 1, 4, 4), np.float32)
    maps[0, 0, :2, :2], maps[0, 0, 2:, :2] = 1.0, 0.6  # left half: top 1.0, bottom 0.6
    maps[0, 0, :2, 2:], maps[0, 0, 2:, 2:] = 0.3, 0.2  # right half: top 0.3, bottom 0.2
    return _preds(["f"], maps, classes=("*",)), _sample("f", [obj], split)


def _iou_band(**settings) -> tuple[float, float, float]:
    """(ciou@0.6, ciou@0.7, ciou@0.8) of the Flickr case: brackets its single IoU."""
    preds, sample = _flickr_case(settings.pop("split", "flickr"))
    results = evaluate(
        preds, [sample], EvalSettings(grid=4, ciou_thresholds=(0.6, 0.7, 0.8), **settings)
    )
    return results["ciou@0.6"], results["ciou@0.7"], results["ciou@0.8"]


def test_flickr_preset_defaults_to_median_threshold_and_consensus_ground_truth() -> None:
    preds, sample = _flickr_case()
    results = evaluate(preds, [sample], EvalSettings(grid=4))
    recorded = results["settings"]
    assert recorded["threshold_policy"] == "median" and recorded["consensus"] is True
    assert recorded["alpha"] is None and "median" in recorded["binarize"]
    assert "threshold=median" in format_table(results)
    # Median of the 16 pixels (sorted[8]) is 0.6: the left half is on, IoU (4 + 4 * 0.5) / 8.
    assert _iou_band() == (1.0, 1.0, 0.0)  # IoU 0.75
    # Union (envelope) ground truth: IoU 8 / 16.
    assert _iou_band(consensus=False) == (0.0, 0.0, 0.0)
    # DSOL's relative policy at the solo alpha 0.1: every pixel is on, IoU 8 / (8 + 4).
    assert _iou_band(threshold_policy="relative") == (1.0, 0.0, 0.0)
    assert _iou_band(split="extended_flickr") == (1.0, 1.0, 0.0)


def test_absolute_and_minmax_policies_end_to_end() -> None:
    # absolute 0.6 keeps the left half (IoU 0.75); 0.61 only the top-left (4 / 8).
    assert _iou_band(threshold_policy="absolute", fixed_threshold=0.6) == (1.0, 1.0, 0.0)
    assert _iou_band(threshold_policy="absolute", fixed_threshold=0.61) == (0.0, 0.0, 0.0)
    # min-max normalised (v - 0.2) / 0.8: left half 1.0 and 0.5, right half 0.125 and 0.
    assert _iou_band(threshold_policy="minmax", fixed_threshold=0.5) == (1.0, 1.0, 0.0)
    # At 0.1 the top-right (0.125) joins: exactly the consensus support is on, IoU 8 / 8.
    assert _iou_band(threshold_policy="minmax", fixed_threshold=0.1) == (1.0, 1.0, 1.0)


def test_vggss_preset_is_median_with_union_and_benchmark_splits_stay_relative() -> None:
    preds, sample = _flickr_case("vggss")
    recorded = evaluate(preds, [sample], EvalSettings(grid=4))["settings"]
    assert (recorded["threshold_policy"], recorded["consensus"]) == ("median", False)
    assert _iou_band(split="vggss") == (0.0, 0.0, 0.0)  # median vs envelope: 8 / 16
    recorded = evaluate(preds, [_sample("f", [], "test/solo")], EvalSettings(grid=4))["settings"]
    assert (recorded["threshold_policy"], recorded["alpha"]) == ("relative", 0.1)
    assert split_protocol("flickr") == ("solo", "median", True)
    assert split_protocol("test/duet") == ("duet", "relative", False)


def test_every_dataset_preset_names_a_known_policy_and_alpha() -> None:
    from ier.evaluate import DEFAULT_ALPHA_BY_KIND
    from ier.map_metrics import THRESHOLD_POLICIES
    from ier.protocol import PUBLISHED_PROTOCOLS as SPLIT_PRESETS

    for name, preset in SPLIT_PRESETS.items():
        assert preset.threshold in THRESHOLD_POLICIES and preset.kind in DEFAULT_ALPHA_BY_KIND
        assert preset.gt_rule in ("union", "consensus")
        if preset.threshold == "relative":  # the preset's alpha is the evaluator's default
            assert preset.alpha == DEFAULT_ALPHA_BY_KIND[preset.kind], name
        else:
            assert preset.alpha is None, name


def test_splits_with_different_policies_need_an_explicit_policy() -> None:
    preds = _preds(["a", "b", "n"], np.zeros((3, 1, 4, 4), np.float32), classes=("*",))
    flickr = _sample("a", [_obj("*", TOP_LEFT, True)], "flickr")
    synthetic = _sample("b", [_obj("x", TOP_LEFT, True)], "synthetic")
    negative = _sample("n", [], "negative")
    mixed = evaluate(preds, [flickr, negative], EvalSettings(grid=4))  # negatives need no policy
    assert mixed["settings"]["threshold_policy"] == "median" and mixed["n"] == 2
    with pytest.raises(ConfigError, match="different threshold policies"):
        evaluate(preds, [flickr, synthetic], EvalSettings(grid=4))
    with pytest.raises(ConfigError, match="different kinds"):
        evaluate(preds, [flickr, synthetic], EvalSettings(grid=4, threshold_policy="relative"))
    forced = evaluate(preds, [flickr, synthetic], EvalSettings(grid=4, threshold_policy="median"))
    assert forced["n"] == 2 and forced["settings"]["consensus"] is True


def test_class_agnostic_ground_truth_matches_the_max_over_classes() -> None:
    sample = _sample("f", [_obj("*", TOP_LEFT, True)], "flickr")
    missing: set[str] = set()
    settings = EvalSettings(grid=4)
    scores = score_sample(
        _class_aware_maps(),
        CLASSES,
        sample,
        alpha=0.5,
        settings=settings,
        labels_without_map=missing,
    )
    # Max over classes: violin's 6 pixels (4 in the box) and cello's 0.6 pixel are above 0.5.
    assert scores.ciou == pytest.approx(4 / 7) and scores.iou == pytest.approx(4 / 7)
    assert missing == set()  # "*" is never a label without a map
    assert scores.nsa is None  # a "*" sounding object could be any class: none is non-sounding


def test_class_agnostic_ground_truth_beside_labelled_objects() -> None:
    maps = np.zeros((3, 4, 4), np.float32)
    maps[1, :2, :2] = 1.0  # violin on its box
    maps[0, 2:, 2:] = 0.9  # cello lights the "*" object's box
    both = [_obj("violin", TOP_LEFT, True), _obj("*", BOTTOM_RIGHT, True)]
    scores = score_sample(
        maps, CLASSES, _sample("a", both), alpha=0.5, settings=EvalSettings(grid=4)
    )
    # violin: 1.0; "*": the max map has 8 pixels on against its 4-pixel box, 0.5.
    assert scores.ciou == pytest.approx((1.0 + 0.5) / 2) and scores.nsa is None
    silent = [_obj("violin", TOP_LEFT, True), _obj("*", BOTTOM_RIGHT, False)]
    scores = score_sample(
        maps, CLASSES, _sample("b", silent), alpha=0.5, settings=EvalSettings(grid=4)
    )
    assert (scores.silent_objects, scores.silent_hits) == (1, 1)  # cello's 0.9 > tau in the box
    assert scores.ciou == 1.0 and scores.nsa == pytest.approx((12 / 16 + 1.0) / 2)


def test_mixed_split_kinds_need_an_explicit_alpha() -> None:
    preds = _preds(["a", "b"], np.zeros((2, 1, 4, 4), np.float32), classes=("*",))
    samples = [
        _sample("a", [_obj("x", TOP_LEFT, True)], "duet"),
        _sample("b", [_obj("x", TOP_LEFT, True)], "synthetic"),
    ]
    with pytest.raises(ConfigError, match="different kinds"):
        evaluate(preds, samples, EvalSettings(grid=4))
    assert evaluate(preds, samples, EvalSettings(grid=4, alpha=0.3))["n"] == 2


def test_split_kind_names_and_bad_settings() -> None:
    assert split_kind("duet") == "duet"
    assert split_kind("test/solo") == "solo"
    assert split_kind("music_syn") == "synthetic"
    assert split_kind("vgg-un") == "wild"
    assert split_kind("Extended-VGGSS") == "solo"
    assert split_kind("something") == "solo"
    for bad in ({"tau": 1.5}, {"alpha": -0.1}, {"missing": "drop"}, {"split_kind": "x"}):
        with pytest.raises(ConfigError):
            EvalSettings(**bad)


def test_empty_sample_list_gives_none_metrics() -> None:
    results = evaluate(_preds(["a"], np.zeros((1, 1, 2, 2), np.float32), ("*",)), [])
    assert results["n"] == 0 and results["iou@0.5"] is None and results["ap"] is None


# --- CLI -----------------------------------------------------------------------------------------


@pytest.fixture()
def tiny_split(tmp_path: Path) -> tuple[Path, Path]:
    records = [
        _record("a", [_obj("violin", TOP_LEFT, True), _obj("cello", BOTTOM_RIGHT, False)]),
        _record("b", [_obj("cello", TOP_LEFT, True)]),
        _record("c", [_obj("violin", TOP_LEFT, True)]),
    ]
    manifest = write_manifest(tmp_path / "split" / "manifest.jsonl", records)
    maps = np.zeros((2, 3, 4, 4), np.float32)
    maps[0] = _class_aware_maps()
    maps[1, 0, :2, :2] = 0.8
    preds = save_predictions(tmp_path / "preds.npz", _preds(["a", "b"], maps))
    return manifest, preds


def test_cli_writes_json_with_exactly_the_documented_keys(tiny_split, tmp_path, capsys) -> None:
    manifest, preds = tiny_split
    out = tmp_path / "metrics" / "metrics.json"
    argv = ["evaluate", "--predictions", str(preds), "--manifest", str(manifest), "--out", str(out)]
    extra = ["--grid", "4", "--tau", "0.4", "--alpha-for", "synthetic=0.5", "--auc-step", "0.1"]
    assert main([*argv, *extra]) == 0
    results = json.loads(out.read_text())
    assert set(results) == RESULT_KEYS
    assert (results["n"], results["n_missing"]) == (3, 1)
    assert results["settings"]["tau"] == 0.4 and results["settings"]["grid"] == 4
    assert results["settings"]["auc_step"] == 0.1
    assert results["ciou@0.5"] == 1.0 and results["silent_fp"] == 1.0
    printed = capsys.readouterr().out
    assert "iou@0.5" in printed and "missing=1" in printed and str(out) in printed


def test_cli_rejects_mixed_or_incomplete_modes(tiny_split, capsys) -> None:
    manifest, preds = tiny_split
    for argv in (
        ["--predictions", str(preds), "--data", "somewhere"],
        ["--predictions", str(preds), "--checkpoint", "c.safetensors"],
        ["--manifest", str(manifest), "--checkpoint", "c", "--data", "d"],
        ["--manifest", str(manifest), "--checkpoint", "c", "--splits", "test/solo"],
        ["--predictions", str(preds)],
        ["--checkpoint", "c.safetensors"],
        ["--manifest", str(manifest)],
        [],
    ):
        with pytest.raises(SystemExit) as info:
            main(["evaluate", *argv])
        assert info.value.code == 2
    err = capsys.readouterr().err
    assert "not both" in err and "must be given together" in err and "--splits needs" in err


def test_cli_bad_alpha_for_is_a_clean_error(tiny_split, capsys) -> None:
    manifest, preds = tiny_split
    argv = ["evaluate", "--predictions", str(preds), "--manifest", str(manifest)]
    assert main([*argv, "--alpha-for", "mosaic=0.3"]) == 2
    assert "--alpha-for" in capsys.readouterr().err


def test_cli_checkpoint_mode_calls_predict_evaluate_checkpoint(
    monkeypatch, tmp_path, capsys
) -> None:
    calls = {}

    def fake_evaluate_checkpoint(checkpoint, data_dir, *, splits, out_dir, settings, object_prior):
        calls.update(
            checkpoint=checkpoint, data=data_dir, splits=splits, out=out_dir, settings=settings,
            object_prior=object_prior,
        )  # fmt: skip
        preds = _preds(["a"], _box_map(0.0)[None], classes=("*",))
        return {
            "test/solo": evaluate(preds, [_sample("a", [_obj("x", TOP_LEFT, True)], "test/solo")])
        }

    import ier.manifest_eval  # noqa: F401  (it imports the real ier.inference before the fake)

    module = types.ModuleType("ier.inference")
    module.evaluate_checkpoint = fake_evaluate_checkpoint
    monkeypatch.setitem(sys.modules, "ier.inference", module)
    ckpt = tmp_path / "c.st"
    ckpt.write_bytes(b"")  # only its path matters to the fake
    argv = ["evaluate", "--checkpoint", str(ckpt), "--data", str(tmp_path), "--splits", "test/solo"]
    assert main([*argv, "--out", str(tmp_path / "eval"), "--tau", "0.3"]) == 0
    assert calls["checkpoint"] == ckpt and calls["splits"] == ["test/solo"]
    assert calls["out"] == tmp_path / "eval" and calls["settings"].tau == 0.3
    assert calls["object_prior"] is None  # the checkpoint's own setting
    assert main([*argv, "--object-prior", "0.7"]) == 0 and calls["object_prior"] == 0.7
    assert "test/solo" in capsys.readouterr().out
    # The bundled model's name works as in `ier localize`.
    from ier.localization import WEIGHTS_DIR

    if (WEIGHTS_DIR / "ier-wild-small.safetensors").exists():
        argv = ["evaluate", "--checkpoint", "ier-wild-small", "--data", str(tmp_path)]
        assert main(argv) == 0 and calls["checkpoint"] == WEIGHTS_DIR / "ier-wild-small.safetensors"
    assert main(["evaluate", "--checkpoint", "no-such-model", "--data", str(tmp_path)]) == 2
    assert "neither a bundled model" in capsys.readouterr().err


def test_cli_threshold_policy_and_consensus_flags(tmp_path, capsys) -> None:
    preds, sample = _flickr_case()
    manifest = write_manifest(tmp_path / "test" / "manifest.jsonl", [sample])
    npz = save_predictions(tmp_path / "preds.npz", preds)
    argv = ["evaluate", "--predictions", str(npz), "--manifest", str(manifest), "--grid", "4"]
    out = tmp_path / "m.json"
    assert main([*argv, "--out", str(out)]) == 0
    recorded = json.loads(out.read_text())["settings"]
    assert (recorded["threshold_policy"], recorded["consensus"]) == ("median", True)
    flags = ["--threshold-policy", "absolute", "--fixed-threshold", "0.61", "--no-consensus"]
    assert main([*argv, *flags, "--out", str(out), "--overwrite"]) == 0
    results = json.loads(out.read_text())
    assert results["settings"]["threshold_policy"] == "absolute"
    assert results["settings"]["fixed_threshold"] == 0.61
    assert results["settings"]["consensus"] is False
    assert results["iou@0.5"] == 0.0  # top-left only against the whole-image envelope: 4 / 16
    capsys.readouterr()
    assert main([*argv, "--threshold-policy", "otsu"]) == 2
    assert "threshold_policy must be one of" in capsys.readouterr().err


def test_cli_help_names_every_threshold_policy(capsys) -> None:
    from ier.map_metrics import THRESHOLD_POLICIES

    with pytest.raises(SystemExit):
        main(["evaluate", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert all(f"{policy} (" in text for policy in THRESHOLD_POLICIES)


# --------------------------------------------------------------------------- pointing, calibration


def _pointing_samples() -> list:
    return [  # a sounding violin top-left; a sounding cello bottom-right and a silent violin
        _sample("a", [_obj("violin", [0.0, 0.0, 0.5, 0.5], True)]),
        _sample("b", [_obj("cello", [0.5, 0.5, 1.0, 1.0], True),
                      _obj("violin", [0.0, 0.0, 0.5, 0.5], False)]),  # fmt: skip
    ]


def test_pointing_game_known_values() -> None:
    samples, grid = _pointing_samples(), EvalSettings(grid=4)
    maps = np.zeros((2, 2, 4, 4), np.float32)  # classes violin, cello
    maps[0, 0, 0, 0] = 1.0  # a: violin's peak in its box (hit), above tau
    maps[1, 1, 0, 0] = 1.0  # b: cello's peak top-left, outside its box (miss)
    maps[1, 0, 1, 1] = 0.4  # b: the silent violin's map inside its box, below tau
    r = evaluate(Predictions(ids=("a", "b"), classes=("violin", "cello"), maps=maps), samples, grid)
    assert (r["pointing"], r["pointing_tau"], r["pointing_chance"]) == (0.5, 0.5, 0.25)
    # in-box peaks: sounding violin 1.0, sounding cello 0.0; silent violin 0.4 -> 1 of 2 pairs
    assert r["silent_auroc"] == pytest.approx(0.5) and r["silent_fp"] == 0.0
    one = np.zeros((2, 1, 4, 4), np.float32)
    one[:, 0, 3, 3] = 0.3  # one map for every class, peaking bottom-right: a misses, b hits
    agnostic = evaluate(Predictions(ids=("a", "b"), classes=("*",), maps=one), samples, grid)
    assert agnostic["pointing"] == 0.5 and agnostic["pointing_tau"] == 0.0  # 0.3 <= tau
    only_dog = Predictions(ids=("a", "b"), classes=("dog",), maps=maps[:, :1])
    assert evaluate(only_dog, samples, grid)["pointing"] is None  # no sounding class mapped


def test_peak_auroc_of_positive_and_negative_clips_together() -> None:
    samples = [_sample("p", [_obj("violin", [0.0, 0.0, 0.5, 0.5], True)], "wild"),
               _sample("q", [_obj("violin", [0.0, 0.0, 0.5, 0.5], True)], "wild"),
               _sample("n", [_obj("violin", [0.0, 0.0, 0.5, 0.5], False)], "negative"),
               _sample("m", [], "negative")]  # fmt: skip
    maps = np.zeros((4, 1, 2, 2), np.float32)
    maps[:, 0, 1, 1] = [0.9, 0.2, 0.1, 0.5]
    preds = Predictions(ids=("p", "q", "n", "m"), classes=("*",), maps=maps)
    # pairs (positive > negative): 0.9 > 0.1, 0.9 > 0.5, 0.2 > 0.1, not 0.2 > 0.5
    assert evaluate(preds, samples, EvalSettings(grid=2))["peak_auroc"] == pytest.approx(0.75)
    assert evaluate(preds, samples[:2], EvalSettings(grid=2))["peak_auroc"] is None


def test_calibrated_tau_keeps_validation_false_positives_within_the_budget() -> None:
    from ier.evaluate import calibrate_tau

    rng = np.random.default_rng(0)
    negatives = [_sample(f"n{i}", [], "negative") for i in range(40)]
    peaks = rng.uniform(0.0, 0.8, size=40)
    maps = np.zeros((40, 1, 2, 2), np.float32)
    maps[:, 0, 0, 0] = peaks
    neg = Predictions(ids=tuple(s.id for s in negatives), classes=("*",), maps=maps)
    silent = [_sample(f"s{i}", [_obj("violin", [0.0, 0.0, 0.5, 1.0], False),
                                _obj("dog", [0.5, 0.0, 1.0, 1.0], True)], "wild")
              for i in range(20)]  # fmt: skip
    silent_maps = np.full((20, 1, 2, 2), 0.1, np.float32)  # left column: the silent violin
    silent_maps[:, 0, :, 1] = 0.9  # right column: the sounding dog
    silent_maps[:3, 0, :, 0] = 0.95  # 3 of 20 silent objects marked strongly: 15 % > the 5 %
    wild = Predictions(ids=tuple(s.id for s in silent), classes=("*",), maps=silent_maps)
    grid = EvalSettings(grid=2)
    found = calibrate_tau([neg, wild], [negatives, silent], settings=grid)
    assert found["n_negative"] == 40 and found["n_silent"] == 20
    assert found["tau"] == max(found["tau_negative"], found["tau_silent"])
    assert found["tau"] == pytest.approx(0.95)
    at_tau = EvalSettings(grid=2, tau=found["tau"])
    assert evaluate(neg, negatives, at_tau)["negative_fp"] <= 0.05
    assert evaluate(wild, silent, at_tau)["silent_fp"] <= 0.05
    alone = calibrate_tau([neg], [negatives], settings=grid)  # negatives only: 2 of 40 above
    assert alone["tau_silent"] is None and np.mean(peaks > alone["tau"]) == pytest.approx(0.05)


# --------------------------------------------------------------------------- --out and empty input


def test_cli_out_never_overwrites_silently_and_checks_before_any_work(
    tiny_split, tmp_path, capsys, monkeypatch
) -> None:
    import ier.manifest_eval

    manifest, preds = tiny_split
    argv = ["evaluate", "--predictions", str(preds), "--manifest", str(manifest)]
    existing = tmp_path / "metrics.json"
    existing.write_text("the user's file")
    calls = []
    real = ier.manifest_eval.evaluate_predictions_file
    monkeypatch.setattr(ier.manifest_eval, "evaluate_predictions_file",
                        lambda *a, **k: calls.append(a) or real(*a, **k))  # fmt: skip
    assert main([*argv, "--out", str(existing)]) == 2
    assert "exists; pass --overwrite" in capsys.readouterr().err
    assert existing.read_text() == "the user's file" and calls == []  # refused before any work
    folder = tmp_path / "a folder"
    folder.mkdir()
    assert main([*argv, "--out", str(folder)]) == 2
    err = capsys.readouterr().err
    assert "is a folder" in err and "Traceback" not in err and calls == []
    assert main([*argv, "--out", str(manifest), "--overwrite"]) == 2  # an input is never an output
    assert "is an input" in capsys.readouterr().err
    assert main([*argv, "--out", str(existing), "--overwrite"]) == 0 and len(calls) == 1
    assert json.loads(existing.read_text())["n"] == 3


def test_cli_an_empty_manifest_or_unmatched_predictions_fail(tiny_split, tmp_path, capsys) -> None:
    manifest, preds = tiny_split
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    assert main(["evaluate", "--predictions", str(preds), "--manifest", str(empty)]) == 2
    assert "has no samples" in capsys.readouterr().err
    other = save_predictions(tmp_path / "other.npz", _preds(["zz"], _box_map(0.0)[None],
                                                             classes=("*",)))  # fmt: skip
    assert main(["evaluate", "--predictions", str(other), "--manifest", str(manifest)]) == 2
    assert "none of its 1 predictions" in capsys.readouterr().err
    argv = ["evaluate", "--predictions", str(other), "--manifest", str(manifest)]
    assert main([*argv, "--missing", "zero"]) == 0  # scored as all-zero maps: that is asked for


def test_checkpoint_on_a_standalone_manifest(tmp_path, capsys) -> None:
    """--checkpoint CKPT --manifest M: any manifest, outside a benchmark folder; the classes are
    the checkpoint's."""
    from ier.checkpoint import save_model
    from ier.models import create_model
    from ier.models.config import model_config
    from ier.video_writer import write_mp4

    config = model_config("tiny")
    model = create_model(config)
    ckpt = save_model(tmp_path / "tiny.safetensors", model, model_config=config)
    clips = tmp_path / "elsewhere"
    records = []
    for i in range(2):
        frames = np.full((10, 32, 32, 3), 40 * i, np.uint8)
        write_mp4(clips / f"c{i}.mp4", frames, fps=10, audio=np.zeros(16000, np.float32))
        records.append({"id": f"c{i}", "split": "my-own", "video": f"c{i}.mp4", "time": 0.5,
                        "window": [0.0, 1.0], "offscreen": [], "noise": None, "objects": [
                            {"label": "*", "box": [0.1, 0.1, 0.6, 0.6], "sounding": True}]})
    manifest = write_manifest(clips / "mine.jsonl", records)
    out = tmp_path / "eval"
    argv = ["evaluate", "--checkpoint", str(ckpt), "--manifest", str(manifest), "--out", str(out)]
    assert main(argv) == 0
    assert "split my-own" in capsys.readouterr().out
    metrics = json.loads((out / "metrics.json").read_text())[str(manifest)]
    assert metrics["n"] == 2 and metrics["n_missing"] == 0 and metrics["iou@0.5"] is not None
    assert (out / "predictions.npz").exists()
    assert main(argv) == 2 and "--overwrite" in capsys.readouterr().err
    (out / "predictions_old.npz").write_text("an earlier run of --data")
    (out / "notes.txt").write_text("the user's")
    assert main([*argv, "--overwrite"]) == 0
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "notes.txt", "predictions.npz"]


def test_format_results_prints_splits_and_the_calibrated_point() -> None:
    from ier.evaluate import format_results

    split = {"auc": 0.5, "pointing": None, "n": 3, "n_missing": 0, "split": "wild",
             "settings": {"split_kind": "wild", "tau": 0.5, "grid": 224}}  # fmt: skip
    calibration = {"tau": 0.4321, "budget": 0.05, "splits": ["val/wild", "val/negative"]}
    text = format_results({"test/wild": split, "calibration": calibration})
    assert "auc" in text and "50.00%" in text and "pointing" in text
    assert "tau = 0.432, chosen on val/wild + val/negative for at most 5 % false" in text


def test_cli_store_calibration_writes_into_a_checkpoint_file_only(
    monkeypatch, tmp_path, capsys
) -> None:
    stored = []
    results = {"test/wild": {}, "calibration": {"tau": 0.4}}

    import ier.manifest_eval  # noqa: F401  (it imports the real ier.inference before the fake)

    module = types.ModuleType("ier.inference")
    module.evaluate_checkpoint = lambda *args, **kwargs: results
    module.store_calibration = lambda path, found: stored.append((path, found)) or bool(
        found.get("calibration"))  # fmt: skip
    monkeypatch.setitem(sys.modules, "ier.inference", module)
    monkeypatch.setattr("ier.evaluate.format_results", lambda found: "")
    ckpt = tmp_path / "c.st"
    ckpt.write_bytes(b"")
    argv = ["evaluate", "--checkpoint", str(ckpt), "--data", str(tmp_path), "--store-calibration"]
    with pytest.raises(SystemExit):  # no validation splits: refused before any work
        main(argv)
    assert "needs the validation splits val/wild, val/negative" in capsys.readouterr().err
    for split in ("val/wild", "val/negative"):
        (tmp_path / split).mkdir(parents=True)
        (tmp_path / split / "manifest.jsonl").write_text("")
    with pytest.raises(SystemExit):  # a gated calibration would not match the stored model
        main([*argv, "--object-prior", "0.5"])
    assert "--object-prior" in capsys.readouterr().err and not stored
    assert main(argv) == 0 and stored == [(ckpt, results)]
    assert f"stored the calibrated operating point in {ckpt}" in capsys.readouterr().out
    results.pop("calibration")  # evaluated, but nothing calibrated: an error
    assert main(argv) == 2 and "no calibration to store" in capsys.readouterr().err
    with pytest.raises(SystemExit):  # it needs --data
        main(["evaluate", "--checkpoint", str(ckpt), "--store-calibration"])
    assert "--store-calibration needs --checkpoint CKPT --data DIR" in capsys.readouterr().err
    from ier.localization import WEIGHTS_DIR

    if (WEIGHTS_DIR / "ier-wild-small.safetensors").exists():  # never into the bundled file
        argv = ["evaluate", "--checkpoint", "ier-wild-small", "--data", str(tmp_path)]
        assert main([*argv, "--store-calibration"]) == 2
        assert "is a bundled model" in capsys.readouterr().err
