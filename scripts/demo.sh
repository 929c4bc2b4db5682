#!/usr/bin/env bash
# One command from a fresh machine to the main job: install everything, then run `ier demo`
# (builds a few benchmark clips from the installed real assets, localizes the sounding objects with
# the bundled model, writes overlay videos and an HTML report).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
ier demo --overwrite -o "${1:-demo_out}"   # the demo replaces only its own outputs
