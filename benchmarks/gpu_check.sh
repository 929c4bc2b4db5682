#!/usr/bin/env bash
# Device check: does `ier train` run on a CUDA GPU, at what speed, and does torchrun start?
# Trains IEr on a toy benchmark (ier.data.toy, generated on the spot, 224 px, 4 classes) and
# copies each run's log.jsonl (per-epoch clips_per_second) and log to OUT_DIR.
#   RUNS="cpu paper-short torchrun" (default): the `cpu` preset (frozen trunk, cached features;
#     full epochs), the `paper` preset (the whole network from pixels) for 2 / 2 / 1 epochs, and
#     a 1-process torchrun run of the `tiny` preset.
#   RUNS=paper: the `paper` preset at its full 15 / 10 / 5 epochs.
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
    *) echo "unknown run $r" >&2; exit 2 ;;
  esac
done
nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv || true
