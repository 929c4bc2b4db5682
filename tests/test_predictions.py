"""Tests for the predictions ``.npz`` format: round trip and every kind of bad file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ier.predictions import Predictions, PredictionsError, load_predictions, save_predictions


def _preds(n: int = 3, classes: tuple[str, ...] = ("cello", "violin")) -> Predictions:
    rng = np.random.default_rng(0)
    maps = rng.random((n, len(classes), 7, 5), dtype=np.float32)
    return Predictions(ids=[f"s{i}" for i in range(n)], classes=classes, maps=maps)


@pytest.mark.parametrize("compress", [False, True])
def test_round_trip(tmp_path: Path, compress: bool) -> None:
    preds = _preds()
    path = save_predictions(tmp_path / "out" / "p.npz", preds, compress=compress)
    loaded = load_predictions(path)
    assert loaded.ids == ("s0", "s1", "s2")
    assert loaded.classes == ("cello", "violin")
    assert loaded.maps.dtype == np.float32
    np.testing.assert_array_equal(loaded.maps, preds.maps)
    assert loaded.scores is None
    assert loaded.index_of("s2") == 2 and loaded.index_of("zz") is None
    np.testing.assert_array_equal(loaded.map_for("s1"), preds.maps[1])
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["p.npz"]


def test_round_trip_with_scores_and_agnostic_class(tmp_path: Path) -> None:
    maps = np.zeros((2, 1, 4, 4), dtype=np.float64)  # float64 input is cast to float32
    preds = Predictions(ids=("a", "b"), classes=("*",), maps=maps, scores=[[0.2], [1.0]])
    assert preds.class_agnostic and preds.maps.dtype == np.float32
    loaded = load_predictions(save_predictions(tmp_path / "p.npz", preds))
    np.testing.assert_allclose(loaded.scores, [[0.2], [1.0]])
    assert loaded.class_agnostic


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"ids": ["a", "a"]}, "duplicates"),
        ({"classes": ("*", "dog")}, "only class"),
        ({"classes": ("dog", "dog")}, "`classes` has duplicates"),
        ({"maps": np.full((2, 2, 3, 3), 1.5, np.float32)}, "[0, 1]"),
        ({"maps": np.full((2, 2, 3, 3), np.nan, np.float32)}, "non-finite"),
        ({"maps": np.zeros((2, 2, 3), np.float32)}, "(N, C, H, W)"),
        ({"maps": np.zeros((2, 2, 3, 3), np.uint8)}, "float32"),
        ({"maps": np.zeros((3, 2, 3, 3), np.float32)}, "3 rows"),
        ({"maps": np.zeros((2, 1, 3, 3), np.float32)}, "1 channels"),
        ({"scores": np.zeros((2, 3), np.float32)}, "`scores`"),
    ],
)
def test_constructor_rejects_bad_arrays(kwargs: dict, message: str) -> None:
    args = {
        "ids": ["a", "b"],
        "classes": ("dog", "cat"),
        "maps": np.zeros((2, 2, 3, 3), np.float32),
    }
    args.update(kwargs)
    with pytest.raises(PredictionsError) as info:
        Predictions(**args)
    assert message in str(info.value)


def test_load_rejects_bad_files(tmp_path: Path) -> None:
    with pytest.raises(PredictionsError, match="not found"):
        load_predictions(tmp_path / "none.npz")
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip file at all")
    with pytest.raises(PredictionsError, match="not a readable"):
        load_predictions(junk)
    ok = {
        "ids": np.array(["a"]),
        "classes": np.array(["*"]),
        "maps": np.zeros((1, 1, 2, 2), np.float32),
    }
    cases = {
        "missing.npz": ({k: v for k, v in ok.items() if k != "maps"}, "missing array"),
        "f64.npz": ({**ok, "maps": np.zeros((1, 1, 2, 2))}, "float32"),
        "ids.npz": ({**ok, "ids": np.array([1])}, "strings"),
        "obj.npz": ({**ok, "ids": np.array(["a"], dtype=object)}, "not a readable"),
        "range.npz": ({**ok, "maps": -np.ones((1, 1, 2, 2), np.float32)}, "[0, 1]"),
    }
    for name, (arrays, message) in cases.items():
        np.savez(tmp_path / name, **arrays)
        with pytest.raises(PredictionsError) as info:
            load_predictions(tmp_path / name)
        assert message in str(info.value) and name in str(info.value), (name, info.value)


def test_predictions_error_is_an_ier_error_importable_from_both_modules() -> None:
    import ier.errors
    import ier.predictions

    assert ier.predictions.PredictionsError is ier.errors.PredictionsError
    assert issubclass(PredictionsError, ier.errors.IerError)
    with pytest.raises(ier.errors.IerError, match="duplicates"):
        Predictions(ids=["a", "a"], classes=("*",), maps=np.zeros((2, 1, 2, 2), np.float32))


def test_constant_predictions_are_flat_maps_and_scores() -> None:
    from ier.predictions import constant_predictions

    preds = constant_predictions(["a", "b"], ["dog", "cat"], 0.25, side=4)
    assert preds.maps.shape == (2, 2, 4, 4) and preds.maps.dtype == np.float32
    assert np.all(preds.maps == 0.25) and np.all(preds.scores == 0.25)
    assert preds.classes == ("dog", "cat") and preds.index_of("b") == 1
    with pytest.raises(PredictionsError, match=r"lie in \[0, 1\], got 1.5"):
        constant_predictions(["a"], ["*"], 1.5)
