"""Builders of tiny, invented dataset roots laid out exactly like the real releases.

Every id, box and file is made up (dataset-formats.md fixtures); media are a few 64-px frames and
short tones, so the adapters' tests stay fast. Nothing here is real dataset content.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path

import numpy as np
import soundfile as sf
from PIL import Image

SR = 16_000


def tone(seconds: float, freq_hz: float = 440.0) -> np.ndarray:
    """A float32 sine of ``seconds`` at 16 kHz, amplitude 0.3."""
    t = np.arange(int(round(seconds * SR))) / SR
    return (0.3 * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def write_jpg(path: Path, size: tuple[int, int] = (64, 48), value: int = 120) -> Path:
    """A solid-colour RGB jpg of (width, height)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (value, 255 - value, 60)).save(path, quality=90)
    return path


def write_wav(path: Path, seconds: float, freq_hz: float = 440.0) -> Path:
    """A 16 kHz mono wav tone."""
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(seconds, freq_hz), SR)
    return path


def write_video(path: Path, seconds: float, *, fps: float = 4.0, size: tuple[int, int] = (64, 48)):
    """A tiny mp4 (width x height) with a moving bar and a tone soundtrack."""
    from ier.video_writer import write_mp4

    n = int(round(seconds * fps))
    frames = np.zeros((n, size[1], size[0], 3), np.uint8)
    for i in range(n):
        frames[i, :, (i * 5) % size[0]] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_mp4(path, frames, fps=fps, audio=tone(seconds))


def write_corrupt(path: Path) -> Path:
    """A file with a media extension holding random bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(np.random.default_rng(0).bytes(4096))
    return path


def write_logmel_pickle(path: Path, freq_hz: float = 440.0) -> np.ndarray:
    """A DSOL audio pickle: float32 (201, 64) log-mel of a 1-s tone, default protocol."""
    import torch

    from ier.audio import LogMel

    logmel = LogMel()(torch.from_numpy(tone(1.0, freq_hz)[None]))[0, 0].numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(logmel.astype(np.float32)))
    return logmel


class Hostile:
    """Unpickling this runs ``touch <marker>`` -- unless the unpickler refuses it."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


# --------------------------------------------------------------------------- VGGSound / VGG-SS

VGGSS = [
    {"file": "FAKEvgg0001_000030", "class": "playing cello", "bbox": [[0.25, 0.1, 0.75, 0.9]]},
    {
        "file": "FAKE-vg_002_000000",
        "class": "female speech, woman speaking",
        "bbox": [[0, 0.3125, 0.5, 1], [0.5, 0.4, 0.9, 0.95]],
    },
    {
        "file": "-FAKEvgg003_000125",
        "class": "dog barking",
        "bbox": [[0.1, 0.2, 0.3, -2.8823037615171176e16]],
    },
    {"file": "FAKEvgg0004_000010", "class": "dog barking", "bbox": [[0.1, 0.1, 0.5, 0.5]]},
    {"file": "FAKEvgg0005_000020", "class": "playing cello", "bbox": [[0.2, 0.2, 0.6, 0.6]]},
]


def make_vggsound(root: Path) -> Path:
    """VGGSound CSV + VGG-SS JSON with three layouts: flat frames/audio, clip mp4, full video.

    FAKEvgg0001_000030: flat layout (frames/*.jpg + audio/*.wav, 10 s);
    FAKE-vg_002_000000: clip video ``video/<clip>.mp4`` (6 s);
    FAKEvgg0005_000020: full YouTube video ``raw/FAKEvgg0005.mp4`` (frame at 20 + 5 s);
    -FAKEvgg003_000125: sentinel box only (annotation problem), no media;
    FAKEvgg0004_000010: corrupt clip video.
    The CSV also has a malformed row and a row with no media.
    """
    (root / "metadata").mkdir(parents=True, exist_ok=True)
    (root / "metadata" / "vggss.json").write_text(json.dumps(VGGSS))
    (root / "metadata" / "vggss_test.csv").write_bytes(
        b"FAKEvgg0001_000030\r\nFAKE-vg_002_000000\r\nFAKEvggXXXX_000000"
    )
    (root / "vggsound.csv").write_text(
        "FAKEvgg0001,30,playing cello,test\n"
        'FAKE-vg_002,0,"female speech, woman speaking",test\n'
        "-FAKEvgg003,125,dog barking,train\n"
        "FAKEvgg0004,10,dog barking,test\n"
        "FAKEvgg0005,20,playing cello,test\n"
        "FAKEvgg0006,abc,broken row,train\n"
    )
    write_jpg(root / "frames" / "FAKEvgg0001_000030.jpg")
    write_wav(root / "audio" / "FAKEvgg0001_000030.wav", 10.0)
    write_video(root / "video" / "FAKE-vg_002_000000.mp4", 6.0, fps=2.0)
    write_video(root / "raw" / "FAKEvgg0005.mp4", 27.0, fps=1.0)
    write_corrupt(root / "video" / "FAKEvgg0004_000010.mp4")
    return root


def make_extended_vggss(root: Path) -> Path:
    """``make_vggsound`` plus SLAVC's negatives CSV (one mismatched, one same-clip, two bad)."""
    make_vggsound(root)
    write_video(root / "video" / "FAKEvggX99_000040.mp4", 6.0, fps=2.0)
    (root / "metadata" / "vggss_test_plus_silent.csv").write_bytes(
        b"video,audio,label\r\n"
        b"FAKEvgg0001_000030,FAKE-vg_002_000000,non-sounding\r\n"
        b"FAKEvggX99_000040,FAKEvggX99_000040,non-sounding\r\n"
        b"FAKEvgg0001_000030,FAKEgone001_000000,non-sounding\r\n"
        b"FAKEvgg0001_000030,FAKE-vg_002_000000,sounding"
    )
    return root


# --------------------------------------------------------------------------- MUSIC (DSOL)

SOLO_TEST = {
    "FAKEsolo004_0_1000/frame_000/00000.jpg": {
        "bbox": [
            {
                "box": [100, 40, 200, 300],
                "normbox": [0.15625, 0.1111111111111111, 0.3125, 0.8333333333333334],
                "category_id": 1,
            }
        ],
        "wdith": 640,
        "height": 360,
    },
    "FAKEsolo004_0_1000/frame_000/00007.jpg": {"bbox": [], "wdith": 640, "height": 360},
    "FAKEsolo004_0_1000/frame_000/00014.jpg": {
        "bbox": [{"box": [1, 1, 10, 10], "normbox": [0.1, 0.1, 0.2, 0.2], "category_id": 5}],
        "wdith": 640,
        "height": 360,
    },
    "FAKE-solo_2_0_1000/frame_004/00141.jpg": {
        "bbox": [
            {
                "box": [30, 90, 120, 240],
                "normbox": [0.0625, 0.25, 0.25, 0.6666666666666666],
                "category_id": 13,
            }
        ],
        "wdith": 480,
        "height": 360,
    },
    "FAKEsolo005_0_1000/frame_000/00000.jpg": {
        "bbox": [{"box": [1, 1, 64, 36], "normbox": [0.0, 0.0, 0.1, 0.1], "category_id": 1}],
        "wdith": 640,
        "height": 360,
    },
}
DUET_TEST = {
    "FAKEduet001_0_1000/frame_010/00314.jpg": {
        "bbox": [
            {
                "box": [40, 100, 160, 200],
                "normbox": [0.0625, 0.2777777777777778, 0.25, 0.5555555555555556],
                "category_id": 1,
            },
            {
                "box": [350, 180, 200, 80],
                "normbox": [0.546875, 0.5, 0.3125, 0.2222222222222222],
                "category_id": 3,
            },
        ],
        "wdith": 640,
        "height": 360,
    }
}


def make_music(root: Path) -> Path:
    """DSOL's MUSIC files: id JSONs, split lists, box JSONs, 1-s layout and raw videos.

    FAKEsolo001 (accordion, train_1): DSOL frame folders for seconds 0-1 + raw wav (2 s).
    FAKEsolo003 (violin, train_1): listed, no media at all.
    FAKE-solo_2 (accordion, val + test): raw video ``FAKE-solo_2.mp4`` (5 s) only.
    FAKEsolo004 (cello, test): DSOL jpg of frame 0 + raw ``FAKEsolo004_0_1000.wav``; its frame 14
        has an unknown category id; frame 7 has no box.
    FAKEsolo005 (test): corrupt raw video. FAKEduet001 (duet test): DSOL jpg + audio pickle.
    """
    meta = root / "music-exp" / "data"
    solo_ids = {"violin": ["FAKEsolo003"], "accordion": ["FAKEsolo001", "FAKE-solo_2"],
                "cello": ["FAKEsolo004", "FAKEsolo005"]}  # fmt: skip
    duet_ids = {"cello acoustic_guitar": ["FAKEduet001"], "flute violin": ["FAKEduet002"]}
    meta.mkdir(parents=True, exist_ok=True)
    (meta / "MUSIC_solo_videos.json").write_text(
        json.dumps({"version": 1.0, "videos": solo_ids}, indent=4)
    )
    (meta / "MUSIC_duet_videos.json").write_text(json.dumps({"version": 1.0, "videos": duet_ids}))
    lists = meta / "data_indicator" / "music" / "solo"
    lists.mkdir(parents=True, exist_ok=True)
    pair = "{0}_0_1000.flac {0}_0_1000.mp4".format
    (lists / "solo_training_1.txt").write_bytes(
        f"{pair('FAKEsolo001')}\r\n{pair('FAKEsolo003')}\r\n".encode()
    )
    (lists / "solo_validation.txt").write_text(pair("FAKE-solo_2") + "\nbroken.flac other.mp4")
    (lists / "solo_testing.txt").write_text(f"{pair('FAKEsolo004')}\n{pair('FAKE-solo_2')}")
    (root / "music-exp" / "solotest.json").write_text(json.dumps(SOLO_TEST))
    (root / "music-exp" / "duettest.json").write_text(json.dumps(DUET_TEST))
    frames = root / "solo" / "video_frames"
    for second in (0, 1):
        for offset in (0, 7, 14, 21):
            write_jpg(
                frames
                / "FAKEsolo001_0_1000"
                / f"frame_{second:03d}"
                / f"{30 * second + offset:05d}.jpg"
            )
    write_wav(root / "raw" / "FAKEsolo001_0_1000.wav", 2.0)
    write_jpg(frames / "FAKEsolo004_0_1000" / "frame_000" / "00000.jpg", (64, 36))
    write_wav(root / "raw" / "FAKEsolo004_0_1000.wav", 1.5)
    write_video(root / "raw" / "FAKE-solo_2.mp4", 5.0)
    write_corrupt(root / "raw" / "FAKEsolo005.mp4")
    duet = root / "duet"
    write_jpg(duet / "video_frames" / "FAKEduet001_0_1000" / "frame_010" / "00314.jpg", (64, 36))
    write_logmel_pickle(duet / "audio_frames" / "FAKEduet001_0_1000" / "010.pkl")
    return root


# --------------------------------------------------------------------------- MUSIC-Synthetic

SYNTH_BOXES = np.array([[0.040, 0.100, 0.380, 0.360, 11.0], [0.550, 0.580, 0.300, 0.400, 13.0]])


def make_music_synthetic(root: Path, marker: Path) -> Path:
    """``synthetic/test1`` (4 mosaics) and ``synthetic/train/train`` (1 mosaic).

    FAKEmix_0001: good. FAKEmix_0002: hostile pickle (would ``touch marker``). FAKEmix_0003: box
    with unknown category 5. FAKEmix_0004: no box file. FAKEtrain_0001: training mosaic.
    """
    test = root / "synthetic" / "test1"
    for i in (1, 2, 3, 4):
        write_jpg(test / "video" / f"FAKEmix_000{i}.jpg", (64, 64))
    write_logmel_pickle(test / "audio" / "FAKEmix_0001.pkl")
    (test / "audio" / "FAKEmix_0002.pkl").write_bytes(pickle.dumps(Hostile(marker)))
    write_logmel_pickle(test / "audio" / "FAKEmix_0003.pkl")
    write_logmel_pickle(test / "audio" / "FAKEmix_0004.pkl")
    (test / "box").mkdir(parents=True)
    for i in (1, 2):
        np.save(test / "box" / f"FAKEmix_000{i}.npy", SYNTH_BOXES)
    np.save(test / "box" / "FAKEmix_0003.npy", np.array([[0.1, 0.1, 0.2, 0.2, 5.0]]))
    train = root / "synthetic" / "train" / "train"
    write_jpg(train / "video" / "FAKEtrain_0001.jpg", (64, 64))
    write_logmel_pickle(train / "audio" / "FAKEtrain_0001.pkl", 880.0)
    return root


# --------------------------------------------------------------------------- Flickr-SoundNet

XML = """<annotation>
  <filename>{ident}</filename>
  <object>
{boxes}
  </object>
</annotation>
"""
FLICKR_BOXES = {
    "12345678901": [(40, 60, 180, 256), (52, 70, 170, 250), (1, 100, 120, 256)],
    "10987654321": [(10, 20, 100, 120), (12, 24, 96, 128)],
}


def _xml(ident: str, boxes: list[tuple[int, int, int, int]]) -> str:
    rows = "\n".join(
        f"    <bbox><name>{k + 1}</name><xmin>{b[0]}</xmin><ymin>{b[1]}</ymin>"
        f"<xmax>{b[2]}</xmax><ymax>{b[3]}</ymax></bbox>"
        for k, b in enumerate(boxes)
    )
    return XML.format(ident=ident, boxes=rows)


def make_flickr(root: Path) -> Path:
    """The annotated release as downloaded (``Annotations/``, ``Data/<k>/``) + ``flickr_test.csv``.

    12345678901: complete. 10987654321: complete. 11111111111: malformed XML.
    33333333333: annotated, frame present, audio missing. 22222222222: listed, no XML.
    """
    ann = root / "Annotations"
    ann.mkdir(parents=True)
    for ident, boxes in FLICKR_BOXES.items():
        (ann / f"{ident}.xml").write_text(_xml(ident, boxes))
    (ann / "33333333333.xml").write_text(_xml("33333333333", [(1, 1, 256, 256)]))
    (ann / "11111111111.xml").write_text("<annotation><object><bbox><name>1</name>")
    write_jpg(root / "Data" / "0" / "12345678901.jpg", (64, 64))
    write_wav(root / "Data" / "0" / "12345678901.wav", 4.0)
    write_jpg(root / "Data" / "3" / "10987654321.jpg", (64, 64))
    write_wav(root / "Data" / "3" / "10987654321.wav", 3.0, 660.0)
    write_jpg(root / "Data" / "5" / "33333333333.jpg", (64, 64))
    (root / "flickr_test.csv").write_bytes(
        b"12345678901,0\r\n10987654321,57\r\n11111111111,3\r\n22222222222,1\r\n33333333333,9"
    )
    return root


def make_extended_flickr(root: Path) -> Path:
    """``make_flickr`` plus SLAVC's ``flickr_test_plus_silent.csv``."""
    make_flickr(root)
    (root / "flickr_test_plus_silent.csv").write_bytes(
        b"video,audio,label\r\n"
        b"12345678901,10987654321,non-sounding\r\n"
        b"10987654321,33333333333,non-sounding\r\n"
        b"10987654321,12345678901"
    )
    return root
