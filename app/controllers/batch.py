"""Batch tab logic: plan the queue, run it on a worker, pause/cancel, report, retry failures.

Drives the BatchView; touches the input files (read only), the output folder and its report.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QUrl, Signal
from PySide6.QtGui import QDesktopServices

from dipnet_core.cancel import CancelToken

from ..errors import ErrorReporter, NoModelError, user_message
from ..views.batch_view import BatchView, QueueRow
from ..views.common import format_duration
from ..workers import Task, start_task
from .context import AppContext, TabController

# Tile progress arrives many times a second; the label only needs a few updates per second.
_LABEL_INTERVAL_S = 0.1
NO_INPUTS = "Add at least one input folder or image."
NO_OUTPUT = "Choose an output folder."


class _Planned:
    """First progress message of a batch task: the planned items, so the table can fill in."""

    def __init__(self, items: list[Any]) -> None:
        self.items = items


class BatchController(TabController):
    """Batch tab: drives the BatchView; touches the chosen inputs (read only), the output folder, settings."""

    finished = Signal(object)  # BatchReport or None (failed), emitted once the controller is idle again
    view: BatchView

    def __init__(
        self,
        view: BatchView,
        ctx: AppContext,
        reporter: ErrorReporter | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(view, ctx, reporter, parent)
        self.task: Task | None = None
        self.pause_event = threading.Event()
        self.report: Any = None  # last BatchReport (merged with retries)
        self.report_path: Path | None = None
        self._row_of: dict[Path, int] = {}
        self._index_to_row: dict[int, int] = {}
        self._current = ""
        self._last_label = 0.0
        self._retrying = False
        self._last_result: Any = None
        self._keep_rows = False
        self._out_dir = Path()

        s = ctx.settings
        view.set_inputs(s.batch_inputs)
        view.output_edit.setText(s.batch_output_dir)
        view.recursive.setChecked(s.batch_recursive)
        view.skip_existing.setChecked(s.batch_skip_existing)
        view.best_quality.setChecked(s.batch_self_ensemble)
        view.template_edit.setText(s.name_template)
        view.quality_spin.setValue(s.quality)
        view.inputsDropped.connect(self.add_inputs)
        view.addFolderRequested.connect(self._add_folder_dialog)
        view.addFilesRequested.connect(self._add_files_dialog)
        view.removeRequested.connect(self._remove_selected)
        view.clearRequested.connect(lambda: self.set_inputs([]))
        view.browseOutputRequested.connect(self._browse_output)
        view.startRequested.connect(self.start)
        view.pauseToggled.connect(self.set_paused)
        view.cancelRequested.connect(self.cancel)
        view.retryRequested.connect(self.retry_failed)
        view.openOutputRequested.connect(self._open_output)
        view.optionsChanged.connect(self._save_options)

    # ------------------------------------------------------------------ inputs and options
    @property
    def inputs(self) -> list[Path]:
        return [Path(p) for p in self.ctx.settings.batch_inputs]

    def set_inputs(self, paths: list[str]) -> None:
        self.ctx.settings.batch_inputs = list(dict.fromkeys(paths))
        self.ctx.store.save()
        self.view.set_inputs(self.ctx.settings.batch_inputs)
        self._clear_solved_complaint()

    def _clear_solved_complaint(self) -> None:
        """Hide "add an input" / "choose an output" once the user has done just that."""
        text = self.view.banner.text.text() if not self.view.banner.isHidden() else ""
        if (text == NO_INPUTS and self.inputs) or (text == NO_OUTPUT and self.view.output_edit.text().strip()):
            self.view.banner.hide()

    def add_inputs(self, paths: list[Path]) -> None:
        self.set_inputs(self.ctx.settings.batch_inputs + [str(p) for p in paths])
        if not self.view.output_edit.text() and paths:
            first = paths[0] if paths[0].is_dir() else paths[0].parent
            self.view.output_edit.setText(str(first.parent / f"{first.name}_upscaled"))
            self._save_options()

    def _add_folder_dialog(self) -> None:
        d = self.view.ask_folder("Add input folder", self.ctx.settings.last_open_dir)
        if d is not None:
            self.add_inputs([d])

    def _add_files_dialog(self) -> None:
        files = self.view.ask_files(self.ctx.settings.last_open_dir)
        if files:
            self.add_inputs(files)

    def _remove_selected(self) -> None:
        sel = set(self.view.selected_inputs())
        self.set_inputs([p for p in self.ctx.settings.batch_inputs if p not in sel])

    def _browse_output(self) -> None:
        d = self.view.ask_folder("Output folder", self.view.output_edit.text())
        if d is not None:
            self.view.output_edit.setText(str(d))
            self._save_options()

    def _save_options(self) -> None:
        s = self.ctx.settings
        s.batch_output_dir = self.view.output_edit.text().strip()
        s.batch_recursive = self.view.recursive.isChecked()
        s.batch_skip_existing = self.view.skip_existing.isChecked()
        s.batch_self_ensemble = self.view.best_quality.isChecked()
        self.ctx.store.save()
        self._clear_solved_complaint()

    def _open_output(self) -> None:
        out = self.view.output_edit.text().strip()
        if out:
            QDesktopServices.openUrl(QUrl.fromLocalFile(out))

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self.task is not None

    def _fail(self, exc: BaseException, context: str) -> None:
        self.view.banner.show_message(self.failure_message(exc, context), "error")

    def start(self) -> None:
        if self.running:
            return
        out_text = self.view.output_edit.text().strip()
        if not self.inputs:
            self.view.banner.show_message(NO_INPUTS, "error")
            return
        if not out_text:
            self.view.banner.show_message(NO_OUTPUT, "error")
            return
        try:
            key = self.ctx.engine_key()
        except NoModelError as exc:
            self.view.banner.show_message(str(exc), "error")
            return
        entry = self.ctx.current_model()
        opts = dict(
            inputs=self.inputs,
            out_dir=Path(out_text),
            recursive=self.view.recursive.isChecked(),
            name_template=self.view.template_edit.text().strip() or "{stem}_x{scale}",
            format=self.view.output_format(),
            skip_existing=self.view.skip_existing.isChecked(),
            scale=entry.scale if entry else 4,
            model=entry.name if entry else "",
        )
        quality = self.view.quality_spin.value()
        self_ensemble = self.view.best_quality.isChecked()
        model_name = entry.name if entry else ""
        self._retrying = False

        def run(token: CancelToken, report: Any) -> Any:
            from dipnet_core.batch import plan_batch

            items = plan_batch(**opts)
            report(_Planned(items))
            return self._run_items(items, key, quality, model_name, token, report, Path(out_text),
                                   self_ensemble)

        self._launch(run)

    def retry_failed(self) -> None:
        if self.running or self.report is None or not self.report.failed:
            return
        try:
            key = self.ctx.engine_key()
        except NoModelError as exc:
            self.view.banner.show_message(str(exc), "error")
            return
        items = self.report.failed_items()
        quality = self.view.quality_spin.value()
        self_ensemble = self.view.best_quality.isChecked()  # what the tab shows, as for quality
        entry = self.ctx.current_model()
        out_dir = self.report_path.parent if self.report_path else Path(self.view.output_edit.text())
        self._retrying = True

        def run(token: CancelToken, report: Any) -> Any:
            report(_Planned(items))
            return self._run_items(items, key, quality, entry.name if entry else "", token, report, None,
                                   self_ensemble)

        self._launch(run, keep_rows=True, out_dir=out_dir)

    def _run_items(
        self,
        items: list[Any],
        key: Any,
        quality: int,
        model_name: str,
        token: CancelToken,
        report: Any,
        out_dir: Path | None,
        self_ensemble: bool = False,
    ) -> Any:
        """Worker thread: run the batch; the report is saved by the GUI side (it may merge retries)."""
        from dipnet_core.batch import run_batch

        return run_batch(
            items,
            lambda: self.ctx.engine(key).batch_upscaler,
            quality=quality,
            cancel=token,
            pause=self.pause_event,
            on_event=report,
            model=model_name,
            backend=key.backend,
            self_ensemble=self_ensemble,
        )

    def _launch(self, fn: Any, keep_rows: bool = False, out_dir: Path | None = None) -> None:
        self._keep_rows = keep_rows
        self._out_dir = out_dir or Path(self.view.output_edit.text().strip())
        self.view.banner.hide()
        self.view.set_running(True)
        self.view.retry_btn.setEnabled(False)
        self.view.set_overall(0.0, "Scanning inputs…")
        self._last_result = None
        self.task = start_task(
            fn,
            "batch",
            on_progress=self._on_event,
            on_result=self._on_finished,
            on_failed=lambda exc: self._fail(exc, "Batch failed"),
            on_cancelled=lambda: self.view.set_overall(0.0, "Cancelled."),
            on_done=self._on_done,
        )

    def set_paused(self, paused: bool) -> None:
        self.view.pause_btn.blockSignals(True)
        self.view.pause_btn.setChecked(paused)
        self.view.pause_btn.blockSignals(False)
        if paused:
            self.pause_event.set()
            self.view.progress_label.setText("Paused — the current tile finishes, then the batch waits.")
        else:
            self.pause_event.clear()
        self._mark_current(paused)
        # Only the label: set_running(False) would uncheck the button and undo a pause made before start.
        self.view.pause_btn.setText("Resume" if paused else "Pause")

    def _mark_current(self, paused: bool) -> None:
        """Show the file in progress as paused (or running again): the queue must not claim work goes on."""
        m = self.view.model
        old, new = ("running", "paused") if paused else ("paused", "running")
        for i, r in enumerate(m.rows):
            if r.status == old:
                m.update_row(i, status=new)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()
            self.pause_event.clear()  # a paused batch must wake up to see the cancel
            self.view.progress_label.setText("Cancelling…")

    # ------------------------------------------------------------------ events (GUI thread)
    def _on_event(self, ev: Any) -> None:
        from dipnet_core import batch as b

        m = self.view.model
        if isinstance(ev, _Planned):
            if self._keep_rows:
                self._index_to_row = {
                    it.index: self._row_of[it.input] for it in ev.items if it.input in self._row_of
                }
                for it in ev.items:
                    if it.input in self._row_of:
                        m.update_row(self._row_of[it.input], status="waiting", detail="", seconds=None)
            else:
                rows = [QueueRow(it.input, it.output, display=self._display(it.input)) for it in ev.items]
                m.set_rows(rows)
                self._row_of = {it.input: i for i, it in enumerate(ev.items)}
                self._index_to_row = {it.index: i for i, it in enumerate(ev.items)}
            if not ev.items:
                self.view.set_overall(0.0, "No images found in the inputs.")
            return
        row = self._index_to_row.get(getattr(ev, "index", -1))
        if isinstance(ev, b.ItemStarted) and row is not None:
            # Started just before a pause reached the worker: it stops at its first tile, so it is paused.
            m.update_row(row, status="paused" if self.pause_event.is_set() else "running", detail="")
            self._current = ev.path.name
        elif isinstance(ev, b.ItemProgress) and row is not None:
            m.update_row(row, detail=f"tile {ev.tile.done}/{ev.tile.total}")
        elif isinstance(ev, b.ItemDone) and row is not None:
            m.update_row(row, status="done", detail=str(ev.output.name), seconds=ev.seconds)
        elif isinstance(ev, b.ItemSkipped) and row is not None:
            m.update_row(row, status="skipped", detail=ev.reason)
        elif isinstance(ev, b.ItemFailed) and row is not None:
            # The File column already names the file: keep the cause short (full text in the tooltip).
            path = m.rows[row].input
            short = ev.error.replace(f"'{path}'", f"'{path.name}'").replace(str(path), path.name)
            m.update_row(row, status="failed", detail=short)
        progress = getattr(ev, "progress", None)
        if progress is not None:
            now = time.monotonic()
            if not isinstance(ev, b.ItemProgress) or now - self._last_label > _LABEL_INTERVAL_S:
                self._last_label = now
                paused = " · paused" if self.pause_event.is_set() else ""
                self.view.set_overall(
                    progress.fraction,
                    f"{progress.finished}/{progress.total} files · current: {self._current or '–'} · "
                    f"{format_duration(progress.eta_s)} left{paused}",
                )

    def _display(self, path: Path) -> str:
        for root in self.inputs:
            if root.is_dir():
                try:
                    return str(path.relative_to(root.parent))
                except ValueError:
                    continue
        return path.name

    def _on_finished(self, report: Any) -> None:
        if self._retrying and self.report is not None:
            report = self.report.merged_retry(report)
        self.report = report
        m = self.view.model
        if report.cancelled:
            for i, r in enumerate(m.rows):
                if r.status in ("waiting", "running", "paused"):
                    m.update_row(i, status="cancelled", detail="cancelled before it ran")
        from dipnet_core.batch import REPORT_NAME

        try:
            self._out_dir.mkdir(parents=True, exist_ok=True)
            self.report_path = report.save(self._out_dir / REPORT_NAME)
            where = f" · report: {self.report_path}"
        except OSError as exc:
            self.report_path = None
            where = f" · report not saved ({user_message(exc)})"
        existing = sum(1 for e in report.skipped if e.reason.startswith("output exists"))
        kept = f" (kept {existing} existing output{'s' * (existing != 1)})" if existing else ""
        summary = (
            f"{len(report.done)} done, {len(report.skipped)} skipped{kept}, {len(report.failed)} failed"
            f"{' (cancelled)' if report.cancelled else ''} in {format_duration(report.elapsed_s)}"
        )
        self.view.set_overall(1.0 if not report.cancelled else self.view.progress.value() / 1000, summary)
        self.view.report_label.setText(where.lstrip(" ·"))
        self._last_result = report

    def _on_done(self) -> None:
        self.task = None
        self.pause_event.clear()
        self.view.set_running(False)
        self.view.retry_btn.setEnabled(bool(self.report is not None and self.report.failed))
        self.finished.emit(self._last_result)
