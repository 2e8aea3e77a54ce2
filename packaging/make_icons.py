"""Render resources/icons/dipnet-studio.svg to PNGs, and pack them as .ico (Windows) and .icns (macOS).

Run: python packaging/make_icons.py
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ICONS = Path(__file__).resolve().parents[1] / "resources" / "icons"
SIZES = (256, 512)  # Qt scales these down well; add sizes for a distro package


def main() -> int:
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QGuiApplication, QImage, QPainter
    from PySide6.QtSvg import QSvgRenderer

    _app = QGuiApplication(sys.argv[:1])
    renderer = QSvgRenderer(str(ICONS / "dipnet-studio.svg"))
    for size in SIZES:
        img = QImage(size, size, QImage.Format.Format_ARGB32_Premultiplied)
        img.fill(Qt.GlobalColor.transparent)
        p = QPainter(img)
        p.setRenderHint(QPainter.RenderHint.Antialiasing)
        renderer.render(p)
        p.end()
        out = ICONS / f"dipnet-studio-{size}.png"
        img.save(str(out))
        print(out)
    write_platform_icons()
    return 0


def write_platform_icons() -> list[Path]:
    """The Windows and macOS bundle icons, made by Pillow from the 512 px render."""
    from PIL import Image

    src = Image.open(ICONS / "dipnet-studio-512.png").convert("RGBA")
    ico = ICONS / "dipnet-studio.ico"
    src.save(ico, sizes=[(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)])
    icns = ICONS / "dipnet-studio.icns"
    src.save(icns)
    for out in (ico, icns):
        print(out)
    return [ico, icns]


if __name__ == "__main__":
    sys.exit(main())
