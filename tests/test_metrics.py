"""Metric functions against hand-computed values on tiny grids, edge cases and invariants."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from ier.map_metrics import (
    THRESHOLD_POLICIES,
    binarize,
    binarize_with,
    box_mask,
    box_pixels,
    iou,
    no_sound_area,
    resize_maps,
    top_fraction_confidence,
)
from ier.metrics import (
    MetricAccumulator,
    SampleScores,
    average_precision,
    max_f1,
    success_auc,
    success_rate,
    success_thresholds,
)

# --- boxes ---------------------------------------------------------------------------------------


def test_box_pixels_truncate_edges_like_dsol() -> None:
    # x: 0.1*4=0.4 -> 0, 0.6*4=2.4 -> 2; y: 0.3*4=1.2 -> 1, 1.0*4=4 -> 4.
    assert box_pixels((0.1, 0.3, 0.6, 1.0), 4) == (1, 4, 0, 2)
    mask = box_mask([(0.1, 0.3, 0.6, 1.0)], 4)
    expected = np.zeros((4, 4), np.float32)
    expected[1:4, 0:2] = 1
    np.testing.assert_array_equal(mask, expected)


def test_box_on_the_border_and_full_image() -> None:
    assert box_mask([(0.0, 0.0, 1.0, 1.0)], 8).sum() == 64
    right_edge = box_mask([(0.75, 0.0, 1.0, 0.25)], 8)
    assert right_edge[:2, 6:].all() and right_edge.sum() == 4


def test_tiny_box_can_cover_no_pixel_and_union_of_none_is_empty() -> None:
    assert box_mask([(0.3, 0.3, 0.4, 0.4)], 4).sum() == 0  # 1.2 -> 1 and 1.6 -> 1
    assert box_mask([], 4).sum() == 0


def test_union_of_overlapping_boxes() -> None:
    mask = box_mask([(0.0, 0.0, 0.5, 0.5), (0.25, 0.25, 0.75, 0.75)], 4)
    assert mask.max() == 1 and mask.sum() == 4 + 4 - 1


def test_consensus_mask_is_senocak_count_over_two_clipped() -> None:
    boxes = [(0.0, 0.0, 0.5, 0.5), (0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.5, 1.0)]
    mask = box_mask(boxes, 4, consensus=True)
    expected = np.full((4, 4), 0.5, np.float32)  # one annotator: 1/2
    expected[:, :2] = 1.0  # two annotators: 2/2
    np.testing.assert_array_equal(mask, expected)  # three in the top-left: clipped to 1
    assert box_mask(boxes, 4, consensus=True, agreement=3)[0, 0] == 1.0


# --- binarisation and IoU ------------------------------------------------------------------------


def test_binarize_is_strictly_above_alpha_times_max() -> None:
    smap = np.array([[0.0, 0.2], [0.5, 1.0]], np.float32)
    np.testing.assert_array_equal(binarize(smap, 0.5), [[False, False], [False, True]])
    np.testing.assert_array_equal(binarize(smap, 0.1), [[False, True], [True, True]])


def test_binarize_empty_and_uniform_maps() -> None:
    assert not binarize(np.zeros((4, 4)), 0.1).any()
    assert binarize(np.full((4, 4), 0.3), 0.5).all()
    assert not binarize(np.full((4, 4), 0.3), 1.0).any()


def test_binarize_is_per_map_over_leading_axes() -> None:
    maps = np.stack([np.eye(3), 0.1 * np.eye(3) + 0.01])
    out = binarize(maps, 0.5)
    np.testing.assert_array_equal(out[0], np.eye(3, dtype=bool))
    np.testing.assert_array_equal(out[1], np.eye(3, dtype=bool))


def test_median_policy_keeps_the_pixels_at_or_above_the_middle_sorted_value() -> None:
    even = np.array([[0.1, 0.4], [0.3, 0.2]], np.float32)  # sorted[2] = 0.3
    np.testing.assert_array_equal(binarize_with(even, "median"), [[False, True], [True, False]])
    odd = np.arange(1, 10, dtype=np.float32).reshape(3, 3) / 10  # sorted[4] = 0.5
    assert binarize_with(odd, "median").sum() == 5 and not binarize_with(odd, "median")[1, 0]
    ties = np.array([[0.0, 0.0, 0.0, 0.9]], np.float32)  # sorted[2] = 0: every pixel is >= 0
    assert binarize_with(ties, "median").all()
    assert binarize_with(np.zeros((4, 4)), "median").all()  # unlike relative: all on


def test_median_policy_matches_ezvsl_min_max_then_sorted_threshold() -> None:
    rng = np.random.default_rng(3)
    maps = rng.random((3, 7, 6)).astype(np.float32)
    for smap, got in zip(maps, binarize_with(maps, "median")):
        normalised = (smap - smap.min()) / (smap.max() - smap.min())
        threshold = np.sort(normalised.flatten())[int(normalised.size * 0.5)]
        np.testing.assert_array_equal(got, normalised >= threshold)
        assert got.sum() == smap.size - smap.size // 2


def test_absolute_and_minmax_policies_hand_computed() -> None:
    smap = np.array([[0.2, 0.4], [0.6, 1.0]], np.float32)
    absolute = binarize_with(smap, "absolute", threshold=0.6)  # inclusive, as SLAVC's >=
    np.testing.assert_array_equal(absolute, [[False, False], [True, True]])
    # min-max normalised: [[0, 0.25], [0.5, 1]].
    minmax = binarize_with(smap, "minmax", threshold=0.25)
    np.testing.assert_array_equal(minmax, [[False, True], [True, True]])
    assert not binarize_with(smap, "absolute", threshold=0.25)[0, 0]
    # A uniform map cannot be normalised and is compared as given (LVS's normalize_img).
    assert binarize_with(np.full((2, 2), 0.6), "minmax", threshold=0.5).all()
    assert not binarize_with(np.full((2, 2), 0.3), "minmax", threshold=0.5).any()


def test_relative_policy_is_binarize_and_unknown_policy_fails() -> None:
    maps = np.random.default_rng(0).random((2, 5, 5))
    np.testing.assert_array_equal(binarize_with(maps, "relative", alpha=0.4), binarize(maps, 0.4))
    assert set(THRESHOLD_POLICIES) == {"relative", "median", "absolute", "minmax"}
    with pytest.raises(ValueError, match="threshold policy"):
        binarize_with(maps, "otsu")


def test_iou_hand_computed() -> None:
    pred = np.zeros((4, 4), bool)
    pred[0:2, 0:3] = True  # 6 pixels
    gt = box_mask([(0.0, 0.0, 0.5, 1.0)], 4)  # columns 0-1, all rows: 8 pixels
    # intersection 4; |G| = 8; predicted outside G = 2 -> 4 / 10.
    assert float(iou(pred, gt)) == pytest.approx(0.4)


def test_iou_soft_consensus_ground_truth() -> None:
    gt = box_mask(
        [(0.0, 0.0, 0.5, 0.5), (0.0, 0.0, 1.0, 1.0), (0.0, 0.0, 0.5, 1.0)], 4, consensus=True
    )
    assert float(iou(np.ones((4, 4), bool), gt)) == pytest.approx(1.0)  # whole image: sum(G)/sum(G)
    top_left = np.zeros((4, 4), bool)
    top_left[:2, :2] = True
    assert float(iou(top_left, gt)) == pytest.approx(4 / 12)  # sum(G) = 8 * 1 + 8 * 0.5


def test_iou_empty_prediction_and_empty_ground_truth() -> None:
    gt = box_mask([(0.0, 0.0, 0.5, 0.5)], 4)
    assert float(iou(np.zeros((4, 4), bool), gt)) == 0.0
    assert float(iou(np.zeros((4, 4), bool), np.zeros((4, 4)))) == 0.0
    assert float(iou(np.ones((4, 4), bool), np.zeros((4, 4)))) == 0.0


def test_iou_of_uniform_map_is_box_area_fraction() -> None:
    gt = box_mask([(0.0, 0.0, 0.5, 0.25)], 8)  # 2 rows x 4 cols = 8 of 64 pixels
    assert float(iou(binarize(np.full((8, 8), 0.7), 0.5), gt)) == pytest.approx(8 / 64)


def test_iou_is_batched() -> None:
    gt = np.stack([box_mask([(0, 0, 0.5, 0.5)], 4), box_mask([(0.5, 0.5, 1, 1)], 4)])
    pred = np.stack([gt[0] > 0, gt[0] > 0])
    np.testing.assert_allclose(iou(pred, gt), [1.0, 0.0])


@settings(max_examples=50, deadline=None)
@given(arrays(bool, (6, 6)))
def test_iou_is_one_for_identical_nonempty_masks(mask: np.ndarray) -> None:
    if mask.any():
        assert float(iou(mask, mask.astype(np.float32))) == pytest.approx(1.0)
    assert 0.0 <= float(iou(mask, np.ones((6, 6)))) <= 1.0


# --- resizing ------------------------------------------------------------------------------------


def _reference_bilinear(image: np.ndarray, size: int) -> np.ndarray:
    """cv2.resize(INTER_LINEAR) arithmetic: half-pixel centres, edge samples clamped."""
    h, w = image.shape

    def axis(n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        src = np.clip((np.arange(size) + 0.5) * n_in / size - 0.5, 0, n_in - 1)
        low = np.floor(src).astype(int)
        return low, np.minimum(low + 1, n_in - 1), src - low

    r0, r1, fr = axis(h)
    c0, c1, fc = axis(w)
    top = image[r0][:, c0] * (1 - fc) + image[r0][:, c1] * fc
    bottom = image[r1][:, c0] * (1 - fc) + image[r1][:, c1] * fc
    return top * (1 - fr[:, None]) + bottom * fr[:, None]


def test_resize_matches_half_pixel_bilinear_reference() -> None:
    image = np.random.default_rng(1).random((3, 5)).astype(np.float32)
    out = resize_maps(image[None, None], 8)
    assert out.shape == (1, 1, 8, 8) and out.dtype == np.float32
    np.testing.assert_allclose(out[0, 0], _reference_bilinear(image, 8), atol=1e-6)


def test_resize_keeps_constant_maps_and_same_size_maps() -> None:
    np.testing.assert_allclose(resize_maps(np.full((2, 3, 7, 7), 0.25), 16), 0.25, atol=1e-7)
    maps = np.random.default_rng(0).random((2, 4, 4)).astype(np.float32)
    np.testing.assert_array_equal(resize_maps(maps, 4), maps)


# --- success rate and AUC ------------------------------------------------------------------------


def test_success_thresholds_are_dsols_floats() -> None:
    thresholds = success_thresholds()
    assert thresholds.size == 21 and thresholds[0] == 0.0 and thresholds[-1] == 1.0
    assert thresholds[6] == 0.05 * 6  # 0.30000000000000004, as DSOL's results[6]


def test_success_rate_and_auc_hand_computed() -> None:
    scores = [0.0, 0.5, 1.0]
    assert success_rate(scores, 0.5) == pytest.approx(2 / 3)
    assert success_rate(scores, 0.51) == pytest.approx(1 / 3)
    # r(0)=1; r=2/3 on 0.05..0.5; r=1/3 on 0.55..1.0; trapezoids of width 0.05.
    expected = 0.05 * ((1 + 2 / 3) / 2 + 9 * 2 / 3 + (2 / 3 + 1 / 3) / 2 + 9 * 1 / 3)
    assert success_auc(scores) == pytest.approx(expected)
    assert success_auc([1.0, 1.0]) == pytest.approx(1.0)
    assert success_auc([0.0]) == pytest.approx(0.05 / 2)
    assert math.isnan(success_auc([])) and math.isnan(success_rate([], 0.5))


def test_auc_matches_sklearn_auc_of_the_success_curve() -> None:
    from sklearn.metrics import auc as sk_auc

    scores = np.random.default_rng(3).random(200)
    thresholds = [0.05 * i for i in range(21)]
    curve = [np.sum(scores >= t) / scores.size for t in thresholds]
    assert success_auc(scores) == pytest.approx(sk_auc(thresholds, curve))


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(0, 1), min_size=1, max_size=20),
    st.integers(0, 19),
    st.floats(0, 1),
)
def test_auc_is_monotone_in_the_ious(scores: list[float], index: int, increase: float) -> None:
    index %= len(scores)
    raised = list(scores)
    raised[index] = min(1.0, raised[index] + increase)
    assert success_auc(raised) >= success_auc(scores) - 1e-12
    assert 0.0 <= success_auc(scores) <= 1.0


# --- NSA and confidence --------------------------------------------------------------------------


def test_no_sound_area_counts_pixels_at_or_below_tau() -> None:
    maps = np.array([[[0.1, 0.5], [0.6, 0.9]], [[0.0, 0.0], [0.0, 1.0]]], np.float32)
    assert no_sound_area(maps, 0.5) == pytest.approx((2 / 4 + 3 / 4) / 2)
    assert math.isnan(no_sound_area(maps[:0], 0.5))


def test_top_fraction_confidence() -> None:
    smap = (np.arange(16, dtype=np.float32) / 15).reshape(4, 4)
    assert top_fraction_confidence(smap) == pytest.approx((12 + 13 + 14 + 15) / 4 / 15)
    odd = np.random.default_rng(0).random((3, 3))
    n = odd.size
    assert top_fraction_confidence(odd) == pytest.approx(np.sort(odd.ravel())[-n // 4 :].mean())
    assert top_fraction_confidence(np.zeros((4, 4))) == 0.0


# --- SLAVC detection metrics ---------------------------------------------------------------------

# conf, positive, iou: A hit, B negative, C mislocalised, D hit, E negative, F hit.
_CONF = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4]
_POS = [True, False, True, True, False, True]
_IOU = [0.8, 0.0, 0.3, 0.6, 0.0, 0.9]


def test_average_precision_hand_worked() -> None:
    # Thresholds 0.8, 0.7, 0.6, 0.5, 0.4 give (P, R) = (1/2, 1/4), (1/3, 1/3), (1/2, 2/3),
    # (2/5, 2/3), (1/2, 1); interpolated P is 1/2 throughout, so AP = 1/2 * (1 - 1/4).
    assert average_precision(_CONF, _IOU, _POS) == pytest.approx(0.375)
    # The full curve adds threshold 0.9 (P=1, R=1/4) and starts at recall 0.
    expected = 1.0 * 0.25 + 0.5 * (1 / 3 - 1 / 4) + 0.5 * (1 / 3) + 0.5 * (1 / 3)
    assert average_precision(_CONF, _IOU, _POS, full_curve=True) == pytest.approx(expected)


def test_max_f1_hand_worked() -> None:
    # Best at threshold 0.4: P = 3/6, R = 3/3 -> F1 = 2/3.
    assert max_f1(_CONF, _IOU, _POS) == pytest.approx(2 / 3)
    # With a stricter IoU no positive is a hit: F1 is 0 everywhere.
    assert max_f1(_CONF, _IOU, _POS, iou_threshold=0.95) == 0.0


def test_detection_metrics_need_a_positive() -> None:
    assert math.isnan(average_precision([0.3, 0.2], [0, 0], [False, False]))
    assert math.isnan(max_f1([0.3, 0.2], [0, 0], [False, False]))
    with pytest.raises(ValueError, match="same length"):
        average_precision([0.1], [0.5, 0.5], [True])


def _naive_pr(conf, ious, pos, thr, iou_thr=0.5):
    """SLAVC's calc_precision_recall, written as a plain loop."""
    tp = fp = fn = 0
    for c, i, p in zip(conf, ious, pos):
        if not p:
            fp += c >= thr
        elif c >= thr:
            tp, fp = tp + (i >= iou_thr), fp + (i < iou_thr)
        else:
            fn += 1
    return (1.0 if tp + fp == 0 else tp / (tp + fp)), (1.0 if tp + fn == 0 else tp / (tp + fn))


def _naive_ap(conf, ious, pos):
    pr = [_naive_pr(conf, ious, pos, t) for t in np.sort(np.array(conf))[:-1][::-1]]
    precision, recall = [p for p, _ in pr], [r for _, r in pr]
    pmax = [max(precision[i:]) for i in range(len(precision))]
    return sum(pmax[i] * (recall[i + 1] - recall[i]) for i in range(len(pmax) - 1))


def test_vectorised_detection_metrics_match_a_naive_loop_with_ties() -> None:
    rng = np.random.default_rng(7)
    conf = np.round(rng.random(80), 1)  # many ties
    ious = rng.random(80)
    pos = rng.random(80) < 0.6
    assert average_precision(conf, ious, pos) == pytest.approx(_naive_ap(conf, ious, pos))
    f1s = []
    for t in np.sort(conf):
        p, r = _naive_pr(conf, ious, pos, t)
        f1s.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    assert max_f1(conf, ious, pos) == pytest.approx(max(f1s))


# --- accumulator ---------------------------------------------------------------------------------


def _scores(sample_id: str, positive: bool, value: float, **changes) -> SampleScores:
    base = {
        "id": sample_id,
        "positive": positive,
        "iou": value if positive else None,
        "ciou": value if positive else None,
        "confidence": value,
        "nsa": None,
        "silent_objects": 0,
        "silent_hits": 0,
        "any_above_tau": False,
        "area_above_tau": 0.0,
    }
    base.update(changes)
    return SampleScores(**base)


def test_accumulator_reports_none_where_no_sample_qualifies() -> None:
    acc = MetricAccumulator()
    acc.update(_scores("a", True, 0.6))
    acc.update(_scores("b", True, 0.2))
    out = acc.compute()
    assert out["iou@0.5"] == 0.5 and out["ciou@0.3"] == 0.5 and out["ciou@0.5"] == 0.5
    assert out["nsa"] is None and out["silent_fp"] is None
    assert out["negative_fp"] is None and out["pia"] is None
    assert list(out) == [
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
    ]
    assert out["pointing"] is None and out["peak_auroc"] is None  # no object, no negative


def test_pointing_and_aurocs_from_known_scores() -> None:
    from ier.metrics import roc_auc, upper_quantile

    acc = MetricAccumulator()
    acc.update(_scores("p1", True, 0.5, peak=0.9, sounding_peaks=(0.9, 0.4), silent_peaks=(0.3,),
                       pointing_hits=1, pointing_tau_hits=1, pointing_objects=2,
                       pointing_area=0.5))  # fmt: skip
    acc.update(_scores("p2", True, 0.5, peak=0.6, sounding_peaks=(0.6,), silent_peaks=(0.7, 0.1),
                       pointing_hits=1, pointing_tau_hits=0, pointing_objects=1,
                       pointing_area=0.1))  # fmt: skip
    acc.update(_scores("n1", False, 0.5, peak=0.6))
    acc.update(_scores("n2", False, 0.5, peak=0.2))
    out = acc.compute()
    assert out["pointing"] == pytest.approx(2 / 3) and out["pointing_tau"] == pytest.approx(1 / 3)
    assert out["pointing_chance"] == pytest.approx(0.6 / 3)
    # sounding (0.9, 0.4, 0.6) vs silent (0.3, 0.7, 0.1): 7 of 9 pairs ordered right
    assert out["silent_auroc"] == pytest.approx(7 / 9)
    # positives' peaks (0.9, 0.6) vs negatives' (0.6, 0.2): 3 wins and one tie of 4 pairs
    assert out["peak_auroc"] == pytest.approx(3.5 / 4)
    assert roc_auc([1.0], []) is None
    # the calibration quantile: at most the fraction strictly above the threshold
    values = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.0]
    assert upper_quantile(values, 0.1) == 0.8 and upper_quantile(values, 0.05) == 0.9
    assert upper_quantile(values, 0.0) == 0.9 and upper_quantile([], 0.05) == 0.0


def test_accumulator_negatives_silent_objects_and_merge() -> None:
    left, right = MetricAccumulator(), MetricAccumulator()
    left.update(_scores("p", True, 0.9, nsa=0.8, silent_objects=2, silent_hits=1))
    right.update(_scores("n1", False, 0.7, nsa=0.6, any_above_tau=True, area_above_tau=0.5))
    right.update(_scores("n2", False, 0.1, nsa=1.0, area_above_tau=0.0))
    left.merge(right)
    assert len(left) == 3
    out = left.compute(ciou_thresholds=(0.7,))
    assert "ciou@0.7" in out and "ciou@0.3" not in out
    assert out["nsa"] == pytest.approx(0.8)
    assert out["silent_fp"] == pytest.approx(0.5)
    assert out["negative_fp"] == pytest.approx(0.5) and out["pia"] == pytest.approx(0.25)
    assert out["iou@0.5"] == 1.0  # negatives do not enter the IoU success rate
    left.reset()
    assert len(left) == 0 and left.compute()["ap"] is None


def test_all_gather_is_a_no_op_without_distributed() -> None:
    acc = MetricAccumulator()
    acc.update(_scores("a", True, 0.6))
    acc.all_gather()
    assert [s.id for s in acc.scores] == ["a"]


def _gather_worker(rank: int, port: int, out_dir: str) -> None:
    import json

    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    acc = MetricAccumulator()
    acc.update(_scores(f"r{rank}", True, 0.3 + 0.4 * rank))
    acc.all_gather()
    with open(f"{out_dir}/{rank}.json", "w") as handle:
        json.dump({"ids": [s.id for s in acc.scores], "iou": acc.compute()["iou@0.5"]}, handle)
    dist.destroy_process_group()


@pytest.mark.slow
def test_all_gather_joins_two_gloo_ranks(tmp_path) -> None:
    import json
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    mp.spawn(_gather_worker, args=(port, str(tmp_path)), nprocs=2)
    for rank in (0, 1):
        result = json.loads((tmp_path / f"{rank}.json").read_text())
        assert result == {"ids": ["r0", "r1"], "iou": 0.5}
