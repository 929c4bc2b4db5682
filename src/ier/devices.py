"""What this machine offers: checking a torch device name before any work starts (``--device`` of
``localize``/``train``), and the CPU cores this process may use."""

from __future__ import annotations

import os
from typing import Any

from ier.errors import ConfigError


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity where the OS tells it)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def resolve_device(device: Any) -> Any:
    """``device`` (a name such as ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"``, or a
    ``torch.device``) as a ``torch.device`` that this torch build and machine can use.

    Raises:
        ConfigError: Not a device name, a CUDA device on a torch built without CUDA or on a
            machine without a GPU, a GPU index that does not exist, or MPS where it is missing.
    """
    import torch  # lazy: keeps ier --help fast

    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError, ValueError):
        raise ConfigError(
            f"--device {device}: not a torch device; use cpu, cuda, cuda:N or mps"
        ) from None
    if resolved.type == "cuda":
        if not torch.backends.cuda.is_built():
            raise ConfigError(
                f"--device {device}: this torch ({torch.__version__}) is built without CUDA; "
                "use --device cpu, or install a CUDA build of torch"
            )
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise ConfigError(f"--device {device}: no CUDA GPU is visible on this machine")
        if resolved.index is not None and resolved.index >= count:
            raise ConfigError(
                f"--device {device}: there is no GPU {resolved.index} (this machine has {count})"
            )
    elif resolved.type == "mps":
        if not torch.backends.mps.is_available():
            raise ConfigError(f"--device {device}: MPS is not available on this machine")
    elif resolved.type != "cpu":
        raise ConfigError(f"--device {device}: only cpu, cuda and mps devices are supported")
    return resolved
