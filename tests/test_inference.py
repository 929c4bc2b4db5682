"""Prediction: maps for manifest samples, checkpoint evaluation via ``evaluate``, AII metrics."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from ier.checkpoint import save_model
from ier.data.datasets import load_split, read_classes
from ier.data.manifest import read_manifest
from ier.data.toy import build_toy_benchmark
from ier.evaluate import evaluate
from ier.inference import category_probabilities, evaluate_checkpoint, predict
from ier.models import create_model, model_config
from ier.predictions import load_predictions


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_toy_benchmark(tmp_path_factory.mktemp("toy"), n_train=8, n_test=6)


@pytest.fixture(scope="module")
def model() -> torch.nn.Module:
    torch.manual_seed(0)
    model = create_model(model_config("tiny", num_clusters=4)).eval()
    gen = torch.Generator().manual_seed(0)
    model.set_prototypes(
        torch.randn(4, model.embed_dim, generator=gen),
        torch.randn(4, model.embed_dim, generator=gen),
    )
    model.set_class_mapping(("red", "green", "blue"), [0, 1, 2, 2])
    return model


def test_predict_from_samples_equals_predict_from_cached_dataset(toy: Path, model) -> None:
    samples = read_manifest(toy / "test/wild/manifest.jsonl")
    direct = predict(model, samples, batch_size=4)
    dataset = load_split(
        toy, "test/wild", classes=read_classes(toy), input_size=64, sample_rate=16_000,
        num_samples=16_000, train=False,
    )  # fmt: skip
    cached = predict(model, dataset, batch_size=5)
    assert direct.ids == tuple(s.id for s in samples) and direct.classes == ("red", "green", "blue")
    assert direct.maps.shape == (6, 3, 4, 4)
    np.testing.assert_allclose(direct.maps, cached.maps, atol=1e-3)  # float16 audio cache
    single = predict(model, samples, batch_size=4, single_source=True)
    assert single.classes == ("*",) and single.maps.shape == (6, 1, 4, 4)


def test_category_probabilities_sum_each_categorys_clusters(model) -> None:
    scores = torch.tensor([[0.0, 0.0, 0.0, 0.0], [1.0, 0.0, 0.0, 0.0]])
    q = category_probabilities(model, scores)
    np.testing.assert_allclose(q[0], [0.25, 0.25, 0.5])  # blue owns clusters 2 and 3
    e = np.exp(10.0)  # tau_a = 0.1
    np.testing.assert_allclose(q[1], np.array([e, 1, 2]) / (e + 3), rtol=1e-5)


def test_evaluate_checkpoint_writes_predictions_and_metrics(toy: Path, model, tmp_path) -> None:
    ckpt = save_model(tmp_path / "model.safetensors", model, model_config=model.config)
    out = tmp_path / "eval"
    results = evaluate_checkpoint(ckpt, toy, out_dir=out, batch_size=4)
    assert set(results) == {"test/solo", "test/wild"}
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk.keys() == results.keys()
    # The same numbers as `ier evaluate --predictions` on the written files (one code path).
    for split, name in (("test/solo", "solo"), ("test/wild", "wild")):
        preds = load_predictions(out / f"predictions_{name}.npz")
        again = evaluate(preds, read_manifest(toy / split / "manifest.jsonl"))
        for key in ("auc", "ciou_auc", "nsa"):
            assert again[key] == results[split][key]
    assert load_predictions(out / "predictions_solo.npz").classes == ("*",)  # single-source map
    solo, wild = results["test/solo"], results["test/wild"]
    assert 0.0 <= solo["aii_nmi"] <= 1.0
    assert 0.0 <= wild["aii_precision"] <= 1.0 and 0.0 <= wild["aii_recall"] <= 1.0
    assert wild["aii_map"] is None or 0.0 <= wild["aii_map"] <= 1.0


def test_evaluate_checkpoint_without_out_dir_writes_nothing(toy: Path, model, tmp_path) -> None:
    ckpt = save_model(tmp_path / "m.safetensors", model, model_config=model.config)
    results = evaluate_checkpoint(ckpt, toy, splits=["test/solo"], out_dir=None)
    assert list(results) == ["test/solo"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.safetensors"]


def test_evaluate_checkpoint_object_prior_override(toy: Path, model, tmp_path) -> None:
    from ier.errors import ConfigError
    from ier.inference import set_object_prior

    ckpt = tmp_path / "m.safetensors"
    save_model(ckpt, model, model_config=model.config)
    evaluate_checkpoint(ckpt, toy, splits=["test/solo"], out_dir=tmp_path / "plain")
    evaluate_checkpoint(
        ckpt, toy, splits=["test/solo"], out_dir=tmp_path / "gated", object_prior=1.0
    )
    plain = load_predictions(tmp_path / "plain/predictions_solo.npz").maps
    gated = load_predictions(tmp_path / "gated/predictions_solo.npz").maps
    assert plain.shape == gated.shape and (gated <= plain + 1e-6).all()
    assert (gated.reshape(len(gated), -1).min(axis=1) == 0).all()  # least object-like cell off
    assert (plain.reshape(len(plain), -1).min(axis=1) > 0).all()
    with pytest.raises(ConfigError, match="does not support"):
        set_object_prior(create_model(model_config("tiny", name="sop")), 0.5)
    with pytest.raises(ConfigError, match=r"in \[0, 1\]"):
        set_object_prior(model, -0.1)


def test_reference_maps_benchmark_scores_uniform_and_objectness(toy: Path, model, tmp_path) -> None:
    import subprocess
    import sys

    ckpt = tmp_path / "m.safetensors"
    save_model(ckpt, model, model_config=model.config)
    script = Path(__file__).parents[1] / "benchmarks/reference_maps.py"
    out = tmp_path / "ref.json"
    run = subprocess.run(
        [sys.executable, str(script), "--data", str(toy), "--checkpoint", str(ckpt),
         "--splits", "test/solo", "--out", str(out)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    results = json.loads(out.read_text())
    assert results["uniform"]["test/solo"]["iou@0.5"] == 0.0  # 0.5 everywhere: the box never wins
    assert 0.0 <= results["objectness"]["test/solo"]["auc"] <= 1.0
    assert "objectness test/solo" in " ".join(run.stdout.split())
    # The uniform row needs no checkpoint.
    run = subprocess.run(
        [sys.executable, str(script), "--data", str(toy), "--splits", "test/solo", "--out",
         str(out)], capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    alone = json.loads(out.read_text())
    assert alone == {"uniform": results["uniform"]} and "objectness" not in run.stdout


def test_pointing_game_diagnostic_runs(toy: Path, model, tmp_path) -> None:
    import subprocess
    import sys

    ckpt = tmp_path / "m.safetensors"
    save_model(ckpt, model, model_config=model.config)
    script = Path(__file__).parents[1] / "benchmarks/pointing_game.py"
    run = subprocess.run(
        [sys.executable, str(script), "--data", str(toy), "--checkpoint", str(ckpt),
         "--oracle-sizes", "64", "--oracle-prototypes", "train/solo"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert run.returncode == 0, run.stderr
    lines = run.stdout.splitlines()
    solo = next(line for line in lines if "test/solo" in line)
    assert "av=" in solo and "objectness=" in solo and "chance=" in solo
    oracle = [line for line in lines if line.startswith("oracle-prototype ceiling")]
    assert oracle and all("prototypes from train/solo" in line for line in oracle)


def test_overlay_counts_score_windows_against_the_manifest() -> None:
    """benchmarks/overlay_counts.py: a window is marked when some class is drawn, a labelled hit
    when a drawn class peaks inside its own sounding object's box, an any-label hit when it peaks
    inside any sounding object's box; silent objects never count."""
    import importlib.util
    from types import SimpleNamespace as NS

    script = Path(__file__).parents[1] / "benchmarks/overlay_counts.py"
    spec = importlib.util.spec_from_file_location("overlay_counts", script)
    counts_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(counts_module)

    def item(state: str, peak: tuple[float, float]) -> NS:
        return NS(state=state, peak=peak)

    on, off = "sounding-on-screen", "absent"
    record = NS(objects=(NS(label="violin", box=(0.2, 0.2, 0.5, 0.5), sounding=True),
                         NS(label="cat", box=(0.6, 0.6, 0.9, 0.9), sounding=False)))  # fmt: skip
    result = NS(classes=("violin", "cat"), windows=[
        NS(classes=(item(on, (0.3, 0.3)), item(off, (0.7, 0.7)))),  # labelled hit
        NS(classes=(item(off, (0.3, 0.3)), item(on, (0.4, 0.4)))),  # cat drawn on the violin
        NS(classes=(item(off, (0.3, 0.3)), item(on, (0.7, 0.7)))),  # the silent cat: no hit
        NS(classes=(item(off, (0.3, 0.3)), item(off, (0.7, 0.7)))),  # nothing drawn
    ])  # fmt: skip
    assert counts_module.count_clip(result, record) == {
        "windows": 4, "marked": 3, "hit": 1, "any_hit": 2}  # fmt: skip
    # the strongest candidate, drawn or not: the silent cat's presence is highest -> wrong
    entry = {"score": 0.0, "peak_value": 0.0, "audio": None, "state": "absent"}
    classes = [{**entry, "presence": 0.4}, {**entry, "presence": 0.6}]
    document = {"model": {"classes": ["violin", "cat"]}, "settings": {"score_threshold": 0.9},
                "windows": [{"time_seconds": 0.5, "classes": classes}]}  # fmt: skip
    record.sounding_labels = ("violin",)
    assert not counts_module.closest_is_sounding(document, record)
    document["windows"][0]["classes"][0]["presence"] = 0.7
    assert counts_module.closest_is_sounding(document, record)
    assert not counts_module.closest_is_sounding({**document, "windows": []}, record)


def test_overlay_sweep_counts_equal_overlay_counts_at_every_threshold() -> None:
    """benchmarks/overlay_sweep.py: from one pass's evidence, the counts at any threshold equal
    what overlay_counts gives for the states drawn at that threshold, and the budget threshold
    marks at most that share of the windows (and the lowest such threshold)."""
    import importlib.util
    from types import SimpleNamespace as NS

    def load(name):
        spec = importlib.util.spec_from_file_location(
            name, Path(__file__).parents[1] / f"benchmarks/{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module

    sweep, counts = load("overlay_sweep"), load("overlay_counts")
    record = NS(objects=(NS(label="violin", box=(0.2, 0.2, 0.5, 0.5), sounding=True),
                         NS(label="cat", box=(0.6, 0.6, 0.9, 0.9), sounding=False)))  # fmt: skip
    cells = [((0.9, (0.3, 0.3)), (0.1, (0.7, 0.7))),   # violin strong, on the violin
             ((0.2, (0.3, 0.3)), (0.5, (0.4, 0.4))),   # cat on the violin
             ((0.3, (0.9, 0.1)), (0.6, (0.7, 0.7))),   # the silent cat
             ((0.05, (0.3, 0.3)), (0.0, (0.7, 0.7)))]  # fmt: skip
    result = NS(classes=("violin", "cat"), windows=[
        NS(classes=[NS(presence=p, audio=None, score=0.0, peak_value=0.0, peak=xy)
                    for p, xy in window]) for window in cells])  # fmt: skip
    rows = sweep.window_rows(result, record)
    assert rows[0] == [(0.9, True, True, True), (0.1, False, False, False)]
    for tau in (0.0, 0.05, 0.2, 0.45, 0.55, 0.7, 0.95):
        drawn = NS(classes=result.classes, windows=[NS(classes=[
            NS(state="sounding-on-screen" if p >= tau else "absent", peak=xy) for p, xy in w])
            for w in cells])  # fmt: skip
        expected = counts.count_clip(drawn, record)
        got = sweep.counts_at([rows], tau)
        assert {k: got[k] for k in expected} == expected, tau
        assert got["clips_most_hit"] == (expected["hit"] * 2 > 4)
    # the oracle decision draws the violin alone: it peaks on the violin in windows 1, 2 and 4
    assert sweep.counts_at([rows], None) == {"clips": 1, "windows": 4, "marked": 4, "hit": 3,
                                             "any_hit": 3, "clips_marked": 1,
                                             "clips_most_hit": 1}  # fmt: skip
    # window maxima 0.9, 0.5, 0.6, 0.05: at most 25 % marked -> just above 0.6 (only 0.9 drawn)
    tau = sweep.budget_threshold([rows], 0.25)
    assert 0.6 < tau < 0.6001 and sweep.counts_at([rows], tau)["marked"] == 1
    assert sweep.budget_threshold([rows], 0.0) > 0.9
    assert sweep.budget_threshold([rows], 1.0) == 0.0


def test_heldout_sides_summary(monkeypatch) -> None:
    """benchmarks/heldout_sides.py: per condition, the window AUROC of the highest evidence (wild
    against no-sound windows), the counts at the stored threshold and at the threshold marking 10 %
    of the condition's own no-sound windows, and the oracle decision."""
    import importlib.util

    monkeypatch.syspath_prepend(str(Path(__file__).parents[1] / "benchmarks"))
    spec = importlib.util.spec_from_file_location(
        "heldout_sides", Path(__file__).parents[1] / "benchmarks/heldout_sides.py")
    sides = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sides)
    # rows: (evidence, labelled hit, any-label hit, the class sounds); one class per window
    wild = [[[(0.9, True, True, True)], [(0.4, False, True, True)]],
            [[(0.3, True, True, True)], [(0.8, False, False, False)]]]
    negative = [[[(e, False, False, False)] for e in (0.1, 0.2, 0.35, 0.5, 0.05)],
                [[(e, False, False, False)] for e in (0.0, 0.15, 0.25, 0.3, 0.45)]]
    out = sides.summarise(wild, negative, stored=0.6)
    # wild maxima 0.9, 0.4, 0.3, 0.8 against ten no-sound maxima:
    # 10 + 8 + 6.5 (a tie) + 10 of 40 pairs
    assert out["window_auroc"] == pytest.approx(34.5 / 40)
    assert out["wild_at_stored"]["marked"] == 2 and out["wild_at_stored"]["hit"] == 1
    assert out["negative_at_stored"]["marked"] == 0
    assert 0.45 < out["own_budget_threshold"] <= 0.5  # marks 1 of the 10 no-sound windows
    assert out["wild_at_own_budget"]["hit"] == 1 and out["wild_at_own_budget"]["marked"] == 2
    assert out["wild_oracle_decision"]["hit"] == 2 and out["wild_oracle_decision"]["marked"] == 3


def test_imagenet_pointing_known_values() -> None:
    """benchmarks/imagenet_pointing.py: a category's map is log-sum of its ImageNet classes'
    probabilities per cell; a hit is its peak inside the sounding object's box; the
    training-photo mapping picks the ImageNet classes most probable inside the boxes."""
    import importlib.util
    from types import SimpleNamespace as NS

    from ier.scenes.catalog import class_names

    script = Path(__file__).parents[1] / "benchmarks/imagenet_pointing.py"
    spec = importlib.util.spec_from_file_location("imagenet_pointing", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert set(class_names()) <= set(module.NAME_TO_IMAGENET)  # every built-in category named

    def obj(label, box, sounding=True):
        return NS(label=label, box=box, sounding=sounding)

    classes = ["a", "b"]
    samples = [NS(objects=[obj("a", (0.0, 0.0, 0.5, 0.5))]),  # top-left quadrant
               NS(objects=[obj("b", (0.5, 0.5, 1.0, 1.0)), obj("a", (0.0, 0.0, 0.5, 0.5), False)])]
    logp = torch.full((2, 4, 2, 2), 0.1).log()  # 4 "ImageNet" classes, 2 x 2 cells
    logp[0, 1, 0, 0] = np.log(0.7)  # clip 0: ImageNet class 1 top-left (inside a's box)
    logp[1, 3, 0, 0] = np.log(0.7)  # clip 1: ImageNet class 3 top-left (outside b's box)
    logp[1, 2, 1, 1] = np.log(0.6)  # ... class 2 bottom-right (inside b's box)
    # a -> {1}: hit on clip 0; b -> {3}: peak top-left, miss; the silent a of clip 1 is not scored
    assert module.pointing(samples, logp, {"a": [1], "b": [3]}, classes) == 0.5
    assert module.pointing(samples, logp, {"a": [1], "b": [2]}, classes) == 1.0
    assert module.pointing(samples, logp, {"a": [1], "b": [2, 3]}, classes) == 0.5  # 0.7+0.1 tl
    mapping = module.train_photo_mapping(samples, logp, classes, k=1)
    assert mapping == {"a": [1], "b": [2]}
    with pytest.raises(SystemExit, match=r"no object of \['b'\]"):
        module.train_photo_mapping(samples[:1], logp[:1], classes, k=1)


def test_offscreen_filter_diagnostic_known_values() -> None:
    """benchmarks/offscreen_filter.py: each (clip, category) pair is grouped by its truth, and
    per group it reports empty masks, mean w, the teacher's mass before and after the filter,
    and the masks a floor θ_abs would empty (those whose visual peak is at most θ_abs)."""
    import importlib.util
    from types import SimpleNamespace as NS

    script = Path(__file__).parents[1] / "benchmarks/offscreen_filter.py"
    spec = importlib.util.spec_from_file_location("offscreen_filter", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    classes = ["a", "b", "c"]
    clip = NS(sounding_labels=("a",), visible_labels=("a", "c"), offscreen=("b",))
    empty = NS(sounding_labels=(), visible_labels=(), offscreen=())
    assert [module.group_of(clip, n) for n in classes] == ["on-screen", "off-screen", "silent"]
    assert module.group_of(empty, "a") == "absent"
    outputs = {
        "w": np.array([[0.2, 0.0, 0.1], [0.3, 0.3, 0.3]]),
        "peak": np.array([[0.5, 0.15, 0.25], [0.05, 0.35, 0.45]]),
        "p_a": np.array([[0.5, 0.4, 0.1], [0.2, 0.3, 0.5]]),
        "p_av": np.array([[0.8, 0.0, 0.2], [0.2, 0.3, 0.5]]),
    }
    r = module.summarize([clip, empty], classes, outputs)
    assert r["off-screen"]["pairs"] == 1 and r["off-screen"]["w_zero_share"] == 1.0
    assert r["off-screen"]["p_a_mass"] == pytest.approx(0.4)  # the filter erased it ...
    assert r["off-screen"]["p_av_mass"] == pytest.approx(0.0)
    assert r["on-screen"]["p_av_mass"] == pytest.approx(0.8)  # ... and moved it on screen
    assert r["absent"]["pairs"] == 3 and r["absent"]["clips"] == 1
    assert r["absent"]["p_a_mass"] == pytest.approx(1.0)  # all of the empty clip's mass
    assert r["absent"]["w_mean"] == pytest.approx(0.3) and r["absent"]["w_zero_share"] == 0.0
    # peaks of the absent pairs: 0.05, 0.35, 0.45
    assert r["absent"]["empty_at_theta_abs"]["0.1"] == pytest.approx(1 / 3)
    assert r["absent"]["empty_at_theta_abs"]["0.4"] == pytest.approx(2 / 3)
    assert r["on-screen"]["empty_at_theta_abs"]["0.5"] == 1.0  # peak 0.5 <= 0.5: no cell above
