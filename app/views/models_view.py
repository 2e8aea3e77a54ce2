"""The Models & Settings tab (a view): the model library table and the app's preferences.

Shows the ModelEntry values the models controller hands it and emits signals; no logic.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import TYPE_CHECKING

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtGui import QFont
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QInputDialog,
    QLabel,
    QMessageBox,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .common import Banner, hint_label, primary_button

if TYPE_CHECKING:
    from ..services.models import ModelEntry

MODEL_FILTER = "Models (*.safetensors *.pth *.pt *.ckpt *.bin *.onnx);;All files (*)"
BACKENDS = (("auto", "Automatic"), ("torch", "PyTorch"), ("onnx", "ONNX Runtime"))
DEVICES = (("auto", "Automatic"), ("cpu", "CPU"), ("cuda", "CUDA GPU"))
THEMES = (("system", "Follow the system"), ("light", "Light"), ("dark", "Dark"))


def _quality_text(q: dict[str, object]) -> str:
    folder = Path(str(q.get("folder", ""))).name or "?"
    bicubic = q.get("bicubic_psnr_y")
    ref = f"; bicubic {bicubic:.2f} dB" if isinstance(bicubic, (int, float)) else ""
    return (f"{q['psnr_y']:.2f} dB PSNR-Y, {q['ssim_y']:.4f} SSIM-Y on {folder} "
            f"({q.get('n_images', '?')} images{ref})")


def _standard_text(e: ModelEntry) -> str:
    """The model card's standard benchmark figures, e.g. "Set5 PSNR-Y 30.94 dB; Set14 …"."""
    return "; ".join(f"{b['set']} PSNR-Y {b['psnr_y']:.2f} dB" for b in e.benchmarks)


def _validation_text(e: ModelEntry) -> str:
    if e.psnr is None:
        return "not recorded"
    return f"{e.psnr:.2f} dB on the {e.validation_set or 'training run’s own validation images'}"


def _psnr_cell(e: ModelEntry) -> str:
    # A measurement the user made here comes first, then the standard benchmark of the model card;
    # the number recorded at training time is on that run's own validation images, so it is labelled
    # as such and never compared with the others.
    if e.quality:
        return f"{e.quality['psnr_y']:.2f} dB ({Path(str(e.quality.get('folder', ''))).name})"
    if e.benchmarks:
        b = e.benchmarks[0]
        return f"{b['set']} PSNR-Y {b['psnr_y']:.2f} dB"
    if e.psnr is not None:
        return f"{e.psnr:.2f} dB (validation: {e.validation_set or 'its training run'})"
    return "–"


class ModelsView(QWidget):
    """The Models & Settings tab: shows the models and settings it is given; emits the user's requests."""

    importRequested = Signal()
    renameRequested = Signal(str)
    deleteRequested = Signal(str)
    defaultRequested = Signal(str)
    benchmarkRequested = Signal(str)
    qualityRequested = Signal(str)
    settingsChanged = Signal()
    themeChanged = Signal(str)

    COLUMNS = ("", "Name", "Scale", "Params", "Widths", "PSNR-Y", "Speed", "Origin", "Use for", "File")
    # Columns dropped first when the table is too narrow (the details card beside it shows them all),
    # so a 1024 px window needs no horizontal scrolling.
    OPTIONAL_COLUMNS = (9, 7, 3, 4, 2)
    USE_FOR_COLUMN = 8
    USE_FOR_MIN_WIDTH = 140

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.table = QTableWidget(0, len(self.COLUMNS))
        self.table.setHorizontalHeaderLabels(self.COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setAlternatingRowColors(True)
        hh = self.table.horizontalHeader()
        for c in range(len(self.COLUMNS)):
            hh.setSectionResizeMode(c, QHeaderView.ResizeMode.ResizeToContents)
        # "Use for" takes the spare width and elides (its tooltip and the card hold the whole text).
        hh.setSectionResizeMode(self.USE_FOR_COLUMN, QHeaderView.ResizeMode.Stretch)
        self.table.viewport().installEventFilter(self)  # the viewport: its width is the one that counts
        self.import_btn = primary_button("Import model…")
        self.default_btn = QPushButton("Use as default")
        self.rename_btn = QPushButton("Rename…")
        self.delete_btn = QPushButton("Delete")
        self.bench_btn = QPushButton("Measure speed")
        self.quality_btn = QPushButton("Measure quality…")
        self.quality_btn.setToolTip(
            "Downscale the high-resolution images of a folder x4 (bicubic), upscale them with this model and "
            "score PSNR/SSIM on Y against the originals, next to plain bicubic upscaling."
        )
        btns = QHBoxLayout()
        btns.addWidget(self.import_btn)
        btns.addSpacing(12)
        for b in (self.default_btn, self.rename_btn, self.delete_btn, self.bench_btn, self.quality_btn):
            btns.addWidget(b)
        btns.addStretch(1)
        self.model_hint = hint_label(
            "Supported: DIPNet .safetensors (trained here), the authors' .pth "
            "weights, .onnx exports, and spandrel-supported architectures."
        )
        self.details = QLabel()
        self.details.setObjectName("card")
        self.details.setWordWrap(True)
        self.details.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.details.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.details.setMargin(12)
        # Scrollable: in a short window (1024x640 with a banner showing) the card is taller than
        # the room beside the table, and its last rows would be cut off with no way to read them.
        self.details_scroll = QScrollArea()
        self.details_scroll.setWidget(self.details)
        self.details_scroll.setWidgetResizable(True)
        self.details_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        self.details_scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.details_scroll.setFixedWidth(330)
        table_row = QHBoxLayout()
        table_row.addWidget(self.table, 1)
        table_row.addWidget(self.details_scroll)
        models_box = QGroupBox("Models")
        ml = QVBoxLayout(models_box)
        ml.addLayout(btns)
        ml.addLayout(table_row, 1)
        ml.addWidget(self.model_hint)

        self.backend_combo = QComboBox()
        for _k, label in BACKENDS:
            self.backend_combo.addItem(label)
        self.device_combo = QComboBox()
        for _k, label in DEVICES:
            self.device_combo.addItem(label)
        self.tile_auto = QCheckBox("Automatic")
        self.tile_spin = QSpinBox()
        self.tile_spin.setRange(32, 4096)
        self.tile_spin.setSingleStep(32)
        self.tile_spin.setSuffix(" px")
        tile_row = QHBoxLayout()
        tile_row.addWidget(self.tile_auto)
        tile_row.addWidget(self.tile_spin)
        tile_row.addStretch(1)
        self.theme_combo = QComboBox()
        for _k, label in THEMES:
            self.theme_combo.addItem(label)
        self.backend_info = hint_label()
        self.backend_info.setMinimumWidth(380)
        self.paths_label = hint_label()
        self.paths_label.setWordWrap(False)
        self.paths_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        settings_box = QGroupBox("Settings")
        # Two columns: inference on the left, appearance and folders on the right.
        sf = QFormLayout()
        sf.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        sf.addRow("Backend", self.backend_combo)
        sf.addRow("Device", self.device_combo)
        sf.addRow("Tile size", tile_row)
        sf.addRow("", self.backend_info)
        af = QFormLayout()
        af.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.FieldsStayAtSizeHint)
        af.addRow("Theme", self.theme_combo)
        af.addRow("Folders", self.paths_label)
        for combo in (self.backend_combo, self.device_combo, self.theme_combo):
            combo.setMinimumWidth(200)
        cols = QHBoxLayout(settings_box)
        cols.addLayout(sf, 1)
        cols.addSpacing(24)
        cols.addLayout(af, 1)

        self.banner = Banner()
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 10, 10, 8)
        lay.addWidget(self.banner)
        lay.addWidget(models_box, 3)
        lay.addWidget(settings_box, 0)

        self.import_btn.clicked.connect(self.importRequested)
        self.default_btn.clicked.connect(lambda: self._emit_selected(self.defaultRequested))
        self.rename_btn.clicked.connect(lambda: self._emit_selected(self.renameRequested))
        self.delete_btn.clicked.connect(lambda: self._emit_selected(self.deleteRequested))
        self.bench_btn.clicked.connect(lambda: self._emit_selected(self.benchmarkRequested))
        self.quality_btn.clicked.connect(lambda: self._emit_selected(self.qualityRequested))
        self.table.itemSelectionChanged.connect(self._update_buttons)
        self.table.itemDoubleClicked.connect(lambda _i: self._emit_selected(self.defaultRequested))
        for sig in (
            self.backend_combo.currentIndexChanged,
            self.device_combo.currentIndexChanged,
            self.tile_spin.valueChanged,
        ):
            sig.connect(self.settingsChanged)
        self.tile_auto.toggled.connect(
            lambda on: (self.tile_spin.setEnabled(not on), self.settingsChanged.emit())
        )
        self.theme_combo.currentIndexChanged.connect(lambda i: self.themeChanged.emit(THEMES[i][0]))
        self._entries: list[ModelEntry] = []
        self._default_id: str | None = None
        self._quality_available = True
        self._update_buttons()

    # ------------------------------------------------------------------ models table
    def set_models(self, entries: list[ModelEntry], default_id: str | None) -> None:
        selected = self.selected_id()
        self._entries = entries
        self._default_id = default_id
        self.table.setRowCount(len(entries))
        bold = QFont()
        bold.setBold(True)
        for r, e in enumerate(entries):
            psnr = _psnr_cell(e)
            speed = f"{e.speed_mps:.2f} out MP/s" if e.speed_mps is not None else "–"
            cells = (
                "★" if e.id == default_id else "",
                e.name,
                f"×{e.scale}" if e.scale else "?",
                f"{e.params:,}" if e.params else "–",
                e.widths or "–",
                psnr,
                speed,
                e.origin,
                e.use_for or "–",
                e.path.name if not e.error else f"{e.path.name} — {e.error}",
            )
            for c, text in enumerate(cells):
                item = QTableWidgetItem(text)
                item.setData(Qt.ItemDataRole.UserRole, e.id)
                tip = str(e.path) + (f"\n{e.error}" if e.error else "")
                item.setToolTip(f"{e.use_for}\n{tip}" if c == self.USE_FOR_COLUMN and e.use_for else tip)
                if e.id == default_id:
                    item.setFont(bold)
                if e.error:
                    item.setForeground(Qt.GlobalColor.red)
                self.table.setItem(r, c, item)
            if e.id == selected:
                self.table.selectRow(r)
        self._update_buttons()
        self.fit_columns()

    def fit_columns(self) -> None:
        """Show as many columns as fit the table's width, hiding the optional ones in order."""
        table, hh = self.table, self.table.horizontalHeader()
        for c in self.OPTIONAL_COLUMNS:
            table.setColumnHidden(c, False)
        available = table.viewport().width()
        if available <= 0:
            return

        want = {
            c: (self.USE_FOR_MIN_WIDTH if c == self.USE_FOR_COLUMN
                else max(hh.sectionSizeHint(c), table.sizeHintForColumn(c)))
            for c in range(table.columnCount())
        }
        shown = set(want)
        for c in self.OPTIONAL_COLUMNS:
            if sum(want[k] for k in shown) <= available:
                break
            shown.discard(c)
            table.setColumnHidden(c, True)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if watched is self.table.viewport() and event.type() == QEvent.Type.Resize:
            self.fit_columns()
        return super().eventFilter(watched, event)

    def selected_id(self) -> str | None:
        rows = self.table.selectionModel().selectedRows()
        if not rows:
            return None
        item = self.table.item(rows[0].row(), 1)
        return item.data(Qt.ItemDataRole.UserRole) if item else None

    def select_id(self, id_: str) -> None:
        for r in range(self.table.rowCount()):
            if self.table.item(r, 1).data(Qt.ItemDataRole.UserRole) == id_:
                self.table.selectRow(r)

    def _selected_entry(self) -> ModelEntry | None:
        sid = self.selected_id()
        return next((e for e in self._entries if e.id == sid), None)

    def _emit_selected(self, signal: Signal) -> None:  # type: ignore[type-arg]
        sid = self.selected_id()
        if sid is not None:
            signal.emit(sid)

    def _update_buttons(self) -> None:
        e = self._selected_entry()
        self.details.setText(self._details_html(e))
        for b in (self.default_btn, self.bench_btn, self.quality_btn):
            b.setEnabled(e is not None and e.usable)
        self.quality_btn.setEnabled(self.quality_btn.isEnabled() and self._quality_available)
        is_default = e is not None and e.id == self._default_id
        self.default_btn.setEnabled(self.default_btn.isEnabled() and not is_default)
        self.default_btn.setText("Default model" if is_default else "Use as default")
        self.rename_btn.setEnabled(e is not None)
        self.delete_btn.setEnabled(e is not None and not e.builtin)

    @staticmethod
    def _details_html(e: ModelEntry | None) -> str:
        if e is None:
            return (
                "<p>Select a model to see its details.</p><p>Double-click a model to make it the default "
                "for the Upscale and Batch tabs.</p>"
            )
        rows = [
            *([("Use for", e.use_for)] if e.use_for else []),
            ("Architecture", e.arch or "?"),
            ("Scale", f"×{e.scale}" if e.scale else "?"),
            ("Parameters", f"{e.params:,}" if e.params else "–"),
            ("Widths", e.widths or "–"),
            ("Standard benchmark", _standard_text(e) or "not on its model card"),
            ("Validation PSNR-Y", _validation_text(e)),
            ("Measured quality", _quality_text(e.quality) if e.quality else "press Measure quality…"),
            ("Speed", f"{e.speed_mps:.2f} output MP/s" if e.speed_mps is not None else "press Measure speed"),
            ("Origin", e.origin),
            ("License", e.license or "–"),
            ("File", str(e.path)),
        ]
        body = "".join(
            f"<tr><td style='color:gray;padding-right:10px'>{k}</td><td>{html.escape(v)}</td></tr>"
            for k, v in rows
        )
        err = f"<p style='color:#d63a3a'>Cannot be used: {html.escape(e.error)}</p>" if e.error else ""
        return f"<p style='font-size:14px'><b>{html.escape(e.name)}</b></p>{err}<table>{body}</table>"

    def set_quality_available(self, available: bool) -> None:
        """The slim edition cannot measure quality (it scores with the training code): say so."""
        self._quality_available = available
        if not available:
            self.quality_btn.setToolTip("Measuring quality is part of the full edition (it needs PyTorch).")
        self._update_buttons()

    # ------------------------------------------------------------------ settings
    def set_settings(self, backend: str, device: str, tile: int, theme: str) -> None:
        blockers = [self.backend_combo, self.device_combo, self.tile_spin, self.tile_auto, self.theme_combo]
        for w in blockers:
            w.blockSignals(True)
        self.backend_combo.setCurrentIndex(next((i for i, (k, _l) in enumerate(BACKENDS) if k == backend), 0))
        self.device_combo.setCurrentIndex(next((i for i, (k, _l) in enumerate(DEVICES) if k == device), 0))
        self.tile_auto.setChecked(tile == 0)
        self.tile_spin.setValue(tile or 512)
        self.tile_spin.setEnabled(tile != 0)
        self.theme_combo.setCurrentIndex(next((i for i, (k, _l) in enumerate(THEMES) if k == theme), 0))
        for w in blockers:
            w.blockSignals(False)

    def backend(self) -> str:
        return BACKENDS[self.backend_combo.currentIndex()][0]

    def device(self) -> str:
        return DEVICES[self.device_combo.currentIndex()][0]

    def tile_size(self) -> int:
        return 0 if self.tile_auto.isChecked() else self.tile_spin.value()

    # ------------------------------------------------------------------ dialogs
    def ask_model_file(self) -> Path | None:
        f, _ = QFileDialog.getOpenFileName(self, "Import model", "", MODEL_FILTER)
        return Path(f) if f else None

    def ask_quality_folder(self) -> Path | None:
        d = QFileDialog.getExistingDirectory(self, "Folder of high-resolution images to score the model on")
        return Path(d) if d else None

    def ask_name(self, current: str) -> str | None:
        text, ok = QInputDialog.getText(self, "Rename model", "Name", text=current)
        return text if ok else None

    def confirm_delete(self, name: str) -> bool:
        return (
            QMessageBox.question(self, "Delete model", f"Delete “{name}” from your models folder?")
            == QMessageBox.StandardButton.Yes
        )
