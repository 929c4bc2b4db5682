#!/usr/bin/env bash
# Device check: does `ier train` run on a CUDA GPU, at what speed, and does torchrun start?
# Trains IEr on a toy benchmark (ier.data.toy, generated on the spot, 224 px, 4 classes) and
# copies each run's log.jsonl (per-epoch clips_per_second) and log to OUT_DIR.
#   RUNS="cpu paper-short torchrun" (default): the `cpu` preset (frozen trunk, cached features;
#     full epochs), the `paper` preset (the whole network from pixels) for 2 / 2 / 1 epochs, and
#     a 1-process torchrun run of the `tiny` preset.
#   RUNS=paper: the `paper` preset at its full 15 / 10 / 5 epochs.
#   RUNS=localize: `ier localize` with the bundled model on one toy clip, on CUDA and on the CPU,
#     and whether the two agree (class states, calibrated presence).
#   RUNS=jobs: `ier bench --preset cpu` on the machine's CPU cores (GPU hidden), --jobs 1 and then
#     --jobs $JOBS (8), for JOB_METHODS (ots dsol ier, with the IEr ablations): what side-by-side
#     runs buy on many cores. Features are extracted once, on the GPU.
#   N_TRAIN (512), N_TEST (32): clips per toy split.
# Needs `ier` importable (pip install -e ., or PYTHONPATH=src) and a GPU; the ImageNet weights are
# not needed (model.pretrained=false: the timing is the same). docs/results.md, "On one H200 GPU".
# Usage: bash benchmarks/gpu_check.sh OUT_DIR
set -uo pipefail
out=${1:?usage: gpu_check.sh OUT_DIR}
runs=${RUNS:-cpu paper-short torchrun}
n_train=${N_TRAIN:-512}
n_test=${N_TEST:-32}
work=${WORK:-/tmp/ier-gpu}
limit=${RUN_LIMIT_S:-200}
mkdir -p "$out"
rm -rf "$work" && mkdir -p "$work"
export PYTHONUNBUFFERED=1
nvidia-smi -L || true
python3 -c "import torch; print('torch', torch.__version__, torch.cuda.get_device_name(0))"
start=$(date +%s)
python3 -c "
from ier.data.toy import build_toy_benchmark, TOY_CLASSES
build_toy_benchmark('$work/toy', n_train=$n_train, n_test=$n_test, size=224, classes=TOY_CLASSES)"
echo "toy ($n_train train clips per split) built in $(( $(date +%s) - start )) s"
train() {  # name, then ier train arguments
  local name=$1; shift
  local t0=$(date +%s)
  timeout "$limit" python3 -m ier train --method ier --data "$work/toy" --out "$work/$name" \
    --no-progress --set model.pretrained=false "$@" > "$out/$name.log" 2>&1
  echo "$name rc=$? wall=$(( $(date +%s) - t0 )) s"
  cp "$work/$name/log.jsonl" "$out/$name.jsonl" 2>/dev/null
}
for r in $runs; do
  case $r in
    cpu) train cpu-ier$n_train --preset cpu --device cuda ;;
    paper) train paper-ier$n_train --preset paper --device cuda ;;
    paper-short) train paper-short-ier$n_train --preset paper --device cuda \
      --set stages.0.epochs=2 --set stages.1.epochs=2 --set stages.2.epochs=1 ;;
    torchrun)
      t0=$(date +%s)
      timeout 120 torchrun --standalone --nproc_per_node=1 -m ier train --method ier \
        --preset tiny --data "$work/toy" --out "$work/ddp" --no-progress > "$out/ddp-tiny.log" 2>&1
      echo "torchrun rc=$? wall=$(( $(date +%s) - t0 )) s" ;;
    jobs)  # `ier bench --jobs` on the machine's CPU cores (GPU hidden): one run at a time with
      # every thread, then JOBS runs at a time with the cores shared out; same toy, same cache
      jobs=${JOBS:-8}
      python3 -m ier features extract --data "$work/toy" --set model.pretrained=false \
        --device "${EXTRACT_DEVICE:-cuda}" --no-progress > "$out/jobs-extract.log" 2>&1
      echo "features rc=$?"
      for j in 1 "$jobs"; do
        t0=$(date +%s.%N)
        CUDA_VISIBLE_DEVICES= timeout "$limit" python3 -m ier bench --preset cpu \
          --data "$work/toy" --out "$work/bench-jobs$j" --methods ${JOB_METHODS:-ots dsol ier} \
          --jobs "$j" --set model.pretrained=false --no-progress > "$out/bench-jobs$j.log" 2>&1
        echo "bench --jobs $j rc=$? wall=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
        cp "$work/bench-jobs$j/results.json" "$out/bench-jobs$j.json" 2>/dev/null
      done ;;
    localize)  # the bundled model on one toy clip, on CUDA and on the CPU: same decisions?
      clip="$work/toy-clip.mp4"
      python3 -c "
import numpy as np, soundfile
from PIL import Image
from ier.video import write_mp4
frame = np.asarray(Image.open('$work/toy/test/wild/media/wild-0000.png').convert('RGB'))
wave, rate = soundfile.read('$work/toy/test/wild/media/wild-0000.wav', dtype='float32')
write_mp4('$clip', np.stack([frame] * 30), fps=10, audio=np.tile(wave, 3), sample_rate=rate)"
      for dev in cuda cpu; do
        t0=$(date +%s.%N)
        python3 -m ier localize "$clip" --model ier-wild-small --device "$dev" \
          -o "$work/localize-$dev" > "$out/localize-$dev.log" 2>&1
        echo "localize $dev rc=$? wall=$(python3 -c "print(round($(date +%s.%N) - $t0, 1))") s"
        cp "$work/localize-$dev/localization.json" "$out/localize-$dev.json" 2>/dev/null
      done
      python3 - "$out" <<'PY'
import json, sys
a, b = (json.load(open(f"{sys.argv[1]}/localize-{d}.json")) for d in ("cuda", "cpu"))
pairs = [(x, y) for wa, wb in zip(a["windows"], b["windows"])
         for x, y in zip(wa["classes"], wb["classes"])]
same = sum(x["state"] == y["state"] for x, y in pairs)
gap = max(abs((x["presence"] or 0) - (y["presence"] or 0)) for x, y in pairs)
print(f"localize cuda vs cpu: {same}/{len(pairs)} class states agree, "
      f"largest presence difference {gap:.4f}, threshold {a['settings']['threshold_source']}")
PY
      ;;
    *) echo "unknown run $r" >&2; exit 2 ;;
  esac
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv || true
