#!/usr/bin/env bash
# Create .venv and install DIPNet Studio into it.
#   bash scripts/setup.sh              desktop app + CLI, CPU torch (default; no CUDA download)
#   bash scripts/setup.sh --test       ... plus the test tools
#   bash scripts/setup.sh --headless   core + CLI only, no Qt (servers, containers)
#   bash scripts/setup.sh --gpu        CUDA torch + onnxruntime-gpu (CUDA/TensorRT providers; falls back to CPU)
# PYTHON=/path/to/python3.12 picks the interpreter (default: python3; 3.11 or newer).
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH_VERSION=2.13.0
# PyTorch's documented index of CPU-only wheels (no CUDA libraries, a fraction of the size).
TORCH_CPU_INDEX=https://download.pytorch.org/whl/cpu

extras="gui" gpu=0
for arg in "$@"; do
  case "$arg" in
    --test) extras="gui,test" ;;
    --headless) extras="" ;;
    --gpu) gpu=1 ;;
    *) echo "unknown option: $arg" >&2; exit 2 ;;
  esac
done

python=${PYTHON:-python3}
need_311() {
  if ! "$1" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "DIPNet Studio needs Python 3.11 or newer; $1 is $("$1" -V 2>&1 || echo missing)." >&2
    echo "Install python3.11 (or newer) and run: PYTHON=python3.11 bash scripts/setup.sh" >&2
    exit 1
  fi
}
need_311 "$python"
[ -x .venv/bin/python ] || "$python" -m venv .venv
py=.venv/bin/python
need_311 "$py"

if [ "$gpu" = 1 ]; then
  "$py" -m pip install --quiet torch
elif "$py" -m pip install --quiet --dry-run --no-deps --no-index "torch==$TORCH_VERSION" >/dev/null 2>&1; then
  # A wheel on local disk (pip's find-links): installed first so the project's torch requirement
  # is already satisfied and pip never pulls a multi-GB CUDA build on a CPU-only machine.
  "$py" -m pip install --quiet "torch==$TORCH_VERSION"
else
  echo "no local torch $TORCH_VERSION wheel: installing the CPU-only build from $TORCH_CPU_INDEX"
  "$py" -m pip install --quiet "torch==$TORCH_VERSION" --index-url "$TORCH_CPU_INDEX"
fi
if [ -n "$extras" ]; then
  "$py" -m pip install --quiet -e ".[$extras]"
else
  "$py" -m pip install --quiet -e .
fi
if [ "$gpu" = 1 ]; then
  # onnxruntime and onnxruntime-gpu install the same module; keep only the GPU one.
  "$py" -m pip uninstall --quiet -y onnxruntime
  "$py" -m pip install --quiet "onnxruntime-gpu>=1.17"
fi
if [ -n "$extras" ]; then
  # Qt's X11 plugin needs system libraries a bare Debian/Ubuntu lacks: name them and the apt line.
  "$py" -m app.xcb_check || echo "(the CLI works without them; the desktop app needs them on X11)" >&2
fi
echo "installed into $(pwd)/.venv"
