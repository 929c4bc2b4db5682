"""The benchmark's classes and asset pools, with the train/test hold-out of every recording/image.

Hold-out rule: where a class has several recordings (images), whole items are held out for test;
a class with a single recording uses disjoint time ranges of it. Every class has at least one
training image and one different test image.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path

from ier.scenes import assets

GC_INSTR = "gcompris:instruments/resource/"
GC_FARM = "gcompris:explore_farm_animals/resource/animals/"
GC_MEM = "gcompris:memory-sound/resource/"
TUX = "tuxpaint:"


@dataclass(frozen=True)
class AudioItem:
    """A recording, or a time range of one, in seconds (``end_seconds=None``: to its end)."""

    asset: str
    start_seconds: float = 0.0
    end_seconds: float | None = None

    def bounds(self) -> tuple[float, float]:
        """The resolved ``(start, end)`` seconds within the recording."""
        end = assets.wave_seconds(self.asset) if self.end_seconds is None else self.end_seconds
        return self.start_seconds, min(end, assets.wave_seconds(self.asset))


@dataclass(frozen=True)
class SoundClass:
    """An on-screen sounding class.

    Attributes:
        name: the category name (the label in manifests).
        family: ``instrument`` or ``animal``.
        train_audio / test_audio: real recordings (or ranges) for each side of the hold-out.
        train_images / test_images: cut-out asset ids for each side.
        gm_program: (bank, program) of the General-MIDI soundfont preset whose random melodies
            are extra *training* audio (instruments only); bank 128 is the drum kit.
    """

    name: str
    family: str
    train_audio: tuple[AudioItem, ...]
    test_audio: tuple[AudioItem, ...]
    train_images: tuple[str, ...]
    test_images: tuple[str, ...]
    gm_program: tuple[int, int] | None = None


@dataclass(frozen=True)
class SoundPool:
    """An off-screen-only class or a noise kind: recordings on each side of the hold-out."""

    name: str
    train: tuple[AudioItem, ...]
    test: tuple[AudioItem, ...]


def _a(*ids: str) -> tuple[AudioItem, ...]:
    return tuple(AudioItem(i) for i in ids)


def _r(asset: str, start: float, end: float | None) -> AudioItem:
    return AudioItem(asset, start, end)


_T_MUSIC = TUX + "hobbies/music/"
_T_MAM = TUX + "animals/mammals/"
_T_BIRD = TUX + "animals/birds/"

CLASSES: tuple[SoundClass, ...] = (
    SoundClass("violin", "instrument",
               _a(_T_MUSIC + "string/violin.ogg"), _a(GC_INSTR + "violin.ogg"),
               (_T_MUSIC + "string/violin.png", GC_INSTR + "violin.svg"),
               (_T_MUSIC + "string/violin2.svg",), (0, 40)),
    SoundClass("cello", "instrument",
               _a(_T_MUSIC + "string/cello.ogg"), _a(GC_INSTR + "cello.ogg"),
               (_T_MUSIC + "string/cello.png",), (GC_INSTR + "cello.svg",), (0, 42)),
    SoundClass("guitar", "instrument",
               (_r(GC_INSTR + "guitar.ogg", 0.0, 3.5), *_a(GC_MEM + "guitar_son1.ogg",
                GC_MEM + "guitar_son2.ogg", GC_MEM + "guitar_son3.ogg")),
               (_r(GC_INSTR + "guitar.ogg", 3.5, None), *_a(GC_MEM + "guitar_son4.ogg",
                GC_MEM + "guitar_melody.ogg")),
               (_T_MUSIC + "string/guitar_classical.png",), (GC_INSTR + "guitar.svg",), (0, 24)),
    SoundClass("trumpet", "instrument",
               (_r(GC_INSTR + "trumpet.ogg", 0.0, 3.4),),
               (_r(GC_INSTR + "trumpet.ogg", 3.4, None),),
               (_T_MUSIC + "brass/trumpet.png",), (GC_INSTR + "trumpet.svg",), (0, 56)),
    SoundClass("drum", "instrument",
               _a(_T_MUSIC + "percussion/drumkit.ogg", GC_INSTR + "snare_drum.ogg"),
               _a(_T_MUSIC + "percussion/drum_tomtom_floor.ogg", GC_INSTR + "bongo.ogg"),
               (_T_MUSIC + "percussion/drumkit.png", GC_INSTR + "snare_drum.svg",
                GC_INSTR + "bongo.svg"),
               (_T_MUSIC + "percussion/drum_tomtom_floor.png", GC_INSTR + "drum_kit.svg"),
               (128, 0)),
    SoundClass("dog", "animal",
               _a(_T_MAM + "dogs/dog.ogg", GC_MEM + "LRBark_3_LA_cut.ogg"),
               _a(GC_FARM + "dog.ogg", GC_MEM + "LRBark_1_LA_cut.ogg"),
               (_T_MAM + "dogs/dog.png",), (GC_FARM + "dog.svg",)),
    SoundClass("cat", "animal",
               _a(TUX + "seasonal/halloween/blackcat.ogg"), _a(GC_FARM + "cat.ogg"),
               (_T_MAM + "cats/kitten.svg",), (GC_FARM + "cat.svg",)),
    SoundClass("chicken", "animal",
               (AudioItem(_T_BIRD + "rooster.ogg"), _r(GC_FARM + "chickens.ogg", 0.0, 7.5)),
               (AudioItem(_T_BIRD + "hen.ogg"), _r(GC_FARM + "chickens.ogg", 7.5, None)),
               (_T_BIRD + "rooster.png", _T_BIRD + "chicken_profile.png"),
               (_T_BIRD + "hen.png", GC_FARM + "chicken.svg")),
    SoundClass("cow", "animal",
               _a(_T_MAM + "bovines/cow.ogg", _T_MAM + "bovines/bull.ogg", "opensfx:37"),
               _a(_T_MAM + "bovines/cow_white.ogg", GC_FARM + "cow.ogg"),
               (_T_MAM + "bovines/cow.png", _T_MAM + "bovines/bull.png"),
               (_T_MAM + "bovines/cow_white.png", GC_FARM + "cow.svg")),
    SoundClass("sheep", "animal",
               _a(_T_MAM + "bovines/sheep.ogg", _T_MAM + "bovines/ram.ogg", "opensfx:36"),
               _a(_T_MAM + "bovines/sheep_lamb.ogg", GC_FARM + "sheep.ogg"),
               (_T_MAM + "bovines/sheep.png", _T_MAM + "bovines/ram.png"),
               (_T_MAM + "bovines/sheep_lamb.png", GC_FARM + "sheep.svg")),
    SoundClass("horse", "animal",
               _a(_T_MAM + "equines/horse.ogg", "opensfx:38"), _a(GC_FARM + "horse.ogg"),
               (_T_MAM + "equines/horse.png",), (GC_FARM + "horse.svg",)),
    SoundClass("duck", "animal",
               _a(_T_BIRD + "duck.ogg", _T_BIRD + "drake.ogg"), _a(GC_FARM + "duck.ogg"),
               (_T_BIRD + "duck.png", GC_FARM + "duck.svg"), (_T_BIRD + "drake.png",)),
    SoundClass("pig", "animal",
               _a(_T_MAM + "pig.ogg", _T_MAM + "pig_golden.ogg", _T_MAM + "pig_golden2.ogg"),
               _a(GC_FARM + "pig.ogg"),
               (_T_MAM + "pig.png", _T_MAM + "pig_golden.png"),
               (_T_MAM + "pig_golden2.png", GC_FARM + "pig.svg")),
    SoundClass("owl", "animal",
               _a(_T_BIRD + "owl.ogg"), _a(GC_FARM + "owl.ogg"),
               (_T_BIRD + "owl.png",), (GC_FARM + "owl.svg",)),
    SoundClass("lion", "animal",
               _a("opensfx:67"), _a(_T_MAM + "cats/lion.ogg"),
               (_T_MAM + "cats/lion.png",), (_T_MAM + "cats/lion-2.png",)),
        SoundClass(
        "tiger",
        "animal",
        (_r(_T_MAM + "cats/tiger.ogg", 0.0, 4.1),),
        (_r(_T_MAM + "cats/tiger.ogg", 4.1, None),),
        (_T_MAM + "cats/tiger.png",),
        (_T_MAM + "cats/tiger_sumatran.png",),
    ),
)  # fmt: skip

_FD = "freedesktop:"
_LC = "lincity:"

OFFSCREEN: tuple[SoundPool, ...] = (
    # speech is filled in from the Tux Paint spoken descriptions (see speech_pool)
    SoundPool("telephone", _a(_FD + "phone-incoming-call.oga", _FD + "phone-outgoing-busy.oga"),
              _a(_FD + "phone-outgoing-calling.oga", GC_MEM + "LRRing_01_LA.ogg")),
    SoundPool("siren", (_r(TUX + "vehicles/emergency/firetruck.ogg", 0.0, 6.0),),
              (_r(TUX + "vehicles/emergency/firetruck.ogg", 6.0, None),)),
    SoundPool("helicopter", (_r("opensfx:24", 0.0, 1.5),), (_r("opensfx:24", 1.5, None),)),
    SoundPool("train",
              _a("opensfx:4", "opensfx:10", _LC + "RailTrain1.wav", _LC + "RailTrain2.wav"),
              _a("opensfx:65", "opensfx:71", GC_MEM + "LRTrain_slowing_down_01_LA_cut.ogg",
                 _LC + "RailTrain3.wav")),
    SoundPool("applause", (_r("opensfx:29", 0.0, 2.2),),
              (_r("opensfx:29", 2.2, None), AudioItem(GC_MEM + "LRApplauses_1_LA_cut.ogg"))),
    SoundPool("aircraft", _a("opensfx:8", "opensfx:9", "opensfx:59"),
              _a("opensfx:61", "opensfx:69")),
    SoundPool("engine", _a("opensfx:25", "opensfx:28"),
              _a("opensfx:27", GC_MEM + "LRStartAndStopCarEngine1LACut.ogg")),
    SoundPool("machinery", _a("opensfx:33", "opensfx:40"), _a("opensfx:56", "opensfx:11")),
    SoundPool("birdsong", _a(_T_BIRD + "blackbird.ogg", "opensfx:66"),
              _a(_T_BIRD + "lark.ogg", "opensfx:72", _T_BIRD + "cuckoo.ogg")),
)  # fmt: skip

NOISES: tuple[SoundPool, ...] = (
    SoundPool("rain", (_r(GC_MEM + "LRRain_in_garden_01_LA_cut.ogg", 0.0, 3.0),),
              (_r(GC_MEM + "LRRain_in_garden_01_LA_cut.ogg", 3.0, None),
               AudioItem(GC_MEM + "LRFrogsInPondDuringStormLACut.ogg"))),
    SoundPool("wind", (_r("opensfx:52", 0.0, 1.6),), (_r("opensfx:52", 1.6, None),)),
    SoundPool("water", _a(_LC + "Water1.wav", _LC + "Water2.wav", _LC + "Water3.wav"),
              _a(_LC + "Water4.wav", _LC + "Water5.wav")),
    SoundPool("traffic",
              _a(_LC + "TraficHigh1.wav", _LC + "TraficLow1.wav", _LC + "TraficHigh2.wav"),
              _a(_LC + "TraficHigh3.wav", _LC + "TraficLow2.wav", _LC + "TraficLow3.wav")),
    SoundPool("crowd", _a(_LC + "SportsCroud1.wav", _LC + "SportsCroud2.wav"),
              _a(_LC + "SportsCroud3.wav", _LC + "MarketFull1.wav")),
    SoundPool("industry", _a(_LC + "IndustryHigh1.wav", _LC + "IndustryLight1.wav",
                             _LC + "IndustryHigh2.wav"),
              _a(_LC + "IndustryHigh3.wav", _LC + "IndustryLight2.wav",
                 _LC + "IndustryLight3.wav")),
)  # fmt: skip

SPEECH_TRAIN_LANGUAGES = ("be", "bg", "ca", "da", "el", "es")
SPEECH_TEST_LANGUAGES = ("fr", "nl", "ro", "ru")
SPEECH_FILES_PER_LANGUAGE = 40

_BG_WORLD = "gcompris:explore_world_animals/resource/animals/"
_BG_CAT = "gcompris:categorization/resource/images/"
# World-animal photos whose animals could be mistaken for a benchmark class are left out.
_BG_WORLD_NAMES = ("chameleon", "crocodile", "dragon", "giraffe", "hedgehog", "kangaroo",
                   "koala", "lemur", "narwhal", "panda", "polar_bear")  # fmt: skip
_DISTRACTOR_FOLDERS = ("food", "plants", "clothes", "sports", "household", "town", "space")
_DISTRACTOR_MIN_SIDE = 90  # px; smaller stamps are icons, not photos


def class_names() -> tuple[str, ...]:
    """The on-screen sounding classes (the category vocabulary), in a fixed order."""
    return tuple(c.name for c in CLASSES)


def speech_pool() -> SoundPool:
    """Real voices: Tux Paint spoken stamp descriptions; train and test use different languages."""
    root = assets.source("tuxpaint").path

    by_language: dict[str, list[Path]] = {}
    for path in sorted(root.rglob("*_desc_*.ogg")):
        if "symbols" not in path.parts:
            by_language.setdefault(path.stem.rsplit("_", 1)[-1], []).append(path)

    def files(languages: tuple[str, ...]) -> tuple[AudioItem, ...]:
        chosen = [
            p for lang in languages for p in by_language.get(lang, [])[:SPEECH_FILES_PER_LANGUAGE]
        ]
        return tuple(AudioItem(TUX + p.relative_to(root).as_posix()) for p in chosen)

    return SoundPool("speech", files(SPEECH_TRAIN_LANGUAGES), files(SPEECH_TEST_LANGUAGES))


@functools.lru_cache(maxsize=1)
def offscreen_pools() -> tuple[SoundPool, ...]:
    """Every off-screen-only class (speech first)."""
    return (speech_pool(), *OFFSCREEN)


def _alternate(items: list[str], every: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Deterministic hold-out: every ``every``-th item (sorted) goes to test."""
    items = sorted(items)
    test = tuple(x for i, x in enumerate(items) if i % every == every - 1)
    train = tuple(x for x in items if x not in test)
    return train, test


@functools.lru_cache(maxsize=1)
def backgrounds() -> dict[str, tuple[str, ...]]:
    """Background photos per side: ``{"train": ids, "test": ids}``."""
    ids = [f"{_BG_WORLD}{n}.webp" for n in _BG_WORLD_NAMES]
    for folder in ("monuments", "renewable"):
        stem = "categorization"
        names = assets._rcc(stem).names()
        prefix = f"gcompris/src/activities/categorization/resource/images/{folder}/"
        ids += [_BG_CAT + n[len(prefix) - len(folder) - 1 :] for n in names
                if n.startswith(prefix) and n.endswith(".webp")]  # fmt: skip
    ids += ["sklearn:china.jpg", "sklearn:flower.jpg"]
    train, test = _alternate(ids, 3)
    return {"train": train, "test": test}


def _stamp_label(path: Path) -> str:
    return path.stem.replace("-", "_").lower().lstrip("0123456789_") or path.stem


@functools.lru_cache(maxsize=1)
def distractors() -> dict[str, tuple[str, ...]]:
    """Never-sounding cut-outs (Tux Paint stamps without a sound) per side, as asset ids."""
    root = assets.source("tuxpaint").path
    names = set(class_names())
    ids = []
    for folder in _DISTRACTOR_FOLDERS:
        for png in sorted((root / folder).rglob("*.png")):
            if png.with_suffix(".ogg").exists() or "cartoon" in png.parts:
                continue
            if _stamp_label(png) in names:
                continue
            ids.append(TUX + png.relative_to(root).as_posix())
    ids = [i for i in ids if min(_png_size(root / i[len(TUX) :])) >= _DISTRACTOR_MIN_SIDE]
    train, test = _alternate(ids, 3)
    return {"train": train, "test": test}


def _png_size(path: Path) -> tuple[int, int]:
    from PIL import Image

    with Image.open(path) as image:
        return image.size


def distractor_label(asset_id: str) -> str:
    """The label of a never-sounding distractor stamp (its file name)."""
    return _stamp_label(Path(asset_id.partition(":")[2]))


OPENCLIPART = "openclipart:"
_CLIP = {"music": "recreation/music/", "birds": "animals/birds/", "mammals": "animals/mammals/"}
EXTRA_TRAIN_IMAGES: dict[str, dict[str, tuple[str, ...]]] = {
    "openclipart": {
        name: tuple(OPENCLIPART + _CLIP[folder] + file for folder, file in items)
        for name, items in {
            "violin": [("music", "violin_colour_ganson.png"), ("music", "violin_ganson.png")],
            "cello": [("music", "cello_ganson.png")],
            "guitar": [("music", "guitar_ganson.png"), ("music", "guitar_jarno_vasamaa1.png"),
                       ("music", "guitar_profile_philippe__01.png")],
            "trumpet": [("music", "trumpet_b_flat_colour_ganso.png"),
                        ("music", "trumpet_pocket_colour_ganso.png"),
                        ("music", "trumpet_b_flat__ganson.png")],
            "drum": [("music", "drums_jarno_vasamaa_.png"),
                     ("music", "africandrum_benji_park1.png")],
            "dog": [("mammals", "dogs/beagle_copper_ganson.png"),
                    ("mammals", "dogs/black_lab_ganson.png"),
                    ("mammals", "dogs/bobi_architetto_francesc_01.png")],
            "cat": [("mammals", "housecats/gatto_cat_architetto_fra_01.png"),
                    ("mammals", "housecats/kitten_gerald_g._01.png"),
                    ("mammals", "cartoon_cat_gerald_g._01.png")],
            "chicken": [("birds", "gallo_di_profilo_archite_01.png")],
            "cow": [("mammals", "vacca_pezzata_rossa_val_01.png"),
                    ("mammals", "bull_utrescu_.png")],
            "sheep": [("mammals", "sheep-md-v0.1.png"),
                      ("mammals", "pecora_architetto_france_01.png"),
                      ("mammals", "dall_sheep_ram_ganson.png")],
            "horse": [("mammals", "horses/horse_2_konstantin_r._01.png"),
                      ("mammals", "horses/cavallo_architetto_franc_01.png")],
            "duck": [("birds", "duck_yellow_kurt_cagle_.png"), ("birds", "jonathon_s_duck_01.png")],
            "pig": [("mammals", "a_simple_pig_01.png"), ("mammals", "pig_marcelo_caiafa1.png")],
            "owl": [("birds", "owl_on_branch_ganson.png"),
                    ("birds", "gufo_civetta_architetto__01.png")],
            "lion": [("mammals", "big_cats/leone_01_architetto_fran_01.png"),
                     ("mammals", "big_cats/leone_02_architetto_fran_01.png"),
                     ("mammals", "big_cats/leone_architetto_frances_01.png")],
            "tiger": [("mammals", "big_cats/color_tiger_susan_park_01.png"),
                      ("mammals", "big_cats/tiger_graig_ryan_smith_-_01.png"),
                      ("mammals", "big_cats/tigre01_architetto_franc_01.png")],
        }.items()
    },
}
"""Optional extra *training* images per class and per source (``ier scenes build
--extra-train-images openclipart``): Open Clip Art drawings (Public Domain, the
``openclipart-png`` package), chosen by hand, never used by a test split. A build with them
draws each training object's image from the class's own training images and these alike; its
test clips are byte for byte those of the build without them (``ier.scenes.recipes``)."""


def all_audio_ids() -> list[str]:
    """Every recording the benchmark may use (for availability checks and NOTICE)."""
    ids = []
    for c in CLASSES:
        ids += [a.asset for a in c.train_audio + c.test_audio]
    for pool in (*offscreen_pools(), *NOISES):
        ids += [a.asset for a in pool.train + pool.test]
    return sorted(set(ids))


def all_image_ids() -> list[str]:
    """Every cut-out and background the benchmark may use."""
    ids = []
    for c in CLASSES:
        ids += [*c.train_images, *c.test_images]
    for side in ("train", "test"):
        ids += [*backgrounds()[side], *distractors()[side]]
    return sorted(set(ids))
