"""Desktop integration on Linux: a freedesktop launcher, the icons and the image MIME types.

``dipnet-studio --install-desktop`` writes them into the user's XDG data folder (no root needed), so
file managers offer "Open with DIPNet Studio" for images; ``--uninstall-desktop`` removes exactly the
files it wrote. No Qt here: it runs before any window exists, also from a frozen bundle.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from dipnet_core.resources import resource_path

__all__ = ["APP_ID", "MIME_TYPES", "DesktopFiles", "desktop_entry", "install_desktop", "uninstall_desktop"]

APP_ID = "dipnet-studio"
# What the reader decodes (dipnet_core.io.formats); image/gif is offered because the app reads its frames.
MIME_TYPES = ("image/png", "image/jpeg", "image/webp", "image/tiff", "image/bmp", "image/gif")
_ICON_SIZES = (256, 512)


@dataclass(frozen=True)
class DesktopFiles:
    """Where the launcher and icons go under one XDG data folder."""

    data_home: Path

    @classmethod
    def for_user(cls) -> DesktopFiles:
        xdg = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        return cls(Path(xdg))

    @property
    def desktop_file(self) -> Path:
        return self.data_home / "applications" / f"{APP_ID}.desktop"

    def icon_file(self, size: int | None) -> Path:
        if size is None:
            return self.data_home / "icons" / "hicolor" / "scalable" / "apps" / f"{APP_ID}.svg"
        return self.data_home / "icons" / "hicolor" / f"{size}x{size}" / "apps" / f"{APP_ID}.png"

    def all_files(self) -> list[Path]:
        return [self.desktop_file, self.icon_file(None), *(self.icon_file(s) for s in _ICON_SIZES)]


def _icons_dir() -> Path:
    # Same place the main window takes its icon from (source tree, wheel or bundle).
    return resource_path("icons") or Path(__file__).resolve().parents[1] / "resources" / "icons"


def launch_command() -> list[str]:
    """The command that starts this installation of the app, frozen bundle or Python install."""
    if getattr(sys, "frozen", False):
        # An AppImage sets APPIMAGE to its own path; the mounted executable moves on each start.
        return [os.environ.get("APPIMAGE") or sys.executable]
    script = shutil.which("dipnet-studio")
    if script:
        return [str(Path(script).resolve())]
    return [sys.executable, "-m", "app"]


def desktop_entry(command: list[str]) -> str:
    exec_line = " ".join(shlex.quote(part) for part in command)
    return "\n".join([
        "[Desktop Entry]",
        "Type=Application",
        "Version=1.5",
        "Name=DIPNet Studio",
        "GenericName=Image Upscaler",
        "Comment=Make small images 4x bigger and sharp, and train your own tiny upscaling models",
        f"Exec={exec_line} %F",
        f"Icon={APP_ID}",
        "Terminal=false",
        "Categories=Graphics;RasterGraphics;Photography;Qt;",
        "MimeType=" + ";".join(MIME_TYPES) + ";",
        "Keywords=upscale;super-resolution;enlarge;image;",
        f"StartupWMClass={APP_ID}",
        "",
    ])


def _write(path: Path, data: bytes) -> None:
    from dipnet_core.io.atomic import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)


def _refresh_caches(files: DesktopFiles) -> None:
    # Optional helpers of desktop environments; missing ones only delay the menu refresh.
    for cmd in (["update-desktop-database", str(files.desktop_file.parent)],
                ["gtk-update-icon-cache", "-q", "-t", str(files.data_home / "icons" / "hicolor")]):
        if shutil.which(cmd[0]):
            subprocess.run(cmd, check=False, capture_output=True)


def install_desktop(files: DesktopFiles | None = None, command: list[str] | None = None) -> list[Path]:
    """Write the launcher and icons; returns the files written."""
    files = files or DesktopFiles.for_user()
    icons = _icons_dir()
    _write(files.desktop_file, desktop_entry(command or launch_command()).encode())
    _write(files.icon_file(None), (icons / f"{APP_ID}.svg").read_bytes())
    for size in _ICON_SIZES:
        _write(files.icon_file(size), (icons / f"{APP_ID}-{size}.png").read_bytes())
    _refresh_caches(files)
    return files.all_files()


def uninstall_desktop(files: DesktopFiles | None = None) -> list[Path]:
    """Remove what install_desktop wrote; returns the files that were there."""
    files = files or DesktopFiles.for_user()
    removed = []
    for path in files.all_files():
        if path.is_file():
            path.unlink()
            removed.append(path)
    _refresh_caches(files)
    return removed
