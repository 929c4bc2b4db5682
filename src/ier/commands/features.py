"""``ier features extract``: run a frozen visual trunk once over a dataset and cache its output."""

from __future__ import annotations

import argparse
from pathlib import Path

from ier.codec import apply_overrides
from ier.config import PRESETS  # torch-free: ier.config imports no model code
from ier.errors import ConfigError


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``features`` sub-parser (one sub-command, ``extract``)."""
    parser = subparsers.add_parser(
        "features",
        help="cache a frozen visual trunk's features (and a frozen audio encoder's encodings)",
        description="The feature cache of models with a frozen visual trunk (docs/training.md).",
    )
    sub = parser.add_subparsers(dest="features_command", metavar="COMMAND")
    extract = sub.add_parser(
        "extract",
        help="extract the features every split needs (ier train/bench do it when missing)",
        description=(
            "Run the frozen visual trunk of METHOD's PRESET model once over every split of DIR and "
            "cache its output as float16 (DIR/.ier-cache/features/, where ier train, evaluate and "
            "bench read it). Training splits get --views views per clip. Interrupted extraction "
            "resumes where it stopped; under torchrun every process extracts its share. With a "
            "frozen audio encoder (--set model.audio_backbone=aisfx) every split's audio is also "
            "encoded once (DIR/.ier-cache/audio-encodings/)."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    extract.add_argument("--data", type=Path, required=True, help="benchmark or dataset folder")
    extract.add_argument("--method", default="ier", help="method recipe whose model is used")
    extract.add_argument("--preset", choices=PRESETS, default="cpu", help="training preset")
    extract.add_argument(
        "--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
        help="override a config value (as in ier train), e.g. --set model.input_size=288",
    )  # fmt: skip
    extract.add_argument("--splits", nargs="+", help="split folders (default: all)")
    extract.add_argument("--views", type=int, help="views per training clip (default: preset's)")
    extract.add_argument("--cache-dir", type=Path, help="default: DIR/.ier-cache")
    extract.add_argument("--device", default="cpu", help="torch device")
    extract.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    extract.set_defaults(handler=_extract)
    parser.set_defaults(handler=lambda args: parser.print_help() or 2)


def _extract(args: argparse.Namespace) -> int:
    from ier.data.extraction import extract_features  # lazy: keeps ier --help fast
    from ier.methods import preset  # lazy: keeps ier --help fast

    cfg = apply_overrides(preset(args.method, args.preset), args.overrides)
    views = cfg.data.feature_views if args.views is None else args.views
    if views < 1:
        raise ConfigError(f"--views must be >= 1, got {views}")
    cache = args.cache_dir or (Path(cfg.data.cache_dir) if cfg.data.cache_dir else None)
    found = extract_features(
        args.data, cfg.model, splits=args.splits, views=views, cache_dir=cache,
        device=args.device, workers=cfg.data.decode_workers, progress=not args.no_progress,
        seed=cfg.seed,
    )  # fmt: skip
    total = sum(f.bytes for f in found)
    for f in found:
        print(f"{f.split}: {f.clips} clips x {f.views} view(s), {f.bytes / 2**20:.1f} MiB")
    encoded = [f.audio_encodings for f in found if f.audio_encodings is not None]
    if encoded:
        size = sum(p.stat().st_size for p in encoded) / 2**20
        print(f"audio encodings of {cfg.model.audio_backbone}: {len(encoded)} split(s), "
              f"{size:.1f} MiB in {encoded[0].parent}")  # fmt: skip
    print(f"feature cache of {cfg.model.visual_backbone} at {cfg.model.input_size} px: "
          f"{total / 2**30:.2f} GiB")  # fmt: skip
    return 0
