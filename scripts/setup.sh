#!/usr/bin/env bash
# Installs everything ier needs on a fresh Debian/Ubuntu machine: the packages that provide the
# benchmark's real sounds and photos, the soundfont synth, Chromium (HTML-report check), the CPU
# torch wheel and the project itself (editable, with dev extras). Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

APT_PACKAGES=(
  tuxpaint-stamps-default gcompris-qt-data openttd-opensfx lincity-ng-data
  sound-theme-freedesktop fluidsynth fluid-soundfont-gm librsvg2-2 chromium openclipart-png
)
if command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${APT_PACKAGES[@]}" >/dev/null
else
  echo "setup: apt-get not found; install these packages yourself: ${APT_PACKAGES[*]}" >&2
fi

PY=${PYTHON:-python3}
"$PY" -m pip install -q --disable-pip-version-check torch==2.13.0
"$PY" -m pip install -q --disable-pip-version-check -e ".[dev]"
# Optional pretrained audio encoder (model.audio_backbone="aisfx"): its wheel pins librosa and an
# old numpy that it does not need for its weights, so it goes in without dependencies.
"$PY" -m pip install -q --disable-pip-version-check --no-deps aisfx==0.1.2
