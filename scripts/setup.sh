#!/usr/bin/env bash
# Create .venv and install DIPNet Studio into it.
#   bash scripts/setup.sh            CPU install (default; takes the local CPU torch wheel, no CUDA download)
#   bash scripts/setup.sh --test     ... plus the test tools
#   bash scripts/setup.sh --gpu      CUDA torch + onnxruntime-gpu (CUDA/TensorRT providers; falls back to CPU)
set -euo pipefail
cd "$(dirname "$0")/.."

extras="" gpu=0
for arg in "$@"; do
  case "$arg" in
    --test) extras="[test]" ;;
    --gpu) gpu=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

[ -x .venv/bin/python ] || python3 -m venv .venv
py=.venv/bin/python
if [ "$gpu" = 1 ]; then
  "$py" -m pip install --quiet torch
else
  # Installed first so the project's `torch>=2.2` is already satisfied and pip never
  # pulls a multi-GB CUDA build on a CPU-only machine.
  "$py" -m pip install --quiet torch==2.13.0
fi
"$py" -m pip install --quiet -e ".$extras"
if [ "$gpu" = 1 ]; then
  # onnxruntime and onnxruntime-gpu install the same module; keep only the GPU one.
  "$py" -m pip uninstall --quiet -y onnxruntime
  "$py" -m pip install --quiet "onnxruntime-gpu>=1.17"
fi
echo "installed into $(pwd)/.venv"
