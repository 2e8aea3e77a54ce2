#!/usr/bin/env bash
# Build the Linux bundles of DIPNet Studio from a clean clone, one command:
#   bash packaging/build_linux.sh            both editions
#   bash packaging/build_linux.sh slim       upscale-only edition (onnxruntime, no torch)
#   bash packaging/build_linux.sh full       everything, training included (CPU torch)
# Each edition gets its own build venv (build/venv-EDITION), a PyInstaller one-folder bundle laid out as
# an AppDir (dist/EDITION/DIPNet-Studio.AppDir: AppRun, .desktop, icon), then
#   - an AppImage, when `appimagetool` is on PATH (it is not in Debian's archive: see packaging/README.md);
#   - otherwise a tarball dist/DIPNet-Studio-EDITION-linux-x86_64.tar.gz whose AppRun is the launcher.
# Sizes and the build's facts go to dist/EDITION/bundle.json.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
editions=("$@")
[ ${#editions[@]} -gt 0 ] || editions=(slim full)

# What each edition needs at run time (pyproject.toml's lists, minus what the edition leaves out).
common=("numpy>=1.24" "pillow>=10.0" "safetensors>=0.4" "onnxruntime>=1.17" "platformdirs>=4.0"
        "PySide6-Essentials>=6.6,<6.12" "pyqtgraph>=0.13" "tomli-w>=1.0" "pyinstaller>=6.10")

install_torch_cpu() {
  # Same rule as scripts/setup.sh: the local CPU wheel when pip has it, else PyTorch's CPU-only index.
  "$1" -m pip install --quiet torch==2.13.0 ||
    "$1" -m pip install --quiet torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu
}

for ed in "${editions[@]}"; do
  case "$ed" in full|slim) ;; *) echo "unknown edition: $ed (full or slim)" >&2; exit 2 ;; esac
  venv="build/venv-$ed"
  echo "== $ed: build environment $venv"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv"
  py="$venv/bin/python"
  "$py" -m pip install --quiet --upgrade pip
  if [ "$ed" = full ]; then
    install_torch_cpu "$py"
    "$py" -m pip install --quiet "${common[@]}" "onnx>=1.15"
  else
    "$py" -m pip install --quiet "${common[@]}"
    if "$py" -c "import torch" 2>/dev/null; then echo "slim build venv has torch: refusing" >&2; exit 1; fi
  fi

  echo "== $ed: PyInstaller"
  start=$(date +%s)
  DIPNET_EDITION=$ed "$py" -m PyInstaller --noconfirm --log-level WARN \
    --distpath "build/pyi-dist-$ed" --workpath "build/pyi-work-$ed" packaging/dipnet-studio.spec
  out="dist/$ed"
  appdir="$out/DIPNet-Studio.AppDir"
  rm -rf "$out"; mkdir -p "$out"
  mv "build/pyi-dist-$ed/dipnet-studio-$ed" "$appdir"
  cat > "$appdir/AppRun" <<'RUN'
#!/bin/sh
# Launcher: `AppRun` starts the app; `AppRun cli ARGS` runs the dipnet command line.
here=$(dirname "$(readlink -f "$0")")
if [ "${1:-}" = cli ]; then shift; exec "$here/dipnet" "$@"; fi
exec "$here/dipnet-studio" "$@"
RUN
  chmod +x "$appdir/AppRun"
  sed -e 's|^Exec=.*|Exec=AppRun %F|' packaging/dipnet-studio.desktop > "$appdir/dipnet-studio.desktop"
  cp resources/icons/dipnet-studio-256.png "$appdir/dipnet-studio.png"
  took=$(( $(date +%s) - start ))

  if command -v appimagetool >/dev/null 2>&1; then
    artefact="$out/DIPNet-Studio-$ed-x86_64.AppImage"
    ARCH=x86_64 appimagetool --no-appstream "$appdir" "$artefact"
  else
    artefact="dist/DIPNet-Studio-$ed-linux-x86_64.tar.gz"
    tar -C "$out" -czf "$artefact" DIPNet-Studio.AppDir
  fi
  unpacked=$(du -sb "$appdir" | cut -f1)
  packed=$(stat -c %s "$artefact")
  "$py" - "$out/bundle.json" "$ed" "$unpacked" "$packed" "$artefact" "$took" <<'PY'
import json, platform, sys
path, ed, unpacked, packed, artefact, took = sys.argv[1:]
json.dump({"edition": ed, "unpacked_bytes": int(unpacked), "artefact": artefact, "artefact_bytes": int(packed),
           "build_seconds": int(took), "python": platform.python_version(), "machine": platform.machine()},
          open(path, "w"), indent=1)
PY
  printf '== %s: %s unpacked, %s as %s\n' "$ed" "$(numfmt --to=iec "$unpacked")" \
    "$(numfmt --to=iec "$packed")" "$artefact"
done
