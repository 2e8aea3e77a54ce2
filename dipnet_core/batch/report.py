"""The outcome of a batch: what was done, skipped and failed, saved as JSON.

A saved report can be fed back (:meth:`BatchReport.failed_items`) to retry only
the failures, to the outputs originally planned for them.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from ..errors import InputError, OutputError, describe_os_error
from ..io import atomic_write_text
from ..io.atomic import file_blocking_folder
from .plan import BatchItem, image_pixels, validate_items

REPORT_NAME = "dipnet-batch-report.json"
_REPORT_VERSION = 1


class ReportError(InputError, ValueError):
    """A batch report file is missing or malformed."""


class ReportWriteError(OutputError):
    """A batch report could not be written (full disk, read-only folder, a file in the path)."""


@dataclass
class ReportEntry:
    input: Path
    output: Path | None = None
    reason: str = ""
    seconds: float = 0.0
    warning: str = ""  # e.g. only the first frame of an animation was upscaled

    def to_dict(self) -> dict[str, Any]:
        d: dict[str, Any] = {"input": str(self.input), "output": str(self.output) if self.output else None,
                             "reason": self.reason, "seconds": round(self.seconds, 4)}
        if self.warning:
            d["warning"] = self.warning
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> ReportEntry:
        return cls(input=Path(d["input"]), output=Path(d["output"]) if d.get("output") else None,
                   reason=str(d.get("reason", "")), seconds=float(d.get("seconds", 0.0)),
                   warning=str(d.get("warning", "")))


@dataclass
class BatchReport:
    done: list[ReportEntry] = field(default_factory=list)
    skipped: list[ReportEntry] = field(default_factory=list)
    failed: list[ReportEntry] = field(default_factory=list)
    cancelled: bool = False
    model: str = ""
    backend: str = ""
    self_ensemble: bool = False  # every item upscaled with the x8 "best quality" option
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    elapsed_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed and not self.cancelled

    @property
    def warnings(self) -> list[ReportEntry]:
        """Finished items that carry a warning (e.g. an animation reduced to its first frame)."""
        return [e for e in self.done if e.warning]

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": _REPORT_VERSION, "created": self.created, "model": self.model, "backend": self.backend,
            "self_ensemble": self.self_ensemble, "cancelled": self.cancelled,
            "elapsed_s": round(self.elapsed_s, 3),
            "counts": {"done": len(self.done), "skipped": len(self.skipped), "failed": len(self.failed),
                       "warnings": len(self.warnings)},
            "done": [e.to_dict() for e in self.done],
            "skipped": [e.to_dict() for e in self.skipped],
            "failed": [e.to_dict() for e in self.failed],
        }

    def save(self, path: str | Path) -> Path:
        """Write the report atomically; raises :class:`ReportWriteError` saying plainly what failed."""
        path = Path(path)
        blocker = file_blocking_folder(path.parent)
        if blocker is not None:
            raise ReportWriteError(f"cannot write the report {path}: '{blocker}' is a file, not a folder")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(path, json.dumps(self.to_dict(), indent=2) + "\n")
        except OSError as exc:
            raise ReportWriteError(f"cannot write the report {path}: {describe_os_error(exc)}") from exc
        return path

    @classmethod
    def load(cls, path: str | Path) -> BatchReport:
        path = Path(path)
        try:
            d = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                done=[ReportEntry.from_dict(e) for e in d.get("done", [])],
                skipped=[ReportEntry.from_dict(e) for e in d.get("skipped", [])],
                failed=[ReportEntry.from_dict(e) for e in d.get("failed", [])],
                cancelled=bool(d.get("cancelled", False)), model=str(d.get("model", "")),
                backend=str(d.get("backend", "")), self_ensemble=bool(d.get("self_ensemble", False)),
                created=str(d.get("created", "")),
                elapsed_s=float(d.get("elapsed_s", 0.0)),
            )
        except FileNotFoundError as exc:
            raise ReportError(f"batch report not found: {path}") from exc
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError,
                ValueError) as exc:
            raise ReportError(f"not a valid batch report: {path} ({exc})") from exc

    def failed_items(self) -> list[BatchItem]:
        """Items that retry the failures with the outputs originally planned for them."""
        items = []
        for i, e in enumerate(self.failed):
            if e.output is None:
                continue
            items.append(BatchItem(index=i, input=e.input, output=e.output, pixels=image_pixels(e.input)))
        return validate_items(items)

    def merged_retry(self, retry: BatchReport) -> BatchReport:
        """This report with its failures replaced by the outcome of retrying them."""
        return BatchReport(
            done=self.done + retry.done, skipped=self.skipped + retry.skipped, failed=retry.failed,
            cancelled=retry.cancelled, model=retry.model or self.model, backend=retry.backend or self.backend,
            self_ensemble=self.self_ensemble and retry.self_ensemble,  # true only if every item had it
            elapsed_s=self.elapsed_s + retry.elapsed_s,
        )
