"""Safe, atomic, self-describing checkpoints (safetensors + JSON metadata; never a pickle).

A checkpoint holds tensors under namespaced keys (``model.*``, ``optim.*``, ``task.*``, ``rng.*``)
and one JSON metadata record: format version, package version, the model config (enough to rebuild
the model), optionally the experiment config, the class names and the training position. A SHA-256
of the tensor bytes and of the metadata detects a tampered or truncated file.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ier import __version__
from ier.errors import CheckpointError
from ier.files import atomic_open
from ier.models import create_model
from ier.models.config import ModelConfig

logger = logging.getLogger(__name__)

FORMAT = "ier-checkpoint"
FORMAT_VERSION = 1
_META_KEY = "ier"
_SUM_KEY = "ier_sha256"


@dataclass(frozen=True)
class Checkpoint:
    """A loaded checkpoint.

    Attributes:
        tensors: Every tensor, by namespaced key.
        meta: The JSON metadata (``format``, ``format_version``, ``ier_version``,
            ``model_config``, optional ``experiment``, ``classes``, ``cluster_to_class``,
            ``training``, ``optimizer`` ...).
        path: Where it was read from.
        digest: The SHA-256 stored in the file (of the metadata and the tensor bytes): it names
            these exact weights.
    """

    tensors: dict[str, torch.Tensor]
    meta: dict[str, Any]
    path: Path
    digest: str = ""

    def section(self, prefix: str) -> dict[str, torch.Tensor]:
        """Tensors under ``prefix.``, with the prefix removed."""
        start = prefix + "."
        return {k[len(start) :]: v for k, v in self.tensors.items() if k.startswith(start)}


def _digest(data: bytes, meta_json: str) -> str:
    sha = hashlib.sha256()
    sha.update(meta_json.encode("utf-8"))
    sha.update(b"\0")
    sha.update(data)
    return sha.hexdigest()


def _data_section(blob: bytes) -> tuple[dict[str, Any], bytes]:
    """Split a safetensors byte string into (header dict, tensor data bytes)."""
    if len(blob) < 8:
        raise ValueError("file too short")
    (n,) = struct.unpack("<Q", blob[:8])
    if n > len(blob) - 8:
        raise ValueError("header length exceeds file size")
    header = json.loads(blob[8 : 8 + n])
    if not isinstance(header, dict):
        raise ValueError("header is not a JSON object")
    return header, blob[8 + n :]


def save_checkpoint(
    path: str | os.PathLike[str], tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> Path:
    """Write tensors + metadata atomically (temp file in the same folder, fsync, rename).

    Args:
        path: Target ``.safetensors`` file; its folder is created if needed.
        tensors: Tensors by key (copied to contiguous CPU memory).
        meta: JSON-able metadata; ``format``, ``format_version`` and ``ier_version`` are added.

    Returns:
        The path written.
    """
    path = Path(path)
    record = {"format": FORMAT, "format_version": FORMAT_VERSION, "ier_version": __version__}
    record.update(meta)
    meta_json = json.dumps(record, sort_keys=True)
    plain = {k: v.detach().to("cpu").contiguous().clone() for k, v in tensors.items()}
    blob = st_save(plain, metadata={_META_KEY: meta_json})
    _, data = _data_section(blob)
    blob = st_save(plain, metadata={_META_KEY: meta_json, _SUM_KEY: _digest(data, meta_json)})
    with atomic_open(path, "wb", fsync=True) as handle:
        handle.write(blob)
    return path


def load_checkpoint(path: str | os.PathLike[str]) -> Checkpoint:
    """Read and verify a checkpoint written by ``save_checkpoint``.

    Raises:
        CheckpointError: the file is missing, is not a safetensors file (e.g. a pickled ``.pt``:
            ier never unpickles), is not an ier checkpoint, was modified after it was written,
            or comes from a newer format version.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    blob = path.read_bytes()
    try:
        header, data = _data_section(blob)
        tensors = st_load(blob)
    except (ValueError, SafetensorError, UnicodeDecodeError) as err:
        hint = " (a pickled PyTorch file? ier only loads safetensors)" if blob[:2] == b"PK" else ""
        raise CheckpointError(f"{path}: not a safetensors checkpoint{hint}: {err}") from err
    file_meta = header.get("__metadata__") or {}
    meta_json = file_meta.get(_META_KEY)
    if meta_json is None:
        raise CheckpointError(
            f"{path}: a safetensors file, but not an ier checkpoint (no metadata)"
        )
    if file_meta.get(_SUM_KEY) != _digest(data, meta_json):
        raise CheckpointError(
            f"{path}: checksum mismatch: the file was modified or truncated after it was written"
        )
    meta = json.loads(meta_json)
    if meta.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an ier checkpoint (format {meta.get('format')!r})")
    if int(meta.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format {meta['format_version']} is newer than this ier "
            f"({__version__}, format {FORMAT_VERSION}); upgrade ier"
        )
    return Checkpoint(tensors=tensors, meta=meta, path=path, digest=file_meta[_SUM_KEY])


# --- model and optimizer state -------------------------------------------------------------------


def update_meta(path: str | os.PathLike[str], entries: Mapping[str, Any]) -> Path:
    """Add (or replace) metadata entries of a checkpoint in place, atomically; the tensors stay
    as they are (e.g. the calibrated operating point after the end-of-run evaluation)."""
    ckpt = load_checkpoint(path)
    reserved = ("format", "format_version", "ier_version")
    meta = {k: v for k, v in ckpt.meta.items() if k not in reserved}
    return save_checkpoint(path, ckpt.tensors, {**meta, **dict(entries)})


def model_meta(model: nn.Module) -> dict[str, Any]:
    """Readable copies of the model's class names and cluster → category mapping (informational:
    the weights themselves carry them as buffers)."""
    meta: dict[str, Any] = {"classes": list(getattr(model, "classes", ("*",)))}
    mapping = getattr(model, "cluster_to_class", None)
    if isinstance(mapping, torch.Tensor):
        meta["cluster_to_class"] = [int(c) for c in mapping.tolist()]
    return meta


def save_model(
    path: str | os.PathLike[str],
    model: nn.Module,
    *,
    model_config: Any,
    extra_meta: Mapping[str, Any] | None = None,
) -> Path:
    """Save a model alone (weights, config, classes): what ``ier evaluate``/``localize`` load."""
    tensors = {f"model.{k}": v for k, v in model.state_dict().items()}
    meta = {"model_config": model_config.to_dict(), **model_meta(model), **(extra_meta or {})}
    return save_checkpoint(path, tensors, meta)


QUALITY_MAX_CHARS = 240


def check_quality_line(quality: str) -> str:
    """A model's measured quality as one short line (what ``ier demo`` and the README print).

    Raises:
        ValueError: Empty, more than one line, or longer than ``QUALITY_MAX_CHARS``.
    """
    text = str(quality).strip()
    if not text or "\n" in text or "\r" in text or len(text) > QUALITY_MAX_CHARS:
        raise ValueError(
            f"quality must be one non-empty line of at most {QUALITY_MAX_CHARS} characters, "
            f"got {quality!r}"
        )
    return text


def export_model(
    checkpoint: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    half: bool = True,
    extra_meta: Mapping[str, Any] | None = None,
    quality: str | None = None,
    card: str | None = None,
) -> Path:
    """Write a compact, model-only copy of a checkpoint (e.g. a bundled model).

    Floating-point weights are stored as float16 when ``half`` (loading casts them back to the
    model's float32 parameters); training state (optimizer, RNG) is dropped.

    Args:
        checkpoint: The checkpoint to copy.
        out: The file to write.
        half: Store floating-point weights as float16.
        extra_meta: More JSON-able metadata to store.
        quality: The model's measured quality in one line, e.g. ``"weak: solo IoU@0.5 5.5 %,
            wild CIoU@0.3 1.2 % (uniform map: 0.0)"``; ``ier demo``, its index page and the
            README show it (``meta["quality"]``).
        card: Where the model's card is (a repository path or a URL; ``meta["card"]``).

    Returns:
        The path written.
    """
    if quality is not None:
        quality = check_quality_line(quality)
    ckpt = load_checkpoint(checkpoint)
    model_from_checkpoint(ckpt)  # refuse to export something that does not load
    tensors = {
        f"model.{k}": v.half() if half and v.is_floating_point() else v
        for k, v in ckpt.section("model").items()
    }
    keep = ("model_config", "classes", "cluster_to_class", "experiment", "calibration")
    meta = {k: ckpt.meta[k] for k in keep if k in ckpt.meta}
    meta.update(weights_dtype="float16" if half else "float32", **(extra_meta or {}))
    if quality is not None:
        meta["quality"] = quality
    if card is not None:
        meta["card"] = str(card)
    return save_checkpoint(out, tensors, meta)


def model_from_checkpoint(ckpt: Checkpoint) -> nn.Module:
    """Rebuild the model from a loaded checkpoint's embedded config and weights (eval mode)."""

    if "model_config" not in ckpt.meta:
        raise CheckpointError(f"{ckpt.path}: has no model config")
    try:
        config = ModelConfig.from_dict(ckpt.meta["model_config"])
        # The checkpoint holds every weight: never load ImageNet weights just to overwrite them
        # (and never require the `pretrained` extra to load a trained model).
        model = create_model(dataclasses.replace(config, pretrained=False))
        model.config = config
    except (ValueError, TypeError, KeyError) as err:
        raise CheckpointError(f"{ckpt.path}: cannot rebuild the model: {err}") from err
    state = ckpt.section("model")
    try:
        model.load_state_dict(state, strict=True)
    except RuntimeError as err:
        first = str(err).splitlines()[0]
        raise CheckpointError(f"{ckpt.path}: weights do not fit the model: {first}") from err
    return model.eval()


def init_weights(model: nn.Module, path: str | os.PathLike[str]) -> str:
    """Copy a checkpoint's model weights into ``model`` (``ExperimentConfig.init_from``).

    Every parameter and buffer of ``model`` must be in the checkpoint with the same shape; extra
    tensors in the checkpoint (e.g. the AII branch when ``model`` is the no-AII ablation) are
    ignored and counted in the returned summary.

    Raises:
        CheckpointError: unreadable or tampered file, missing tensors or a shape mismatch.
    """
    ckpt = load_checkpoint(path)
    state = ckpt.section("model")
    if not state:
        raise CheckpointError(f"{ckpt.path}: holds no model weights")
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise CheckpointError(
            f"{ckpt.path}: cannot initialise {type(model).__name__}: missing {missing[:5]}{more} "
            "(was it trained with another method or architecture?)"
        )
    # Name buffers (``*_utf8``) have a data-dependent length; the model resizes them on load.
    wrong = [
        k for k in own
        if not k.endswith("_utf8") and tuple(state[k].shape) != tuple(own[k].shape)
    ]  # fmt: skip
    if wrong:
        k = wrong[0]
        raise CheckpointError(
            f"{ckpt.path}: {len(wrong)} tensor(s) have another shape, e.g. {k}: "
            f"{tuple(state[k].shape)} in the file, {tuple(own[k].shape)} in the model"
        )
    model.load_state_dict({k: state[k].to(own[k].dtype) for k in own}, strict=True)
    ignored = len(set(state) - set(own))
    return f"{len(own)} tensors loaded, {ignored} ignored"


def load_model(path: str | os.PathLike[str], *, device: str | torch.device = "cpu") -> nn.Module:
    """Load a model from any ier checkpoint (final model or training checkpoint), in eval mode."""
    return model_from_checkpoint(load_checkpoint(path)).to(device)


def optimizer_to_flat(
    optimizer: torch.optim.Optimizer,
) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimizer state dict into tensors (keys ``<param id>.<name>``) and JSON metadata."""
    state = optimizer.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for pid, entry in state["state"].items():
        for key, value in entry.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}.{key}"] = value
            else:
                scalars.setdefault(str(pid), {})[key] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def optimizer_from_flat(
    optimizer: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any]
) -> None:
    """Inverse of ``optimizer_to_flat``: load the saved state into ``optimizer``."""
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split(".", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, entry in meta.get("scalars", {}).items():
        state.setdefault(int(pid), {}).update(entry)
    try:
        optimizer.load_state_dict({"state": state, "param_groups": meta["param_groups"]})
    except (ValueError, KeyError) as err:
        raise CheckpointError(f"optimizer state does not fit this stage: {err}") from err
