"""ier.localization.html: the localization.json validator, the HTML report (rendered in
headless Chromium), the demo index and ``ier demo``."""

from __future__ import annotations

import copy
import json
import math
import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from ier.cli import main
from ier.localization import validate_localization
from ier.localization.html import render_index, render_report
from test_localize import ColourToneModel, make_clip  # the fake model and the generated clip


@pytest.fixture(scope="module")
def localized(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from ier.localization import localize

    root = tmp_path_factory.mktemp("report")
    clip = make_clip(root / "clip.mp4")
    localize(clip, model=ColourToneModel(), out_dir=root / "out")
    return root / "out"


@pytest.fixture(scope="module")
def document(localized: Path) -> dict:
    return json.loads((localized / "localization.json").read_text())


# --------------------------------------------------------------------------- JSON validator


def test_a_written_document_is_valid(document: dict) -> None:
    assert validate_localization(document) == []
    assert document["outputs"] == {
        "json": "localization.json", "overlay": "overlay.mp4", "report": "report.html",
    }  # fmt: skip


@pytest.mark.parametrize(
    ("edit", "problem"),
    [
        (lambda d: d.update(schema_version=99), "schema_version"),
        (lambda d: d["video"].pop("fps"), "video: missing 'fps'"),
        (lambda d: d["windows"][1]["classes"][0].update(state="loud"), "state 'loud'"),
        (lambda d: d["windows"][0]["classes"][2].update(confidence=1.5), "confidence must be"),
        (lambda d: d["windows"][0]["classes"][0].update(box=[0.5, 0.1, 0.4, 0.2]), "x0 < x1"),
        (lambda d: d["windows"][0]["classes"][0].update(peak=[0.5]), "peak: expected a list"),
        (lambda d: d["windows"][2]["classes"].pop(), "every model class"),
        (lambda d: d["windows"][2].update(time_seconds=0.1), "time_seconds"),
    ],
)
def test_the_validator_names_each_problem(document: dict, edit, problem: str) -> None:
    broken = copy.deepcopy(document)
    edit(broken)
    problems = validate_localization(broken)
    assert any(problem in p for p in problems), problems


# --------------------------------------------------------------------------- HTML


def test_report_is_self_contained(localized: Path, document: dict) -> None:
    html = (localized / "report.html").read_text()
    assert '<video id="video"' in html and 'src="overlay.mp4"' in html
    assert not re.search(r'(src|href)="(https?:)?//', html)  # nothing fetched from elsewhere
    assert html.count("data:image/png;base64,") >= 5  # one key frame per window here
    active = sum(c["state"] != "absent" for w in document["windows"] for c in w["classes"])
    assert html.count('class="seg"') == active


def test_report_without_activity_says_so(document: dict) -> None:
    quiet = copy.deepcopy(document)
    for window in quiet["windows"]:
        for item in window["classes"]:
            item["state"] = "absent"
    html = render_report(quiet, [], video=None)
    assert "no class is active" in html and 'class="seg"' not in html
    assert "Nothing reached it" in html


def test_strongest_candidates_rank_the_evidence_of_sounding_on_screen(document: dict) -> None:
    from ier.localization import sounding_evidence, strongest_candidates

    entry = {"score": 0.9, "peak_value": 0.4, "audio": None, "presence": None}
    assert sounding_evidence(entry) == 0.4  # heard and on screen: both must reach the threshold
    assert sounding_evidence({**entry, "audio": 0.3}) == 0.3  # the audio cue replaces the score
    assert sounding_evidence({**entry, "presence": 0.7}) == 0.7  # a presence alone decides
    dark = copy.deepcopy(document)
    n = len(dark["windows"])
    for w, window in enumerate(dark["windows"]):
        for c, item in enumerate(window["classes"]):
            item.update(state="absent", audio=None, presence=None, score=0.9,
                        peak_value=0.1 * (c + 1) + 0.01 * (w == 2))  # fmt: skip
    top = strongest_candidates(dark, 2)
    classes = dark["model"]["classes"]
    assert [r["name"] for r in top] == [classes[-1], classes[-2]]
    assert top[0]["evidence"] == pytest.approx(0.1 * len(classes) + 0.01)
    assert top[0]["time_seconds"] == dark["windows"][2]["time_seconds"]
    assert top[0]["windows_sounding"] == 0
    html = render_report(dark, [], video=None)
    assert "Nothing reached it" in html
    assert f"--threshold {math.floor(100 * top[0]['evidence']) / 100:.2f}</code>" in html
    live = strongest_candidates(document, len(classes))
    red = next(r for r in live if r["name"] == "red")
    assert red["windows_sounding"] == n and "Nothing reached it" not in render_report(
        document, [], video=None
    )
    with pytest.raises(ValueError, match="k must be"):
        strongest_candidates(document, 0)


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        if shutil.which(name):
            return shutil.which(name)
    return None


def test_report_renders_in_headless_chromium(localized: Path, tmp_path: Path) -> None:
    browser = _chromium()
    if browser is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is required in CI for the report check (apt install chromium)")
        pytest.skip("Chromium is not installed (apt install chromium); CI runs this check")
    command = [
        browser, "--headless", "--no-sandbox", "--disable-gpu", "--mute-audio",
        f"--user-data-dir={tmp_path / 'profile'}", "--enable-logging=stderr", "--v=0",
        "--virtual-time-budget=3000", "--window-size=1100,1400", "--dump-dom",
        (localized / "report.html").resolve().as_uri(),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    console = [line for line in done.stderr.splitlines() if ":CONSOLE" in line]
    assert console == [], console  # no JS error, no failed resource (the video is found)
    dom = done.stdout
    assert 'data-ready="3"' in dom  # the script ran to the end: three active class rows
    size = re.search(r'data-timeline-px="(\d+)x(\d+)"', dom)
    assert size and int(size.group(1)) > 500 and int(size.group(2)) > 40  # laid out, visible
    assert dom.count('class="seg"') == 15


def test_index_links_reports() -> None:
    html = render_index(
        [
            {
                "name": "a",
                "report": "a/report.html",
                "summary": "ok",
                "thumbnail": np.zeros((4, 4, 3), np.uint8),
            }
        ]
    )
    assert 'href="a/report.html"' in html and "data:image/png;base64," in html


def test_report_video_has_a_poster_frame(localized: Path) -> None:
    html = (localized / "report.html").read_text()
    video_tag = re.search(r"<video [^>]*>", html).group(0)
    assert 'poster="data:image/png;base64,' in video_tag


def test_index_shows_quality_scores_and_truth_versus_found() -> None:
    row = {"class": "violin", "truth": "sounding-on-screen", "found": "heard-off-screen",
           "found_windows": 4, "truth_windows": 1, "windows": 5, "mean_score": 0.61,
           "agrees": False}  # fmt: skip
    entry = {"name": "clip-1", "report": "clip-1/report.html", "summary": "s", "windows": 5,
             "truth": "truth: sounding: violin", "found": "found: heard-off-screen: violin",
             "table": [row], "scores": {"truth_classes": 1, "agreeing_classes": 0,
                                        "extra_classes": 2, "window_agreement": 0.2}}  # fmt: skip
    model = {"name": "m", "quality": "weak: solo IoU 5 %", "card": "file:///x/docs/models.md"}
    html = render_index([entry], model=model)
    assert "weak: solo IoU 5 %" in html and 'href="file:///x/docs/models.md"' in html
    assert "Scores per clip" in html and "<td class=num>0/1</td>" in html and "20 %" in html
    assert "<td>violin</td><td>sounding</td><td>off-screen (4/5)</td>" in html
    assert "<td class=num>1/5</td>" in html and "<td class=no>no</td>" in html


# --------------------------------------------------------------------------- ier demo


def test_demo_fails_clearly_without_bundled_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    import importlib

    monkeypatch.setattr(
        importlib.import_module("ier.localization"), "WEIGHTS_DIR", tmp_path / "none"
    )
    assert main(["demo", "-o", str(tmp_path / "demo")]) == 2
    assert "'ier-wild-small' has no weights" in capsys.readouterr().err
    assert not (tmp_path / "demo").exists()  # nothing written before the model loads


def test_demo_composes_clips_and_writes_reports(tmp_path: Path) -> None:
    from ier.commands.demo import run_demo
    from ier.errors import AssetError

    try:
        index = run_demo(tmp_path / "demo", model=ColourToneModel(), clips=(("test/duet", 0),))
    except AssetError as err:
        if os.environ.get("CI", "").lower() == "true":
            raise
        pytest.skip(f"benchmark assets not installed: {err}")
    clip_dir = tmp_path / "demo" / "test-duet-00000"
    assert {"overlay.mp4", "localization.json", "report.html"} <= {
        p.name for p in clip_dir.iterdir()
    }
    html = index.read_text()
    assert 'href="test-duet-00000/report.html"' in html and "truth: sounding:" in html
    assert "Scores per clip" in html and 'class="grid"' in html
    summary = json.loads((tmp_path / "demo" / "demo.json").read_text())
    assert summary["model"]["quality"] == "no measured quality is recorded for this model"
    rows = summary["clips"][0]["table"]
    assert rows and {"class", "truth", "found", "agrees"} <= set(rows[0])


def test_demo_found_line_names_the_closest_class_when_nothing_sounds(localized: Path) -> None:
    from ier.commands.demo import _found
    from ier.localization import localize

    clip = localized.parent / "clip.mp4"
    drawn = localize(clip, model=ColourToneModel(), hop_seconds=1.0)
    assert "sounding-on-screen: red" in _found(drawn) and "closest" not in _found(drawn)
    dark = localize(clip, model=ColourToneModel(), hop_seconds=1.0, threshold=0.999)
    line = _found(dark)
    assert "sounding-on-screen" not in line and "closest to sounding: red (" in line
    assert "threshold 1.00)" in line
