"""Category names carried by a ``state_dict``: JSON in a uint8 buffer, and the resize that lets
``load_state_dict`` fill a buffer whose length depends on the names."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

import torch
from torch import nn


def names_to_bytes(names: Sequence[str], *, device: torch.device | str = "cpu") -> torch.Tensor:
    """JSON-encode names into a uint8 (n_bytes,) tensor, a buffer that a ``state_dict`` carries."""
    encoded = json.dumps(list(names)).encode("utf-8")
    return torch.tensor(list(encoded), dtype=torch.uint8, device=device)


def names_from_bytes(buffer: torch.Tensor) -> tuple[str, ...]:
    """Inverse of ``names_to_bytes``; an empty buffer gives ()."""
    if not buffer.numel():
        return ()
    return tuple(json.loads(bytes(buffer.tolist()).decode("utf-8")))


def resize_names_buffer(
    module: nn.Module, name: str, state_dict: Mapping[str, torch.Tensor], prefix: str
) -> None:
    """Give ``module``'s names buffer the stored length, so that the strict copy of
    ``load_state_dict`` fits (call first thing in ``_load_from_state_dict``)."""
    key = prefix + name
    if key in state_dict:
        device = getattr(module, name).device
        setattr(module, name, torch.zeros_like(state_dict[key], device=device))
