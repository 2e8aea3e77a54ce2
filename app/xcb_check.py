"""Does Qt's xcb platform plugin find its system libraries? If not, which Debian packages to install.

A bare Debian/Ubuntu lacks some X11 libraries that the PySide6 wheel's ``libqxcb.so``
links against (``libxcb-cursor0``, ``libxcb-icccm4``, ``libxcb-keysyms1``, ...). Qt then
aborts at start with a message that can name the wrong library, and the abort cannot
be caught from Python; so ``dipnet-studio`` runs this check before it creates the
QApplication, and ``scripts/setup.sh`` runs it (``python -m app.xcb_check``) after
installing. ``ldd`` lists every library the plugin needs, transitively, with
"not found" for each missing one.

No Qt import here: locating the plugin must work even when Qt cannot start.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

#: Shared object name -> Debian/Ubuntu package providing it (what the PySide6 6.x xcb plugin needs).
DEBIAN_PACKAGES = {
    "libxcb-cursor.so.0": "libxcb-cursor0",
    "libxcb-icccm.so.4": "libxcb-icccm4",
    "libxcb-keysyms.so.1": "libxcb-keysyms1",
    "libxcb-image.so.0": "libxcb-image0",
    "libxcb-render-util.so.0": "libxcb-render-util0",
    "libxcb-util.so.1": "libxcb-util1",
    "libxcb-randr.so.0": "libxcb-randr0",
    "libxcb-render.so.0": "libxcb-render0",
    "libxcb-shape.so.0": "libxcb-shape0",
    "libxcb-shm.so.0": "libxcb-shm0",
    "libxcb-sync.so.1": "libxcb-sync1",
    "libxcb-xfixes.so.0": "libxcb-xfixes0",
    "libxcb-xinerama.so.0": "libxcb-xinerama0",
    "libxcb-xinput.so.0": "libxcb-xinput0",
    "libxcb-xkb.so.1": "libxcb-xkb1",
    "libxcb.so.1": "libxcb1",
    "libxkbcommon-x11.so.0": "libxkbcommon-x11-0",
    "libxkbcommon.so.0": "libxkbcommon0",
    "libX11-xcb.so.1": "libx11-xcb1",
    "libX11.so.6": "libx11-6",
    "libXau.so.6": "libxau6",
    "libXdmcp.so.6": "libxdmcp6",
    "libSM.so.6": "libsm6",
    "libICE.so.6": "libice6",
    "libEGL.so.1": "libegl1",
    "libGL.so.1": "libgl1",
    "libGLX.so.0": "libglx0",
    "libGLdispatch.so.0": "libglvnd0",
    "libOpenGL.so.0": "libopengl0",
    "libfontconfig.so.1": "libfontconfig1",
    "libfreetype.so.6": "libfreetype6",
    "libpng16.so.16": "libpng16-16",
    "libdbus-1.so.3": "libdbus-1-3",
    "libglib-2.0.so.0": "libglib2.0-0",
    "libgthread-2.0.so.0": "libglib2.0-0",
}

#: Every package the xcb plugin needs on a bare Debian 12 / Ubuntu 22.04+ (the README lists the same).
XCB_PACKAGES = (
    "libxcb-cursor0", "libxcb-icccm4", "libxcb-keysyms1", "libxcb-image0", "libxcb-render-util0",
    "libxcb-randr0", "libxcb-shape0", "libxcb-sync1", "libxcb-xfixes0", "libxcb-xkb1",
    "libxkbcommon-x11-0", "libx11-xcb1", "libegl1", "libgl1", "libfontconfig1", "libdbus-1-3",
)

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found\s*$", re.M)


def xcb_plugin_path() -> Path | None:
    """``libqxcb.so`` inside the installed PySide6 (found without importing Qt), or None."""
    spec = importlib.util.find_spec("PySide6")
    if spec is None or not spec.submodule_search_locations:
        return None
    for root in spec.submodule_search_locations:
        plugin = Path(root) / "Qt" / "plugins" / "platforms" / "libqxcb.so"
        if plugin.is_file():
            return plugin
    return None


def missing_libraries(ldd_output: str) -> list[str]:
    """The shared objects ``ldd`` reported as "not found", in its order, without repeats."""
    return list(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def package_for(soname: str) -> str:
    """The Debian package for a shared object; unknown names follow Debian's naming rule."""
    if soname in DEBIAN_PACKAGES:
        return DEBIAN_PACKAGES[soname]
    match = re.match(r"^(lib[\w+.-]+?)\.so\.(\d+)", soname)
    if not match:
        return soname
    stem, major = match.group(1).lower(), match.group(2)
    return f"{stem}-{major}" if stem[-1].isdigit() else f"{stem}{major}"


def install_hint(missing: list[str]) -> str:
    """The message for missing libraries: which ones, and the exact apt-get line."""
    packages = sorted(dict.fromkeys(package_for(m) for m in missing))
    return (
        "Qt's X11 (xcb) platform plugin cannot start: missing system libraries "
        + ", ".join(missing)
        + ".\nInstall them with:\n    sudo apt-get install " + " ".join(packages)
        + "\n(Debian/Ubuntu package names; the README lists every package the desktop app needs.)"
    )


_MISSING_SONAME = re.compile(r"(lib[\w.+-]+?\.so(?:\.\d+)*)")


def hint_for_import_error(exc: ImportError) -> str | None:
    """The install hint when importing Qt failed on a system library (e.g. ``libGL.so.1: cannot open
    shared object file``, or a file that is there but broken); None for any other import error."""
    match = _MISSING_SONAME.search(str(exc))
    return install_hint([match.group(1)]) if match else None


def _run_ldd(plugin: Path) -> str:
    ldd = shutil.which("ldd")
    if ldd is None:
        return ""
    done = subprocess.run([ldd, str(plugin)], capture_output=True, text=True, timeout=60, check=False)
    return done.stdout + done.stderr


def check_xcb(run_ldd: Callable[[Path], str] | None = None, plugin: Path | None = None) -> str | None:
    """The install hint when the xcb plugin lacks libraries, else None (also off Linux or without PySide6)."""
    if not sys.platform.startswith("linux"):
        return None
    plugin = plugin or xcb_plugin_path()
    if plugin is None:
        return None
    missing = missing_libraries((run_ldd or _run_ldd)(plugin))
    return install_hint(missing) if missing else None


def xcb_will_be_used(environ: dict[str, str] | os._Environ[str] = os.environ) -> bool:
    """Whether Qt will load the xcb plugin: on Linux, unless another platform is chosen or Wayland runs."""
    if not sys.platform.startswith("linux"):
        return False
    chosen = environ.get("QT_QPA_PLATFORM", "")
    if chosen:
        return chosen.split(":", 1)[0].split(";", 1)[0] == "xcb"
    return not environ.get("WAYLAND_DISPLAY")


def main() -> int:
    hint = check_xcb()
    if hint:
        print(hint, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
