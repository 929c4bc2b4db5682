r"""What the channels-last conv layout (``ier.models.backbones.CONV_LAYOUT``) buys on this machine.

    python benchmarks/conv_layout.py --json docs/results/conv-layout.json
    python benchmarks/conv_layout.py --data bench/default --methods ots ier sop --steps 60 \
        --json docs/results/conv-layout.json

Times each workload in both layouts in one process, alternating A B A B so that drift on a shared
machine hits both, and prints the median seconds and the ratio NCHW / channels-last:

- ``extract``: the frozen EfficientNet-lite0 trunk, forward only, 224 px, batch 32 (``ier features
  extract``, ``ier localize``);
- ``audio-step``: the audio ResNet-18 at the ``cpu`` preset's width 16, forward + backward on a
  201 x 64 log-mel batch of 32 (most of every method's training step on cached features);
- ``sop-unet-step``: Sound of Pixels' U-Net, forward + backward, batch 32.

With ``--data`` (a benchmark with its ``cpu`` feature cache) it also trains each of ``--methods`` at
the ``cpu`` preset for ``--steps`` steps of its first stage in each layout and reports the seconds
per step (the first 20 steps, warm-up, are not counted).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from ier.methods import sop
from ier.models import backbones

LAYOUTS = {"nchw": torch.contiguous_format, "channels_last": torch.channels_last}


@contextmanager
def layout(name: str) -> Iterator[None]:
    """Build and run the conv nets in layout ``name`` while inside."""
    saved = backbones.CONV_LAYOUT
    backbones.CONV_LAYOUT = LAYOUTS[name]
    try:
        yield
    finally:
        backbones.CONV_LAYOUT = saved


def _workloads() -> dict[str, Callable[[], Callable[[], None]]]:
    """name -> builder (called inside ``layout``) of a zero-argument timed call."""

    def extract() -> Callable[[], None]:
        net = backbones.EfficientNetLite0(pretrained=True).eval()
        x = torch.rand(32, 3, 224, 224)

        def call() -> None:
            with torch.no_grad():
                net.trunk(x)

        return call

    def audio_step() -> Callable[[], None]:
        net = backbones.build_audio_backbone(width=16)
        x = torch.randn(32, 1, 201, 64)

        def call() -> None:
            mid, top = net.forward_features(x)
            (mid.amax(dim=(2, 3)).sum() + top.amax(dim=(2, 3)).sum()).backward()

        return call

    def sop_step() -> Callable[[], None]:
        net = sop.LightUNet(width=16, out_channels=sop.SOP_CHANNELS)
        x = torch.randn(32, 1, 201, 64)

        def call() -> None:
            net(x).square().mean().backward()

        return call

    return {"extract": extract, "audio-step": audio_step, "sop-unet-step": sop_step}


def time_workloads(repeats: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for name, build in _workloads().items():
        calls = {}
        for lay in LAYOUTS:
            with layout(lay):
                calls[lay] = build()
                calls[lay]()  # warm-up (oneDNN primitive creation)
        times: dict[str, list[float]] = {lay: [] for lay in LAYOUTS}
        for _ in range(repeats):
            for lay, call in calls.items():
                with layout(lay):
                    start = time.perf_counter()
                    call()
                    times[lay].append(time.perf_counter() - start)
        ratios = [a / b for a, b in zip(times["nchw"], times["channels_last"])]
        out[name] = {
            "seconds_median": {lay: statistics.median(t) for lay, t in times.items()},
            "ratio_nchw_over_channels_last": statistics.median(ratios),
            "ratio_min_max": [min(ratios), max(ratios)],
            "repeats": repeats,
        }
        print(f"{name:>14}: NCHW {out[name]['seconds_median']['nchw']:.3f} s, channels-last "
              f"{out[name]['seconds_median']['channels_last']:.3f} s, ratio "
              f"{out[name]['ratio_nchw_over_channels_last']:.2f} "
              f"(min {min(ratios):.2f}, max {max(ratios):.2f})")  # fmt: skip
    return out


def seconds_per_step(run_dir: Path, skip: int = 20) -> float:
    """Mean seconds per step of a training run (its ``log.jsonl``), after the first ``skip``."""
    steps = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines()]
    steps = [r for r in steps if r.get("event") == "step"]
    first = next(r for r in steps if r["step"] >= skip)
    last = steps[-1]
    return (last["time"] - first["time"]) / (last["step"] - first["step"])


def time_training(data: Path, methods: list[str], steps: int, rounds: int) -> dict[str, Any]:
    from ier.codec import apply_overrides
    from ier.methods import preset
    from ier.train import fit

    out: dict[str, Any] = {}
    for method in methods:
        cfg = preset(method, "cpu")
        # the from-scratch audio ResNet-18 (the cpu preset's until 2026-12-05): its layout is
        # what this measures; the frozen aisfx encoder is remembered, not run, at every step
        cfg = apply_overrides(cfg, [f"stages.0.max_steps={steps}", "stages.0.epochs=1",
                                    "stop_stage=0", "eval.at_end=false",
                                    "model.audio_backbone=resnet18"])  # fmt: skip
        per_step: dict[str, list[float]] = {lay: [] for lay in LAYOUTS}
        for _ in range(rounds):
            for lay in LAYOUTS:
                with layout(lay), tempfile.TemporaryDirectory() as tmp:
                    fit(cfg, data, Path(tmp) / "run", progress=False)
                    per_step[lay].append(seconds_per_step(Path(tmp) / "run"))
        ratios = [a / b for a, b in zip(per_step["nchw"], per_step["channels_last"])]
        out[method] = {
            "seconds_per_step_median": {k: statistics.median(v) for k, v in per_step.items()},
            "ratio_nchw_over_channels_last": statistics.median(ratios),
            "steps": steps, "rounds": rounds, "batch_size": cfg.stages[0].batch_size,
        }  # fmt: skip
        med = out[method]["seconds_per_step_median"]
        ratio = out[method]["ratio_nchw_over_channels_last"]
        print(f"{method:>14}: {med['nchw']:.3f} s/step NCHW, {med['channels_last']:.3f} s/step "
              f"channels-last, ratio {ratio:.2f}")  # fmt: skip
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=7, help="timed calls per layout")
    parser.add_argument("--data", type=Path, help="benchmark folder: also time training steps")
    parser.add_argument("--methods", nargs="+", default=["ots", "ier", "sop"])
    parser.add_argument("--steps", type=int, default=60, help="steps per training run")
    parser.add_argument("--rounds", type=int, default=1, help="training runs per layout")
    parser.add_argument("--json", type=Path, help="write the figures here")
    args = parser.parse_args(argv)
    torch.manual_seed(0)
    shown = sys.argv[1:] if argv is None else argv
    result: dict[str, Any] = {
        "command": "python benchmarks/conv_layout.py " + " ".join(shown),
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(),
                    "torch": torch.__version__},  # fmt: skip
        "workloads": time_workloads(args.repeats),
    }
    if args.data:
        result["training"] = time_training(args.data, args.methods, args.steps, args.rounds)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
