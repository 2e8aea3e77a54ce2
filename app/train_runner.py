"""Child-process entry point for training from the GUI (Qt-free).

Run as ``python -m app.train_runner RUN_DIR [--fresh]``; ``RUN_DIR/config.toml``
holds the run config (written by the GUI, or by an earlier run when resuming).
Every training event is printed to stdout as one JSON line; the GUI reads them
with a QProcess. Standard input is the control channel: a line ``cancel`` (or
stdin closing because the GUI went away) asks the pipeline to checkpoint and
stop, so an interrupted run can always be resumed.

The plot-worthy events (steps, validations, stage boundaries; no sample images) are also
appended to ``RUN_DIR/events.jsonl`` (:data:`HISTORY_FILE`), so a GUI that resumes the run can
redraw the curves of the earlier part; ``--fresh`` starts that file over.

Why a subprocess rather than a QThread: hour-long training holds the GIL in
many short Python steps, which would stutter the GUI; a crash or out-of-memory
in torch kills only the child; and the OS, not Python threads, shares the CPU.
"""

from __future__ import annotations

import argparse
import base64
import dataclasses
import json
import math
import sys
import threading
from pathlib import Path
from typing import Any, TextIO

import numpy as np

PROTOCOL = 1
HISTORY_FILE = "events.jsonl"
#: Events kept in the history file: what the Train tab's stage list and plots are drawn from.
HISTORY_EVENTS = frozenset({"StageStarted", "Step", "Validation", "StageFinished"})


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The recorded events of earlier sessions of this run, oldest first ([] if none)."""
    events: list[dict[str, Any]] = []
    try:
        lines = (Path(run_dir) / HISTORY_FILE).read_text(encoding="utf-8").splitlines()
    except OSError:
        return events
    for line in lines:
        try:
            ev = json.loads(line)
        except ValueError:
            continue  # a line cut short by a kill: the rest is still good
        if isinstance(ev, dict) and ev.get("type") in HISTORY_EVENTS:
            events.append(ev)
    return events


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        arr = np.ascontiguousarray(value.astype(np.uint8, copy=False))
        return {"__ndarray__": base64.b64encode(arr.tobytes()).decode("ascii"), "shape": list(arr.shape)}
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def encode_event(event: Any) -> str:
    fields = {f.name: _jsonable(getattr(event, f.name)) for f in dataclasses.fields(event)}
    return json.dumps({"type": type(event).__name__, **fields})


def decode_arrays(value: Any) -> Any:
    """Inverse of the ndarray encoding (used by the GUI side)."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            raw = base64.b64decode(value["__ndarray__"])
            return np.frombuffer(raw, dtype=np.uint8).reshape(value["shape"]).copy()
        return {k: decode_arrays(v) for k, v in value.items()}
    if isinstance(value, list):
        return [decode_arrays(v) for v in value]
    return value


def _watch_stdin(token: Any, stream: TextIO) -> None:
    for line in stream:
        if line.strip() == "cancel":
            break
    token.cancel()  # "cancel" or EOF: the GUI asked us to stop, or is gone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.train_runner")
    parser.add_argument("run_dir")
    parser.add_argument("--fresh", action="store_true", help="start over instead of resuming")
    args = parser.parse_args(argv)

    out = sys.stdout
    lock = threading.Lock()

    def send(obj: dict[str, Any]) -> None:
        with lock:
            out.write(json.dumps(obj) + "\n")
            out.flush()

    try:
        from dipnet_core.cancel import CancelToken
        from dipnet_core.train import resume_config, run_pipeline
        from dipnet_core.train.events import Event
    except ImportError as exc:
        send({"type": "Error", "message": f"training is not available in this build: {exc}"})
        return 2

    token = CancelToken()
    threading.Thread(target=_watch_stdin, args=(token, sys.stdin), daemon=True).start()

    history_path = Path(args.run_dir) / HISTORY_FILE
    if args.fresh:
        history_path.unlink(missing_ok=True)

    def callback(event: Event) -> None:
        line = encode_event(event)
        with lock:
            out.write(line + "\n")
            out.flush()
        if type(event).__name__ in HISTORY_EVENTS:
            record = json.loads(line)
            record.pop("sample", None)  # images are large and only the latest one is shown
            try:
                with history_path.open("a", encoding="utf-8") as f:
                    f.write(json.dumps(record) + "\n")
            except OSError:
                pass  # the history only redraws plots after a resume; training must go on

    try:
        cfg = resume_config(args.run_dir)
        send({"type": "Hello", "protocol": PROTOCOL, "run_dir": str(Path(args.run_dir).resolve())})
        result = run_pipeline(cfg, callback, token, resume=not args.fresh)
    except Exception as exc:  # noqa: BLE001 - reported to the GUI as an event, then a non-zero exit
        send({"type": "Error", "message": f"{type(exc).__name__}: {exc}"})
        return 1
    send(
        {
            "type": "Result",
            "status": result.status,
            "run_dir": str(result.run_dir),
            "model_path": str(result.model_path) if result.model_path else None,
            "onnx_path": str(result.onnx_path) if result.onnx_path else None,
            "metrics": _jsonable(result.metrics),
        }
    )
    return 0 if result.status == "done" else 3


if __name__ == "__main__":
    sys.exit(main())
