"""Throughput of ``ier.localize``: windows per second, real-time factor, and the share of time
spent outside the model (decode, resize, smoothing, rendering, encoding) on the same windows.

    python benchmarks/localize_speed.py                       # 60 s synthetic clip, tiny arch
    python benchmarks/localize_speed.py --model arch:quick --width 640 --height 360 --fps 25
    python benchmarks/localize_speed.py --video my.mp4 --model ier-wild-small

``--model`` takes a bundled name, a checkpoint path, or ``arch:<size>`` (an untrained model of a
named size from ``ier.models.config.MODEL_SIZES``: speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch


def synthetic_clip(path: Path, *, seconds: float, width: int, height: int, fps: float) -> Path:
    """A moving square over a gradient with two tones: enough texture for realistic encoding."""
    from ier.video import write_mp4

    rate = 16_000

    def frames():
        xx, yy = np.meshgrid(np.linspace(0, 1, width), np.linspace(0, 1, height))
        base = np.stack([xx, yy, 1 - xx], -1) * 160
        for i in range(int(seconds * fps)):
            frame = base.astype(np.uint8)
            side = height // 4
            x = int((width - side) * (0.5 + 0.5 * np.sin(i / fps)))
            frame[height // 3 : height // 3 + side, x : x + side] = (230, 40, 40)
            yield frame

    t = np.arange(int(seconds * rate)) / rate
    wave = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.2 * np.sin(2 * np.pi * 3000 * t) * (t % 4 < 2)
    return write_mp4(path, frames(), fps=fps, audio=wave.astype(np.float32), sample_rate=rate)


def build_model(spec: str) -> torch.nn.Module:
    """``arch:<size>`` -> untrained registry model; else ``ier.localization.load_model``."""
    if spec.startswith("arch:"):
        from ier.models import create_model
        from ier.models.config import model_config

        model = create_model(model_config(spec.split(":", 1)[1]))
        model.name = spec
        return model.eval()
    from ier.localization import load_model

    return load_model(spec)


def bare_forward_seconds(model: torch.nn.Module, video: Path, result, batch_size: int) -> float:
    """Time ``model.localize`` alone on the same windows (inputs decoded beforehand, untimed)."""
    from ier.audio import load_audio
    from ier.video import load_frames

    size = model.config.input_size
    rate, clip = model.config.frontend.sample_rate, model.config.frontend.clip_seconds
    times = [w.time_seconds for w in result.windows]
    images = torch.from_numpy(load_frames(video, times, size=size)).permute(0, 3, 1, 2)
    images = images.float().div(255)
    wave = load_audio(video, sample_rate=rate)
    n = int(round(clip * rate))
    starts = [max(0, int(round((t - clip / 2) * rate))) for t in times]
    waves = torch.from_numpy(
        np.stack([np.pad(wave[s : s + n], (0, n - len(wave[s : s + n]))) for s in starts])
    )
    tick = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(times), batch_size):
            model.localize(images[start : start + batch_size], waves[start : start + batch_size])
    return time.perf_counter() - tick


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--video", type=Path, help="video to localize (default: synthetic clip)")
    parser.add_argument("--seconds", type=float, default=60.0, help="synthetic clip length")
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--fps", type=float, default=8.0, help="synthetic clip frame rate")
    parser.add_argument("--model", default="arch:tiny", help="name, checkpoint or arch:<size>")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--window", type=float, default=1.0)
    parser.add_argument("--hop", type=float, default=0.5)
    parser.add_argument("--repeat", type=int, default=3, help="runs; the fastest is reported")
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from ier.localization import LocalizeSettings, localize

    with tempfile.TemporaryDirectory() as tmp:
        video = args.video or synthetic_clip(
            Path(tmp) / "clip.mp4", seconds=args.seconds, width=args.width, height=args.height,
            fps=args.fps,
        )  # fmt: skip
        model = build_model(args.model)
        settings = LocalizeSettings(window_seconds=args.window, hop_seconds=args.hop)
        localize(video, model=model, settings=settings)  # warm-up (allocations, decoder init)
        runs = []  # interleaved repeats; the fastest of each is the least disturbed by other load
        for repeat in range(args.repeat):
            out_dir = Path(tmp) / f"out{repeat}"
            tick = time.perf_counter()
            result = localize(video, model=model, settings=settings, out_dir=out_dir)
            total = time.perf_counter() - tick
            bare_seconds = bare_forward_seconds(model, video, result, settings.batch_size)
            runs.append((total, result, bare_seconds))
        total, result, _ = min(runs, key=lambda run: run[0])
        bare = min(run[2] for run in runs)
    n = len(result.windows)
    in_run_other = result.timings["total"] - result.timings["model"]
    figures = {
        "model": args.model,
        "video": {
            "seconds": round(result.video.duration_seconds, 2),
            "fps": result.video.fps,
            "width": result.video.width,
            "height": result.video.height,
        },  # fmt: skip
        "threads": args.threads,
        "windows": n,
        "total_seconds": round(total, 3),
        "bare_forward_seconds": round(bare, 3),
        "windows_per_second": round(n / total, 2),
        "bare_windows_per_second": round(n / bare, 2),
        "real_time_factor": round(result.video.duration_seconds / total, 2),
        "overhead_fraction": round(max(0.0, total - bare) / total, 3),
        "in_run_non_model_fraction": round(in_run_other / result.timings["total"], 3),
        "load_average_1min": round(os.getloadavg()[0], 2),
        "cpu_count": os.cpu_count(),
        "breakdown_seconds": {k: round(v, 3) for k, v in result.timings.items()},
    }
    print(
        f"{args.model}: {n} windows of a {figures['video']['seconds']} s "
        f"{result.video.width}x{result.video.height} @ {result.video.fps:g} fps video, "
        f"{args.threads} threads\n"
        f"  localize (overlay + json + report): {total:.2f} s = {figures['windows_per_second']} "
        f"windows/s, {figures['real_time_factor']}x real time\n"
        f"  bare model.localize, same windows:  {bare:.2f} s = "
        f"{figures['bare_windows_per_second']} windows/s\n"
        f"  overhead (total - bare forward): {100 * figures['overhead_fraction']:.1f}% of total; "
        f"inside the run, decode + render = "
        f"{100 * figures['in_run_non_model_fraction']:.1f}%\n"
        f"  breakdown inside localize: {figures['breakdown_seconds']}\n"
        f"  (fastest of {args.repeat} runs; 1-min load average {figures['load_average_1min']} "
        f"on {figures['cpu_count']} CPUs)"
    )
    if args.json:
        args.json.write_text(json.dumps(figures, indent=1))
    return figures


if __name__ == "__main__":
    main()
