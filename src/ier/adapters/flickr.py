"""Flickr-SoundNet (Senocak et al.): XML boxes of three annotators on a 256x256 image."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from pathlib import Path

from ier.adapters.common import (
    AUDIO_EXTENSIONS,
    IMAGE_EXTENSIONS,
    VIDEO_EXTENSIONS,
    AdapterOutput,
    Box,
    MediaIndex,
    ObjectSpec,
    SampleSpec,
    envelope,
    find_file,
    read_rows,
)
from ier.errors import DatasetError

logger = logging.getLogger(__name__)

XML_GRID = 256  # the annotations live on the image squashed to 256 x 256, values 1..256
ANY_LABEL = "*"  # Flickr-SoundNet has no classes (unless the list carries ACL-SSL labels)
FORMAT_VERSION = "senocak-xml-v1"
TEST_LISTS = ("flickr_test.csv", "test_list.txt", "test_flickr_250.txt", "flickr_test_249.csv")


def find_annotation_dir(root: Path) -> Path | None:
    """The folder of ``<id>.xml`` files: ``Annotations/`` (or ``annotations``/``gt``) near root."""
    candidates = [root / n for n in ("Annotations", "annotations", "gt", "gt_bbox")]
    candidates += [
        p / n for p in sorted(root.iterdir()) if p.is_dir() for n in ("Annotations", "annotations")
    ]
    for folder in candidates:
        if folder.is_dir() and any(folder.glob("*.xml")):
            return folder
    return None


def parse_xml(path: Path) -> list[Box]:
    """All ``<bbox>`` boxes of one annotation file, normalised xyxy (value / 256).

    Each ``<bbox>`` has five children read by position: an ignored one, then xmin, ymin, xmax,
    ymax as integers in [1, 256]. ``<bbox>`` elements are found anywhere below the root.

    Raises:
        ValueError: malformed XML, no ``<bbox>``, or a box that is not 4 integers in range.
    """
    try:
        tree = ET.parse(path)
    except ET.ParseError as err:
        raise ValueError(f"malformed XML: {err}") from err
    boxes: list[Box] = []
    for j, bbox in enumerate(tree.getroot().iter("bbox")):
        children = list(bbox)
        if len(children) != 5:
            raise ValueError(f"<bbox> #{j} has {len(children)} children, expected 5")
        try:
            x0, y0, x1, y1 = (int((c.text or "").strip()) for c in children[1:])
        except ValueError as err:
            raise ValueError(f"<bbox> #{j}: coordinates are not integers ({err})") from err
        if not (0 <= x0 < x1 <= XML_GRID and 0 <= y0 < y1 <= XML_GRID):
            raise ValueError(f"<bbox> #{j}: {[x0, y0, x1, y1]} is not a box inside 1..{XML_GRID}")
        boxes.append((x0 / XML_GRID, y0 / XML_GRID, x1 / XML_GRID, y1 / XML_GRID))
    if not boxes:
        raise ValueError("no <bbox> element")
    return boxes


def flickr_object(boxes: list[Box], label: str = ANY_LABEL) -> ObjectSpec:
    """One sounding object: ``box`` is the envelope, ``annotators`` all boxes (for consensus)."""
    return ObjectSpec(label, envelope(boxes), True, annotators=tuple(boxes))


def read_id_list(path: Path) -> list[tuple[str, str | None]]:
    """(flickr id, optional label) rows of a test list; ``<id>.jpg``/``.png`` names are stripped.

    The second column of LVS's ``flickr_test.csv`` is an undocumented integer (kept out); ACL-SSL's
    has a VGGSound-style label text, which becomes the object label.
    """
    rows = []
    for _, cells in read_rows(path):
        ident = cells[0].split(".")[0]
        label = cells[1] if len(cells) > 1 and cells[1] and not cells[1].isdigit() else None
        if ident.isdigit():
            rows.append((ident, label))
    return rows


class FlickrSet:
    """The parsed annotations and media of a Flickr-SoundNet root (shared with the extended set)."""

    def __init__(self, root: Path, out: AdapterOutput, *, skip: tuple[Path, ...] = ()) -> None:
        self.ann_dir = find_annotation_dir(root)
        if self.ann_dir is None:
            raise DatasetError(f"{root}: no Annotations/<id>.xml files found (Flickr-SoundNet)")
        self.out = out
        exts = IMAGE_EXTENSIONS + AUDIO_EXTENSIONS + VIDEO_EXTENSIONS
        self.index = MediaIndex(root, exts, skip_paths=skip, skip_dirs=(".git",))
        self.xml = {p.name.split(".")[0]: p for p in sorted(self.ann_dir.glob("*.xml"))}
        self._boxes: dict[str, list[Box] | None] = {}
        out.format.update(
            annotations=f"{len(self.xml)} XML files in {self.ann_dir.name}/",
            boxes="xyxy integers on a 256x256 grid, /256",
        )

    def boxes(self, ident: str, split: str) -> list[Box] | None:
        """Boxes of ``ident`` (None, with a problem recorded, if absent or malformed)."""
        if ident not in self._boxes:
            path = self.xml.get(ident)
            if path is None:
                self.out.problem(
                    split,
                    ident,
                    f"no annotation {ident}.xml in {self.ann_dir.name}/",
                    kind="annotation",
                )
                self._boxes[ident] = None
                return None
            try:
                self._boxes[ident] = parse_xml(path)
            except (ValueError, OSError) as err:
                self.out.problem(
                    split, ident, f"{path.name}: {err}", kind="annotation", path=str(path)
                )
                self._boxes[ident] = None
        return self._boxes[ident]

    def media(self, ident: str) -> tuple[Path | None, Path | None, str]:
        """(frame image or video, audio source, why missing) of a Flickr id."""
        image = self.index.find(ident, IMAGE_EXTENSIONS)
        audio = self.index.find(ident, AUDIO_EXTENSIONS)
        video = self.index.find(ident, VIDEO_EXTENSIONS)
        frame = image or video
        sound = audio or video
        if frame is None or sound is None:
            what = " and ".join(w for w, p in (("frame", frame), ("audio", sound)) if p is None)
            return None, None, f"no {what} file for {ident} (looked for {ident}.jpg/.wav/.mp4)"
        return frame, sound, ""

    def spec(self, ident: str, split: str, field: str, label: str | None) -> SampleSpec | None:
        """A positive sample of ``ident``, or None (problem recorded)."""
        boxes = self.boxes(ident, split)
        if boxes is None:
            return None
        frame, sound, why = self.media(ident)
        if frame is None or sound is None:
            self.out.problem(split, ident, why)
            return None
        obj = flickr_object(boxes, label or ANY_LABEL)
        return frame_audio_spec(
            ident,
            split=field,
            frame=frame,
            audio=sound,
            objects=(obj,),
            extra=(("dataset", "flickr"),),
        )


def frame_audio_spec(ident: str, *, split: str, frame: Path, audio: Path, **kwargs) -> SampleSpec:
    """A spec whose frame is an image or (if a video) its midpoint, audio centred in ``audio``."""
    if frame.suffix.lower() in IMAGE_EXTENSIONS:
        return SampleSpec(id=ident, split=split, frame=frame, audio=audio, **kwargs)
    if frame == audio:
        return SampleSpec(id=ident, split=split, video=frame, **kwargs)
    return SampleSpec(id=ident, split=split, video=frame, audio=audio, **kwargs)


def build_flickr(root: Path, *, skip: tuple[Path, ...] = ()) -> AdapterOutput:
    """Flickr-SoundNet: split ``test`` from a test list if present, else ``annotated`` (every XML);
    plus ``sup_train`` from ``flickr_sup_train.txt`` when present."""
    out = AdapterOutput(format={"adapter": "flickr", "version": FORMAT_VERSION})
    data = FlickrSet(root, out, skip=skip)
    lists: dict[str, list[tuple[str, str | None]]] = {}
    test_list = find_file(root, TEST_LISTS)
    if test_list is not None:
        lists["test"] = read_id_list(test_list)
        out.describe_file("test_list", test_list, rows=len(lists["test"]))
    else:
        lists["annotated"] = [(ident, None) for ident in data.xml]
    sup = find_file(root, ["flickr_sup_train.txt"])
    if sup is not None:
        lists["sup_train"] = read_id_list(sup)
        out.describe_file("flickr_sup_train.txt", sup, rows=len(lists["sup_train"]))
    for split, rows in lists.items():
        out.count(split, "listed", len(rows))
        for ident, label in rows:
            spec = data.spec(ident, split, "flickr", label)
            if spec is not None:
                out.add(split, spec)
    return out
