"""Shared fixtures. Tests run on CPU with small data that they build themselves."""

from __future__ import annotations

import os

import pytest

# Tests are small; extra threads only add contention on the 2-core CI machine.
os.environ.setdefault("OMP_NUM_THREADS", "1")


def pytest_configure(config: pytest.Config) -> None:
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # pragma: no cover - torch is a hard dependency
        pass


@pytest.fixture(scope="session")
def small_benchmark(tmp_path_factory: pytest.TempPathFactory):
    """A `small` build of the built-in benchmark (real installed assets), shared by the session."""
    from ier.scenes import build_benchmark

    out = tmp_path_factory.mktemp("bench") / "small"
    return build_benchmark(out, preset="small", seed=0, workers=1, progress=False)
