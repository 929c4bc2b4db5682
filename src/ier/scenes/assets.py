"""Installed asset sources (Debian/PyPI packages), stable asset ids, licences and cached loaders.

An asset id is ``<source>:<path>``: ``tuxpaint:animals/mammals/dogs/dog.ogg``,
``gcompris:instruments/resource/violin.ogg`` (a member of ``instruments.rcc``), ``opensfx:37``,
``lincity:Water1.wav``, ``freedesktop:phone-incoming-call.oga``, ``sklearn:china.jpg``.
"""

from __future__ import annotations

import functools
import io
import logging
import subprocess
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ier.audio import SAMPLE_RATE, decode_audio_bytes
from ier.errors import AssetError
from ier.scenes.opensfx import CatEntry, read_cat
from ier.scenes.rcc import RccArchive
from ier.scenes.svg import render_svg

logger = logging.getLogger(__name__)

IMAGE_MAX_SIDE = 256  # px; cut-outs are loaded at most this large (they are pasted smaller)


@dataclass(frozen=True)
class Source:
    """One installed asset source.

    Attributes:
        name: the id prefix (``tuxpaint``, ``gcompris``, ...).
        path: where the package installs its files.
        package: the Debian package (or PyPI project) that provides it.
        license: the licence of the source as a whole (files may state their own).
        title: a human-readable description, for NOTICE and docs.
    """

    name: str
    path: Path
    package: str
    license: str
    title: str


def _sklearn_images() -> Path:
    try:
        import sklearn
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        return Path("/nonexistent/sklearn/datasets/images")
    return Path(sklearn.__file__).parent / "datasets" / "images"


SOURCES: dict[str, Source] = {
    s.name: s
    for s in (
        Source("tuxpaint", Path("/usr/share/tuxpaint/stamps"), "tuxpaint-stamps-default",
               "GPL-2.0-or-later", "Tux Paint stamps: photo cut-outs with alpha, real sounds"),
        Source("gcompris", Path("/usr/share/gcompris-qt/rcc"), "gcompris-qt-data",
               "GPL-3.0-or-later", "GCompris activity data (Qt .rcc archives)"),
        Source("opensfx", Path("/usr/share/games/openttd/baseset/opensfx/opensfx.cat"),
               "openttd-opensfx", "CC0-1.0 / CC-BY-3.0 / CC-BY-SA-3.0 per sound",
               "OpenSFX, the free OpenTTD sound set"),
        Source("lincity", Path("/usr/share/games/lincity-ng/sounds"), "lincity-ng-data",
               "GPL-2.0-or-later", "LinCity-NG ambience recordings"),
        Source("freedesktop", Path("/usr/share/sounds/freedesktop/stereo"),
               "sound-theme-freedesktop", "CC-BY-SA-3.0 / CC-BY-3.0 / GPL-2+ per sound",
               "freedesktop.org sound theme"),
        Source("soundfont", Path("/usr/share/sounds/sf2/FluidR3_GM.sf2"), "fluid-soundfont-gm",
               "MIT", "Fluid R3 General MIDI soundfont (sampled instruments), via fluidsynth"),
        Source("sklearn", _sklearn_images(), "scikit-learn (PyPI)", "CC-BY-2.0",
               "scikit-learn sample photos china.jpg and flower.jpg"),
        Source("openclipart", Path("/usr/share/openclipart/png"), "openclipart-png",
               "Public Domain", "Open Clip Art Library drawings (optional extra training images)"),
    )
}  # fmt: skip

_COPYRIGHT_FILES = {
    "lincity": Path("/usr/share/doc/lincity-ng-data/copyright"),
    "freedesktop": Path("/usr/share/doc/sound-theme-freedesktop/copyright"),
}


def source(name: str) -> Source:
    """The installed source ``name``.

    Raises:
        AssetError: unknown source, or its files are not installed (names the package).
    """
    if name not in SOURCES:
        raise AssetError(f"unknown asset source {name!r}; known: {', '.join(SOURCES)}")
    src = SOURCES[name]
    if not src.path.exists():
        hint = (
            f"pip install {src.package.split()[0]}"
            if "PyPI" in src.package
            else f"apt-get install {src.package}"
        )
        raise AssetError(
            f"asset source {name!r} is not installed: {src.path} is missing. "
            f"It comes from the package {src.package} ({hint})."
        )
    return src


def require_sources(names: tuple[str, ...] | list[str]) -> None:
    """Check that every named source is installed; one AssetError lists all that are missing."""
    missing = []
    for name in names:
        try:
            source(name)
        except AssetError as err:
            missing.append(str(err))
    if missing:
        raise AssetError("missing benchmark assets:\n  " + "\n  ".join(missing))


def package_versions(packages: tuple[str, ...]) -> dict[str, str]:
    """Installed Debian package versions (``"?"`` when dpkg cannot tell), for provenance."""
    versions = {}
    for pkg in packages:
        try:
            out = subprocess.run(
                ["dpkg-query", "-W", "-f=${Version}", pkg],
                capture_output=True, text=True, timeout=10, check=False,
            )  # fmt: skip
            versions[pkg] = out.stdout.strip() or "?"
        except (OSError, subprocess.SubprocessError):
            versions[pkg] = "?"
    return versions


# --------------------------------------------------------------------------- raw bytes


@functools.lru_cache(maxsize=64)
def _rcc(stem: str) -> RccArchive:
    return RccArchive(source("gcompris").path / f"{stem}.rcc")


@functools.lru_cache(maxsize=1)
def _cat() -> tuple[CatEntry, ...]:
    return tuple(read_cat(source("opensfx").path))


def _split_id(asset_id: str) -> tuple[str, str]:
    scheme, sep, rest = asset_id.partition(":")
    if not sep or not rest:
        raise AssetError(f"bad asset id {asset_id!r}: expected '<source>:<path>'")
    return scheme, rest


def read_bytes(asset_id: str) -> bytes:
    """The stored file bytes of an asset (a file, an ``.rcc`` member or a ``.cat`` entry)."""
    scheme, rest = _split_id(asset_id)
    if scheme == "gcompris":
        stem = rest.split("/", 1)[0]
        return _rcc(stem).read(f"gcompris/src/activities/{rest}")
    if scheme == "opensfx":
        entries = _cat()
        index = int(rest)
        if not 0 <= index < len(entries) or not entries[index].wav:
            raise AssetError(f"OpenSFX has no sound number {index}")
        return entries[index].wav
    path = source(scheme).path / rest
    try:
        return path.read_bytes()
    except OSError as err:
        raise AssetError(f"asset {asset_id}: cannot read {path} ({err})") from err


def exists(asset_id: str) -> bool:
    """Whether the asset can be read (its source is installed and holds it)."""
    try:
        scheme, rest = _split_id(asset_id)
        if scheme == "gcompris":
            return f"gcompris/src/activities/{rest}" in set(_rcc(rest.split("/", 1)[0]).names())
        if scheme == "opensfx":
            entries = _cat()
            return 0 <= int(rest) < len(entries) and bool(entries[int(rest)].wav)
        return (source(scheme).path / rest).is_file()
    except AssetError:
        return False


# --------------------------------------------------------------------------- decoded, cached


@functools.cache
def load_wave(asset_id: str) -> np.ndarray:
    """The whole recording as mono float32 (n,) at 16 kHz (cached per process)."""
    wave = decode_audio_bytes(read_bytes(asset_id), sample_rate=SAMPLE_RATE, name=asset_id)
    wave.setflags(write=False)
    return wave


def wave_seconds(asset_id: str) -> float:
    """Length of a recording in seconds."""
    return load_wave(asset_id).shape[0] / SAMPLE_RATE


def _crop_to_alpha(rgba: np.ndarray, asset_id: str) -> np.ndarray:
    ys, xs = np.nonzero(rgba[..., 3] > 8)
    if ys.size == 0:
        raise AssetError(f"image {asset_id} is fully transparent")
    return np.ascontiguousarray(rgba[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1])


@functools.cache
def load_cutout(asset_id: str) -> np.ndarray:
    """A cut-out (PNG with alpha or SVG drawing) as uint8 RGBA (h, w, 4), cropped to its alpha.

    The longer side is at most ``IMAGE_MAX_SIDE`` px. Cached per process.
    """
    data = read_bytes(asset_id)
    if asset_id.endswith(".svg"):
        rgba = render_svg(data, max_side=IMAGE_MAX_SIDE, name=asset_id)
    else:
        try:
            with Image.open(io.BytesIO(data)) as image:
                image = image.convert("RGBA")
                image.thumbnail((IMAGE_MAX_SIDE, IMAGE_MAX_SIDE), Image.Resampling.LANCZOS)
                rgba = np.asarray(image)
        except (OSError, ValueError) as err:
            raise AssetError(f"cannot decode image {asset_id}: {err}") from err
    out = _crop_to_alpha(rgba, asset_id)
    out.setflags(write=False)
    return out


@functools.cache
def load_photo(asset_id: str, max_side: int = 512) -> np.ndarray:
    """A background photo as uint8 RGB (h, w, 3), longer side at most ``max_side`` px."""
    try:
        with Image.open(io.BytesIO(read_bytes(asset_id))) as image:
            image = image.convert("RGB")
            image.thumbnail((max_side, max_side), Image.Resampling.BILINEAR)
            out = np.asarray(image)
    except (OSError, ValueError) as err:
        raise AssetError(f"cannot decode image {asset_id}: {err}") from err
    out.setflags(write=False)
    return out


# --------------------------------------------------------------------------- licences


def _parse_license_blocks(text: str) -> dict[str, str]:
    """File basename -> licence from DEP-5 copyright files and GCompris README files."""
    out: dict[str, str] = {}
    for block in text.replace("\r", "").split("\n\n"):
        files: list[str] = []
        license_name = ""
        in_files = False
        for line in block.split("\n"):
            key, _, value = line.partition(":")
            if line.startswith("License:"):
                license_name = license_name or value.strip()
                in_files = False
            elif line.startswith("Files:"):
                files += value.split()
                in_files = True
            elif in_files and line.strip() and ":" not in line:
                files += line.split()
            elif ":" in line and key.strip() and not key.startswith(" "):
                in_files = False
        for name in files:
            out.setdefault(Path(name).name, license_name)
    return out


@functools.cache
def _gcompris_readme(folder: str) -> dict[str, str]:
    stem = folder.split("/", 1)[0]
    archive = _rcc(stem)
    text = ""
    for name in ("README", "Licence.txt", "LICENSE"):
        member = f"gcompris/src/activities/{folder}/{name}"
        if member in set(archive.names()):
            text = archive.read(member).decode("utf-8", "replace")
            break
    if text.startswith("Free Art License"):
        return {"*": "LAL-1.2 (Free Art License 1.2)"}
    return _parse_license_blocks(text)


@functools.cache
def _copyright_file(scheme: str) -> dict[str, str]:
    path = _COPYRIGHT_FILES.get(scheme)
    if path is None or not path.is_file():
        return {}
    return _parse_license_blocks(path.read_text(encoding="utf-8", errors="replace"))


def license_of(asset_id: str) -> str:
    """The licence string of one asset (per file where the source says so)."""
    scheme, rest = _split_id(asset_id)
    if scheme == "opensfx":
        lic = _cat()[int(rest)].license
        return lic or SOURCES["opensfx"].license
    if scheme == "gcompris":
        folder, _, name = rest.rpartition("/")
        table = _gcompris_readme(folder)
        if name.startswith("LR") and "*" in table:
            return table["*"]
        return table.get(name) or SOURCES["gcompris"].license
    if scheme in _COPYRIGHT_FILES:
        lic = _copyright_file(scheme).get(Path(rest).name)
        return lic or SOURCES[scheme].license
    if scheme in SOURCES:
        return SOURCES[scheme].license
    return "generated (no licence needed)"
