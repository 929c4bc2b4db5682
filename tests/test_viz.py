"""ier.viz: colours, sizes, heat layers, labels, blending and the streaming overlay writer."""

from __future__ import annotations

import io
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from ier import viz
from ier.overlay_video import OverlayVideoWriter
from ier.video import iter_frames, probe
from ier.video_writer import write_mp4


def test_class_colors_cycle_through_the_palette() -> None:
    colors = viz.class_colors(12)
    assert colors[:10] == list(viz.PALETTE) and colors[10] == viz.PALETTE[0]


@pytest.mark.parametrize(
    ("size", "kwargs", "expected"),
    [
        ((1920, 1080), {"max_side": 480}, (480, 270)),
        ((128, 96), {"min_side": 224, "max_side": 480}, (224, 168)),
        ((300, 200), {"min_side": 224, "max_side": 480}, (300, 200)),
        ((301, 203), {}, (300, 204)),  # even sizes for yuv420p (round half to even)
    ],
)
def test_display_size(size: tuple[int, int], kwargs: dict, expected: tuple[int, int]) -> None:
    assert viz.display_size(*size, **kwargs) == expected


def test_heat_layer_is_opaque_at_the_peak_and_clear_below_the_floor() -> None:
    maps = np.zeros((2, 4, 4), np.float32)
    maps[0, 1, 2] = 0.8  # class 0 peaks in cell (row 1, col 2)
    maps[1] = 0.9  # class 1 is hidden
    layer = viz.heat_layer(maps, [True, False], viz.class_colors(2), width=44, height=44)
    assert layer.shape == (44, 44, 4) and layer.dtype == np.uint8
    assert layer[16, 27, 3] == round(viz.HEAT_ALPHA * 255)  # centre of the peak cell (11 px)
    assert np.abs(layer[16, 27, :3].astype(int) - viz.PALETTE[0]).max() <= 2  # resize rounding
    assert layer[38, 5, 3] == 0  # far from the peak: below the floor
    nothing = viz.heat_layer(maps, [False, False], viz.class_colors(2), width=8, height=6)
    assert nothing.shape == (6, 8, 4) and not nothing.any()


def test_the_hotter_class_wins_a_pixel() -> None:
    maps = np.zeros((2, 2, 2), np.float32)
    maps[0, 0, 0], maps[1, 1, 1] = 1.0, 0.5  # relative to their own peaks both are 1
    layer = viz.heat_layer(maps, [True, True], viz.class_colors(2), width=2, height=2)
    assert tuple(layer[0, 0, :3]) == viz.PALETTE[0] and tuple(layer[1, 1, :3]) == viz.PALETTE[1]


def test_blend_known_values() -> None:
    frame = np.full((2, 3, 3), 100, np.uint8)
    layer = np.zeros((2, 3, 4), np.uint8)
    layer[..., :3] = 200
    layer[0, 0, 3], layer[0, 1, 3], layer[0, 2, 3] = 255, 0, 51  # 51 / 255 = 0.2
    out = viz.blend(frame, layer)
    assert out[0, 0].tolist() == [200] * 3 and out[0, 1].tolist() == [100] * 3
    assert out[0, 2].tolist() == [120] * 3  # 0.8 * 100 + 0.2 * 200
    assert (out[1] == 100).all() and frame[0, 0, 0] == 100  # input untouched


def test_annotate_draws_box_and_labels_only_for_active_classes() -> None:
    sounding = SimpleNamespace(
        name="drum", state="sounding-on-screen", confidence=0.9, box=(0.5, 0.5, 1.0, 1.0),
        peak=(0.75, 0.75),
    )  # fmt: skip
    absent = SimpleNamespace(
        name="cat", state="absent", confidence=0.9, box=(0.0, 0.0, 0.25, 0.25), peak=(0.1, 0.1)
    )
    colors = viz.class_colors(2)
    layer = viz.annotate_layer(np.zeros((100, 100, 4), np.uint8), [sounding, absent], colors)
    assert tuple(layer[50, 75]) == (*colors[0], 255)  # top edge of the drum box
    assert tuple(layer[99, 75]) == (*colors[0], 255)  # bottom edge
    assert not layer[60:90, 60:70].any()  # inside the box: clear
    assert layer[:20, :60, 3].any()  # a label at the top left
    assert not layer[24:25, 20:25].any()  # no cat box corner (label rows end above)


def test_png_bytes_round_trip() -> None:
    image = np.random.default_rng(0).integers(0, 255, (5, 7, 3), dtype=np.uint8)
    assert (np.asarray(Image.open(io.BytesIO(viz.png_bytes(image)))) == image).all()


def _source(path: Path, *, sample_rate: int) -> Path:
    t = np.arange(2 * sample_rate) / sample_rate
    frames = np.zeros((20, 32, 32, 3), np.uint8)
    wave = (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)
    return write_mp4(path, frames, fps=10, audio=wave, sample_rate=sample_rate)


def test_overlay_writer_copies_the_source_audio(tmp_path: Path) -> None:
    source = _source(tmp_path / "in.mp4", sample_rate=22_050)
    writer = OverlayVideoWriter(
        tmp_path / "out.mp4", width=64, height=48, fps=10, audio_source=source
    )
    for i in range(20):
        writer.write(np.full((48, 64, 3), 10 * i, np.uint8))
    assert not (tmp_path / "out.mp4").exists()  # written under a temporary name until close
    writer.close()
    info = probe(tmp_path / "out.mp4")
    assert (info.width, info.height, info.has_audio) == (64, 48, True)
    assert info.audio_sample_rate == 22_050 and info.duration_seconds == pytest.approx(2.0, abs=0.1)
    means = [frame.mean() for _, frame in iter_frames(tmp_path / "out.mp4")]
    assert len(means) == 20 and means[-1] == pytest.approx(190, abs=4)


def test_overlay_writer_abort_leaves_nothing(tmp_path: Path) -> None:
    writer = OverlayVideoWriter(tmp_path / "out.mp4", width=32, height=32, fps=10)
    writer.write(np.zeros((32, 32, 3), np.uint8))
    writer.abort()
    assert list(tmp_path.iterdir()) == []


# --------------------------------------------------------------------------- labels


NAMES = "violin cello guitar trumpet drum dog cat chicken cow sheep horse duck pig owl lion tiger"


def _records(states: list[str]) -> list[SimpleNamespace]:
    return [
        SimpleNamespace(name=name, state=state, confidence=0.5 + i / 40, box=(0.1, 0.1, 0.5, 0.5),
                        peak=(0.3, 0.3))  # fmt: skip
        for i, (name, state) in enumerate(zip(NAMES.split(), states))
    ]


@pytest.mark.parametrize(
    "size",
    [(320, 180), (224, 224), (224, 168), (480, 270), (640, 360), (1280, 720), (1920, 1080),
     (270, 480)],  # fmt: skip
)
def test_labels_fit_the_frame_at_any_size(size: tuple[int, int]) -> None:
    width, height = size
    states = ["sounding-on-screen", "visible-silent", "heard-off-screen"] * 6
    records = _records(states[:16])
    layout = viz.label_layout(width, height, viz.class_labels(records, viz.class_colors(16)),
                              time_text="12.50 s")  # fmt: skip
    font = viz._font(layout.font_px)
    assert layout.font_px >= viz.LABEL_MIN_FONT_PX
    assert layout.bottom <= viz.LABEL_MAX_FRACTION * height  # never a third of the frame
    shown = [chip for chip in layout.chips if chip.color is not None]
    assert shown and len(shown) + layout.hidden == 16
    if layout.hidden:
        assert layout.chips[-1].text == f"+{layout.hidden} more"
    for chip in layout.chips:
        x0, y0, x1, y1 = chip.bar
        assert 0 <= x0 < x1 <= width and 0 <= y0 < y1 <= height, chip
        left, top, right, bottom = font.getbbox(chip.text)
        tx, ty = chip.text_xy
        assert tx + right <= x1 and ty + bottom <= y1, chip  # the text, confidence included
    for chip in shown:
        record = next(r for r in records if chip.text.startswith(r.name[:2]))
        assert chip.text.endswith(f"{record.confidence:.2f}")  # confidences are never cut


def test_a_long_name_is_shortened_but_its_confidence_kept() -> None:
    long = SimpleNamespace(name="x" * 80, state="sounding-on-screen", confidence=0.87,
                           box=None, peak=(0.5, 0.5))  # fmt: skip
    layout = viz.label_layout(224, 224, viz.class_labels([long], viz.class_colors(1)))
    (chip,) = layout.chips
    assert chip.text.endswith("…: sounding 0.87") and chip.bar[2] <= 224


def test_label_text_contrast_is_checked_against_any_frame() -> None:
    assert viz.contrast_ratio((255, 255, 255), (0, 0, 0)) == pytest.approx(21.0)
    assert viz.label_contrast() >= viz.LABEL_MIN_CONTRAST  # over a white frame, the worst case
    # The class colour is a swatch, never the text: dark blue text on the bar would fail.
    dark_bar = [255 * (1 - viz.LABEL_BAR_ALPHA / 255)] * 3
    assert viz.contrast_ratio(viz.PALETTE[0], [0, 0, 0]) < viz.LABEL_MIN_CONTRAST
    assert viz.contrast_ratio(viz.LABEL_TEXT, dark_bar) >= viz.LABEL_MIN_CONTRAST
    # Measured on pixels: labels drawn over a white and over a blue frame.
    records = _records(["sounding-on-screen"])
    for color in ((255, 255, 255), viz.PALETTE[0]):
        layer = viz.annotate_layer(np.zeros((270, 480, 4), np.uint8), records, viz.class_colors(1))
        frame = viz.blend(np.full((270, 480, 3), color, np.uint8), layer)
        chip = viz.label_layout(480, 270, viz.class_labels(records, viz.class_colors(1))).chips[0]
        x0, y0, x1, y1 = chip.bar
        region = frame[y0:y1, chip.text_xy[0] : x1].reshape(-1, 3).astype(float)
        luminance = np.array([viz.relative_luminance(p) for p in region])
        text, bar = region[luminance.argmax()], region[luminance.argmin()]
        assert viz.contrast_ratio(text, bar) >= viz.LABEL_MIN_CONTRAST


def test_yuv_blend_matches_the_rgb_blend() -> None:
    import av

    rng = np.random.default_rng(0)
    frame = rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)
    layer = np.zeros((48, 64, 4), np.uint8)
    layer[8:30, 10:50] = (*viz.PALETTE[1], 150)
    layer[20:24, 0:64] = (255, 255, 255, 255)
    expected = viz.blend(frame, layer).astype(int)
    yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
    plain = yuv.to_ndarray()
    blended = viz.blend_yuv(plain.copy(), viz.yuv_layer(layer))
    back = av.VideoFrame.from_ndarray(blended, format="yuv420p").to_ndarray(format="rgb24")
    reference = av.VideoFrame.from_ndarray(plain, format="yuv420p").to_ndarray(format="rgb24")
    inside = np.s_[10:28, 12:48]  # away from chroma edges
    error = np.abs(back.astype(int) - expected)[inside].mean()
    baseline = np.abs(reference.astype(int) - frame.astype(int))[inside].mean()
    assert error <= baseline + 3  # the blend adds little to the yuv round trip's own error
    assert viz.yuv_layer(np.zeros((4, 4, 4), np.uint8)) is None
    assert (viz.blend_yuv(plain.copy(), None) == plain).all()


def test_overlay_writer_takes_yuv_frames(tmp_path: Path) -> None:
    writer = OverlayVideoWriter(tmp_path / "out.mp4", width=32, height=32, fps=10)
    for i in range(10):
        yuv = np.full((48, 32), 128, np.uint8)
        yuv[:32] = 20 * i + 16
        writer.write_yuv(yuv)
    writer.close()
    means = [frame.mean() for _, frame in iter_frames(tmp_path / "out.mp4")]
    assert len(means) == 10 and means[0] < means[-1]
