"""``ier bench``: run planning, per-run configs, tables and figures from known records, the
uniform reference row's known values, and ``ier bench --preset tiny`` end to end through the CLI
(every method and ablation, then skip and resume) on the small benchmark."""

from __future__ import annotations

import contextlib
import io
import json
import re
from pathlib import Path

import pytest
from PIL import Image

from ier.bench import IER_ABLATIONS, BenchConfig, experiment_for, method_order, plan_runs
from ier.bench.figures import BAR_METRICS, bar_chart
from ier.bench.plan import BENCH_FILE, RECORD_FILE
from ier.bench.runner import _check_out_dir
from ier.bench.tables import markdown
from ier.cli import main
from ier.devices import usable_cores
from ier.errors import ConfigError


def fake_record(name: str, *, ablation: bool = False, value: float = 0.5, seed: int = 0) -> dict:
    splits = ("test/solo", "test/synthetic", "test/duet", "test/wild", "test/negative")
    metrics = {
        s: {"iou@0.5": value, "auc": value, "ciou@0.3": value, "ciou_auc": value, "nsa": None,
            "silent_fp": 0.25, "negative_fp": 0.125, "aii_nmi": 0.809}
        for s in splits
    }  # fmt: skip
    return {
        "name": name, "method": name.split("-")[0], "overrides": [], "label": name,
        "ablation": ablation, "preset": "tiny", "train_seconds": 1.25, "eval_seconds": 0.5,
        "resumed": False, "metrics": metrics, "extended": {"ap": value, "max_f1": None},
        "seed": seed, "run_dir": f"{name}-seed{seed}",
    }  # fmt: skip


# --------------------------------------------------------------------------- planning and configs


def test_plan_runs_orders_methods_then_ablations() -> None:
    names = [r.name for r in plan_runs(BenchConfig(preset="tiny"))]
    assert names == list(method_order()) + [r.name for r in IER_ABLATIONS]
    subset = plan_runs(BenchConfig(preset="tiny", methods=("ier", "ots")))
    assert [r.name for r in subset][:2] == ["ots", "ier"] and len(subset) == 2 + len(IER_ABLATIONS)
    assert [r.name for r in plan_runs(BenchConfig(methods=("dsol",)))] == ["dsol"]
    assert [r.name for r in plan_runs(BenchConfig(methods=("ier",), ablations=False))] == ["ier"]


def test_bench_config_rejects_unknown_methods_and_presets() -> None:
    with pytest.raises(ConfigError, match="unknown method"):
        BenchConfig(methods=("nope",))
    with pytest.raises(ConfigError, match="unknown preset"):
        BenchConfig(preset="huge")
    with pytest.raises(ConfigError, match="--seeds"):
        BenchConfig(overrides=("seed=3",))
    with pytest.raises(ConfigError, match="distinct"):
        BenchConfig(seeds=(1, 1))


def test_experiment_for_applies_ablations_and_tiny_smoke_limits() -> None:
    config = BenchConfig(preset="tiny", overrides=("stages.0.lr=0.002",))
    by_name = {r.name: r for r in IER_ABLATIONS}
    no_aii = experiment_for(by_name["ier-no-aii"], config, seed=3)
    assert no_aii.model.ier.use_aii is False and no_aii.seed == 3
    assert no_aii.stages[0].lr == 0.002
    assert all(s.epochs == 1 and s.max_steps == 3 for s in no_aii.stages)
    assert no_aii.eval.at_end is False
    assert no_aii.init_from == "" and no_aii.start_stage == 0  # no runs folder: trains it all
    curriculum = experiment_for(by_name["ier-aii-no-curriculum"], config)
    assert [s.curriculum for s in curriculum.stages if s.name == "aii"] == [False]
    assert experiment_for(by_name["ier-no-silent-filter"], config).model.ier.silent_filter is False
    offscreen = experiment_for(by_name["ier-no-offscreen-filter"], config)
    assert offscreen.model.ier.offscreen_filter is False
    no_teacher = experiment_for(by_name["ier-no-referrer"], config)
    assert [s.lambda_cd for s in no_teacher.stages] == [1.0, 1.0, 0.0]  # stage 2 on L_av alone
    quick = experiment_for(plan_runs(BenchConfig(methods=("dsol",)))[0], BenchConfig())
    assert all(s.max_steps == 0 for s in quick.stages) and quick.stages[0].epochs > 1


def test_out_dir_must_be_new_or_the_same_bench(tmp_path) -> None:
    (tmp_path / "foreign").mkdir()
    (tmp_path / "foreign" / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        _check_out_dir(tmp_path / "foreign", BenchConfig(preset="tiny"), tmp_path)
    _check_out_dir(tmp_path / "bench", BenchConfig(preset="tiny"), tmp_path)
    assert (tmp_path / "bench" / BENCH_FILE).is_file()
    _check_out_dir(tmp_path / "bench", BenchConfig(preset="tiny"), tmp_path)  # same bench: fine
    with pytest.raises(ConfigError, match="preset 'tiny'"):
        _check_out_dir(tmp_path / "bench", BenchConfig(preset="quick"), tmp_path)
    with pytest.raises(ConfigError, match="never mixed"):
        _check_out_dir(tmp_path / "bench", BenchConfig(preset="tiny"), tmp_path / "other")
    # A quick bench from before the quick bench trained at ``short`` is not resumed into a new one.
    (tmp_path / "old").mkdir()
    (tmp_path / "old" / BENCH_FILE).write_text(json.dumps({"preset": "quick",
                                                           "data_dir": str(tmp_path)}))  # fmt: skip
    with pytest.raises(ConfigError, match="training preset 'quick'"):
        _check_out_dir(tmp_path / "old", BenchConfig(preset="quick"), tmp_path)


# --------------------------------------------------------------------------- tables and figures


def test_markdown_tables_hold_every_row_and_formatted_values(tmp_path) -> None:
    records = [fake_record("ier"), fake_record("ots"), fake_record("ier-no-aii", ablation=True)]
    text = markdown(records, tmp_path, BenchConfig(preset="tiny"))
    localization = text.split("## Localization")[1].split("##")[0]
    rows = [line for line in localization.splitlines() if line.startswith("| ")][1:]
    assert [r.split("|")[1].strip() for r in rows] == ["ots", "ier", "↳ ier-no-aii"]
    assert rows[0].count("50.0") == 8  # every localization cell of a 0.5 record
    interference = text.split("## Interference")[1].split("##")[0]
    assert "| ots | 25.0 | 25.0 | – | – | – | 12.5 | 50.0 | – |" in interference
    aii = text.split("## Audio-Instance-Identifier")[1].split("##")[0]
    assert re.search(r"\| IEr? \| 0\.809", aii) or "| ier | 0.809" in aii
    assert "| ↳ ier-no-aii | 0.809" in aii
    wall = text.split("## Wall time")[1]
    assert "| ots | 1 | 1.2 | 0.5 | 1.8 |" in wall
    assert "| **All runs** | | 3.8 (sum) | 1.5 (sum) | 5.2 (0.00 h) |" in wall
    assert "±" not in text and "▲" not in text  # one seed: plain values, no marks


def test_seeds_give_mean_and_std_and_mark_differences_beyond_the_spread(tmp_path) -> None:
    records = [fake_record("ier", value=v, seed=k) for k, v in enumerate((0.50, 0.52, 0.54))]
    records += [fake_record("ots", value=v, seed=k) for k, v in enumerate((0.30, 0.31, 0.32))]
    records += [fake_record("dsol", value=v, seed=k) for k, v in enumerate((0.46, 0.53, 0.60))]
    text = markdown(records, tmp_path, BenchConfig(preset="tiny", seeds=(0, 1, 2)))
    localization = text.split("## Localization")[1].split("##")[0]
    rows = {line.split("|")[1].strip(): line for line in localization.splitlines()
            if line.startswith("| ") and "---" not in line}  # fmt: skip
    assert "| 52.0 ± 2.0 |" in rows["ier"]  # mean and sample std of 50, 52, 54
    assert "31.0 ± 1.0 ▼" in rows["ots"]  # 21 points below, spread 3: beyond the spread
    assert "53.0 ± 7.0 |" in rows["dsol"] and "▲" not in rows["dsol"]  # within the spread
    assert "Training seeds: 0, 1, 2" in text and "▲ / ▼" in text
    assert "| ots | 3 | 1.2 ± 0.0 | 0.5 ± 0.0 | 5.2 |" in text.split("## Wall time")[1]


def test_reference_rows_head_the_metric_tables_only(tmp_path) -> None:
    reference = {**fake_record("uniform", value=0.0), "label": "Uniform map", "reference": True}
    reference.pop("train_seconds"), reference.pop("eval_seconds")
    text = markdown([fake_record("ier")], tmp_path, BenchConfig(preset="tiny"), [reference])
    for section in ("## Localization", "## Interference"):
        rows = [line for line in text.split(section)[1].split("##")[0].splitlines()
                if line.startswith("| ")][1:]  # fmt: skip
        assert [r.split("|")[1].strip() for r in rows] == ["Uniform map", "ier"]
    assert "Uniform map" not in text.split("## Wall time")[1]
    assert "chance level" in text
    assert "chance level" not in markdown([fake_record("ier")], tmp_path, BenchConfig("tiny"))


def test_uniform_reference_scores_each_splits_chance(small_benchmark) -> None:
    from ier.bench.diagnostics import read_test_samples, uniform_reference
    from ier.data.datasets import read_classes, split_manifest
    from ier.data.manifest import read_manifest

    record = uniform_reference(read_test_samples(small_benchmark), read_classes(small_benchmark))
    assert record["reference"] and set(record["metrics"]) >= {"test/solo", "test/negative"}
    # An all-on map's IoU with the sounding box is the box's area, so the solo AUC (the mean
    # success rate over IoU thresholds) is the mean box area, up to the 0.05 threshold step.
    areas = []
    for sample in read_manifest(split_manifest(small_benchmark, "test/solo")):
        (box,) = [o.box for o in sample.objects if o.sounding]
        areas.append((box[2] - box[0]) * (box[3] - box[1]))
    solo = record["metrics"]["test/solo"]
    assert solo["auc"] == pytest.approx(sum(areas) / len(areas), abs=0.03)
    big = sum(a >= 0.5 for a in areas) / len(areas)  # boxes an all-on map covers at IoU >= 0.5
    assert solo["iou@0.5"] == pytest.approx(big, abs=0.05)
    # 0.5 never exceeds tau = 0.5: no false positive anywhere, every non-sounding area is dark.
    assert record["metrics"]["test/negative"]["negative_fp"] == 0.0
    assert record["metrics"]["test/wild"]["silent_fp"] == 0.0
    assert record["metrics"]["test/wild"]["nsa"] == 1.0
    assert record["extended"]["n"] == 64


def test_bench_quick_trains_every_method_at_the_short_preset() -> None:
    config = BenchConfig(preset="quick")
    for run in plan_runs(config):
        cfg = experiment_for(run, config)
        assert cfg.preset == "short" and cfg.model.input_size == 128
        assert all(s.max_steps == 0 for s in cfg.stages)
    # every method gets IEr's passes over each split (12,000 clips of the default benchmark)
    runs = {r.name: r for r in plan_runs(config)}
    ier, ots = (experiment_for(runs[name], config) for name in ("ier", "ots"))
    solo = [sum(s.epochs for s in c.stages if s.split == "train/solo") for c in (ier, ots)]
    wild = [sum(s.epochs for s in c.stages if s.split == "train/unconstrained") for c in (ier, ots)]
    assert solo == [3, 3] and wild == [1, 1]


def test_ablations_start_from_the_full_runs_stage_snapshot(tmp_path) -> None:
    config = BenchConfig(preset="tiny")
    by_name = {r.name: r for r in IER_ABLATIONS}
    with pytest.raises(ConfigError, match="run ier first"):
        experiment_for(by_name["ier-no-aii"], config, tmp_path)
    (tmp_path / "ier-seed1" / "stages").mkdir(parents=True)
    for name in ("0-av", "1-aii"):
        (tmp_path / "ier-seed1" / "stages" / f"{name}.safetensors").write_bytes(b"")
    with pytest.raises(ConfigError, match="run ier first"):  # seed 0's snapshot is missing
        experiment_for(by_name["ier-no-aii"], config, tmp_path, seed=0)
    no_aii = experiment_for(by_name["ier-no-aii"], config, tmp_path, seed=1)
    assert (no_aii.start_stage, Path(no_aii.init_from).name) == (1, "0-av.safetensors")
    assert Path(no_aii.init_from).parent.parent.name == "ier-seed1" and no_aii.seed == 1
    no_silent = experiment_for(by_name["ier-no-silent-filter"], config, tmp_path, seed=1)
    assert (no_silent.start_stage, Path(no_silent.init_from).name) == (2, "1-aii.safetensors")
    assert no_silent.model.ier.silent_filter is False


def test_bar_chart_draws_bar_heights_proportional_to_values(tmp_path) -> None:
    path = bar_chart([fake_record("full", value=1.0), fake_record("none", value=0.0)],
                     tmp_path / "bars.png")  # fmt: skip
    image = Image.open(path).convert("RGB")
    first_color = (31, 119, 180)  # PALETTE[0], the first metric's bar
    columns = [
        x for x in range(image.width)
        if sum(image.getpixel((x, y)) == first_color for y in range(60, 300)) > 200
    ]  # fmt: skip
    assert columns, "the 100 % bar of the first run reaches the top of the plot"
    assert max(columns) < image.width // 2  # the 0 % run draws no bar
    assert len(BAR_METRICS) == 5


# --------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def tiny_bench(small_benchmark, tmp_path_factory):
    """``ier bench --preset tiny`` through the CLI on the small benchmark: every method and every
    IEr ablation, trained, evaluated and reported (about a minute on 2 cores). Returns the bench
    folder, the CLI arguments and what the command printed."""
    out = tmp_path_factory.mktemp("tiny-bench") / "bench"
    args = ["bench", "--preset", "tiny", "--data", str(small_benchmark), "--out", str(out),
            "--no-progress", "--set", f"data.cache_dir={out.parent / 'cache'}"]  # fmt: skip
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        assert main(args) == 0
    return out, args, printed.getvalue()


def test_bench_cli_tiny_runs_every_method_and_ablation(tiny_bench) -> None:
    out, _, printed = tiny_bench
    summary = json.loads((out / "results.json").read_text())
    expected = list(method_order()) + [r.name for r in IER_ABLATIONS]
    assert [r["name"] for r in summary["runs"]] == expected  # table order
    assert [r["name"] for r in summary["references"]] == ["uniform"]
    text = (out / "results.md").read_text()
    assert text in printed and "results.md" in printed
    for section in ("## Localization", "## Interference"):
        rows = [line for line in text.split(section)[1].split("##")[0].splitlines()
                if line.startswith("| ")][1:]  # fmt: skip
        assert len(rows) == 1 + len(expected)  # the uniform reference, then every run
        assert rows[0].startswith("| Uniform map (reference")
    aii = text.split("## Audio-Instance-Identifier")[1].split("##")[0]
    assert [line.split("|")[1].strip() for line in aii.splitlines() if line.startswith("| ")][
        1:
    ] == ["↳ IEr w/o AII", "↳ IEr, AII w/o curriculum", "IEr"]
    for run in summary["runs"]:
        assert run["metrics"]["test/wild"]["ciou@0.3"] is not None
        assert run["train_seconds"] > 0 and run["eval_seconds"] > 0
        assert set(run["metrics"]) == {f"test/{s}" for s in ("solo", "synthetic", "duet", "wild",
                                                              "negative", "wild+negative")} | {
            "calibration"}  # fmt: skip
        assert run["metrics"]["calibration"]["splits"] == ["val/wild", "val/negative"]
    ier = next(r for r in summary["runs"] if r["name"] == "ier")
    assert ier["metrics"]["test/solo"]["aii_nmi"] is not None
    assert ier["extended"]["n"] == 64  # test/solo + test/negative
    # Diagnostics from the saved maps: a pointing rate per split and a peak AUROC for every run.
    assert set(summary["diagnostics"]) == {f"{name}-seed0" for name in expected}
    for d in summary["diagnostics"].values():
        assert set(d["pointing"]) == {f"test/{s}" for s in ("solo", "synthetic", "duet", "wild")}
        assert all(0.0 <= v <= 1.0 for v in d["pointing"].values())
        assert 0.0 <= d["peak_auroc"] <= 1.0
    diagnostics = text.split("## Diagnostics")[1].split("##")[0]
    assert len([line for line in diagnostics.splitlines() if line.startswith("| ")]) == 2 + len(
        expected
    )  # header, chance, every run
    grid = Image.open(out / "qualitative.png")
    assert grid.size[0] == 170 + 4 * 160 and grid.size[1] > len(expected) * 160
    assert Image.open(out / "bars.png").size[0] > 0

    # A CMR ablation trains stage 2 only, from IEr's stage-1 snapshot: its solo maps (stage 1's
    # model) are IEr's, so its solo metrics are IEr's to the last digit.
    ablation = next(r for r in summary["runs"] if r["name"] == "ier-no-silent-filter")
    assert (ablation["start_stage"], ablation["shared_from"]) == (2, "ier")
    assert ablation["metrics"]["test/solo"] == ier["metrics"]["test/solo"]
    assert ablation["metrics"]["test/wild"] != ier["metrics"]["test/wild"]
    assert sorted(p.name for p in (out / "runs" / ablation["run_dir"] / "stages").iterdir()) == [
        "2-cmr.safetensors"
    ]
    assert summary["seeds"] == [0] and summary["provenance"]["started"]["command"].startswith("ier")
    assert summary["aggregate"]["ier"]["test/wild:ciou_auc"]["n"] == 1


def test_bench_skips_finished_runs_and_resumes_an_interrupted_one(tiny_bench) -> None:
    out, args, _ = tiny_bench
    before = json.loads((out / "results.json").read_text())["runs"]
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0  # every run has its record: nothing trains again
    assert json.loads((out / "results.json").read_text())["runs"] == before

    # A run that lost its record and final model resumes from its last epoch checkpoint.
    (out / "runs" / "ots-seed0" / RECORD_FILE).unlink()
    (out / "runs" / "ots-seed0" / "model.safetensors").unlink()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
    ots = next(r for r in json.loads((out / "results.json").read_text())["runs"]
               if r["name"] == "ots")  # fmt: skip
    assert ots["resumed"] is True and (out / "runs" / "ots-seed0" / "model.safetensors").is_file()
    assert ots["metrics"]["test/solo"]["auc"] == pytest.approx(
        before[0]["metrics"]["test/solo"]["auc"]
    )

    # A second seed for one method trains only that run; its rows become mean ± std.
    with contextlib.redirect_stdout(io.StringIO()):
        assert main([*args, "--methods", "ots", "--seeds", "0", "1", "--no-ablations"]) == 0
    summary = json.loads((out / "results.json").read_text())
    assert [(r["name"], r["seed"]) for r in summary["runs"]] == [("ots", 0), ("ots", 1)]
    assert summary["aggregate"]["ots"]["seeds"] == [0, 1]
    assert "±" in (out / "results.md").read_text()


def _span(run_dir: Path) -> tuple[float, float]:
    """When a bench run started and finished (its record)."""
    record = json.loads((run_dir / RECORD_FILE).read_text())
    return record["started_at"], record["finished_at"]


def test_bench_jobs_trains_side_by_side_waits_for_snapshots_and_names_a_failed_run(
    small_benchmark, tmp_path
) -> None:
    out = tmp_path / "bench"
    args = ["bench", "--preset", "tiny", "--data", str(small_benchmark), "--out", str(out),
            "--no-progress", "--set", f"data.cache_dir={tmp_path / 'cache'}",
            "--methods", "ier", "--jobs", "2"]  # fmt: skip
    # One ablation cannot start: its run folder holds a config.json that is not a config.
    broken = out / "runs" / "ier-no-aii-seed0"
    _check_out_dir(out, BenchConfig(preset="tiny", methods=("ier",)), small_benchmark)
    broken.mkdir(parents=True)
    (broken / "config.json").write_text("not json")
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        assert main(args) == 2
    assert "bench runs failed: ier-no-aii-seed0: ConfigError" in errors.getvalue()
    records = {p.parent.name for p in (out / "runs").glob(f"*/{RECORD_FILE}")}
    # Every other run finished, each ablation after IEr (it starts from IEr's snapshot) ...
    assert records == {"ier-seed0"} | {f"{r.name}-seed0" for r in IER_ABLATIONS[1:]}
    ier_end = _span(out / "runs" / "ier-seed0")[1]
    spans = [_span(out / "runs" / f"{r.name}-seed0") for r in IER_ABLATIONS[1:]]
    assert all(start > ier_end for start, _ in spans)
    # ... and two at a time: some ablations overlap in time.
    assert any(a[0] < b[1] and b[0] < a[1] for i, a in enumerate(spans) for b in spans[i + 1 :])
    ier = json.loads((out / "runs" / "ier-seed0" / RECORD_FILE).read_text())
    ablation = json.loads((out / "runs" / "ier-no-silent-filter-seed0" / RECORD_FILE).read_text())
    assert ablation["metrics"]["test/solo"] == ier["metrics"]["test/solo"]
    # IEr started alone and got every core (this test process has 1 thread); the ablations
    # started two at a time and shared them.
    cores = usable_cores()
    assert ier["threads"] == cores
    assert all(1 <= json.loads((out / "runs" / f"{r.name}-seed0" / RECORD_FILE).read_text())[
        "threads"] <= max(1, cores - 1) for r in IER_ABLATIONS[1:])  # fmt: skip

    # Fixed, the same command trains only that ablation and writes the tables of all six runs.
    (broken / "config.json").unlink()
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(args) == 0
    summary = json.loads((out / "results.json").read_text())
    assert [r["name"] for r in summary["runs"]] == ["ier"] + [r.name for r in IER_ABLATIONS]
    assert summary["runs"][0]["train_seconds"] == ier["train_seconds"]  # not trained again


def test_bench_config_refuses_jobs_below_one_and_negative_threads() -> None:
    with pytest.raises(ConfigError, match="jobs must be >= 1"):
        BenchConfig(jobs=0)
    with pytest.raises(ConfigError, match="got 1 and -1"):
        BenchConfig(threads=-1)


def test_bench_jobs_does_not_start_runs_whose_snapshot_run_failed(
    small_benchmark, tmp_path
) -> None:
    out = tmp_path / "bench"
    _check_out_dir(out, BenchConfig(preset="tiny", methods=("ier",)), small_benchmark)
    (out / "runs" / "ier-seed0").mkdir(parents=True)
    (out / "runs" / "ier-seed0" / "config.json").write_text("not json")
    errors = io.StringIO()
    with contextlib.redirect_stderr(errors):
        args = ["bench", "--preset", "tiny", "--data", str(small_benchmark), "--out", str(out),
                "--no-progress", "--methods", "ier", "--jobs", "2"]  # fmt: skip
        assert main(args) == 2
    waiting = ", ".join(f"{r.name}-seed0" for r in IER_ABLATIONS)
    assert f"not started (they start from a failed run): {waiting}" in errors.getvalue()
    assert not list((out / "runs").glob(f"*/{RECORD_FILE}"))
    assert sorted(p.name for p in (out / "runs").iterdir()) == ["ier-seed0"]


def test_start_order_puts_providers_then_the_longest_runs_first() -> None:
    from ier.bench.plan import TYPICAL_SECONDS, BenchRun
    from ier.bench.runner import start_order

    ier, ots, sop = BenchRun("ier", "ier"), BenchRun("ots", "ots"), BenchRun("sop", "sop")
    ablation = BenchRun("ier-no-aii", "ier", start_stage=1, shared_from="ier")
    new = BenchRun("my-method", "ier")  # no typical length: keeps its place among the unknown
    tasks = [(s, r) for s in (0, 1) for r in (ots, new, sop, ier, ablation)]
    names = lambda order: [(s, r.name) for s, r in order]  # noqa: E731
    # Nothing timed yet: IEr first (the ablation starts from it), then the typical lengths of the
    # `cpu` bench, longest first (Sound of Pixels), then runs with no typical length.
    assert TYPICAL_SECONDS["sop"] > TYPICAL_SECONDS["ier-no-aii"] > TYPICAL_SECONDS["ots"]
    assert names(start_order(list(tasks), tasks, {})) == [
        (0, "ier"), (0, "sop"), (0, "ier-no-aii"), (0, "ots"), (0, "my-method"),
        (1, "ier"), (1, "sop"), (1, "ier-no-aii"), (1, "ots"), (1, "my-method"),
    ]  # fmt: skip
    # Timings at another seed win over the typical lengths: here OTS took longer than SoP.
    done = {(0, "ots"): {"train_seconds": 3000.0, "eval_seconds": 40.0},
            (0, "sop"): {"train_seconds": 2448.0, "eval_seconds": 75.0},
            (0, "ier"): {"train_seconds": 379.0, "eval_seconds": 29.0},
            (0, "my-method"): {"train_seconds": 500.0, "eval_seconds": 0.0},
            (0, "ier-no-aii"): {"train_seconds": 250.0, "eval_seconds": 30.0}}  # fmt: skip
    assert names(start_order(tasks[5:], tasks, done)) == [
        (1, "ier"), (1, "ots"), (1, "sop"), (1, "my-method"), (1, "ier-no-aii"),
    ]  # fmt: skip
    # Untimed runs are scaled by how fast the timed ones went (here 10x faster than typical):
    # SoP's typical 2524 s becomes ~252 s, behind a timed run of 300 s, ahead of one of 200 s.
    fast = {(0, "ier"): {"train_seconds": TYPICAL_SECONDS["ier"] / 10},
            (0, "ots"): {"train_seconds": 300.0}, (0, "my-method"): {"train_seconds": 200.0},
            (0, "dsol"): {"train_seconds": TYPICAL_SECONDS["dsol"] / 10}}  # fmt: skip
    assert names(start_order([(0, r) for r in (new, sop, ots)], tasks, fast)) == [
        (0, "ots"), (0, "sop"), (0, "my-method")]  # fmt: skip
