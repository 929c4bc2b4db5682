r"""The frame grid of docs/models.md: the overlay of ``ier localize`` at 1 s and 2 s of the five
demo clips (``ier.commands.demo.DEMO_CLIPS``), with what each clip really holds and what was drawn.

    python benchmarks/demo_grid.py --data bench/default --model ier-wild-small \
        --out docs/images/demo-grid.jpg

Reads the clips from a built benchmark (the same clips ``ier demo`` composes) and runs
``ier.localization.localize`` at the model's stored threshold, writing each overlay under
``--work`` (default: a temporary folder).
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw

from ier.commands.demo import DEMO_CLIPS
from ier.data.manifest import read_manifest
from ier.localization import load_model, localize
from ier.video import load_frames

TILE = 224
CAPTION = 46
TIMES = (1.0, 2.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True, help="benchmark directory")
    parser.add_argument("--model", default="ier-wild-small", help="bundled name or checkpoint")
    parser.add_argument("--out", type=Path, required=True, help="the grid image (.jpg or .png)")
    parser.add_argument("--work", type=Path, help="where the overlays go (default: a temp dir)")
    args = parser.parse_args()
    net = load_model(args.model)
    work = args.work or Path(tempfile.mkdtemp(prefix="ier-demo-grid-"))
    grid = Image.new("RGB", (TILE * len(DEMO_CLIPS), TILE * len(TIMES) + CAPTION), "white")
    draw = ImageDraw.Draw(grid)
    for column, (split, index) in enumerate(DEMO_CLIPS):
        record = read_manifest(args.data / split / "manifest.jsonl")[index]
        result = localize(args.data / split / record.video, model=net, out_dir=work / record.id,
                          overwrite=True, write_report=False)  # fmt: skip
        frames = load_frames(work / record.id / "overlay.mp4", TIMES, size=TILE)
        for row, frame in enumerate(frames):
            grid.paste(Image.fromarray(np.asarray(frame)), (column * TILE, row * TILE))
        drawn = sorted({name for w in result.windows for name, c in zip(result.classes, w.classes)
                        if c.state == "sounding-on-screen"})  # fmt: skip
        sounding = sorted({o.label for o in record.objects if o.sounding})
        text = (f"{record.id}\ntruth sounding: {', '.join(sounding) or 'nothing'}\n"
                f"drawn: {', '.join(drawn) or 'nothing'}")  # fmt: skip
        draw.multiline_text((column * TILE + 3, TILE * len(TIMES) + 2), text, fill="black")
        print(f"{record.id}: sounding {sounding}, drawn {drawn}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    grid.save(args.out, quality=85)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
