"""A reader for OpenTTD base-sound ``.cat`` archives (OpenSFX): named RIFF WAV entries."""

from __future__ import annotations

import struct
from dataclasses import dataclass
from pathlib import Path

from ier.errors import AssetError

# (phrase in the entry name, SPDX id); checked in this order.
_LICENSES = (
    ("creative commons zero", "CC0-1.0"),
    ("attribution-sharealike 3.0", "CC-BY-SA-3.0"),
    ("attribution 3.0", "CC-BY-3.0"),
)


@dataclass(frozen=True)
class CatEntry:
    """One sound in a ``.cat`` archive.

    Attributes:
        index: 0-based position in the archive (OpenTTD's sound id).
        name: the entry's description (author, title, licence).
        wav: the RIFF WAV bytes.
        license: the licence named in ``name`` (``CC0-1.0``, ``CC-BY-3.0``, ``CC-BY-SA-3.0``) or "".
    """

    index: int
    name: str
    wav: bytes
    license: str


def _license_of(name: str) -> str:
    text = " ".join(name.lower().split())
    for phrase, spdx in _LICENSES:
        if phrase in text:
            return spdx
    return ""


def read_cat(path: str | Path) -> list[CatEntry]:
    """Read every entry of an OpenTTD ``.cat`` sound archive.

    The file starts with little-endian (u32 offset, u32 size) pairs (the top bit of an offset is a
    flag); the entry count is the first offset / 8. Each entry is a 1-byte name length, the
    NUL-terminated name, then a RIFF WAV. Empty placeholder entries are kept with ``wav == b""``.

    Raises:
        AssetError: the file is missing or malformed.
    """
    path = Path(path)
    try:
        blob = path.read_bytes()
    except OSError as err:
        raise AssetError(f"cannot read OpenTTD sound archive {path}: {err}") from err
    if len(blob) < 8:
        raise AssetError(f"{path} is too short to be an OpenTTD .cat archive")
    first = struct.unpack_from("<I", blob, 0)[0] & 0x7FFFFFFF
    count = first // 8
    if count == 0 or first % 8 or first > len(blob):
        raise AssetError(f"{path} is not an OpenTTD .cat archive (bad header)")
    entries = []
    for index in range(count):
        offset, size = struct.unpack_from("<II", blob, 8 * index)
        offset &= 0x7FFFFFFF
        if offset + size > len(blob):
            raise AssetError(f"{path}: entry {index} runs past the end of the file")
        body = blob[offset : offset + size]
        name_len = body[0] if body else 0
        name = body[1 : 1 + name_len].split(b"\0", 1)[0].decode("latin-1").strip()
        wav = body[1 + name_len :]
        if wav and not wav.startswith(b"RIFF"):
            wav = b""
        entries.append(CatEntry(index=index, name=name, wav=wav, license=_license_of(name)))
    return entries
