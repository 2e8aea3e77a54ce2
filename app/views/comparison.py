"""How a trained model compares with its starting point and bicubic, for the Train and Models tabs.

The comparison itself is computed by the run's last stage (``dipnet_core.train.stages.compare``)
and stored in the run's metrics and in the exported model file; this module only shows it and
asks before a model that lost to its starting point becomes the default.
"""

from __future__ import annotations

from html import escape
from typing import Any

from PySide6.QtWidgets import QMessageBox, QWidget

__all__ = ["comparison_html", "comparison_summary", "confirm_install"]


def comparison_summary(comparison: dict[str, Any] | None) -> str:
    """The comparison's one-line-per-data-set text ("" when there is none)."""
    return str((comparison or {}).get("summary") or "")


def _label(comparison: dict[str, Any], key: str) -> str:
    if key == "bicubic":
        return "bicubic"
    models = comparison.get("models") or {}
    label = (models.get(key) or {}).get("label") if isinstance(models.get(key), dict) else None
    return str(label or {"new": "new model", "start": "starting model", "builtin": "built-in model"}.get(key, key))


def comparison_html(comparison: dict[str, Any] | None) -> str:
    """A small PSNR-Y table (rows: models and bicubic; columns: data sets) plus the verdict."""
    if not comparison:
        return ""
    datasets: dict[str, Any] = comparison.get("datasets") or {}
    if not datasets:
        skipped = "; ".join(f"{k}: {v}" for k, v in (comparison.get("skipped") or {}).items())
        return escape("No comparison data" + (f" ({skipped})" if skipped else "") + ".")
    keys: list[str] = []
    for d in datasets.values():
        for key in (d.get("psnr_y") or {}):
            if key not in keys:
                keys.append(key)
    keys.sort(key=lambda k: (k != "new", k == "bicubic"))  # new first, bicubic last
    head = "".join(f"<th>&nbsp;{escape(name)}&nbsp;</th>" for name in datasets)
    rows = []
    for key in keys:
        cells = []
        for d in datasets.values():
            value = (d.get("psnr_y") or {}).get(key)
            cells.append(f"<td align='right'>&nbsp;{value:.2f}&nbsp;</td>" if isinstance(value, (int, float))
                         else "<td></td>")
        name = escape(_label(comparison, key))
        rows.append(f"<tr><td>{'<b>' + name + '</b>' if key == 'new' else name}</td>{''.join(cells)}</tr>")
    verdict = ""
    worse = comparison.get("worse_than_reference")
    ref = comparison.get("reference")
    if worse is True:
        verdict = (f"<p style='color:#d63a3a'><b>The new model is worse than the {escape(_label(comparison, ref))}"
                   " on the validation images.</b></p>")
    elif worse is False:
        verdict = f"<p>The new model beats the {escape(_label(comparison, ref))} on the validation images.</p>"
    return (f"<p><b>Comparison (PSNR-Y, dB)</b></p><table cellspacing='0'><tr><th></th>{head}</tr>"
            f"{''.join(rows)}</table>{verdict}")


def confirm_install(parent: QWidget | None, name: str, comparison: dict[str, Any] | None) -> bool:
    """True if ``name`` may become the default: always without a comparison or when it is not worse
    than its reference; otherwise only when the user answers Yes (the default button is No)."""
    if not comparison or comparison.get("worse_than_reference") is not True:
        return True
    answer = QMessageBox.question(
        parent,
        "Install a model that is worse?",
        f"“{name}” scored worse than the model it started from:\n\n{comparison_summary(comparison)}\n\n"
        "Make it the default model anyway?",
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.No,
        QMessageBox.StandardButton.No,
    )
    return answer == QMessageBox.StandardButton.Yes
