"""Typed, frozen experiment configs: data, stages, evaluation; presets, method recipes, overrides.

A run is one ``ExperimentConfig``: the model (``ier.models.config.ModelConfig``), the data options
and an ordered tuple of ``StageConfig`` (one task per stage, see ``ier.tasks``).
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal, TypeVar

from ier.errors import ConfigError
from ier.files import atomic_write_json
from ier.models.config import ModelConfig, model_config

PRESETS = ("tiny", "short", "quick", "cpu", "paper")
"""Named scales: ``tiny`` (seconds; tests), ``short`` (the quick model for about a fifth of the
quick epochs, ~9 min on 2 CPU cores; what ``ier bench --preset quick`` trains, so that every method
and ablation fits in 2 hours), ``quick`` (CPU, 128 px), ``cpu`` (the paper's 224 px and epochs on
2 CPU cores: frozen visual trunk read from the feature cache), ``paper`` (GPU, DSOL)."""

T = TypeVar("T")


@dataclass(frozen=True)
class DataConfig:
    """How manifests become batches (``ier.data.datasets``).

    Attributes:
        cache_dir: Folder of the decoded caches; empty = ``<data dir>/.ier-cache``.
        train_frames: Frames decoded per training clip, evenly spaced in its audio window
            (method.md §1.2 picks one of 4 at random each time the clip is drawn).
        augment: Random resized crop, flip and colour jitter on training images (§1.2).
        max_train_samples: Use at most this many clips of each training split (0 = all).
        decode_workers: Threads that decode media when a cache is built.
        eval_batch_size: Batch size of no-grad passes (clustering, prediction).
        feature_views: With a frozen visual trunk (``model.visual_trunk = "frozen"``), the fixed
            views (frame, flip, jitter) cached per training clip (``ier.data.features``); each
            step then reads one of them with a random crop of its cells.
    """

    cache_dir: str = ""
    train_frames: int = 4
    augment: bool = True
    max_train_samples: int = 0
    decode_workers: int = 2
    eval_batch_size: int = 64
    feature_views: int = 4

    def __post_init__(self) -> None:
        if self.feature_views < 1:
            raise ConfigError(f"data.feature_views must be >= 1, got {self.feature_views}")


@dataclass(frozen=True)
class StageConfig:
    """One training stage: a task run for some epochs on one split.

    Attributes:
        name: Display name, unique within the experiment (used for logs and stage snapshots).
        task: Registered task name (``ier.tasks.list_tasks()``).
        split: Training split, relative to the data dir (e.g. ``train/solo``).
        epochs: Passes over the split.
        batch_size: Clips per step (per process under DDP).
        lr: Adam learning rate of the encoders and every non-head module.
        lr_heads: Adam learning rate of the classifier heads (DSOL: 10x).
        weight_decay: Adam weight decay.
        grad_clip: Max global gradient norm; 0 disables clipping.
        cluster: Run k-means pseudo-labelling (S1-b) in tasks that support it.
        cluster_from_epoch: First epoch (1-based) that clusters; DSOL clusters from the 2nd on.
        lambda_cls: Weight of the pseudo-label cross-entropy CE(v) + CE(a).
        lambda_av: Weight of L_av next to the stage's main loss (AII, CMR).
        negative_pooling: How a negative pair's map is pooled in L_av: "global" (GMP) or
            "quadrants" (each 2x2 max-pooled quadrant must be 0; multi-source scenes).
        curriculum: AII curriculum (method.md §1.5); False = the final phase from the start.
        detach_kl: Detach the target side of each KL term of L_cd (method.md Q9).
        freeze: Module-name prefixes (e.g. ``audio_backbone``, ``av_head.audio_proj``) held
            fixed in this stage: no gradient, no optimizer state, batch-norm statistics frozen.
        max_steps: Stop each epoch after this many steps (0 = full epoch); for smoke runs.
    """

    name: str
    task: str
    split: str = "train/solo"
    epochs: int = 1
    batch_size: int = 32
    lr: float = 1e-4
    lr_heads: float = 1e-3
    weight_decay: float = 1e-4
    grad_clip: float = 0.0
    cluster: bool = True
    cluster_from_epoch: int = 2
    lambda_cls: float = 1.0
    lambda_av: float = 0.5
    negative_pooling: Literal["global", "quadrants"] = "global"
    curriculum: bool = True
    detach_kl: bool = True
    freeze: tuple[str, ...] = ()
    max_steps: int = 0


@dataclass(frozen=True)
class EvalConfig:
    """End-of-run evaluation (``ier.predict.evaluate_checkpoint``).

    Attributes:
        at_end: Evaluate every test split when training finishes.
        splits: Test splits to evaluate; empty = every ``test/*`` split in the data dir.
        single_source_stage: Index of the stage whose model gives the single-source maps of the
            solo splits (method.md §1.8: stage 1); -1 = the final model.
    """

    at_end: bool = True
    splits: tuple[str, ...] = ()
    single_source_stage: int = -1


@dataclass(frozen=True)
class ExperimentConfig:
    """A whole training run.

    Attributes:
        method: Method name (a registered recipe, e.g. ``ier``).
        preset: The preset it was built from (informational).
        seed: Base seed; process ``r`` of a DDP run uses ``seed + r`` for its data order.
        num_clusters: K; 0 = the number of categories of the training data (method.md §1.4).
        model: Architecture (``ier.models``).
        data: Data options.
        stages: Training stages, run in order.
        eval: End-of-run evaluation.
        log_every: Steps between log lines.
        init_from: Checkpoint whose model weights initialise the run (e.g. a stage snapshot
            ``RUN/stages/1-aii.safetensors``); empty = fresh weights.
        start_stage: Index of the first stage to run; earlier stages are skipped (use with
            ``init_from`` to re-run later stages from an earlier run's snapshot).
        stop_stage: Index of the last stage to run (inclusive); -1 = the last stage of the
            recipe. With ``stop_stage=1`` an IEr run ends after stage 1 (the stage-1-only model).
    """

    method: str
    model: ModelConfig
    stages: tuple[StageConfig, ...]
    preset: str = "custom"
    seed: int = 0
    num_clusters: int = 0
    data: DataConfig = field(default_factory=DataConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    log_every: int = 10
    init_from: str = ""
    start_stage: int = 0
    stop_stage: int = -1

    def __post_init__(self) -> None:
        names = [s.name for s in self.stages]
        if not names:
            raise ConfigError("an experiment needs at least one stage")
        if not 0 <= self.start_stage < len(names):
            raise ConfigError(
                f"start_stage must be in [0, {len(names)}) for stages {names}, "
                f"got {self.start_stage}"
            )
        if not (self.stop_stage == -1 or self.start_stage <= self.stop_stage < len(names)):
            raise ConfigError(
                f"stop_stage must be -1 (all) or in [start_stage={self.start_stage}, "
                f"{len(names)}) for stages {names}, got {self.stop_stage}"
            )
        if len(set(names)) != len(names):
            raise ConfigError(f"stage names must be unique, got {names}")
        for stage in self.stages:
            if stage.epochs < 1 or stage.batch_size < 1:
                raise ConfigError(f"stage {stage.name!r}: epochs and batch_size must be >= 1")
            if stage.negative_pooling not in ("global", "quadrants"):
                raise ConfigError(
                    f"stage {stage.name!r}: negative_pooling must be 'global' or 'quadrants', "
                    f"got {stage.negative_pooling!r}"
                )

    @property
    def last_stage(self) -> int:
        """Index of the last stage this run trains (``stop_stage`` resolved)."""
        return len(self.stages) - 1 if self.stop_stage == -1 else self.stop_stage

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able nested dict (``from_dict`` inverts it)."""
        return to_dict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ExperimentConfig:
        """Build from a nested dict; unknown keys and wrong types raise ``ConfigError``."""
        return from_dict(cls, data)


# --- method recipes ------------------------------------------------------------------------------

Recipe = Callable[[str], ExperimentConfig]
_RECIPES: dict[str, Recipe] = {}


def register_recipe(method: str) -> Callable[[Recipe], Recipe]:
    """Decorator: register ``fn(preset_name) -> ExperimentConfig`` as the recipe of ``method``."""

    def wrap(fn: Recipe) -> Recipe:
        _RECIPES[method] = fn
        return fn

    return wrap


def list_methods() -> list[str]:
    """Methods with a registered training recipe."""
    _load_recipe_modules()
    return sorted(_RECIPES)


def preset(method: str, name: str) -> ExperimentConfig:
    """The experiment config of ``method`` at preset ``name`` (``tiny``, ``quick``, ``paper``)."""
    _load_recipe_modules()
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose from {list(PRESETS)}")
    if method not in _RECIPES:
        raise ConfigError(f"no training recipe for method {method!r}; known: {sorted(_RECIPES)}")
    return _RECIPES[method](name)


def _load_recipe_modules() -> None:
    """Import modules that register recipes (baselines register theirs on import)."""
    import importlib

    importlib.import_module("ier.tasks.baselines")


# (epochs of S1-a/b, S1-c, S2; batch size) per preset. ``quick`` is sized for ~45 min on 2 CPU
# cores on the ``default`` benchmark, ``short`` for ~9 min (12,000 clips: the bench budget,
# docs/baselines.md); ``paper`` follows DSOL (15 stage-1 epochs, 5 stage-2).
_IER_SCHEDULE: dict[str, tuple[int, int, int, int]] = {
    "tiny": (3, 2, 2, 16),
    "short": (2, 1, 1, 32),
    "quick": (8, 6, 6, 32),
    "cpu": (15, 10, 5, 32),
    "paper": (15, 10, 5, 32),
}


# Stage 2 keeps the audio side as stage 1 left it (docs/method.md §8, Q10): the audio prototypes
# P^a are frozen, and fine-tuning the audio encoder and the AII branch against them let the audio
# embedding drift away (AII NMI 52.5 -> 9.6 at the quick scale, docs/results.md).
IER_STAGE2_FROZEN = ("audio_backbone", "av_head.audio_proj", "identify")


@register_recipe("ier")
def ier_recipe(name: str) -> ExperimentConfig:
    """IEr (method.md §1.7): S1-a/b ``ier_av``, S1-c ``ier_aii`` on solo clips; S2 ``ier_cmr``."""
    epochs_av, epochs_aii, epochs_cmr, batch = _IER_SCHEDULE[name]
    common = {"batch_size": batch, "lr": 1e-4, "lr_heads": 1e-3, "weight_decay": 1e-4}
    if name == "tiny":
        common.update(lr=1e-3, lr_heads=3e-3)
    stages = (
        StageConfig(name="av", task="ier_av", split="train/solo", epochs=epochs_av, **common),
        StageConfig(name="aii", task="ier_aii", split="train/solo", epochs=epochs_aii, **common),
        StageConfig(
            name="cmr",
            task="ier_cmr",
            split="train/unconstrained",
            epochs=epochs_cmr,
            negative_pooling="quadrants",
            freeze=IER_STAGE2_FROZEN,
            **common,
        ),
    )
    data = DataConfig(train_frames=4 if name == "paper" else 2)
    return ExperimentConfig(
        method="ier",
        preset=name,
        model=model_config(name, name="ier"),
        stages=stages,
        data=data,
        eval=EvalConfig(single_source_stage=1),
        log_every=5 if name == "tiny" else 20,
    )


# --- dict conversion -----------------------------------------------------------------------------


def to_dict(obj: Any) -> Any:
    """Nested dataclasses, tuples and lists → plain JSON-able dicts and lists."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: to_dict(getattr(obj, f.name)) for f in fields(obj)}
    if isinstance(obj, (tuple, list)):
        return [to_dict(v) for v in obj]
    return obj


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def _coerce(value: Any, hint: Any, where: str) -> Any:
    """Check/convert a parsed (JSON/TOML/override) value to the declared type ``hint``."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a table, got {value!r}")
        return from_dict(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in (a for a in args if a is not type(None)):
            try:
                return _coerce(value, arg, where)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if errors else f"{where}: bad value {value!r}")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{where}: expected one of {list(args)}, got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        return tuple(_coerce(v, item, f"{where}[{i}]") for i, v in enumerate(value))
    return _coerce_scalar(value, hint, where)


def _coerce_scalar(value: Any, hint: Any, where: str) -> Any:
    if hint is Any:
        return value
    if hint is bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
            return value.lower() in ("true", "1", "yes")
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if hint is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, str):
            try:
                return int(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected an integer, got {value!r}")
    if hint is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if isinstance(value, str):
            try:
                return float(value)
            except ValueError:
                pass
        raise ConfigError(f"{where}: expected a number, got {value!r}")
    if hint is str:
        if isinstance(value, str):
            return value
        raise ConfigError(f"{where}: expected a string, got {value!r}")
    raise ConfigError(f"{where}: unsupported config type {hint!r}")


def from_dict(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build dataclass ``cls`` from a nested mapping, coercing each value to its declared type.

    Raises:
        ConfigError: an unknown key, a missing required key, or a value of the wrong type.
    """
    hints = _hints(cls)
    known = {f.name: f for f in fields(cls)}
    unknown = sorted(set(data) - set(known))
    prefix = f"{where}." if where else ""
    if unknown:
        raise ConfigError(f"unknown config key(s) {[prefix + k for k in unknown]}")
    kwargs = {k: _coerce(v, hints[k], prefix + k) for k, v in data.items()}
    missing = [
        name
        for name, f in known.items()
        if name not in kwargs
        and f.default is dataclasses.MISSING
        and f.default_factory is dataclasses.MISSING
    ]
    if missing:
        raise ConfigError(f"missing config key(s) {[prefix + k for k in missing]}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{where or cls.__name__}: {err}") from err


# --- overrides and files -------------------------------------------------------------------------


def _parse_literal(text: str) -> Any:
    """An override value: JSON (numbers, true/false, lists, quoted strings) or a bare string."""
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _set_path(obj: Any, keys: Sequence[str], value: str, where: str) -> Any:
    key, rest = keys[0], keys[1:]
    path = f"{where}.{key}" if where else key
    if isinstance(obj, tuple):
        if not key.lstrip("-").isdigit():
            raise ConfigError(f"unknown config key {path!r}: expected a list index")
        index = int(key)
        if not -len(obj) <= index < len(obj):
            raise ConfigError(f"unknown config key {path!r}: only {len(obj)} item(s)")
        if not rest:
            raise ConfigError(f"{path}: cannot replace a whole list item; set one of its fields")
        items = list(obj)
        items[index] = _set_path(items[index], rest, value, path)
        return tuple(items)
    if not dataclasses.is_dataclass(obj):
        raise ConfigError(f"unknown config key {path!r}")
    names = {f.name for f in fields(obj)}
    if key not in names:
        raise ConfigError(f"unknown config key {path!r}; known here: {sorted(names)}")
    if rest:
        new = _set_path(getattr(obj, key), rest, value, path)
    else:
        new = _coerce(_parse_literal(value), _hints(type(obj))[key], path)
    try:
        return dataclasses.replace(obj, **{key: new})
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{path}={value}: {err}") from err


def apply_overrides(cfg: T, overrides: Sequence[str]) -> T:
    """Apply ``key=value`` overrides with dotted keys (``stages.0.epochs=2``, ``model.width=32``).

    Values are parsed as JSON when possible (else as a bare string) and coerced to the field's
    declared type. A stage may also be addressed by name: ``stages.cmr.lr=3e-4``.

    Raises:
        ConfigError: a malformed override, an unknown key, or a value of the wrong type.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"bad override {item!r}: expected key=value")
        key, value = item.split("=", 1)
        keys = key.strip().split(".")
        if len(keys) >= 2 and keys[0] == "stages" and isinstance(cfg, ExperimentConfig):
            names = [s.name for s in cfg.stages]
            if keys[1] in names:
                keys[1] = str(names.index(keys[1]))
        if not all(keys):
            raise ConfigError(f"bad override {item!r}: empty key component")
        cfg = _set_path(cfg, keys, value.strip(), "")
    return cfg


def load_config(path: str | Path) -> ExperimentConfig:
    """Load an experiment from TOML (``configs/*.toml``) or JSON (a run's ``config.json``).

    A TOML file may start from a preset: top-level ``base = "ier/quick"`` takes that preset, and
    the file's other tables override it (``[model]`` fields; ``[[stages]]`` replaces the stages).
    A top-level ``overrides = ["stages.aii.curriculum=false", ...]`` is applied last, exactly
    like ``--set``.
    """
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        import tomli as tomllib  # type: ignore[no-redef]
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as err:
        raise ConfigError(f"cannot read config {path}: {err.strerror or err}") from err
    try:
        data = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ConfigError(f"{path}: not valid {path.suffix.lstrip('.') or 'TOML'}: {err}") from err
    overrides = data.pop("overrides", [])
    if not isinstance(overrides, list) or not all(isinstance(o, str) for o in overrides):
        raise ConfigError(f"{path}: overrides must be a list of 'key=value' strings")
    base = data.pop("base", None)
    if base is not None:
        if not isinstance(base, str) or base.count("/") != 1:
            raise ConfigError(f"{path}: base must be 'METHOD/PRESET', got {base!r}")
        data = _merge(to_dict(preset(*base.split("/"))), data)
    return apply_overrides(ExperimentConfig.from_dict(data), overrides)


def _merge(base: dict[str, Any], update: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in update.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write the resolved config as JSON (``load_config`` reads it back)."""
    return atomic_write_json(path, cfg.to_dict())
