"""Persisted encodings of a frozen audio encoder: a split's clips are encoded once per data folder,
not once per run.

A frozen, pretrained audio encoder (``model.audio_backbone = "aisfx"``, ``ier.models.aisfx``)
gives every clip the same encoding in every run, seed and ablation. In one process it already
remembers them (its in-memory memo, keyed by the wave's bytes). This module keeps them across
processes: the first run that reads a split encodes its clips in batches of ``MEMO_BATCH`` and
writes them to ``<cache>/audio-encodings/<encoder id>/<split>-<hash>.npy``; every later run (a
bench's other methods, seeds and ablations, ``ier evaluate``) loads the file into the encoder's
memo. On the `cpu` preset with aisfx this was the largest part of a training step's cost outside
the AII's fresh mixtures, and half of an evaluation (docs/results.md, "The audio encodings,
persisted").

The file can never be stale: its name hashes every wave it encodes (the row keys) and the
encoder's id hashes its weights and front-end version. Rows are float32, exactly what the
encoder returns for a batch of ``MEMO_BATCH`` clips (a batch of another size may differ in the
last bits), so a run that loads them gets the same numbers whichever process wrote them.

An encoder takes part when it has ``memo_key``, ``encode_waves``, ``remember``, a positive
``memo_size`` and ``memo_version``, and sits on the CPU (off the CPU it does not memoise).
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import nn

from ier.data.features import extraction_lock, weights_hash
from ier.files import atomic_path

logger = logging.getLogger(__name__)

MEMO_BATCH = 32  # clips per encoder call while filling a file (fixed: it fixes the rows' bits)
MEMO_FOLDER = "audio-encodings"


def memo_encoders(model: nn.Module) -> list[nn.Module]:
    """The memoising frozen audio encoders inside ``model`` that sit on the CPU (several for
    models with momentum copies); empty for a model without one."""
    protocol = ("memo_key", "encode_waves", "remember", "memo_version")
    found = []
    for module in model.modules():
        if all(hasattr(module, name) for name in protocol):
            buffers = list(module.buffers()) + list(module.parameters())
            on_cpu = all(t.device.type == "cpu" for t in buffers)
            if getattr(module, "memo_size", 0) > 0 and on_cpu:
                found.append(module)
    return found


def encoder_id(encoder: nn.Module) -> str:
    """``<class>-v<memo_version>-<weights hash>``: the folder of this encoder's files."""
    name = re.sub(r"[^a-z0-9]+", "", type(encoder).__name__.lower())
    return f"{name}-v{encoder.memo_version}-{weights_hash([encoder])}"


def memo_file(cache_dir: Path, split: str, encoder: nn.Module, keys: Sequence[bytes]) -> Path:
    """Where the encodings of the waves with these row ``keys`` live."""
    digest = hashlib.blake2b(b"".join(keys), digest_size=8).hexdigest()
    stem = re.sub(r"[^A-Za-z0-9]+", "_", split).strip("_") or "split"
    return Path(cache_dir) / MEMO_FOLDER / encoder_id(encoder) / f"{stem}-{digest}.npy"


def attach_encodings(
    encoders: Sequence[nn.Module], waves: np.ndarray, cache_dir: Path, split: str
) -> Path | None:
    """Fill the memo of each of ``encoders`` (identical copies) with the encodings of ``waves``
    (N, n), reading them from their file or, when it is missing, encoding them and writing it.

    Returns:
        The file, or None when there is no encoder or no wave.
    """
    if not encoders or len(waves) == 0:
        return None
    first = encoders[0]
    keys = [first.memo_key(w) for w in waves]  # a float32 copy of one wave at a time
    path = memo_file(cache_dir, split, first, keys)
    encodings = _read(path, len(keys))
    if encodings is None:
        with extraction_lock(path.parent, path.stem):
            encodings = _read(path, len(keys))  # another job may have written it meanwhile
            if encodings is None:
                encodings = _encode_all(first, waves)
                with atomic_path(path) as tmp, open(tmp, "wb") as handle:
                    np.save(handle, encodings)
                logger.info("encoded %d clips of %s with %s (%s)", len(keys), split,
                            type(first).__name__, path)  # fmt: skip
    rows = torch.from_numpy(np.asarray(encodings))
    for encoder in encoders:
        encoder.remember(keys, rows)
    return path


def _read(path: Path, n: int) -> np.ndarray | None:
    if not path.is_file():
        return None
    encodings = np.load(path)
    if encodings.ndim != 2 or len(encodings) != n or encodings.dtype != np.float32:
        logger.warning("%s holds %s %s, expected %d rows of float32; encoding again", path,
                       encodings.shape, encodings.dtype, n)  # fmt: skip
        return None
    return encodings


def _encode_all(encoder: nn.Module, waves: np.ndarray) -> np.ndarray:
    out = []
    for start in range(0, len(waves), MEMO_BATCH):
        batch = torch.from_numpy(np.asarray(waves[start : start + MEMO_BATCH], np.float32))
        out.append(encoder.encode_waves(batch).float().numpy())
    return np.concatenate(out)
