"""Asset readers (Qt .rcc, OpenSFX .cat, librsvg), sources, catalog hold-out and the composer."""

from __future__ import annotations

import numpy as np
import pytest

from ier.audio import SAMPLE_RATE, decode_audio_bytes
from ier.errors import AssetError
from ier.mixing import rms
from ier.scenes import assets, catalog, compose
from ier.scenes.opensfx import read_cat
from ier.scenes.rcc import RccArchive
from ier.scenes.svg import render_svg

INSTRUMENTS_RCC = assets.SOURCES["gcompris"].path / "instruments.rcc"
VIOLIN = "gcompris/src/activities/instruments/resource/violin.ogg"


def test_rcc_reader_lists_and_extracts_installed_archive():
    archive = RccArchive(INSTRUMENTS_RCC)
    names = archive.names()
    assert names == sorted(names)
    assert VIOLIN in names and VIOLIN.replace(".ogg", ".svg") in names
    wave = decode_audio_bytes(archive.read(VIOLIN), sample_rate=SAMPLE_RATE)
    assert 7.0 < wave.size / SAMPLE_RATE < 8.0  # GCompris violin.ogg is 7.5 s
    assert rms(wave) > 0.01
    svg = archive.read(VIOLIN.replace(".ogg", ".svg"))
    assert svg.lstrip().startswith(b"<") and b"svg" in svg[:2000]


def test_rcc_reader_errors(tmp_path):
    with pytest.raises(AssetError, match="no file"):
        RccArchive(INSTRUMENTS_RCC).read("nope.ogg")
    bad = tmp_path / "bad.rcc"
    bad.write_bytes(b"not a resource file at all")
    with pytest.raises(AssetError, match="qres"):
        RccArchive(bad)
    with pytest.raises(AssetError, match="cannot read"):
        RccArchive(tmp_path / "missing.rcc")


def test_cat_reader_on_installed_opensfx():
    entries = read_cat(assets.SOURCES["opensfx"].path)
    assert len(entries) == 73
    assert [e.index for e in entries] == list(range(73))
    assert entries[37].name.startswith('"Cow"') and entries[37].license == "CC0-1.0"
    assert entries[24].license == "CC-BY-SA-3.0"  # the helicopter
    assert entries[34].wav == b"" and entries[50].wav == b""  # empty placeholders
    wave = decode_audio_bytes(entries[37].wav, sample_rate=SAMPLE_RATE)
    assert 1.3 < wave.size / SAMPLE_RATE < 1.7  # 1.49 s


def test_cat_reader_rejects_garbage(tmp_path):
    bad = tmp_path / "bad.cat"
    bad.write_bytes(b"\x07\x00\x00\x00\x00\x00\x00\x00")
    with pytest.raises(AssetError):
        read_cat(bad)


def test_svg_renders_with_alpha():
    data = RccArchive(INSTRUMENTS_RCC).read(VIOLIN.replace(".ogg", ".svg"))
    rgba = render_svg(data, max_side=64)
    assert rgba.dtype == np.uint8 and rgba.shape[2] == 4 and max(rgba.shape[:2]) == 64
    alpha = rgba[..., 3]
    assert 0.05 < (alpha > 0).mean() < 0.95  # a drawing on a transparent canvas


def test_missing_source_names_the_package(monkeypatch, tmp_path):
    fake = assets.Source("tuxpaint", tmp_path / "nowhere", "tuxpaint-stamps-default", "GPL", "x")
    monkeypatch.setitem(assets.SOURCES, "tuxpaint", fake)
    with pytest.raises(AssetError, match="tuxpaint-stamps-default"):
        assets.require_sources(["tuxpaint", "opensfx"])


def test_licences_come_from_the_sources():
    assert assets.license_of("opensfx:37") == "CC0-1.0"
    assert "CC-BY-SA" in assets.license_of(catalog.GC_FARM + "dog.svg")
    assert "Free Art" in assets.license_of(catalog.GC_MEM + "LRBark_1_LA_cut.ogg")
    assert assets.license_of("tuxpaint:animals/mammals/dogs/dog.ogg").startswith("GPL-2.0")


def test_catalog_covers_the_brief_and_holds_out_items():
    assert len(catalog.CLASSES) >= 14 and len(set(catalog.class_names())) == len(catalog.CLASSES)
    assert len(catalog.offscreen_pools()) >= 6 and len(catalog.NOISES) >= 5
    for cls in catalog.CLASSES:
        assert cls.train_images and cls.test_images
        assert not set(cls.train_images) & set(cls.test_images), cls.name
        train = {a.asset: a for a in cls.train_audio}
        for item in cls.test_audio:  # whole items held out, or disjoint ranges of one recording
            if item.asset in train:
                assert train[item.asset].bounds()[1] <= item.bounds()[0] + 1e-6, cls.name
    for side in ("train", "test"):
        assert catalog.backgrounds()[side] and catalog.distractors()[side]
    assert not set(catalog.backgrounds()["train"]) & set(catalog.backgrounds()["test"])
    assert not set(catalog.distractors()["train"]) & set(catalog.distractors()["test"])


def test_every_catalog_asset_is_installed():
    missing = [a for a in catalog.all_audio_ids() + catalog.all_image_ids() if not assets.exists(a)]
    assert missing == []


def test_cutouts_are_cropped_to_alpha():
    cut = assets.load_cutout("tuxpaint:hobbies/music/string/violin.png")
    alpha = cut[..., 3] > 8
    assert alpha[0].any() and alpha[-1].any() and alpha[:, 0].any() and alpha[:, -1].any()


@pytest.mark.parametrize("seed", range(8))
def test_placement_keeps_boxes_inside_and_apart(seed):
    rng = np.random.default_rng(seed)
    cutouts = [np.full((40 + 10 * k, 30 + 5 * k, 4), 255, np.uint8) for k in range(5)]
    placed = compose.place_cutouts(cutouts, rng, width=128, height=128, scale_range=(0.2, 0.3))
    boxes = [p.box_pixels() for p in placed]
    for k, (x0, y0, x1, y1) in enumerate(boxes):
        assert 0 <= x0 < x1 <= 128 and 0 <= y0 < y1 <= 128
        for progress in (-0.5, 0.5):  # the drift path stays inside too
            px, py = placed[k].offset(progress)
            h, w = placed[k].patch.shape[:2]
            assert -1 <= px and px + w <= 129 and -1 <= py and py + h <= 129
        for other in boxes[k + 1 :]:
            assert compose.box_iou(boxes[k], other) <= compose.MAX_BOX_IOU


def test_box_iou_known_values():
    assert compose.box_iou((0, 0, 2, 2), (1, 1, 3, 3)) == pytest.approx(1 / 7)
    assert compose.box_iou((0, 0, 1, 1), (2, 2, 3, 3)) == 0.0


def test_fill_window_short_recording_sounds_in_every_second():
    wave = np.ones(int(0.3 * SAMPLE_RATE), np.float32)
    clip, start, end = compose.fill_window(
        wave, np.random.default_rng(0), seconds=3.0, window=(1.0, 2.0)
    )
    assert clip.shape == (3 * SAMPLE_RATE,) and (start, end) == (0.0, 0.3)
    for k in range(0, 2 * SAMPLE_RATE, SAMPLE_RATE // 4):
        assert clip[k : k + SAMPLE_RATE].max() > 0


def test_fill_window_long_recording_is_an_exact_crop():
    wave = np.random.default_rng(1).standard_normal(5 * SAMPLE_RATE).astype(np.float32)
    clip, start, end = compose.fill_window(
        wave, np.random.default_rng(2), seconds=3.0, window=(1.0, 2.0)
    )
    a = round(start * SAMPLE_RATE)
    assert end - start == pytest.approx(3.0)
    np.testing.assert_array_equal(clip, wave[a : a + 3 * SAMPLE_RATE])


def test_mix_reaches_the_requested_snr():
    rng = np.random.default_rng(0)
    signal = compose.level(rng.standard_normal(SAMPLE_RATE).astype(np.float32), 0.0)
    noise = rng.standard_normal(SAMPLE_RATE).astype(np.float32)
    mixed = compose.mix([signal], noise, 10.0, n_samples=SAMPLE_RATE)
    added = mixed - signal
    assert 10 * np.log10(np.mean(signal**2) / np.mean(added**2)) == pytest.approx(10.0, abs=1e-3)
    assert 20 * np.log10(rms(signal)) == pytest.approx(compose.SOURCE_LEVEL_DBFS, abs=1e-3)


def test_no_train_recording_is_a_copy_of_a_test_recording():
    from ier.scenes.stats import _max_normalised_xcorr, near_duplicate_recordings

    wave = np.random.default_rng(0).standard_normal(3 * SAMPLE_RATE).astype(np.float32)
    assert _max_normalised_xcorr(wave, 0.5 * wave[SAMPLE_RATE:]) == pytest.approx(1.0, abs=1e-4)
    assert near_duplicate_recordings() == []
