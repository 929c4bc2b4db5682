"""Scene recipes: what one clip of each split kind contains (objects, sounds, gains, noise).

A recipe only draws decisions from the clip's RNG and returns a ``ScenePlan``; ``render`` turns a
plan into frames, audio and the manifest record.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ier.scenes import catalog

GM_TRAIN_PROBABILITY = 0.35  # share of instrument sources that are soundfont melodies (train only)

SIDES: dict[str, tuple[str, str]] = {
    "train": ("train", "train"),
    "test": ("test", "test"),
    "test-images": ("train", "test"),
    "test-audio": ("test", "train"),
}
"""Asset side of a split -> (side of its recordings, side of its images). ``train`` and ``test``
are the benchmark's; the mixed sides compose diagnostic splits (``ier.scenes.build.
DIAGNOSTIC_SPLITS``) that hold out one modality only: ``test-images`` hears training recordings
(and soundfont melodies) beside held-out photos, backgrounds and distractors, ``test-audio`` the
reverse. They tell which modality's held-out assets a model fails on."""


def audio_side(side: str) -> str:
    """``train`` or ``test``: where the recordings of a split with asset side ``side`` come from."""
    return _sides(side)[0]


def image_side(side: str) -> str:
    """``train`` or ``test``: where the images (objects, backgrounds, distractors) come from."""
    return _sides(side)[1]


def _sides(side: str) -> tuple[str, str]:
    side, _, extra = side.partition("+")  # "train+openclipart": training images plus extra ones
    if extra and extra not in catalog.EXTRA_TRAIN_IMAGES:
        raise ValueError(f"unknown extra image source {extra!r}; choose one of "
                         f"{', '.join(catalog.EXTRA_TRAIN_IMAGES)}")  # fmt: skip
    if side not in SIDES:
        raise ValueError(f"unknown asset side {side!r}; choose one of {', '.join(SIDES)}")
    return SIDES[side]


@dataclass(frozen=True)
class SoundChoice:
    """One audio source: a real recording range, or a soundfont melody (``asset='soundfont:…'``)."""

    label: str
    asset: str
    start_seconds: float
    end_seconds: float
    gain_db: float
    role: str  # "object" | "offscreen" | "noise"
    render_seed: int | None = None


@dataclass(frozen=True)
class ObjectChoice:
    """One visible object: its label, cut-out, whether it sounds and its sound."""

    label: str
    image: str
    sounding: bool
    sound: SoundChoice | None = None
    distractor: bool = False


@dataclass
class ScenePlan:
    """Everything a clip contains, before rendering."""

    kind: str
    side: str
    objects: list[ObjectChoice]
    offscreen: list[SoundChoice] = field(default_factory=list)
    noise: SoundChoice | None = None
    snr_db: float | None = None
    mosaic: bool = False
    backgrounds: list[str] = field(default_factory=list)  # asset ids, or "generated:gradient"
    audio_content: str = "onscreen"


def _pick(rng: np.random.Generator, items: tuple | list):
    return items[int(rng.integers(0, len(items)))]


def _recording(
    rng: np.random.Generator,
    items: tuple[catalog.AudioItem, ...],
    label: str,
    role: str,
    gain_db: float,
) -> SoundChoice:
    item = _pick(rng, items)
    start, end = item.bounds()
    return SoundChoice(label, item.asset, start, end, gain_db, role)  # fmt: skip


def class_sound(
    rng: np.random.Generator, cls: catalog.SoundClass, side: str, gain_db: float
) -> SoundChoice:
    """A sound of an on-screen class: a held-out-side recording, or (train) a soundfont melody."""
    melodies = audio_side(side) == "train" and cls.gm_program is not None
    if melodies and rng.random() < GM_TRAIN_PROBABILITY:
        bank, program = cls.gm_program
        seed = int(rng.integers(0, 2**31 - 1))
        return SoundChoice(
            cls.name, f"soundfont:{bank}:{program}", 0.0, 0.0, gain_db, "object", render_seed=seed
        )
    items = cls.train_audio if audio_side(side) == "train" else cls.test_audio
    return _recording(rng, items, cls.name, "object", gain_db)


def _class_image(rng: np.random.Generator, cls: catalog.SoundClass, side: str) -> str:
    if image_side(side) == "test":
        return _pick(rng, cls.test_images)
    extra = catalog.EXTRA_TRAIN_IMAGES[_extra(side)].get(cls.name, ()) if _extra(side) else ()
    return _pick(rng, (*cls.train_images, *extra))  # one draw either way, as without extras


def with_extra_images(side: str, source: str | None) -> str:
    """The asset side of a split in a build whose training images are extended with
    ``catalog.EXTRA_TRAIN_IMAGES[source]``: a side whose images are training images gets
    ``+<source>`` (``train`` -> ``train+openclipart``, and so does the diagnostic ``test-audio``);
    sides with held-out images, and any side when ``source`` is None, are returned as they are."""
    if source is None or image_side(side) != "train":
        return side
    extended = f"{side}+{source}"
    _sides(extended)  # refuses an unknown source
    return extended


def _extra(side: str) -> str | None:
    return side.partition("+")[2] or None


def _background(rng: np.random.Generator, side: str) -> str:
    if rng.random() < 0.25:
        return "generated:gradient"
    return _pick(rng, catalog.backgrounds()[image_side(side)])


def _sounding(
    rng: np.random.Generator, classes: list[catalog.SoundClass], side: str, gains: list[float]
) -> list[ObjectChoice]:
    return [
        ObjectChoice(c.name, _class_image(rng, c, side), True, class_sound(rng, c, side, g))
        for c, g in zip(classes, gains, strict=True)
    ]


def _silent(
    rng: np.random.Generator, count: int, side: str, exclude: set[str]
) -> list[ObjectChoice]:
    """Visible silent objects: never-sounding stamps, or sounding classes shown silent."""
    out = []
    for _ in range(count):
        if rng.random() < 0.5:
            image = _pick(rng, catalog.distractors()[image_side(side)])
            label = catalog.distractor_label(image)
            if label in exclude:
                continue
            out.append(ObjectChoice(label, image, False, distractor=True))
        else:
            pool = [c for c in catalog.CLASSES if c.name not in exclude]
            cls = _pick(rng, pool)
            out.append(ObjectChoice(cls.name, _class_image(rng, cls, side), False))
        exclude.add(out[-1].label)
    return out


def _offscreen(rng: np.random.Generator, count: int, side: str, gain_range: tuple[float, float]):
    pools = list(catalog.offscreen_pools())
    order = rng.permutation(len(pools))[:count]
    return [
        _recording(rng, pools[i].train if audio_side(side) == "train" else pools[i].test,
                   pools[i].name,
                   "offscreen", float(rng.uniform(*gain_range)))
        for i in order
    ]  # fmt: skip


def _noise(rng: np.random.Generator, side: str) -> SoundChoice:
    pool = _pick(rng, catalog.NOISES)
    items = pool.train if audio_side(side) == "train" else pool.test
    return _recording(rng, items, pool.name, "noise", 0.0)


def _distinct_classes(rng: np.random.Generator, count: int, first: int | None = None):
    classes = list(catalog.CLASSES)
    order = [int(i) for i in rng.permutation(len(classes))]
    if first is not None:
        order.remove(first)
        order.insert(0, first)
    return [classes[i] for i in order[:count]]


def plan_solo(rng: np.random.Generator, index: int, side: str) -> ScenePlan:
    """One visible sounding object of class ``index % n_classes``; clean audio."""
    cls = catalog.CLASSES[index % len(catalog.CLASSES)]
    return ScenePlan("solo", side, _sounding(rng, [cls], side, [0.0]),
                     backgrounds=[_background(rng, side)])  # fmt: skip


def plan_duet(rng: np.random.Generator, index: int, side: str) -> ScenePlan:
    """Two visible sounding objects of different classes, within 3 dB of each other."""
    classes = _distinct_classes(rng, 2, first=index % len(catalog.CLASSES))
    gains = [0.0, float(rng.uniform(-3.0, 3.0))]
    return ScenePlan("duet", side, _sounding(rng, classes, side, gains),
                     backgrounds=[_background(rng, side)])  # fmt: skip


def plan_synthetic(rng: np.random.Generator, index: int, side: str) -> ScenePlan:
    """A 2x2 mosaic of four classes; the first two sound (gain jitter +-4 dB), two are silent."""
    classes = _distinct_classes(rng, 4, first=index % len(catalog.CLASSES))
    gains = [0.0, float(rng.uniform(-4.0, 4.0))]
    objects = _sounding(rng, classes[:2], side, gains)
    objects += [ObjectChoice(c.name, _class_image(rng, c, side), False) for c in classes[2:]]
    order = rng.permutation(4)
    return ScenePlan("synthetic", side, [objects[i] for i in order], mosaic=True,
                     backgrounds=[_background(rng, side) for _ in range(4)])  # fmt: skip


def plan_wild(rng: np.random.Generator, index: int, side: str) -> ScenePlan:
    """1-3 sounding objects (gains within 20 dB), 1-2 silent ones, 0-2 off-screen sounds and a
    noise bed at SNR 0-20 dB."""
    n_sounding = int(rng.integers(1, 4))
    classes = _distinct_classes(rng, n_sounding, first=index % len(catalog.CLASSES))
    gains = [0.0] + [float(rng.uniform(-20.0, 0.0)) for _ in range(n_sounding - 1)]
    objects = _sounding(rng, classes, side, gains)
    objects += _silent(rng, int(rng.integers(1, 3)), side, {c.name for c in classes})
    order = rng.permutation(len(objects))
    return ScenePlan(
        "wild", side, [objects[i] for i in order],
        offscreen=_offscreen(rng, int(rng.integers(0, 3)), side, (-10.0, 0.0)),
        noise=_noise(rng, side), snr_db=float(rng.uniform(0.0, 20.0)),
        backgrounds=[_background(rng, side)],
    )  # fmt: skip


def plan_negative(rng: np.random.Generator, index: int, side: str) -> ScenePlan:
    """1-3 silent visible objects; the audio is off-screen sound (maybe with noise), a noise bed
    alone, or silence (one third each, by index)."""
    objects = _silent(rng, int(rng.integers(1, 4)), side, set())
    content = ("offscreen", "noise", "silence")[index % 3]
    plan = ScenePlan("negative", side, objects, backgrounds=[_background(rng, side)],
                     audio_content=content)  # fmt: skip
    if content == "offscreen":
        plan.offscreen = _offscreen(rng, int(rng.integers(1, 3)), side, (-6.0, 0.0))
        if rng.random() < 0.5:
            plan.noise, plan.snr_db = _noise(rng, side), float(rng.uniform(0.0, 20.0))
    elif content == "noise":
        plan.noise = _noise(rng, side)
    return plan


RECIPES = {
    "solo": plan_solo,
    "duet": plan_duet,
    "synthetic": plan_synthetic,
    "wild": plan_wild,
    "negative": plan_negative,
}
