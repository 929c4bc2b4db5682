"""Speed of ``ier localize`` on ordinary video: wall time including start-up, the real-time
factor, the split of the time (decode, model, render, encode) and the peak memory.

    python benchmarks/localize_speed.py                               # bundled model, 120 s clip
    python benchmarks/localize_speed.py --model random:cpu            # the 224 px frozen-trunk IEr
    python benchmarks/localize_speed.py --model random:cpu --seconds 1800 --repeat 1   # memory
    python benchmarks/localize_speed.py --video my.mp4 --model runs/x/model.safetensors

It generates a 25 fps 640x360 clip with a 44.1 kHz soundtrack (moving shapes over a textured
background, tones and noise bursts), then runs the command a user runs, ``python -m ier localize
CLIP -o OUT`` with its defaults (window 1 s, hop 0.5 s, overlay + JSON + report), as a separate
process, and times it from launch to exit. The split comes from the run's
``localization.json``: busy seconds of each stage on its own thread (decode and the overlay's
blend + encode run beside the model, so the stages add up to more than the run).

``--model`` takes a bundled name, a checkpoint path, or ``random:<size>``: a model of that size
(``ier.models.config.MODEL_SIZES``) with random weights, random prototypes and a 16-class
mapping, saved to a temporary checkpoint, so ``localize`` runs its full class-aware path (speed
does not depend on the weights). ``random:cpu`` is the 224 px IEr with the frozen
EfficientNet-lite0 trunk.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CLASSES = ("violin cello guitar trumpet drum dog cat chicken cow sheep horse duck pig owl lion "
           "tiger").split()  # fmt: skip


def generated_clip(
    path: Path, *, seconds: float, width: int = 640, height: int = 360, fps: float = 25.0,
    sample_rate: int = 44_100,
) -> Path:  # fmt: skip
    """Moving shapes over a textured, slowly changing background (so the encoder has real work)
    and a soundtrack of tones and noise bursts."""
    from ier.video_writer import write_mp4

    rng = np.random.default_rng(0)
    texture = rng.integers(0, 40, (height, width, 1), dtype=np.uint8)
    xx, yy = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
    gradient = np.stack([xx, yy, 1 - xx], -1)
    backgrounds = [(gradient * (100 + 8 * k) + texture).clip(0, 255).astype(np.uint8)
                   for k in range(10)]  # fmt: skip

    def frames():
        for i in range(int(round(seconds * fps))):
            t = i / fps
            frame = backgrounds[int(t / 3) % len(backgrounds)].copy()  # a new "shot" every 3 s
            side = height // 4
            for k, color in enumerate(((230, 40, 40), (40, 200, 60), (50, 80, 230))):
                x = int((width - side) * (0.5 + 0.5 * np.sin(t * (0.7 + 0.3 * k) + k)))
                y = int((height - side) * (0.5 + 0.5 * np.cos(t * (0.5 + 0.2 * k))))
                frame[y : y + side, x : x + side] = color
            yield frame

    t = np.arange(int(seconds * sample_rate)) / sample_rate
    wave = 0.2 * np.sin(2 * np.pi * 440 * t) * (t % 3 < 2)
    wave += 0.1 * np.sin(2 * np.pi * 1800 * t) * (t % 5 > 2)
    wave += 0.05 * rng.standard_normal(len(t)) * (t % 7 < 1)
    return write_mp4(path, frames(), fps=fps, audio=wave.astype(np.float32),
                     sample_rate=sample_rate, preset="ultrafast")  # fmt: skip


def random_model(size: str, path: Path) -> Path:
    """A ``size`` IEr with random weights, prototypes and a 16-class mapping, saved to ``path``."""
    import dataclasses

    import torch

    from ier.checkpoint import save_model
    from ier.models import create_model
    from ier.models.config import model_config

    config = model_config(size, name="ier", num_clusters=16)
    torch.manual_seed(0)
    model = create_model(dataclasses.replace(config, pretrained=False))
    unit = torch.nn.functional.normalize
    k, d = model.num_clusters, model.embed_dim
    model.set_prototypes(unit(torch.randn(k, d), dim=1), unit(torch.randn(k, d), dim=1))
    model.set_class_mapping(CLASSES, list(range(16)))
    return save_model(path, model, model_config=config)


def run_once(video: Path, model: str, out: Path, extra: list[str]) -> dict:
    """``python -m ier localize`` in a new process: wall seconds from launch to exit, and the
    run's own timings."""
    command = [sys.executable, "-m", "ier", "localize", str(video), "--model", model,
               "-o", str(out), *extra]  # fmt: skip
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tick = time.perf_counter()
    with tempfile.TemporaryFile("w+") as err:
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=err, text=True)
        peak_kb = 0
        while process.poll() is None:  # VmHWM: the peak RSS since exec (ru_maxrss of a child
            peak_kb = max(peak_kb, _vm_hwm_kb(process.pid))  # counts the parent's pages too)
            time.sleep(0.2)
        wall = time.perf_counter() - tick
        err.seek(0)
        stderr = err.read()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if process.returncode != 0:
        raise SystemExit(f"ier localize failed:\n{stderr[-3000:]}")
    document = json.loads((out / "localization.json").read_text())
    return {"wall": wall, "cpu": cpu, "peak_rss_mib": round(peak_kb / 1024),
            "timings": document["timings_seconds"],
            "windows": len(document["windows"]), "video": document["video"]}  # fmt: skip


def _vm_hwm_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="video to localize (default: a generated clip)")
    parser.add_argument("--seconds", type=float, default=120.0, help="generated clip length")
    parser.add_argument("--model", default="ier-wild-small", help="name, checkpoint, random:SIZE")
    parser.add_argument("--threads", type=int, help="ier localize --threads (default: its own)")
    parser.add_argument("--hop", type=float, help="ier localize --hop (default: its own, 0.5 s)")
    parser.add_argument("--repeat", type=int, default=2, help="runs; each is reported")
    parser.add_argument("--work", type=Path, help="keep the clip and outputs here (reused)")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        video = args.video
        if video is None:
            video = work / f"clip-{args.seconds:g}s-640x360-25fps.mp4"
            if not video.exists():
                tick = time.perf_counter()
                generated_clip(video, seconds=args.seconds)
                print(f"generated {video} in {time.perf_counter() - tick:.0f} s", flush=True)
        model = args.model
        if model.startswith("random:"):
            model = str(random_model(model.split(":", 1)[1], work / "random-model.safetensors"))
        extra = ["--overwrite"] + (["--threads", str(args.threads)] if args.threads else [])
        extra += ["--hop", str(args.hop)] if args.hop else []
        runs = []
        for repeat in range(args.repeat):
            load = os.getloadavg()[0]
            run = run_once(video, model, work / f"out{repeat}", extra)
            run["load_average_1min_before"] = round(load, 2)
            runs.append(run)
            _report(args, run)
    peak_rss_mb = max(run["peak_rss_mib"] for run in runs)
    best = min(runs, key=lambda r: r["wall"])
    figures = {
        "model": args.model, "video": best["video"], "windows": best["windows"],
        "cpu_count": os.cpu_count(), "runs": runs, "best_wall_seconds": round(best["wall"], 2),
        "best_real_time_factor": round(best["video"]["duration_seconds"] / best["wall"], 2),
        "peak_rss_mib": round(peak_rss_mb),
    }  # fmt: skip
    print(f"peak RSS of the localize process: {peak_rss_mb:.0f} MiB (VmHWM)")
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return figures


def _report(args: argparse.Namespace, run: dict) -> None:
    wall, seconds = run["wall"], run["video"]["duration_seconds"]
    t = {"decode": 0.0, "render": 0.0, "encode": 0.0, **run["timings"]}  # older runs: no encode
    startup = wall - t["total"]
    share = {k: t[k] / wall for k in ("decode", "model", "render", "encode")}
    print(
        f"{args.model}: {seconds:.0f} s of {run['video']['width']}x{run['video']['height']} @ "
        f"{run['video']['fps']:g} fps, {run['windows']} windows (1-min load average "
        f"{run['load_average_1min_before']} on {os.cpu_count()} CPUs)\n"
        f"  wall {wall:.1f} s including start-up = {seconds / wall:.1f}x real time "
        f"(start-up {startup:.1f} s, run {t['total']:.1f} s); CPU {run['cpu']:.1f} s "
        f"= {run['cpu'] / wall:.2f} cores on average\n"
        f"  busy seconds per stage (threads overlap): decode {t['decode']:.1f}, model "
        f"{t['model']:.1f}, render {t['render']:.1f}, encode {t['encode']:.1f}\n"
        f"  as a share of the wall time: decode {100 * share['decode']:.0f}%, model "
        f"{100 * share['model']:.0f}%, render {100 * share['render']:.0f}%, encode "
        f"{100 * share['encode']:.0f}%; decode + render + encode "
        f"{100 * (share['decode'] + share['render'] + share['encode']):.0f}%\n"
        f"  wall time outside the model (start-up included): {100 * (1 - share['model']):.0f}%",
        flush=True,
    )


if __name__ == "__main__":
    main()
