#!/usr/bin/env bash
# Install rt_reid (CPU ONNX Runtime) into the active Python environment.
#   bash scripts/setup.sh        runtime only: simulate, replay, demo, live run (no torch)
#   bash scripts/setup.sh test   plus torch (CPU, 2.13.0), training module and test tools
set -euo pipefail
cd "$(dirname "$0")/.."

extras="cpu"
case "${1:-}" in
  "") ;;
  test) extras="cpu,test" ;;
  *) echo "usage: bash scripts/setup.sh [test]" >&2; exit 2 ;;
esac

# open3d loads libusb-1.0 at import time; it is a system library, not a Python wheel.
if ! ldconfig -p | grep -q 'libusb-1.0.so.0'; then
  sudo_cmd=""
  if [ "$(id -u)" -ne 0 ]; then sudo_cmd="sudo"; fi
  $sudo_cmd apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq libusb-1.0-0
fi

# torch is pinned to the CPU build (2.13.0) inside the extras, so pip never pulls a CUDA build.
python -m pip install --quiet --upgrade "pip>=23.1"
python -m pip install --quiet -e ".[${extras}]"
