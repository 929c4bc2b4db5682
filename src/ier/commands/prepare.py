"""``ier prepare DATASET --root RAW --out DIR``: a standard dataset on disk -> ier manifests."""

from __future__ import annotations

import argparse
from pathlib import Path

# ``ier.adapters.list_datasets()`` (tests/test_cli.py checks they agree): named here so building
# the parser does not import the adapters.
DATASETS = (
    "extended-flickr", "extended-vggss", "flickr", "music", "music-synthetic", "vggsound", "vggss",
)  # fmt: skip


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the ``prepare`` sub-parser."""
    parser = subparsers.add_parser(
        "prepare",
        help="convert MUSIC, MUSIC-Synthetic, VGGSound/VGG-SS, Flickr-SoundNet or the Extended "
        "sets on disk into manifests (see docs/datasets.md)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("dataset", choices=DATASETS, help="which dataset the root holds")
    parser.add_argument("--root", type=Path, required=True, help="the dataset as distributed")
    parser.add_argument("--out", type=Path, required=True, help="output folder for the manifests")
    parser.add_argument("--workers", type=int, default=1, help="parallel processes")
    parser.add_argument(
        "--cache",
        action="store_true",
        help="write each annotated frame (jpg) and its audio window (16 kHz wav) next to the "
        "manifest, for fast training",
    )
    parser.add_argument(
        "--check",
        choices=("decode", "probe"),
        default="decode",
        help="decode every frame and audio window now, or only read file headers",
    )
    parser.add_argument("--no-progress", action="store_true", help="hide the progress bar")
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    from ier.adapters import prepare  # lazy: keeps ier --help fast
    from ier.errors import ConfigError, DatasetError  # lazy: keeps ier --help fast

    if args.workers < 1:
        raise ConfigError(f"--workers must be >= 1, got {args.workers}")
    report = prepare(
        args.dataset,
        args.root,
        args.out,
        workers=args.workers,
        cache=args.cache,
        check=args.check,
        progress=not args.no_progress,
    )
    for split, counts in report.counts.items():
        shown = ", ".join(f"{k} {v}" for k, v in counts.items())
        print(f"{split}: {shown}")
    print(f"{report.n_missing} item(s) missing or unreadable; details in {report.path}")
    if not sum(counts.get("written", 0) for counts in report.counts.values()):
        first = next((p for p in report.problems if p.kind != "warning"), None)
        why = f"e.g. {first.item}: {first.reason}" if first else "the root lists no items"
        raise DatasetError(
            f"wrote no samples from {args.root}: {report.n_missing} item(s) missing or "
            f"unreadable ({why}); every reason is in {report.path}"
        )
    return 0
