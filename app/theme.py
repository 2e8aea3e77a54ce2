"""Fusion style with a light or dark palette that follows the system setting.

Fusion renders the same on every platform, so the palette alone decides the
look; Qt 6.5+ reports the system colour scheme and signals when it changes, so
"system" mode re-themes a running app when the user flips their desktop theme.
"""

from __future__ import annotations

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QGuiApplication, QPalette
from PySide6.QtWidgets import QApplication

from dipnet_core.resources import resource_path

ACCENT = QColor(0x3D, 0x8B, 0xFD)


def system_is_dark() -> bool:
    hints = QGuiApplication.styleHints()
    return hints.colorScheme() == Qt.ColorScheme.Dark


def make_palette(dark: bool) -> QPalette:
    p = QPalette()
    if dark:
        window, base, alt, text = (
            QColor(0x24, 0x26, 0x2B),
            QColor(0x1B, 0x1D, 0x21),
            QColor(0x2A, 0x2D, 0x33),
            QColor(0xE6, 0xE8, 0xEB),
        )
        button, mid, disabled = QColor(0x30, 0x33, 0x3A), QColor(0x44, 0x48, 0x50), QColor(0x80, 0x84, 0x8C)
    else:
        window, base, alt, text = (
            QColor(0xF3, 0xF4, 0xF6),
            QColor(0xFF, 0xFF, 0xFF),
            QColor(0xF0, 0xF2, 0xF5),
            QColor(0x1D, 0x1F, 0x23),
        )
        button, mid, disabled = QColor(0xFA, 0xFA, 0xFB), QColor(0xC8, 0xCC, 0xD2), QColor(0x9A, 0x9E, 0xA6)
    roles = {
        QPalette.ColorRole.Window: window,
        QPalette.ColorRole.WindowText: text,
        QPalette.ColorRole.Base: base,
        QPalette.ColorRole.AlternateBase: alt,
        QPalette.ColorRole.Text: text,
        QPalette.ColorRole.Button: button,
        QPalette.ColorRole.ButtonText: text,
        QPalette.ColorRole.ToolTipBase: base,
        QPalette.ColorRole.ToolTipText: text,
        QPalette.ColorRole.Highlight: ACCENT,
        QPalette.ColorRole.HighlightedText: QColor(Qt.GlobalColor.white),
        QPalette.ColorRole.Link: ACCENT,
        QPalette.ColorRole.Mid: mid,
        QPalette.ColorRole.PlaceholderText: disabled,
        QPalette.ColorRole.Light: button.lighter(130),
        QPalette.ColorRole.Dark: mid.darker(130),
    }
    for role, color in roles.items():
        p.setColor(role, color)
    for role in (QPalette.ColorRole.Text, QPalette.ColorRole.WindowText, QPalette.ColorRole.ButtonText):
        p.setColor(QPalette.ColorGroup.Disabled, role, disabled)
    return p


class ThemeManager(QObject):
    """Applies the palette for a mode ("system", "light", "dark") and tracks system changes."""

    def __init__(self, app: QApplication, mode: str = "system") -> None:
        super().__init__(app)
        self._app = app
        self.mode = mode
        app.setStyle("Fusion")
        QGuiApplication.styleHints().colorSchemeChanged.connect(self._on_system_changed)
        self.apply(mode)

    @property
    def dark(self) -> bool:
        return self.mode == "dark" or (self.mode == "system" and system_is_dark())

    def apply(self, mode: str) -> None:
        self.mode = mode if mode in ("system", "light", "dark") else "system"
        self._app.setPalette(make_palette(self.dark))
        qss_file = resource_path("theme", "studio.qss")  # the checkout's resources/ or the wheel's copy
        qss = qss_file.read_text(encoding="utf-8") if qss_file is not None else ""
        if qss_file is not None:
            qss = qss.replace("@theme_dir", qss_file.parent.as_posix())  # images beside the style sheet
        self._app.setStyleSheet(qss.replace("@accent", ACCENT.name()))

    def _on_system_changed(self, _scheme: Qt.ColorScheme) -> None:
        if self.mode == "system":
            self.apply("system")
