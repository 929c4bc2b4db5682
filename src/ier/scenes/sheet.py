"""A contact sheet of benchmark samples: annotated frames with boxes and sounding/silent tags."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from ier.scenes.stats import load_benchmark
from ier.video import load_frames

SOUNDING = (40, 220, 60)
SILENT = (240, 60, 50)
_TILE = 224
_CAPTION = 46


def _font(size: int) -> ImageFont.ImageFont:
    for name in ("DejaVuSans.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default()


def _tile(root: Path, split: str, record: dict) -> Image.Image:

    frame = load_frames(root / split / record["video"], [record["time"]], size=_TILE)[0]
    image = Image.new("RGB", (_TILE, _TILE + _CAPTION), (255, 255, 255))
    image.paste(Image.fromarray(frame), (0, 0))
    draw = ImageDraw.Draw(image)
    small = _font(10)
    for obj in record["objects"]:
        x0, y0, x1, y1 = (v * _TILE for v in obj["box"])
        color = SOUNDING if obj["sounding"] else SILENT
        draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=color, width=2)
        tag = f"{obj['label']}{'' if obj['sounding'] else ' (silent)'}"
        draw.rectangle((x0, y0, x0 + 6 * len(tag) + 4, y0 + 12), fill=color)
        draw.text((x0 + 2, y0), tag, fill=(0, 0, 0), font=small)
    off = ", ".join(record.get("offscreen", [])) or "none"
    noise = record.get("noise")
    noise_text = "none"
    if noise:
        level = noise["snr_db"] if noise.get("snr_db") is not None else None
        noise_text = f"{noise['kind']} @ {level:.0f} dB" if level is not None else noise["kind"]
    if record.get("audio_content") in ("noise", "silence"):
        noise_text = record["audio_content"] + " only"
    draw.text((3, _TILE + 2), f"{split}  {record['id'][-5:]}", fill=(0, 0, 0), font=_font(11))
    draw.text((3, _TILE + 16), f"off-screen: {off}", fill=(0, 0, 120), font=small)
    draw.text((3, _TILE + 30), f"noise: {noise_text}", fill=(90, 90, 90), font=small)
    return image


def contact_sheet(root: str | Path, out_path: str | Path, *, per_split: int = 3) -> Path:
    """Draw ``per_split`` samples of every split in a grid (one row per split) into a PNG.

    Boxes are green for sounding objects and red for silent ones; the caption lists off-screen
    sounds and the noise bed.
    """
    root, out_path = Path(root), Path(out_path)
    _, records = load_benchmark(root)
    rows = []
    for split, split_records in records.items():
        picks = np.linspace(0, len(split_records) - 1, per_split).round().astype(int)
        rows.append([_tile(root, split, split_records[i]) for i in dict.fromkeys(picks.tolist())])
    width = max(len(r) for r in rows) * (_TILE + 4)
    sheet = Image.new("RGB", (width, len(rows) * (_TILE + _CAPTION + 4)), (255, 255, 255))
    for r, row in enumerate(rows):
        for c, tile in enumerate(row):
            sheet.paste(tile, (c * (_TILE + 4), r * (_TILE + _CAPTION + 4)))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    sheet.quantize(colors=256, method=Image.Quantize.MEDIANCUT).save(out_path, optimize=True)
    return out_path
