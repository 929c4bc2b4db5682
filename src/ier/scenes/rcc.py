"""A reader for Qt resource archives (``.rcc``, format versions 1-3), as shipped by GCompris."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

from ier.errors import AssetError

_NODE_BYTES_V1 = 14
_NODE_BYTES_V2 = 22
_FLAG_COMPRESSED = 0x01
_FLAG_DIRECTORY = 0x02
_FLAG_ZSTD = 0x04


class RccArchive:
    """Random access to the files inside one ``.rcc`` archive.

    Args:
        path: the ``.rcc`` file.

    Raises:
        AssetError: the file is missing or is not a Qt resource archive.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._blob = self.path.read_bytes()
        except OSError as err:
            raise AssetError(f"cannot read Qt resource archive {self.path}: {err}") from err
        blob = self._blob
        if len(blob) < 20 or blob[:4] != b"qres":
            raise AssetError(f"{self.path} is not a Qt resource archive (no 'qres' magic)")
        version, self._tree, self._data, self._names = struct.unpack_from(">4I", blob, 4)
        if version not in (1, 2, 3):
            raise AssetError(f"{self.path}: unsupported rcc format version {version}")
        self._node_bytes = _NODE_BYTES_V1 if version == 1 else _NODE_BYTES_V2
        self._files: dict[str, tuple[int, int]] = {}
        self._walk(0, "")

    def _name(self, offset: int) -> str:
        pos = self._names + offset
        (length,) = struct.unpack_from(">H", self._blob, pos)
        raw = self._blob[pos + 6 : pos + 6 + 2 * length]
        return raw.decode("utf-16-be")

    def _walk(self, index: int, prefix: str) -> None:
        pos = self._tree + index * self._node_bytes
        name_offset, flags = struct.unpack_from(">IH", self._blob, pos)
        name = "" if index == 0 else self._name(name_offset)
        path = f"{prefix}/{name}" if prefix else name
        if flags & _FLAG_DIRECTORY:
            count, first = struct.unpack_from(">II", self._blob, pos + 6)
            for child in range(first, first + count):
                self._walk(child, path)
        else:
            (data_offset,) = struct.unpack_from(">I", self._blob, pos + 10)
            self._files[path] = (data_offset, flags)

    def names(self) -> list[str]:
        """All file paths inside the archive, sorted (e.g. ``gcompris/src/.../violin.ogg``)."""
        return sorted(self._files)

    def read(self, name: str) -> bytes:
        """The (decompressed) bytes of one file.

        Raises:
            AssetError: the name is not in the archive, or it uses an unsupported compression.
        """
        if name not in self._files:
            raise AssetError(f"{self.path}: no file {name!r} in this archive")
        offset, flags = self._files[name]
        pos = self._data + offset
        (size,) = struct.unpack_from(">I", self._blob, pos)
        payload = self._blob[pos + 4 : pos + 4 + size]
        if flags & _FLAG_ZSTD:
            raise AssetError(f"{self.path}: {name} is zstd-compressed, which is not supported")
        if flags & _FLAG_COMPRESSED:
            return zlib.decompress(payload[4:])
        return payload
