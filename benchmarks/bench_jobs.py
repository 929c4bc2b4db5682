r"""Is it faster to train two bench runs side by side, one thread each, than one after another with
every thread? (``ier bench --jobs``.)

    python benchmarks/bench_jobs.py --data bench/default --methods ier sop --steps 80 \
        --json docs/results/bench-jobs.json

For each method, trains its first stage at the ``cpu`` preset for ``--steps`` steps in two ways,
alternating A B A B so that drift on a shared machine hits both:

- ``serial``: one process with ``--threads`` torch threads (what ``ier bench`` does with
  ``--jobs 1``);
- ``parallel``: ``--processes`` processes at once (default ``--threads``), each with
  ``--threads / --processes`` torch threads (``ier bench --jobs``).

It prints the training throughput of each (steps per second, summed over the processes; the first
20 steps of each process are warm-up and not counted) and the ratio parallel / serial: above 1,
side-by-side runs finish a bench sooner.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch
from conv_layout import seconds_per_step  # benchmarks/ is on sys.path for a script

_CHILD = """
import sys, torch
from pathlib import Path
from ier.allocator import keep_freed_memory
from ier.codec import apply_overrides
from ier.methods import preset
from ier.train import fit
torch.set_num_threads(int(sys.argv[4]))
keep_freed_memory()  # as ier bench does, in its own process and in every --jobs worker
cfg = preset(sys.argv[1], "cpu")
cfg = apply_overrides(cfg, [f"stages.0.max_steps={sys.argv[3]}", f"stages.0.epochs={sys.argv[7]}",
                            "stop_stage=0", "eval.at_end=false", f"seed={sys.argv[5]}",
                            f"model.audio_backbone={sys.argv[8]}"])
fit(cfg, Path(sys.argv[2]), Path(sys.argv[6]), progress=False)
"""


def _train(
    method: str, data: Path, steps: int, epochs: int, threads: int, copies: int,
    audio: str = "resnet18",
) -> float:  # fmt: skip
    """Summed steps/s of ``copies`` concurrent processes with ``threads`` threads each."""
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _CHILD, method, str(data), str(steps), str(threads),
                 str(k), str(Path(tmp) / f"run{k}"), str(epochs), audio],
                env=env,
            )  # fmt: skip
            for k in range(copies)
        ]
        for p in procs:
            if p.wait() != 0:
                raise SystemExit(f"a {method} training process failed ({p.returncode})")
        return sum(1 / seconds_per_step(Path(tmp) / f"run{k}") for k in range(copies))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True,
                        help="benchmark folder with its cpu feature cache")  # fmt: skip
    parser.add_argument("--methods", nargs="+", default=["ier", "sop"])
    parser.add_argument("--steps", type=int, default=80,
                        help="steps per epoch of each training process (0: whole epochs)")
    parser.add_argument("--epochs", type=int, default=1,
                        help="epochs of each training process (more for a small benchmark)")
    parser.add_argument("--processes", type=int, default=0,
                        help="processes of the parallel run (0: --threads, one thread each)")
    parser.add_argument("--rounds", type=int, default=2, help="A/B pairs per method")
    parser.add_argument(
        "--threads", type=int, default=os.cpu_count() or 2,
        help="threads of the serial run = processes of the parallel one",
    )  # fmt: skip
    parser.add_argument("--audio-backbone", default="resnet18",
                        help="audio tower (the recorded figures used the from-scratch resnet18, "
                             "the cpu preset's until 2026-12-05)")  # fmt: skip
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    shown = sys.argv[1:] if argv is None else argv
    processes = args.processes or args.threads
    each = max(1, args.threads // processes)
    out: dict[str, Any] = {}
    for method in args.methods:
        serial, parallel = [], []
        for _ in range(args.rounds):
            serial.append(_train(method, args.data, args.steps, args.epochs, args.threads, 1,
                                 args.audio_backbone))  # fmt: skip
            parallel.append(_train(method, args.data, args.steps, args.epochs, each, processes,
                                   args.audio_backbone))  # fmt: skip
        ratios = [p / s for p, s in zip(parallel, serial)]
        out[method] = {
            "serial_steps_per_s": serial, "parallel_steps_per_s": parallel,
            "ratio_parallel_over_serial": statistics.median(ratios),
            "ratio_min_max": [min(ratios), max(ratios)],
            "steps": args.steps, "epochs": args.epochs, "rounds": args.rounds,
            "serial_threads": args.threads, "parallel_processes": processes,
            "parallel_threads_each": each,
        }  # fmt: skip
        print(f"{method:>10}: serial ({args.threads} threads) {statistics.median(serial):.2f} "
              f"steps/s, parallel ({processes} x {each} threads) "
              f"{statistics.median(parallel):.2f} "
              f"steps/s, ratio {out[method]['ratio_parallel_over_serial']:.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f})", flush=True)  # fmt: skip
    result = {
        "command": "python benchmarks/bench_jobs.py " + " ".join(shown),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "cpus": os.cpu_count(),
                    "torch": torch.__version__},  # fmt: skip
        "methods": out,
    }
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
