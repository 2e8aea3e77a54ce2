#!/usr/bin/env bash
# Smoke test of a built bundle, as a new user would meet it:
#   bash packaging/smoke_test.sh dist/slim/DIPNet-Studio.AppDir [OUT_DIR]
# With a clean HOME and a PATH without any venv, under Xvfb:
#   1. the app's window appears (time to window recorded; screenshot kept in OUT_DIR, look at it);
#   2. its CLI upscales an RGBA image: 4x size, alpha kept;
#   3. a bad file gives the normal error naming the file, exit code non-zero, no output file;
#   4. with a Qt system library hidden (a private mount namespace, root only), the app prints the
#      apt-get hint instead of Qt's own message.
# Needs: xvfb, xdotool, imagemagick (`import`), and a Python with Pillow to make and check images
# (SMOKE_PYTHON, default .venv/bin/python; it is a tool of the test, not used by the bundle).
set -uo pipefail
bundle=$(readlink -f "${1:?usage: smoke_test.sh BUNDLE_DIR [OUT_DIR]}")
out=$(readlink -f "${2:-dist/smoke}")
py=${SMOKE_PYTHON:-.venv/bin/python}
py="$(cd "$(dirname "$py")" && pwd)/$(basename "$py")"  # absolute, but not resolved: a venv's python is a link
mkdir -p "$out"
work=$(mktemp -d)
fails=0
ok() { echo "PASS $*"; }
bad() { echo "FAIL $*"; fails=$((fails + 1)); }
cleanup() { [ -n "${app_pid:-}" ] && kill "$app_pid" 2>/dev/null; [ -n "${xvfb_pid:-}" ] && kill "$xvfb_pid" 2>/dev/null; rm -rf "$work"; }
trap cleanup EXIT

# A user's session: fresh HOME, system PATH only.
export HOME="$work/home" PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin
unset VIRTUAL_ENV PYTHONPATH PYTHONHOME QT_QPA_PLATFORM DIPNET_STUDIO_HOME
mkdir -p "$HOME"
display=":$((90 + RANDOM % 9))"
Xvfb "$display" -screen 0 1600x1000x24 -nolisten tcp >/dev/null 2>&1 & xvfb_pid=$!
export DISPLAY=$display
for _ in $(seq 50); do xdpyinfo >/dev/null 2>&1 && break; sleep 0.1; done

# 1. The window appears.
start=$(date +%s.%N)
"$bundle/AppRun" > "$work/app.log" 2>&1 & app_pid=$!
if wid=$(timeout 120 xdotool search --sync --onlyvisible --name "DIPNet Studio" 2>/dev/null | head -n1) && [ -n "$wid" ]; then
  shown=$(date +%s.%N)
  cold=$(echo "$shown - $start" | bc)
  sleep 2  # let the first paint finish before the picture
  import -window root "$out/window.png"
  ok "window appeared after ${cold}s (screenshot: $out/window.png)"
  echo "{\"cold_start_seconds\": $cold}" > "$out/cold_start.json"
else
  bad "no window within 120 s; app log:"; sed 's/^/    /' "$work/app.log"
fi
kill "$app_pid" 2>/dev/null; wait "$app_pid" 2>/dev/null; app_pid=

# 2. CLI upscale keeps size x4 and alpha.
"$py" - "$work/in.png" <<'PY'
import sys
import numpy as np
from PIL import Image
rng = np.random.default_rng(0)
rgba = rng.integers(0, 256, (24, 32, 4), dtype=np.uint8)
rgba[..., 3] = np.linspace(0, 255, 32, dtype=np.uint8)[None, :]  # a horizontal alpha ramp
Image.fromarray(rgba, "RGBA").save(sys.argv[1])
PY
if "$bundle/AppRun" cli upscale "$work/in.png" -o "$work/out.png" > "$work/cli.log" 2>&1 &&
   "$py" - "$work/in.png" "$work/out.png" <<'PY'
import sys
import numpy as np
from PIL import Image
src, dst = Image.open(sys.argv[1]), Image.open(sys.argv[2])
assert dst.size == (src.width * 4, src.height * 4), dst.size
assert dst.mode == "RGBA", dst.mode
a = np.asarray(dst)[..., 3].astype(float)
assert a[:, :8].mean() < 40 and a[:, -8:].mean() > 215, "alpha ramp lost"
PY
then ok "CLI upscale: 4x size, alpha kept"
else bad "CLI upscale"; sed 's/^/    /' "$work/cli.log"
fi

# 3. A bad file: the normal error, naming the file.
echo "this is not an image" > "$work/bad.png"
if "$bundle/AppRun" cli upscale "$work/bad.png" -o "$work/bad_x4.png" > "$work/bad.log" 2>&1; then
  bad "bad file was accepted"
elif grep -q "bad.png" "$work/bad.log" && ! grep -q "Traceback" "$work/bad.log" && [ ! -e "$work/bad_x4.png" ]; then
  ok "bad file: $(head -n1 "$work/bad.log")"
else bad "bad file error"; sed 's/^/    /' "$work/bad.log"
fi

# 4. A missing Qt system library gives the install hint.
lib=$(ldconfig -p | awk '/libGL.so.1 /{print $NF; exit}')  # bundles carry the xcb libraries, not libGL
if [ "$(id -u)" != 0 ] || [ -z "$lib" ] || ! command -v unshare >/dev/null; then
  echo "SKIP missing-library hint (needs root, unshare and libgl1 installed)"
elif unshare -m sh -c "mount --bind /dev/null '$lib' && timeout 60 '$bundle/AppRun'" > "$work/nolib.log" 2>&1; then
  bad "app started although $lib was hidden"
elif grep -q "apt-get install" "$work/nolib.log" && grep -q "libgl1" "$work/nolib.log"; then
  ok "missing library hint: $(grep -m1 'apt-get install' "$work/nolib.log")"
else bad "no install hint with $lib hidden"; sed 's/^/    /' "$work/nolib.log"
fi

echo "$fails failure(s)"
[ "$fails" = 0 ]
