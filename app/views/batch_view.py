"""The Batch tab (a view): inputs, options, the queue table and overall progress; no logic."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QBrush, QDragEnterEvent, QDropEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from .common import (
    Banner,
    best_quality_checkbox,
    format_duration,
    hint_label,
    local_paths,
    primary_button,
    status_color,
)

BATCH_FORMATS = (("Same as input", None), ("PNG", "png"), ("JPEG", "jpg"), ("WebP", "webp"), ("TIFF", "tiff"))
STATUS_TEXT = {
    "waiting": "Waiting",
    "running": "Running",
    "paused": "Paused",
    "done": "Done",
    "skipped": "Skipped",
    "failed": "Failed",
    "cancelled": "Not run",
}


@dataclass
class QueueRow:
    """One line of the batch queue table."""

    input: Path
    output: Path | None
    status: str = "waiting"
    detail: str = ""
    seconds: float | None = None
    display: str = ""


class QueueModel(QAbstractTableModel):
    """The queue table's rows for Qt's item view (status, details, time per file)."""

    HEADERS = ("File", "Status", "Details", "Time")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[QueueRow] = []

    def rowCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: QModelIndex | QPersistentModelIndex = QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.HEADERS)

    def headerData(
        self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.HEADERS[section]
        return None

    def data(
        self, index: QModelIndex | QPersistentModelIndex, role: int = Qt.ItemDataRole.DisplayRole
    ) -> Any:
        if not index.isValid():
            return None
        row, col = self.rows[index.row()], index.column()
        if role == Qt.ItemDataRole.DisplayRole:
            if col == 0:
                return row.display or row.input.name
            if col == 1:
                return STATUS_TEXT.get(row.status, row.status)
            if col == 2:
                return row.detail
            if col == 3:
                return format_duration(row.seconds) if row.seconds is not None else ""
        if role == Qt.ItemDataRole.ForegroundRole and col == 1:
            return QBrush(status_color(row.status))
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{row.input}\n→ {row.output}" + (f"\n{row.detail}" if row.detail else "")
        return None

    def set_rows(self, rows: list[QueueRow]) -> None:
        self.beginResetModel()
        self.rows = rows
        self.endResetModel()

    def update_row(self, i: int, **changes: Any) -> None:
        for k, v in changes.items():
            setattr(self.rows[i], k, v)
        self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.HEADERS) - 1))

    def statuses(self) -> list[str]:
        return [r.status for r in self.rows]


class BatchView(QWidget):
    """The Batch tab: shows inputs, options and the queue; emits the user's requests as signals."""

    inputsDropped = Signal(list)  # list[Path]
    addFolderRequested = Signal()
    addFilesRequested = Signal()
    removeRequested = Signal()
    clearRequested = Signal()
    browseOutputRequested = Signal()
    startRequested = Signal()
    pauseToggled = Signal(bool)
    cancelRequested = Signal()
    retryRequested = Signal()
    openOutputRequested = Signal()
    optionsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        # --- inputs
        self.inputs = QListWidget()
        self.inputs.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.inputs.setMinimumHeight(70)
        self.inputs.setMaximumHeight(130)
        self.inputs.setToolTip("Drop folders or images here")
        add_folder = QPushButton("Add folder…")
        add_files = QPushButton("Add images…")
        self.remove_btn = QPushButton("Remove")
        clear = QPushButton("Clear")
        in_btns = QVBoxLayout()
        for b in (add_folder, add_files, self.remove_btn, clear):
            in_btns.addWidget(b)
        in_btns.addStretch(1)
        in_row = QHBoxLayout()
        in_row.addWidget(self.inputs, 1)
        in_row.addLayout(in_btns)
        in_box = QGroupBox("Inputs")
        in_lay = QVBoxLayout(in_box)
        in_lay.addLayout(in_row)
        in_lay.addWidget(hint_label("Drop folders or images anywhere on this tab."))

        # --- options
        self.output_edit = QLineEdit()
        self.output_edit.setPlaceholderText("Choose an output folder")
        browse = QPushButton("Browse…")
        out_row = QHBoxLayout()
        out_row.addWidget(self.output_edit, 1)
        out_row.addWidget(browse)
        self.recursive = QCheckBox("Include subfolders (mirror the folder tree)")
        self.skip_existing = QCheckBox("Skip images whose output already exists (uncheck to overwrite them)")
        self.best_quality = best_quality_checkbox("Applies to every image of the batch.")
        self.template_edit = QLineEdit("{stem}_x{scale}")
        self.template_edit.setToolTip("Fields: {stem}, {scale}, {model}, {ext}")
        self.format_combo = QComboBox()
        for label, _fmt in BATCH_FORMATS:
            self.format_combo.addItem(label)
        self.quality_spin = QSpinBox()
        self.quality_spin.setRange(1, 100)
        self.quality_spin.setValue(95)
        fmt_row = QHBoxLayout()
        fmt_row.addWidget(self.format_combo, 1)
        fmt_row.addWidget(QLabel("Quality"))
        fmt_row.addWidget(self.quality_spin)
        opt_box = QGroupBox("Output")
        form = QFormLayout(opt_box)
        form.addRow("Folder", out_row)
        form.addRow("Name", self.template_edit)
        form.addRow("Format", fmt_row)
        form.addRow("", self.recursive)
        form.addRow("", self.skip_existing)
        form.addRow("", self.best_quality)

        top = QHBoxLayout()
        top.addWidget(in_box, 1)
        top.addWidget(opt_box, 1)

        # --- controls
        self.start_btn = primary_button("Start batch")
        self.pause_btn = QPushButton("Pause")
        self.pause_btn.setCheckable(True)
        self.cancel_btn = QPushButton("Cancel")
        self.retry_btn = QPushButton("Retry failed")
        self.open_out_btn = QPushButton("Open output folder")
        ctl = QHBoxLayout()
        ctl.addWidget(self.start_btn)
        ctl.addWidget(self.pause_btn)
        ctl.addWidget(self.cancel_btn)
        ctl.addStretch(1)
        ctl.addWidget(self.retry_btn)
        ctl.addWidget(self.open_out_btn)

        self.progress = QProgressBar()
        self.progress.setRange(0, 1000)
        self.progress.setValue(0)
        self.progress.setFormat("%p%")
        self.progress_label = QLabel("Add a folder and press Start.")
        self.report_label = hint_label()
        self.report_label.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.model = QueueModel()
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setAlternatingRowColors(True)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        hh = self.table.horizontalHeader()
        hh.setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        hh.setSectionResizeMode(1, QHeaderView.ResizeMode.ResizeToContents)
        hh.setSectionResizeMode(2, QHeaderView.ResizeMode.Stretch)
        hh.setSectionResizeMode(3, QHeaderView.ResizeMode.ResizeToContents)
        self.table.setColumnWidth(0, 260)

        self.banner = Banner()
        queue = QWidget()
        q_lay = QVBoxLayout(queue)
        q_lay.setContentsMargins(0, 0, 0, 0)
        q_lay.addLayout(ctl)
        q_lay.addWidget(self.progress)
        q_lay.addWidget(self.progress_label)
        q_lay.addWidget(self.table, 1)
        q_lay.addWidget(self.report_label)

        top_w = QWidget()
        top_w.setLayout(top)
        top.setContentsMargins(0, 0, 0, 0)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(top_w)
        split.addWidget(queue)
        split.setStretchFactor(0, 0)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        split.setSizes([210, 600])

        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 10, 10, 8)
        lay.addWidget(self.banner)
        lay.addWidget(split, 1)

        add_folder.clicked.connect(self.addFolderRequested)
        add_files.clicked.connect(self.addFilesRequested)
        self.remove_btn.clicked.connect(self.removeRequested)
        clear.clicked.connect(self.clearRequested)
        browse.clicked.connect(self.browseOutputRequested)
        self.start_btn.clicked.connect(self.startRequested)
        self.pause_btn.toggled.connect(self.pauseToggled)
        self.cancel_btn.clicked.connect(self.cancelRequested)
        self.retry_btn.clicked.connect(self.retryRequested)
        self.open_out_btn.clicked.connect(self.openOutputRequested)
        for sig in (
            self.recursive.toggled,
            self.skip_existing.toggled,
            self.best_quality.toggled,
            self.format_combo.currentIndexChanged,
            self.quality_spin.valueChanged,
            self.template_edit.editingFinished,
            self.output_edit.editingFinished,
        ):
            sig.connect(self.optionsChanged)
        self.format_combo.currentIndexChanged.connect(self._update_quality_enabled)
        self.set_running(False)
        self.retry_btn.setEnabled(False)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if local_paths(event):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        paths = local_paths(event)
        if paths:
            event.acceptProposedAction()
            self.inputsDropped.emit(paths)

    # ------------------------------------------------------------------ setters / getters
    def set_inputs(self, paths: list[str]) -> None:
        self.inputs.clear()
        self.inputs.addItems(paths)

    def selected_inputs(self) -> list[str]:
        return [i.text() for i in self.inputs.selectedItems()]

    def output_format(self) -> str | None:
        return BATCH_FORMATS[self.format_combo.currentIndex()][1]

    def _update_quality_enabled(self) -> None:
        self.quality_spin.setEnabled(self.output_format() in (None, "jpg", "webp"))

    def set_running(self, running: bool) -> None:
        self.start_btn.setEnabled(not running)
        self.pause_btn.setEnabled(running)
        self.cancel_btn.setEnabled(running)
        if not running:
            self.pause_btn.setChecked(False)
        self.pause_btn.setText("Resume" if self.pause_btn.isChecked() else "Pause")

    def set_overall(self, fraction: float, text: str) -> None:
        self.progress.setValue(int(round(fraction * 1000)))
        self.progress_label.setText(text)

    def ask_folder(self, title: str, start: str) -> Path | None:
        d = QFileDialog.getExistingDirectory(self, title, start)
        return Path(d) if d else None

    def ask_files(self, start: str) -> list[Path]:
        files, _ = QFileDialog.getOpenFileNames(
            self, "Add images", start, "Images (*.png *.jpg *.jpeg *.webp *.bmp *.tif *.tiff)"
        )
        return [Path(f) for f in files]
