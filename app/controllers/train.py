"""Train tab logic: build a run config, run it in a child process, show its events, install the model.

Why a subprocess (``python -m app.train_runner``) and not a QThread: see
:mod:`app.train_runner`. In short, training is hours of Python-heavy steps that
would contend with the GUI for the GIL; in a child process the GUI never
stutters, a crash in torch cannot take the app down, and the OS shares the CPU.
The process is owned by this controller (not by the tab's widgets), so
switching tabs never affects it; events arrive as JSON lines on its stdout.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sys
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, QProcess, QProcessEnvironment, QTimer, Signal

from ..errors import ErrorReporter, user_message
from ..services.models import stored_comparison
from ..train_runner import decode_arrays
from ..views.comparison import confirm_install
from ..views.train_view import TrainView
from .context import AppContext, TabController

log = logging.getLogger(__name__)

STOP_GRACE_MS = 60_000  # a step plus a checkpoint; after that the process is killed


def train_available() -> str | None:
    """None if the training module can be used, else why not."""
    try:
        import dipnet_core.train  # noqa: F401
        from dipnet_core.train import run_pipeline  # noqa: F401
    except Exception as exc:  # noqa: BLE001 - any import problem means "not available"
        return f"dipnet_core.train not available ({exc})"
    return None



def train_runner_command(run_dir: Path, fresh: bool) -> tuple[str, list[str]]:
    """(program, arguments) that start the training child for ``run_dir``.

    From a Python install that is ``python -m app.train_runner``; a frozen bundle
    (PyInstaller) has no ``python``, its executable is the app itself, which
    hands ``--train-runner`` straight to :mod:`app.train_runner` (see ``app.__main__``).
    """
    tail = [str(run_dir)] + (["--fresh"] if fresh else [])
    if getattr(sys, "frozen", False):
        return sys.executable, ["--train-runner", *tail]
    return sys.executable, ["-m", "app.train_runner", *tail]

class TrainController(TabController):
    """Train tab: drives the TrainView's form and monitor; touches the run folder, its child process
    and (on install) the model library."""

    event = Signal(dict)  # every decoded event (tests and the responsiveness probe listen)
    runFinished = Signal(str)  # status: done | cancelled | failed
    installed = Signal(object)  # ModelEntry
    view: TrainView

    def __init__(
        self,
        view: TrainView,
        ctx: AppContext,
        reporter: ErrorReporter | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(view, ctx, reporter, parent)
        self.process: QProcess | None = None
        self.run_dir: Path | None = None
        self.result: dict[str, Any] | None = None
        self.comparison: dict[str, Any] | None = None  # the run's closing comparison, once it came
        self._buffer = b""
        self._stage_offset = 0
        self._stage_totals: dict[str, int] = {}
        self._current_stage = ""
        self._val_every = 0  # the run's validation interval in steps (0: none during a stage)
        self._last_step: tuple[int, int] | None = None  # (step, total) of the latest Step event
        self._status = ""
        self._errors: list[str] = []
        self._kill_timer = QTimer(self)
        self._kill_timer.setSingleShot(True)
        self._kill_timer.timeout.connect(self._kill)

        s = ctx.settings
        view.form.add_data_dirs([Path(d) for d in s.train_dirs])
        view.form.val_edit.setText(s.train_val_dir)
        view.form.name_edit.setText(s.train_name)
        view.form.set_preset_name(s.train_preset)
        view.form.presetChanged.connect(self.load_preset)
        view.form.optionsChanged.connect(self._save_options)
        view.form.startRequested.connect(lambda: self.start(fresh=True))
        view.form.resumeRequested.connect(lambda: self.start(fresh=False))
        view.form.cancelRequested.connect(self.cancel)
        view.monitor.installRequested.connect(self.install)
        self.load_preset(view.form.preset_name())
        reason = train_available()
        if reason:
            view.banner.show_message(f"Training is not available in this build: {reason}", "info")
            view.form.start_btn.setEnabled(False)

    # ------------------------------------------------------------------ config
    def load_preset(self, name: str) -> None:
        if train_available():
            return
        from dipnet_core.train import preset

        cfg = preset(name)
        v = self.view
        v.form.feat_spin.setValue(cfg.student.feat)
        v.form.teacher_steps.setValue(cfg.teacher.steps)
        v.form.distill_steps.setValue(sum(s.steps for s in cfg.distill.stages))
        v.form.prune_rounds.setValue(cfg.prune.rounds if cfg.prune.enabled else 0)
        v.form.finetune_steps.setValue(cfg.finetune.steps)
        v.form.device_combo.setCurrentText(cfg.run.device if cfg.run.device in ("auto", "cpu", "cuda") else "auto")
        v.form.set_teacher_kind(cfg.teacher.kind)
        # A preset's own teacher file ("builtin": the built-in model's teacher) fills the field.
        v.form.teacher_edit.setText(cfg.teacher.path or "" if cfg.teacher.kind == "file" else "")
        self._save_options()

    def _save_options(self) -> None:
        s = self.ctx.settings
        s.train_dirs = self.view.form.data_dirs()
        s.train_val_dir = self.view.form.val_edit.text().strip()
        s.train_name = self.view.form.name_edit.text().strip() or "my-dipnet"
        s.train_preset = self.view.form.preset_name()
        self.ctx.store.save()
        self.view.form.set_resume_available(self._resumable(self.run_dir_for(s.train_name)))

    def run_dir_for(self, name: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip("-.") or "run"
        return self.ctx.store.paths.runs_dir / safe

    @staticmethod
    def _resumable(run_dir: Path) -> bool:
        state = run_dir / "state.json"
        if not (run_dir / "config.toml").exists() or not state.exists():
            return False
        try:
            return "export" not in json.loads(state.read_text(encoding="utf-8")).get("done", [])
        except (OSError, ValueError):
            return False

    def build_config(self) -> Any:
        from dipnet_core.train import preset

        v = self.view
        cfg = preset(v.form.preset_name())
        cfg.data.train_dirs = v.form.data_dirs()
        cfg.data.val_dir = v.form.val_edit.text().strip() or None
        kind = v.form.teacher_kind()
        cfg.teacher.kind = kind
        cfg.teacher.path = v.form.teacher_edit.text().strip() or None if kind == "file" else None
        cfg.teacher.steps = v.form.teacher_steps.value()
        feat = v.form.feat_spin.value()
        if feat != cfg.student.feat:
            # A changed width is a new architecture: the preset's own starting model no longer fits.
            cfg.student.feat = cfg.student.mid = feat
            cfg.student.from_model = None
        # Scale every progressive distillation stage so their total matches the edited number.
        total = sum(s.steps for s in cfg.distill.stages) or 1
        want = v.form.distill_steps.value()
        for st in cfg.distill.stages:
            st.steps = max(1, round(st.steps * want / total))
        rounds = v.form.prune_rounds.value()
        cfg.prune.enabled = rounds > 0
        cfg.prune.rounds = max(rounds, 1) if rounds else cfg.prune.rounds
        cfg.finetune.steps = v.form.finetune_steps.value()
        cfg.run.device = v.form.device_combo.currentText()
        name = v.form.name_edit.text().strip() or "my-dipnet"
        cfg.export.name = name
        cfg.run.out_dir = str(self.run_dir_for(name))
        cfg.validate()
        return cfg

    # ------------------------------------------------------------------ running
    @property
    def running(self) -> bool:
        return self.process is not None

    def start(self, fresh: bool = True) -> None:
        if self.running:
            return
        if train_available():
            self.view.banner.show_message(str(train_available()), "error")
            return
        from dipnet_core.train import save_config, stage_plan
        from dipnet_core.train.config import ConfigError

        self._save_options()
        if fresh:
            if not self.view.form.data_dirs():
                self.view.banner.show_message("Add at least one folder of training images.", "error")
                return
            try:
                cfg = self.build_config()
            except ConfigError as exc:
                self.view.banner.show_message(f"Invalid settings: {exc}", "error")
                return
            run_dir = Path(cfg.run.out_dir)
            try:
                save_config(cfg, run_dir / "config.toml")
            except OSError as exc:
                self.view.banner.show_message(user_message(exc, "Cannot create the run folder"), "error")
                return
        else:
            run_dir = self.run_dir_for(self.ctx.settings.train_name)
            from dipnet_core.train import resume_config

            try:
                cfg = resume_config(run_dir)
            except (ConfigError, OSError) as exc:
                self.view.banner.show_message(user_message(exc, "Cannot resume"), "error")
                return
        self.run_dir = run_dir
        self.result = None
        self._errors = []
        self._status = ""
        self._stage_offset = 0
        self._stage_totals = {}
        self._current_stage = ""
        self._last_step = None
        self.comparison = None
        self._val_every = int(cfg.run.val_every)
        self.view.banner.hide()
        self.view.monitor.clear_plots()
        self.view.monitor.set_stages(stage_plan(cfg))
        self.view.monitor.show_result("", False)
        self.view.monitor.show_estimate(None)
        self.view.monitor.show_comparison(None)
        if not fresh:
            self._replay_history(run_dir)
        self.view.monitor.stage_label.setText("Starting…")
        self.view.monitor.progress.setRange(0, 0)

        proc = QProcess(self)
        env = QProcessEnvironment.systemEnvironment()
        env.insert("PYTHONUNBUFFERED", "1")
        # The child needs to import `app` and `dipnet_core` exactly as this process does.
        root = str(Path(__file__).resolve().parents[2])
        env.insert("PYTHONPATH", os.pathsep.join(p for p in (root, env.value("PYTHONPATH")) if p))
        proc.setProcessEnvironment(env)
        proc.setProcessChannelMode(QProcess.ProcessChannelMode.SeparateChannels)
        proc.readyReadStandardOutput.connect(self._read_stdout)
        proc.readyReadStandardError.connect(self._read_stderr)
        proc.finished.connect(self._on_finished)
        proc.errorOccurred.connect(self._on_process_error)
        program, args = train_runner_command(run_dir, fresh)
        self.process = proc
        self._buffer = b""
        self.view.form.set_running(True)
        proc.start(program, args)

    def _replay_history(self, run_dir: Path) -> None:
        """Redraw the stage list and curves of the run's earlier sessions (resume keeps its history)."""
        from ..train_runner import read_history

        for ev in read_history(run_dir):
            self._dispatch(ev, replay=True)

    def _next_validation(self, step: int, total: int) -> int | None:
        """The step of the stage's next validation: every ``val_every`` steps, and at its end."""
        if step >= total:
            return None
        if self._val_every <= 0:
            return total
        return min(total, (step // self._val_every + 1) * self._val_every)

    def cancel(self) -> None:
        if self.process is None:
            return
        self.view.monitor.stage_label.setText("Stopping after this step…")
        self.process.write(b"cancel\n")
        self._kill_timer.start(STOP_GRACE_MS)

    def _kill(self) -> None:
        if self.process is not None:
            log.warning("training process did not stop in time; killing it")
            self.process.kill()

    def shutdown(self, timeout_ms: int = 30_000) -> None:
        """On app exit: ask the run to checkpoint and stop, wait a bit, then kill."""
        proc = self.process
        if proc is None:
            return
        proc.write(b"cancel\n")
        proc.closeWriteChannel()
        if not proc.waitForFinished(timeout_ms):
            proc.kill()
            proc.waitForFinished(2000)
        # Handle the end now (not via the queued signal): the window is about to go away.
        self._on_finished(proc.exitCode(), proc.exitStatus())

    # ------------------------------------------------------------------ events
    def _read_stderr(self) -> None:
        if self.process is not None:
            text = bytes(self.process.readAllStandardError().data()).decode("utf-8", "replace").strip()
            if text:
                log.info("training stderr: %s", text)

    def _read_stdout(self) -> None:
        if self.process is None:
            return
        self._buffer += bytes(self.process.readAllStandardOutput().data())
        *lines, self._buffer = self._buffer.split(b"\n")
        for raw in lines:
            line = raw.strip()
            if not line:
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                log.info("training: %s", line.decode("utf-8", "replace"))
                continue
            if isinstance(ev, dict) and "type" in ev:
                self._dispatch(decode_arrays(ev))

    def _dispatch(self, ev: dict[str, Any], replay: bool = False) -> None:
        """Show one event; ``replay``: an event of an earlier session, redrawn on resume (not re-announced)."""
        t = ev["type"]
        v = self.view
        if t == "StageStarted":
            self._current_stage = ev["stage"]
            self._stage_totals[ev["stage"]] = int(ev["total_steps"])
            v.monitor.set_stage_state(ev["stage"], "running")
            v.monitor.mark_stage_start(self._stage_offset, ev["stage"])
            v.monitor.progress.setRange(0, max(1, int(ev["total_steps"])))
            v.monitor.progress.setValue(int(ev.get("start_step", 0)))
            v.monitor.step_label.setText("resuming…" if ev.get("start_step") else "")
        elif t == "Step":
            step, total = int(ev["step"]), int(ev["total"])
            self._last_step = (step, total)
            v.monitor.set_step(
                step, total, float(ev["eta_s"] or 0.0), ev["losses"], float(ev["lr"]),
                self._next_validation(step, total),
            )
            v.monitor.add_losses(self._stage_offset + step, ev["losses"])
        elif t == "Validation":
            if ev.get("psnr_y") is not None:
                v.monitor.add_psnr(self._stage_offset + int(ev["step"]), float(ev["psnr_y"]))
            if ev.get("sample"):
                v.monitor.set_sample(ev["sample"])
        elif t == "StageFinished":
            v.monitor.set_stage_state(ev["stage"], "done")
            self._stage_offset += self._stage_totals.get(ev["stage"], 0)
        elif t == "Estimate":
            v.monitor.show_estimate(float(ev.get("total_s") or 0.0))
        elif t == "Comparison":
            self._show_comparison(ev.get("comparison"))
        elif t == "RunFinished":
            v.monitor.finish_stage_placeholders()
            metrics = ev.get("metrics") or {}
            found = ev.get("comparison") or (metrics.get("comparison") if isinstance(metrics, dict) else None)
            if found:
                self._show_comparison(found)
        elif t == "Error":
            self._errors.append(str(ev.get("message", "")))
        elif t == "Log":
            log.info("training: %s", ev.get("message"))
        elif t == "Result":
            self.result = ev
            self._status = ev.get("status", "")
        if not replay:
            self.event.emit(ev)

    def _show_comparison(self, comparison: Any) -> None:
        if isinstance(comparison, dict) and comparison:
            self.comparison = comparison
            self.view.monitor.show_comparison(comparison)

    def _on_process_error(self, error: QProcess.ProcessError) -> None:
        if error == QProcess.ProcessError.FailedToStart:
            self._errors.append(f"could not start {sys.executable}")
            self._on_finished(-1, QProcess.ExitStatus.CrashExit)

    def _on_finished(self, code: int, status: QProcess.ExitStatus) -> None:
        if self.process is None:
            return
        self._read_stdout()
        self._kill_timer.stop()
        self.process.deleteLater()
        self.process = None
        self.view.form.set_running(False)
        if self._current_stage and self._status != "done":
            self.view.monitor.set_stage_state(
                self._current_stage, "cancelled" if self._status == "cancelled" else "failed"
            )
        if self._status == "done" and self.result and self.result.get("model_path"):
            metrics = self.result.get("metrics") or {}
            psnr = _final_psnr(metrics)
            self.view.monitor.stage_label.setText("Finished")
            self.view.monitor.progress.setRange(0, 1)
            self.view.monitor.progress.setValue(1)
            self.view.monitor.show_result(
                f"Model ready: {Path(self.result['model_path']).name}"
                + (f" · validation PSNR-Y {psnr:.2f} dB" if psnr else ""),
                True,
            )
            final = "done"
        elif self._status == "cancelled":
            self.view.monitor.stage_label.setText("Stopped — press Resume to continue")
            final = "cancelled"
        else:
            why = self._errors[-1] if self._errors else f"the training process exited with code {code}"
            self.view.monitor.stage_label.setText("Failed")
            self.view.banner.show_message(f"Training failed: {why}. Log: {self.run_dir}/log.txt", "error")
            final = "failed"
        if final != "done":
            # The time estimate belonged to the running process: replace it with where the run stopped.
            self.view.monitor.set_stopped(self._last_step)
        self._save_options()  # refreshes the Resume button
        self.runFinished.emit(final)

    # ------------------------------------------------------------------ install
    def install(self) -> Any:
        if not self.result or not self.result.get("model_path"):
            return None
        from dipnet_core.models import ModelLoadError

        metrics = self.result.get("metrics") or {}
        psnr = _final_psnr(metrics)
        name = self.view.form.name_edit.text().strip() or Path(self.result["model_path"]).stem
        comparison = stored_comparison(self.result["model_path"]) or self.comparison
        if comparison:
            self.view.monitor.show_comparison(comparison)
        if not confirm_install(self.view, name, comparison):
            self.view.monitor.show_result("Not installed: the new model is worse than the one it started "
                                          "from (see the comparison).", True)
            return None
        try:
            entry = self.ctx.library.import_file(
                self.result["model_path"],
                name=name,
                origin="trained",
                metrics={"psnr_y": psnr} if psnr else None,
            )
        except ModelLoadError as exc:
            self.view.banner.show_message(user_message(exc), "error")
            return None
        # Installing makes it the current model, so the Upscale tab uses it right away.
        self.ctx.library.set_default(entry.id)
        self.view.monitor.show_result(f"Installed “{entry.name}” and made it the default model.", False)
        self.installed.emit(entry)
        return entry


def _final_psnr(metrics: dict[str, Any]) -> float | None:
    """The last stage's validation PSNR found in the run metrics (layout: {stage: {psnr_y: ..}})."""
    best = None
    if isinstance(metrics.get("psnr_y"), (int, float)):
        return float(metrics["psnr_y"])
    for value in metrics.values():
        if isinstance(value, dict) and isinstance(value.get("psnr_y"), (int, float)):
            best = float(value["psnr_y"])
    return best
