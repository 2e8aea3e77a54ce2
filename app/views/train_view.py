"""The Train tab (a view): the run's form on the left, its monitor (stages, plots, samples) on the right.

:class:`TrainForm` holds what a run is made of (data, teacher, recipe) and the start/stop
buttons; :class:`TrainMonitor` shows a running or finished run. Both only show things and emit
signals; the train controller drives them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pyqtgraph as pg
from PySide6.QtCore import QEvent, Qt, Signal
from PySide6.QtGui import QColor, QDragEnterEvent, QDropEvent, QPixmap
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSpinBox,
    QSplitter,
    QVBoxLayout,
    QWidget,
)

from ..qt_image import array_to_qimage
from .common import Banner, format_duration, hint_label, local_paths, primary_button, status_color
from .comparison import comparison_html, comparison_summary

PRESETS = (
    ("adapt", "Adapt the built-in model (minutes)"),
    ("quick-cpu", "From scratch: quick (CPU, hours)"),
    ("paper", "From scratch: paper recipe (GPU, days)"),
    ("tiny-test", "Tiny test (seconds)"),
)
# What each preset costs, stated before it starts; the run's Estimate event replaces it with a
# measurement on this machine once it begins.
PRESET_TIMES = {
    "adapt": "Expected time: about 10 minutes on a CPU. Starts from the built-in model and "
             "adapts it to your images.",
    "quick-cpu": "Expected time: hours on a CPU. Trains a new model from scratch; minutes of "
                 "training give a model worse than bicubic.",
    "paper": "Expected time: days on a GPU, far longer on a CPU (from scratch, the full recipe).",
    "tiny-test": "Expected time: seconds (a smoke test; the model is useless).",
}
TEACHERS = (("train", "Train a teacher first"), ("file", "Use a model file"), ("none", "No teacher"))
LOSS_COLORS = ("#3d8bfd", "#e8590c", "#2f9e44", "#ae3ec9", "#f08c00", "#1098ad")
STAGE_ICONS = {"pending": "○", "running": "▶", "done": "✔", "failed": "✖", "cancelled": "■"}


def stage_title(name: str) -> str:
    if name == "teacher":
        return "Train teacher"
    if name.startswith("distill_"):
        return f"Distill, stage {name.split('_', 1)[1]}"
    if name == "reparam":
        return "Reparameterize"
    if name == "prune_*":
        return "Prune rounds"
    if name.startswith("prune_"):
        return f"Prune round {name.split('_', 1)[1]}"
    if name == "finetune":
        return "Fine-tune"
    if name == "export":
        return "Export"
    if name == "comparison":
        return "Compare with start"
    return name


class _LogAxis(pg.AxisItem):
    """A log axis that labels only 1, 2 and 5 of each decade: all nine pile up on a short plot."""

    def tickStrings(self, values: list[float], scale: float, spacing: float) -> list[str]:
        strings = super().tickStrings(values, scale, spacing)
        if not self.logMode:
            return strings
        keep = []
        for v, text in zip(values, strings, strict=True):
            mantissa = round(10 ** (v - np.floor(v + 1e-9)), 3)
            keep.append(text if mantissa in (1.0, 2.0, 5.0) else "")
        return keep


class TrainForm(QWidget):
    """Data, teacher and recipe of a run, and the Start / Resume / Stop buttons (in :attr:`action_row`,
    which the TrainView places under the form's scroll area)."""

    startRequested = Signal()
    resumeRequested = Signal()
    cancelRequested = Signal()
    presetChanged = Signal(str)
    optionsChanged = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._build_data_box()
        self._build_recipe_box()
        self.start_btn = primary_button("Start training")
        self.resume_btn = QPushButton("Resume")
        self.resume_btn.setToolTip("Continue the interrupted run with this name from its last checkpoint")
        self.cancel_btn = QPushButton("Stop")
        self.cancel_btn.setToolTip("Stop after the current step; a checkpoint is saved so you can resume")
        # The buttons live in their own widget, which the TrainView keeps under the scrolling form:
        # at 1024x640 the form scrolls, and Start must stay in sight.
        self.action_row = QWidget()
        al = QVBoxLayout(self.action_row)
        al.setContentsMargins(0, 6, 6, 0)
        btns = QHBoxLayout()
        btns.addWidget(self.start_btn)
        btns.addWidget(self.resume_btn)
        btns.addWidget(self.cancel_btn)
        al.addLayout(btns)
        al.addWidget(
            hint_label(
                "Training runs in a separate process: the app stays responsive, and an "
                "interrupted run resumes from its last checkpoint."
            )
        )
        ll = QVBoxLayout(self)
        ll.setContentsMargins(0, 0, 6, 0)
        ll.addWidget(self.data_box)
        ll.addWidget(self.recipe_box)
        ll.addStretch(1)
        self.preset_combo.currentIndexChanged.connect(lambda i: self.presetChanged.emit(PRESETS[i][0]))
        self.start_btn.clicked.connect(self.startRequested)
        self.resume_btn.clicked.connect(self.resumeRequested)
        self.cancel_btn.clicked.connect(self.cancelRequested)
        for sig in (self.val_edit.editingFinished, self.name_edit.editingFinished):
            sig.connect(self.optionsChanged)
        self._update_teacher_row()
        self.set_running(False)

    def _build_data_box(self) -> None:
        self.data_list = QListWidget()
        self.data_list.setSelectionMode(QAbstractItemView.SelectionMode.ExtendedSelection)
        self.data_list.setMaximumHeight(90)
        add_data = QPushButton("Add folder…")
        rm_data = QPushButton("Remove")
        data_btns = QHBoxLayout()
        data_btns.addWidget(add_data)
        data_btns.addWidget(rm_data)
        data_btns.addStretch(1)
        self.val_edit = QLineEdit()
        self.val_edit.setPlaceholderText("optional folder")
        self.val_edit.setToolTip("Empty: a few of the training images are held out for validation")
        val_browse = QPushButton("…")
        val_browse.setFixedWidth(32)
        val_row = QHBoxLayout()
        val_row.addWidget(self.val_edit, 1)
        val_row.addWidget(val_browse)
        val_hint = hint_label("Empty: a few training images are held out.")
        self.teacher_combo = QComboBox()
        for _k, label in TEACHERS:
            self.teacher_combo.addItem(label)
        self.teacher_edit = QLineEdit()
        self.teacher_edit.setPlaceholderText("teacher model file")
        teacher_browse = QPushButton("…")
        teacher_browse.setFixedWidth(32)
        t_row = QHBoxLayout()
        t_row.addWidget(self.teacher_edit, 1)
        t_row.addWidget(teacher_browse)
        self.teacher_file_row = QWidget()
        self.teacher_file_row.setLayout(t_row)
        t_row.setContentsMargins(0, 0, 0, 0)
        self.data_box = QGroupBox("Data")
        df = QFormLayout(self.data_box)
        df.addRow("Training images", self.data_list)
        df.addRow("", data_btns)
        df.addRow("Validation", val_row)
        df.addRow("", val_hint)
        df.addRow("Teacher", self.teacher_combo)
        df.addRow("", self.teacher_file_row)
        add_data.clicked.connect(self._add_data_dialog)
        rm_data.clicked.connect(
            lambda: (
                [self.data_list.takeItem(self.data_list.row(i)) for i in self.data_list.selectedItems()]
                and self.optionsChanged.emit()
            )
        )
        val_browse.clicked.connect(self._val_dialog)
        teacher_browse.clicked.connect(self._teacher_dialog)
        self.teacher_combo.currentIndexChanged.connect(self._update_teacher_row)

    def _build_recipe_box(self) -> None:
        self.preset_combo = QComboBox()
        for _k, label in PRESETS:
            self.preset_combo.addItem(label)
        self.time_hint = hint_label(PRESET_TIMES[PRESETS[0][0]])
        self.preset_combo.currentIndexChanged.connect(
            lambda i: self.time_hint.setText(PRESET_TIMES.get(PRESETS[i][0], ""))
        )
        self.name_edit = QLineEdit("my-dipnet")
        self.feat_spin = self._spin(8, 128, "Feature channels of the student before pruning")
        self.teacher_steps = self._spin(0, 2_000_000, "Teacher training steps")
        self.distill_steps = self._spin(1, 2_000_000, "Distillation steps (all progressive stages)")
        self.prune_rounds = self._spin(0, 10, "Pruning rounds (0 = none)")
        self.finetune_steps = self._spin(0, 2_000_000, "Final fine-tune steps")
        self.device_combo = QComboBox()
        self.device_combo.addItems(["auto", "cpu", "cuda"])
        self.recipe_box = QGroupBox("Recipe")
        rf = QFormLayout(self.recipe_box)
        rf.addRow("Preset", self.preset_combo)
        rf.addRow("", self.time_hint)
        rf.addRow("Student width", self.feat_spin)
        rf.addRow("Teacher steps", self.teacher_steps)
        rf.addRow("Distill steps", self.distill_steps)
        rf.addRow("Prune rounds", self.prune_rounds)
        rf.addRow("Fine-tune steps", self.finetune_steps)
        rf.addRow("Device", self.device_combo)
        rf.addRow("Model name", self.name_edit)

    @staticmethod
    def _spin(lo: int, hi: int, tip: str) -> QSpinBox:
        s = QSpinBox()
        s.setRange(lo, hi)
        s.setToolTip(tip)
        s.setGroupSeparatorShown(True)
        return s

    # ------------------------------------------------------------------ data inputs
    def add_data_dirs(self, dirs: list[Path]) -> None:
        existing = set(self.data_dirs())
        for d in dirs:
            if str(d) not in existing:
                self.data_list.addItem(str(d))
        self.optionsChanged.emit()

    def data_dirs(self) -> list[str]:
        return [self.data_list.item(i).text() for i in range(self.data_list.count())]

    def _add_data_dialog(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder of high-resolution training images")
        if d:
            self.add_data_dirs([Path(d)])

    def _val_dialog(self) -> None:
        d = QFileDialog.getExistingDirectory(self, "Folder of validation images")
        if d:
            self.val_edit.setText(d)
            self.optionsChanged.emit()

    def _teacher_dialog(self) -> None:
        f, _ = QFileDialog.getOpenFileName(
            self, "Teacher model", "", "Models (*.safetensors *.pth *.pt *.onnx)"
        )
        if f:
            self.teacher_edit.setText(f)

    def _update_teacher_row(self) -> None:
        self.teacher_file_row.setVisible(self.teacher_kind() == "file")

    def teacher_kind(self) -> str:
        return TEACHERS[self.teacher_combo.currentIndex()][0]

    def set_teacher_kind(self, kind: str) -> None:
        for i, (k, _l) in enumerate(TEACHERS):
            if k == kind:
                self.teacher_combo.setCurrentIndex(i)

    def preset_name(self) -> str:
        return PRESETS[self.preset_combo.currentIndex()][0]

    def set_preset_name(self, name: str) -> None:
        for i, (k, _l) in enumerate(PRESETS):
            if k == name:
                self.preset_combo.setCurrentIndex(i)

    def set_running(self, running: bool) -> None:
        self.start_btn.setEnabled(not running)
        self.resume_btn.setEnabled(not running and self.resume_btn.property("available") is True)
        self.cancel_btn.setEnabled(running)

    def set_resume_available(self, available: bool) -> None:
        self.resume_btn.setProperty("available", available)
        self.resume_btn.setEnabled(available and self.start_btn.isEnabled())


class TrainMonitor(QWidget):
    """A run's progress: the stage list, step line, loss and PSNR plots, a validation sample, the result."""

    installRequested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.stage_list = QListWidget()
        self.stage_list.setObjectName("stages")
        self.stage_list.setFixedWidth(170)
        self.stage_list.setSpacing(3)
        self.stage_list.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.stage_list.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.stage_list.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        stages_title = QLabel("Stages")
        stages_title.setObjectName("section")
        self.set_stages([])
        self.stage_label = QLabel("Not started")
        self.stage_label.setObjectName("title")
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.step_label = hint_label("")
        self.estimate_label = hint_label("")
        pg.setConfigOptions(antialias=True)
        self.loss_plot = pg.PlotWidget(title="Training loss", axisItems={"left": _LogAxis("left")})
        self.loss_plot.setLogMode(y=True)
        self.loss_plot.addLegend(offset=(-10, 10)).hide()  # shown with its first curve
        self.loss_plot.setLabel("bottom", "step")
        self.psnr_plot = pg.PlotWidget(title="Validation PSNR-Y (dB)")
        self.psnr_plot.setLabel("bottom", "step")
        self.psnr_curve = self.psnr_plot.plot(
            [], [], pen=pg.mkPen("#2f9e44", width=2), symbol="o", symbolSize=6, symbolBrush="#2f9e44"
        )
        for pw in (self.loss_plot, self.psnr_plot):
            pw.setMinimumHeight(120)
            pw.setMinimumWidth(160)
            pw.showGrid(x=True, y=True, alpha=0.2)
        self._stage_lines: list[pg.InfiniteLine] = []
        self._apply_plot_palette()
        self._loss_curves: dict[str, pg.PlotDataItem] = {}
        self._loss_data: dict[str, tuple[list[float], list[float]]] = {}
        self._psnr_data: tuple[list[float], list[float]] = ([], [])

        self.sample_labels: dict[str, QLabel] = {}
        samples = QGridLayout()
        for col, (key, title) in enumerate((("lr", "Input (LR)"), ("sr", "Student"), ("hr", "Ground truth"))):
            img = QLabel()
            img.setFixedSize(112, 112)
            img.setAlignment(Qt.AlignmentFlag.AlignCenter)
            img.setObjectName("card")
            cap = hint_label(title)
            cap.setAlignment(Qt.AlignmentFlag.AlignHCenter | Qt.AlignmentFlag.AlignTop)
            samples.addWidget(img, 0, col)
            samples.addWidget(cap, 1, col)
            self.sample_labels[key] = img
        samples.setRowStretch(2, 1)  # spare height goes below the captions, not between image and caption
        self.sample_box = QGroupBox("Validation sample")
        self.sample_box.setLayout(samples)

        self.result_label = QLabel("")
        self.result_label.setWordWrap(True)
        self.comparison_label = QLabel("")
        self.comparison_label.setObjectName("comparison")
        self.comparison_label.setTextFormat(Qt.TextFormat.RichText)
        self.comparison_label.setWordWrap(True)
        self.install_btn = primary_button("Install as default")
        self.install_btn.hide()
        res_col = QVBoxLayout()
        res_col.addWidget(self.comparison_label)
        res_col.addWidget(self.result_label, 1)
        res_col.addWidget(self.install_btn, 0, Qt.AlignmentFlag.AlignLeft)

        head = QVBoxLayout()
        head.addWidget(self.stage_label)
        head.addWidget(self.progress)
        head.addWidget(self.step_label)
        head.addWidget(self.estimate_label)
        stages_col = QVBoxLayout()
        stages_col.addWidget(stages_title)
        stages_col.addWidget(self.stage_list, 1)
        top = QHBoxLayout()
        top.addLayout(stages_col)
        head_plots = QVBoxLayout()
        head_plots.addLayout(head)
        plots = QHBoxLayout()
        plots.addWidget(self.loss_plot, 1)
        plots.addWidget(self.psnr_plot, 1)
        head_plots.addLayout(plots, 1)
        top.addLayout(head_plots, 1)
        rl = QVBoxLayout(self)
        rl.setContentsMargins(6, 0, 0, 0)
        rl.addLayout(top, 1)
        bottom = QHBoxLayout()
        bottom.addWidget(self.sample_box)
        bottom.addLayout(res_col, 1)
        rl.addLayout(bottom)
        self.install_btn.clicked.connect(self.installRequested)

    def _apply_plot_palette(self) -> None:
        # pyqtgraph defaults to black; follow the app palette so light and dark themes both fit.
        pal = self.palette()
        bg, fg = pal.base().color(), pal.text().color()
        legend = self.loss_plot.plotItem.legend
        if legend is not None:
            # An opaque-ish box: the legend sits over the curves, whose lines would cross its labels.
            box = QColor(bg)
            box.setAlpha(170)
            legend.setBrush(pg.mkBrush(box))
            legend.setPen(pg.mkPen(pal.mid().color()))
            legend.setLabelTextColor(fg)
            for _sample, label in legend.items:  # setLabelTextColor does not redraw existing labels
                label.setText(label.text, color=fg)
        for pw in (self.loss_plot, self.psnr_plot):
            pw.setBackground(bg)
            pw.setTitle(pw.plotItem.titleLabel.text, color=fg.name())
            for axis in ("left", "bottom"):
                ax = pw.getAxis(axis)
                ax.setPen(pg.mkPen(fg))
                ax.setTextPen(pg.mkPen(fg))

    def changeEvent(self, event: QEvent) -> None:
        super().changeEvent(event)
        if event.type() == QEvent.Type.PaletteChange and hasattr(self, "loss_plot"):
            self._apply_plot_palette()

    def mark_stage_start(self, x: float, name: str) -> None:
        """A dashed vertical line where a stage begins, so jumps in the curves make sense."""
        if x <= 0:
            return
        for pw in (self.loss_plot, self.psnr_plot):
            # No text labels: short stages would pile them up; the stage list names them.
            line = pg.InfiniteLine(pos=x, angle=90, pen=pg.mkPen("#8a8f98", style=Qt.PenStyle.DashLine))
            line.setToolTip(stage_title(name))
            pw.addItem(line)
            self._stage_lines.append(line)

    # ------------------------------------------------------------------ progress display
    def set_stages(self, names: list[str]) -> None:
        self.stage_list.clear()
        if not names:
            # Before a run: say what this panel is for instead of showing an empty box.
            item = QListWidgetItem("Stages appear here\nwhen a run starts.")
            item.setFlags(Qt.ItemFlag.NoItemFlags)
            self.stage_list.addItem(item)
        for n in names:
            item = QListWidgetItem(f"{STAGE_ICONS['pending']}  {stage_title(n)}")
            item.setData(Qt.ItemDataRole.UserRole, n)
            self.stage_list.addItem(item)

    def set_stage_state(self, name: str, state: str) -> None:
        item = None
        for i in range(self.stage_list.count()):
            it = self.stage_list.item(i)
            if it.data(Qt.ItemDataRole.UserRole) == name:
                item = it
                break
        if item is None and name.startswith("prune_"):
            # Pruning rounds are only known once the run plans them: replace the placeholder.
            for i in range(self.stage_list.count()):
                it = self.stage_list.item(i)
                if it.data(Qt.ItemDataRole.UserRole) == "prune_*":
                    item = QListWidgetItem()
                    self.stage_list.insertItem(i, item)
                    break
            if item is None:
                fin = next(
                    (
                        i
                        for i in range(self.stage_list.count())
                        if self.stage_list.item(i).data(Qt.ItemDataRole.UserRole) in ("finetune", "export")
                    ),
                    self.stage_list.count(),
                )
                item = QListWidgetItem()
                self.stage_list.insertItem(fin, item)
            item.setData(Qt.ItemDataRole.UserRole, name)
        if item is None:
            item = QListWidgetItem()
            item.setData(Qt.ItemDataRole.UserRole, name)
            self.stage_list.addItem(item)
        item.setText(f"{STAGE_ICONS.get(state, '')}  {stage_title(name)}")
        f = item.font()
        f.setBold(state == "running")
        item.setFont(f)
        colored = state in ("running", "done", "failed")
        item.setForeground(status_color(state) if colored else self.palette().text().color())
        if state == "running":
            self.stage_label.setText(stage_title(name))

    def finish_stage_placeholders(self) -> None:
        for i in reversed(range(self.stage_list.count())):
            if self.stage_list.item(i).data(Qt.ItemDataRole.UserRole) == "prune_*":
                self.stage_list.takeItem(i)

    def set_step(self, step: int, total: int, eta_s: float, losses: dict[str, float], lr: float,
                 next_validation: int | None = None) -> None:
        self.progress.setRange(0, max(1, total))
        self.progress.setValue(step)
        loss_txt = "  ".join(f"{k} {v:.4f}" for k, v in losses.items())
        val_txt = f" · next validation at step {next_validation:,}" if next_validation else ""
        self.step_label.setText(
            f"step {step:,}/{total:,} · {format_duration(eta_s)} left in this stage{val_txt} · "
            f"lr {lr:.1e} · {loss_txt}"
        )
        title = "Validation sample"
        if next_validation and not self._psnr_data[0]:
            title += f" (first at step {next_validation:,})"
        self.sample_box.setTitle(title)

    def set_stopped(self, last_step: tuple[int, int] | None) -> None:
        """The run is not running any more: no time estimate, only where it stopped."""
        self.step_label.setText(f"stopped at step {last_step[0]:,}/{last_step[1]:,}" if last_step else "")

    def add_losses(self, x: float, losses: dict[str, float]) -> None:
        for k, v in losses.items():
            if not (v > 0):  # log axis: skip zero/NaN
                continue
            xs, ys = self._loss_data.setdefault(k, ([], []))
            xs.append(x)
            ys.append(v)
            if k not in self._loss_curves:
                color = LOSS_COLORS[len(self._loss_curves) % len(LOSS_COLORS)]
                self._loss_curves[k] = self.loss_plot.plot([], [], pen=pg.mkPen(color, width=2), name=k)
                self.loss_plot.plotItem.legend.show()
            self._loss_curves[k].setData(xs, ys)

    def add_psnr(self, x: float, psnr: float) -> None:
        self.sample_box.setTitle("Validation sample")
        self._psnr_data[0].append(x)
        self._psnr_data[1].append(psnr)
        self.psnr_curve.setData(*self._psnr_data)

    def clear_plots(self) -> None:
        for line in self._stage_lines:
            for pw in (self.loss_plot, self.psnr_plot):
                if line in pw.items():
                    pw.removeItem(line)
        self._stage_lines.clear()
        for c in self._loss_curves.values():
            self.loss_plot.removeItem(c)
        self._loss_curves.clear()
        self.loss_plot.plotItem.legend.hide()  # an empty legend would be an empty box
        self._loss_data.clear()
        self._psnr_data = ([], [])
        self.psnr_curve.setData([], [])
        for lab in self.sample_labels.values():
            lab.clear()

    def set_sample(self, sample: dict[str, np.ndarray]) -> None:
        size = self.sample_labels["hr"].size()
        for key, lab in self.sample_labels.items():
            arr = sample.get(key)
            if arr is None:
                continue
            pix = QPixmap.fromImage(array_to_qimage(arr))
            # Nearest-neighbour so the LR input shows its real pixels rather than a blur.
            lab.setPixmap(
                pix.scaled(size, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.FastTransformation)
            )

    def show_estimate(self, total_s: float | None) -> None:
        """The run's expected time, measured on this machine before its stages start (None: clear)."""
        self.estimate_label.setText(
            "" if total_s is None else f"expected time: {format_duration(total_s)} on this machine"
        )

    def show_comparison(self, comparison: dict[str, Any] | None) -> None:
        """The run's closing comparison: new model vs its start vs bicubic (None: clear)."""
        self.comparison_label.setText(comparison_html(comparison))
        self.comparison_label.setToolTip(comparison_summary(comparison))

    def show_result(self, text: str, installable: bool) -> None:
        self.result_label.setText(text)
        self.install_btn.setVisible(installable)
        self.install_btn.setEnabled(installable)


class TrainView(QWidget):
    """The Train tab: a banner over the form (scrollable) and the monitor, side by side."""

    dataDropped = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.form = TrainForm()
        self.monitor = TrainMonitor()
        form_scroll = QScrollArea()
        form_scroll.setWidget(self.form)
        form_scroll.setWidgetResizable(True)
        form_scroll.setFrameShape(QScrollArea.Shape.NoFrame)
        # Room for the form and the vertical scroll bar it gets in a short window, so that it
        # never needs a horizontal one as well.
        form_scroll.setMinimumWidth(
            max(320, self.form.minimumSizeHint().width() + form_scroll.verticalScrollBar().sizeHint().width())
        )
        left = QWidget()
        left_lay = QVBoxLayout(left)
        left_lay.setContentsMargins(0, 0, 0, 0)
        left_lay.setSpacing(0)
        left_lay.addWidget(form_scroll, 1)
        left_lay.addWidget(self.form.action_row)
        self.banner = Banner()
        split = QSplitter()
        split.addWidget(left)
        split.addWidget(self.monitor)
        split.setStretchFactor(1, 1)
        split.setChildrenCollapsible(False)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 10, 10, 8)
        lay.addWidget(self.banner)
        lay.addWidget(split, 1)

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        if any(p.is_dir() for p in local_paths(event)):
            event.acceptProposedAction()

    def dropEvent(self, event: QDropEvent) -> None:
        dirs = [p for p in local_paths(event) if p.is_dir()]
        if dirs:
            event.acceptProposedAction()
            self.form.add_data_dirs(dirs)
