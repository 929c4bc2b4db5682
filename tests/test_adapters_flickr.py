"""Flickr-SoundNet XML annotations (all annotators' boxes kept) and Extended Flickr."""

from __future__ import annotations

from pathlib import Path

import pytest

from dataset_fixtures import FLICKR_BOXES, make_extended_flickr, make_flickr
from ier.adapters import prepare
from ier.data.manifest import read_manifest


def _problems(report, split: str) -> dict[str, str]:
    return {p.item: p.reason for p in report.problems if p.split == split}


def test_flickr_round_trip_keeps_every_annotator_box(tmp_path: Path) -> None:
    root = make_flickr(tmp_path / "raw")
    report = prepare("flickr", root, tmp_path / "out", progress=False)
    samples = {s.id: s for s in read_manifest(report.manifests["test"], check_files=True)}
    assert set(samples) == {"12345678901", "10987654321"}
    for ident, sample in samples.items():
        (obj,) = sample.objects
        expected = [[v / 256 for v in box] for box in FLICKR_BOXES[ident]]
        assert [list(b) for b in obj.annotators] == expected
        assert list(obj.box) == [
            min(b[0] for b in expected),
            min(b[1] for b in expected),
            max(b[2] for b in expected),
            max(b[3] for b in expected),
        ]
        assert sample.split == "flickr" and obj.label == "*"
    first = samples["12345678901"]  # 4-s wav: the window is centred on its midpoint
    assert first.time == 2.0 and first.window == (1.5, 2.5)
    problems = _problems(report, "test")
    assert "malformed XML" in problems["11111111111"]
    assert "no annotation" in problems["22222222222"]
    assert "no audio" in problems["33333333333"]
    assert report.counts["test"]["listed"] == 5 and report.counts["test"]["written"] == 2


def test_extended_flickr_negatives(tmp_path: Path) -> None:
    root = make_extended_flickr(tmp_path / "raw")
    report = prepare("extended-flickr", root, tmp_path / "out", progress=False)
    samples = {s.id: s for s in read_manifest(report.manifests["extended_flickr"])}
    negative = samples["12345678901__neg__10987654321"]
    assert negative.is_negative and negative.objects == ()
    assert negative.frame_path.name == "12345678901.jpg"
    assert negative.audio_path.name == "10987654321.wav"
    assert negative.extra["frame_of"] == "12345678901"
    assert sum(not s.is_negative for s in samples.values()) == 2
    problems = _problems(report, "extended_flickr")
    assert "no audio" in problems["10987654321__neg__33333333333"]
    assert "expected 3 columns" in problems["flickr_test_plus_silent.csv:4"]


@pytest.mark.parametrize("xml", ["<a><bbox><n>1</n><x>5</x></bbox></a>", "<a></a>"])
def test_xml_parser_rejects_bad_boxes(tmp_path: Path, xml: str) -> None:
    from ier.adapters.flickr import parse_xml

    path = tmp_path / "1.xml"
    path.write_text(xml)
    with pytest.raises(ValueError):
        parse_xml(path)
