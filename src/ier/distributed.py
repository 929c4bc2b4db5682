"""Multi-process training helpers: the torchrun environment, one DDP wrap, rank-0 guards.

Everything is driven by the environment ``torchrun`` (or SLURM) sets; a plain ``python`` run is a
world of one process and every helper here is then a no-op.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist
from torch import nn

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class WorldInfo:
    """Where this process sits in the job.

    Attributes:
        rank: Global rank (0 = main process: logging, checkpoints).
        local_rank: Rank on this node (selects the GPU).
        world_size: Number of processes.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1

    @property
    def distributed(self) -> bool:
        """True when more than one process trains."""
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        """True on rank 0."""
        return self.rank == 0


def world_info_from_env() -> WorldInfo:
    """``RANK``/``LOCAL_RANK``/``WORLD_SIZE`` (torchrun) or ``SLURM_*``; default: one process."""
    env = os.environ
    for rank_key, local_key, size_key in (
        ("RANK", "LOCAL_RANK", "WORLD_SIZE"),
        ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS"),
    ):
        if size_key in env and rank_key in env:
            return WorldInfo(
                rank=int(env[rank_key]),
                local_rank=int(env.get(local_key, 0)),
                world_size=int(env[size_key]),
            )
    return WorldInfo()


def init_distributed(backend: str | None = None, *, timeout_seconds: float = 1800) -> WorldInfo:
    """Join the process group described by the environment (``env://``), if there is one.

    Args:
        backend: ``nccl`` or ``gloo``; default: ``nccl`` when CUDA is available, else ``gloo``.
        timeout_seconds: Collective timeout.

    Returns:
        This process's ``WorldInfo``.
    """
    info = world_info_from_env()
    if not info.distributed or dist.is_initialized():
        return info
    backend = backend or ("nccl" if torch.cuda.is_available() else "gloo")
    if backend == "nccl":
        torch.cuda.set_device(info.local_rank)
    dist.init_process_group(
        backend=backend,
        init_method="env://",
        rank=info.rank,
        world_size=info.world_size,
        timeout=timedelta(seconds=timeout_seconds),
    )
    logger.info("joined process group: rank %d of %d (%s)", info.rank, info.world_size, backend)
    return info


def cleanup_distributed() -> None:
    """Leave the process group (no-op when not distributed)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def current_world() -> WorldInfo:
    """The world of the initialised process group (one process if none)."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", 0))
        return WorldInfo(dist.get_rank(), local, dist.get_world_size())
    return WorldInfo()


def is_main_process() -> bool:
    """True on rank 0 (or when not distributed): only it logs progress and writes files."""
    return current_world().is_main


def barrier() -> None:
    """Wait for every process (no-op when not distributed)."""
    if current_world().distributed:
        dist.barrier()


def broadcast_(tensor: torch.Tensor, src: int = 0) -> torch.Tensor:
    """Overwrite ``tensor`` in place with rank ``src``'s copy (no-op when not distributed)."""
    if current_world().distributed:
        dist.broadcast(tensor, src=src)
    return tensor


def all_reduce_mean(value: float) -> float:
    """Mean of a float over every process (identity when not distributed)."""
    if not current_world().distributed:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / dist.get_world_size()


def wrap_ddp(module: nn.Module, device: torch.device | None = None) -> nn.Module:
    """Wrap ``module`` in ``DistributedDataParallel`` when distributed; return it unchanged if not.

    ``find_unused_parameters`` is on, because a stage's loss may leave parts of the model unused in
    some steps (e.g. the classifier heads before the first clustering round).
    """
    if not current_world().distributed:
        return module
    device_ids = [device.index] if device is not None and device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(
        module, device_ids=device_ids, find_unused_parameters=True
    )


class RankFilter(logging.Filter):
    """Adds ``rank`` to log records, and drops INFO and below on ranks other than 0."""

    def filter(self, record: logging.LogRecord) -> bool:
        world = current_world()
        record.rank = world.rank
        return world.is_main or record.levelno > logging.INFO
