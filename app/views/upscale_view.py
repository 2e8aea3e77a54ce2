"""The Upscale tab (a view): open/drop/paste an image, compare before/after, upscale, save.

Layout and painting only; it emits signals and its setters are called by the upscale controller.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import QRect, QSize, Qt, Signal
from PySide6.QtGui import QDragEnterEvent, QDropEvent, QImage, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QComboBox,
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMenu,
    QProgressBar,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QStackedWidget,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from .common import Banner, best_quality_checkbox, format_duration, hint_label, local_paths, primary_button

PHOTO_HINT_ACTION = "Use photo model"
from .viewer import CompareCanvas, SideBySide, ViewState

SAVE_FORMATS = ("png", "jpg", "webp", "tiff")
BATCH_ACTION = "Add to Batch"
OPEN_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff *.gif *.tga);;All files (*)"


class DropZone(QFrame):
    """The empty state: a big friendly target with the three ways to open an image."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("card")
        lay = QVBoxLayout(self)
        lay.addStretch(2)
        title = QLabel("Drop an image here")
        title.setObjectName("title")
        title.setAlignment(Qt.AlignmentFlag.AlignCenter)
        sub = hint_label(
            "PNG, JPEG, WebP, TIFF, BMP … 8 or 16 bit, with or without alpha.\n"
            "Drop several images or a folder to upscale them all in the Batch tab."
        )
        sub.setAlignment(Qt.AlignmentFlag.AlignCenter)
        row = QHBoxLayout()
        row.addStretch(1)
        self.open_btn = primary_button("Open image…")
        self.paste_btn = QPushButton("Paste from clipboard")
        row.addWidget(self.open_btn)
        row.addWidget(self.paste_btn)
        row.addStretch(1)
        lay.addWidget(title)
        lay.addWidget(sub)
        lay.addSpacing(12)
        lay.addLayout(row)
        lay.addStretch(3)


class UpscaleView(QWidget):
    """The Upscale tab: toolbar, before/after canvases, status and save rows; emits the user's requests."""

    openRequested = Signal()
    pasteRequested = Signal()
    pathsDropped = Signal(list)  # list[Path]
    recentChosen = Signal(str)
    upscaleRequested = Signal()
    cancelRequested = Signal()
    saveRequested = Signal()
    saveAsRequested = Signal()
    copyRequested = Signal()
    importModelRequested = Signal()
    batchAccepted = Signal()  # the user took the offer to upscale dropped files in the Batch tab
    viewChanged = Signal()  # zoom, pan, mode or resize changed what is visible
    modeChanged = Signal(str)
    saveOptionsChanged = Signal()
    photoModelRequested = Signal()  # the user took the hint to switch to the photo model
    bestQualityToggled = Signal(bool)  # the x8 self-ensemble option for the next full upscale

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.state = ViewState(self)
        self.compare = CompareCanvas(self.state, "compare")
        self.side = SideBySide(self.state)

        # --- toolbar
        self.open_btn = QToolButton()
        self.open_btn.setText("Open…")
        self.open_btn.setPopupMode(QToolButton.ToolButtonPopupMode.MenuButtonPopup)
        self.recent_menu = QMenu(self)
        self.open_btn.setMenu(self.recent_menu)
        self.paste_btn = QToolButton()
        self.paste_btn.setText("Paste")
        self.split_btn = QToolButton()
        self.split_btn.setText("Split")
        self.side_btn = QToolButton()
        self.side_btn.setText("Side by side")
        self.mode_group = QButtonGroup(self)
        for b in (self.split_btn, self.side_btn):
            b.setCheckable(True)
            self.mode_group.addButton(b)
        self.split_btn.setChecked(True)
        self.lens_btn = QToolButton()
        self.lens_btn.setText("Lens")
        self.lens_btn.setCheckable(True)
        self.lens_btn.setToolTip("Magnifier: shows the pixels under the cursor at 4× the view zoom")
        self.fit_btn = QToolButton()
        self.fit_btn.setText("Fit")
        self.actual_btn = QToolButton()
        self.actual_btn.setText("100%")
        self.zoom_label = QLabel("–")
        self.zoom_label.setMinimumWidth(48)
        # Beside Upscale, the action whose result (and time: 8x) it changes.
        self.best_quality = best_quality_checkbox(
            "Applies to Upscale (and so to Save and Copy); the live preview always shows the normal quality."
        )
        self.upscale_btn = primary_button("Upscale ×4")
        self.cancel_btn = QPushButton("Cancel")
        # Upscale and Cancel share one slot of a fixed size, so swapping them never moves the view.
        self.action_stack = QStackedWidget()
        self.action_stack.addWidget(self.upscale_btn)
        self.action_stack.addWidget(self.cancel_btn)
        self.action_stack.setSizePolicy(QSizePolicy.Policy.Fixed, QSizePolicy.Policy.Fixed)

        bar = QHBoxLayout()
        bar.setSpacing(6)
        for w in (self.open_btn, self.paste_btn):
            bar.addWidget(w)
        bar.addSpacing(14)
        for w in (self.split_btn, self.side_btn, self.lens_btn):
            bar.addWidget(w)
        bar.addSpacing(14)
        for w in (self.fit_btn, self.actual_btn, self.zoom_label):
            bar.addWidget(w)
        bar.addStretch(1)
        bar.addWidget(self.best_quality)
        bar.addWidget(self.action_stack)

        # --- centre
        self.banner = Banner()
        # The photo-model hint has its own banner: an error or a batch offer must not replace it.
        self.photo_hint = Banner()
        self.photo_hint_dismiss = QPushButton("Dismiss")
        self.photo_hint.layout().addWidget(self.photo_hint_dismiss)
        self.drop_zone = DropZone()
        self.canvas_stack = QStackedWidget()
        self.canvas_stack.addWidget(self.compare)
        self.canvas_stack.addWidget(self.side)
        self.pages = QStackedWidget()
        self.pages.addWidget(self.drop_zone)
        self.pages.addWidget(self.canvas_stack)

        # --- status + save row
        self.progress = QProgressBar()
        self.progress.setMaximumWidth(260)
        self.progress.setTextVisible(True)
        self.progress.hide()
        self.status_label = QLabel("Open an image to start.")
        self.info_label = hint_label()
        self.info_label.setWordWrap(False)
        self.format_combo = QComboBox()
        self.format_combo.addItems([f.upper() for f in SAVE_FORMATS])
        self.quality_spin = QSpinBox()
        self.quality_spin.setRange(1, 100)
        self.quality_spin.setValue(95)
        self.quality_spin.setPrefix("Quality ")
        self.template_edit = QLineEdit("{stem}_x{scale}")
        self.template_edit.setToolTip("Output name: {stem}, {scale}, {model}, {ext}")
        self.template_edit.setMinimumWidth(150)
        self.save_btn = QPushButton("Save…")
        self.copy_btn = QPushButton("Copy")
        self.copy_btn.setToolTip("Copy the upscaled image to the clipboard")

        # The row is always as tall as with the progress bar shown: showing it must not shift the view.
        self.status_label.setMinimumHeight(max(self.progress.sizeHint().height(), self.status_label.sizeHint().height()))
        status = QHBoxLayout()
        status.addWidget(self.progress)
        status.addWidget(self.status_label, 1)
        status.addWidget(self.info_label)
        save = QHBoxLayout()
        save.addWidget(QLabel("Save as"))
        save.addWidget(self.format_combo)
        save.addWidget(self.quality_spin)
        save.addWidget(QLabel("Name"))
        save.addWidget(self.template_edit, 1)
        save.addWidget(self.save_btn)
        save.addWidget(self.copy_btn)

        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 10, 10, 8)
        lay.addLayout(bar)
        lay.addWidget(self.banner)
        lay.addWidget(self.photo_hint)
        lay.addWidget(self.pages, 1)
        lay.addLayout(status)
        lay.addLayout(save)

        # --- wiring (view-internal only)
        self.open_btn.clicked.connect(self.openRequested)
        self.drop_zone.open_btn.clicked.connect(self.openRequested)
        self.paste_btn.clicked.connect(self.pasteRequested)
        self.drop_zone.paste_btn.clicked.connect(self.pasteRequested)
        self.upscale_btn.clicked.connect(self.upscaleRequested)
        self.cancel_btn.clicked.connect(self.cancelRequested)
        self.save_btn.clicked.connect(self.saveAsRequested)
        self.copy_btn.clicked.connect(self.copyRequested)
        self.best_quality.toggled.connect(self.bestQualityToggled)
        self.banner.actionClicked.connect(self._on_banner_action)
        self.photo_hint.actionClicked.connect(self.photoModelRequested)
        self.photo_hint_dismiss.clicked.connect(self.hide_photo_hint)
        self.split_btn.toggled.connect(lambda on: on and self.set_mode("split"))
        self.side_btn.toggled.connect(lambda on: on and self.set_mode("side"))
        self.lens_btn.toggled.connect(self._set_lens)
        self.fit_btn.clicked.connect(lambda: self.state.fit(self.active_canvas().size()))
        self.actual_btn.clicked.connect(self.state.actual_size)
        self.state.changed.connect(self._on_state_changed)
        self.format_combo.currentIndexChanged.connect(self._on_format)
        self.quality_spin.valueChanged.connect(self.saveOptionsChanged)
        self.template_edit.editingFinished.connect(self.saveOptionsChanged)
        # Open, Save, Fit and 100 % are the main window's menu shortcuts (two owners would make them
        # ambiguous); these two only make sense while this tab has the focus.
        QShortcut(QKeySequence.StandardKey.Paste, self, self.pasteRequested.emit)
        for key in (Qt.Key.Key_Space, Qt.Key.Key_Backslash):
            QShortcut(QKeySequence(key), self, self.toggle_before,
                      context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        for c in self.canvases():
            c.setFocusPolicy(Qt.FocusPolicy.ClickFocus)  # a click on the image gives the shortcuts focus
        self.set_has_result(False)
        self.set_has_image(False)

    # ------------------------------------------------------------------ drag and drop
    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event)
        if paths:
            event.acceptProposedAction()
            self.pathsDropped.emit(paths)

    # ------------------------------------------------------------------ viewer
    def canvases(self) -> list[CompareCanvas]:
        return [self.compare, self.side.left, self.side.right]

    def active_canvas(self) -> CompareCanvas:
        """The canvas whose visible area drives the live preview (the one showing the result)."""
        return self.compare if self.canvas_stack.currentIndex() == 0 else self.side.right

    def mode(self) -> str:
        return "split" if self.canvas_stack.currentIndex() == 0 else "side"

    def set_mode(self, mode: str) -> None:
        idx = 0 if mode == "split" else 1
        (self.split_btn if idx == 0 else self.side_btn).setChecked(True)
        if self.canvas_stack.currentIndex() == idx:
            return
        self.canvas_stack.setCurrentIndex(idx)
        if self.state.fit_mode:
            self.state.fit(self.active_canvas().size())
        self.modeChanged.emit(mode)
        self.viewChanged.emit()

    def _set_lens(self, on: bool) -> None:
        for c in self.canvases():
            c.lens = on
            c.update()

    def _on_state_changed(self) -> None:
        self.zoom_label.setText(f"{self.state.zoom * 100:.0f}%")
        self.viewChanged.emit()

    def resizeEvent(self, event: object) -> None:
        super().resizeEvent(event)  # type: ignore[arg-type]
        self.viewChanged.emit()

    def show_image(self, before: QImage, scale: int, title: str) -> None:
        """A new input: ``before`` is the low-resolution original, drawn ``scale``× larger."""
        self.state.image_size = QSize(before.width() * scale, before.height() * scale).toSizeF()
        for c in self.canvases():
            c.label_after = f"DIPNet ×{scale}"
            c.set_before(before)
        self.pages.setCurrentIndex(1)
        self.set_showing_before(False)
        if self.state.fit_mode:
            self.state.fit(self.active_canvas().size() if self.active_canvas().width() > 1 else QSize(800, 600))
        else:
            # The user chose a zoom: the next image opens at the same zoom (centred); the split stays too.
            self.state.set_view(self.state.zoom, self.state.image_size_center())
            self.viewChanged.emit()
        self.set_has_image(True)
        self.set_has_result(False)
        self.status_label.setText(title)
        self.upscale_btn.setText(f"Upscale ×{scale}")

    def _after_canvases(self) -> tuple[CompareCanvas, CompareCanvas]:
        """The canvases that show the upscaled side: the compare view and the side-by-side right pane."""
        return self.compare, self.side.right

    def toggle_before(self) -> None:
        """Flip the upscaled side to the original and back, at the current zoom and position."""
        if self.pages.currentIndex() == 1:
            self.set_showing_before(not self.compare.showing_before)

    def set_showing_before(self, on: bool) -> None:
        for c in self._after_canvases():
            c.set_showing_before(on)

    def show_preview_patch(self, box: QRect, image: QImage) -> None:
        for c in self._after_canvases():
            c.add_patch(box, image)

    def drop_oldest_preview_patches(self, count: int) -> None:
        for c in self._after_canvases():
            c.drop_oldest_patches(count)

    def show_tile(self, box: QRect, image: QImage) -> None:
        """A finished tile of the running full upscale (``box`` in output pixels)."""
        for c in self._after_canvases():
            c.add_tile(box, image)

    def clear_tiles(self) -> None:
        for c in self._after_canvases():
            c.clear_tiles()

    def show_result(self, image: QImage) -> None:
        for c in self._after_canvases():
            c.set_after(image)
        self.set_has_result(True)

    # ------------------------------------------------------------------ state setters
    def set_has_image(self, has: bool) -> None:
        for w in (self.upscale_btn, self.fit_btn, self.actual_btn, self.lens_btn):
            w.setEnabled(has)

    def set_has_result(self, has: bool) -> None:
        for w in (self.save_btn, self.copy_btn):
            w.setEnabled(has)

    def set_busy(self, busy: bool) -> None:
        self.action_stack.setCurrentWidget(self.cancel_btn if busy else self.upscale_btn)
        self.progress.setVisible(busy)
        if busy:
            self.progress.setRange(0, 0)

    def set_progress(self, done: int, total: int, eta_s: float | None, mps: float | None,
                     passes: int = 1) -> None:
        """``mps``: output megapixels per second; ``passes``: 8 for the best-quality self-ensemble."""
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(done)
        speed = f" · {mps:.2f} output MP/s" if mps else ""
        what = "Upscaling…"
        if passes > 1 and total:
            what = f"Upscaling (best quality, pass {min(passes, done * passes // total + 1)}/{passes})…"
        self.status_label.setText(f"{what} tile {done}/{total} · {format_duration(eta_s)} left{speed}")

    def set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def set_info(self, text: str) -> None:
        self.info_label.setText(text)

    def show_error(self, text: str) -> None:
        self.banner.show_message(text, "error")

    def _on_banner_action(self) -> None:
        if self.banner.action.text() == BATCH_ACTION:
            self.banner.hide()
            self.batchAccepted.emit()
        else:
            self.importModelRequested.emit()

    def offer_batch(self, n_files: int, n_folders: int) -> None:
        """Dropped several files or a folder: offer to upscale them all in the Batch tab."""
        what = ", ".join(
            t for t in (f"{n_files} image{'s' * (n_files != 1)}" if n_files else "",
                        f"{n_folders} folder{'s' * (n_folders != 1)}" if n_folders else "") if t
        )
        self.banner.show_message(f"You dropped {what}. Upscale all of them in the Batch tab?", "info", BATCH_ACTION)
        self.banner.close_btn.show()  # the offer can be declined

    def show_photo_hint(self, reason: str) -> None:
        """Non-modal: the image looks damaged (``reason``, e.g. "JPEG quality about 30")."""
        self.photo_hint.show_message(
            f"Looks like {reason}: the photo model may give a cleaner result", "info", PHOTO_HINT_ACTION
        )

    def hide_photo_hint(self) -> None:
        self.photo_hint.hide()

    def set_model_missing(self, missing: bool) -> None:
        if missing:
            self.banner.show_message(
                "No model installed — import a model file to start upscaling.", "info", "Import model…"
            )
        elif self.banner.action.text() == "Import model…":
            self.banner.hide()
        self.upscale_btn.setEnabled(not missing and self.pages.currentIndex() == 1)

    def set_recent(self, paths: list[str]) -> None:
        self.recent_menu.clear()
        if not paths:
            a = self.recent_menu.addAction("No recent files")
            a.setEnabled(False)
        for p in paths:
            action = self.recent_menu.addAction(Path(p).name)
            action.setToolTip(p)
            action.triggered.connect(lambda _=False, p=p: self.recentChosen.emit(p))

    # ------------------------------------------------------------------ save options
    def _on_format(self) -> None:
        self.quality_spin.setEnabled(self.save_format() in ("jpg", "webp"))
        self.saveOptionsChanged.emit()

    def save_format(self) -> str:
        return SAVE_FORMATS[self.format_combo.currentIndex()]

    def set_save_options(self, fmt: str, quality: int, template: str) -> None:
        if fmt in SAVE_FORMATS:
            self.format_combo.setCurrentIndex(SAVE_FORMATS.index(fmt))
        self.quality_spin.setValue(quality)
        self.template_edit.setText(template)
        self.quality_spin.setEnabled(self.save_format() in ("jpg", "webp"))

    # ------------------------------------------------------------------ dialogs
    def ask_open_path(self, start_dir: str) -> Path | None:
        path, _ = QFileDialog.getOpenFileName(self, "Open image", start_dir, OPEN_FILTER)
        return Path(path) if path else None

    def ask_save_path(self, suggested: Path) -> Path | None:
        path, _ = QFileDialog.getSaveFileName(self, "Save upscaled image", str(suggested))
        return Path(path) if path else None
