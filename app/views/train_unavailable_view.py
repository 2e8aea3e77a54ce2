"""The Train tab of the slim edition (a view): what the full edition adds, and where to get it.

Imports neither torch nor pyqtgraph, so the window builds in an install that has neither.
"""

from __future__ import annotations

import html
import re

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QLabel, QVBoxLayout, QWidget

from .common import hint_label

FULL_EDITION_ADDS = (
    "Training your own DIPNet model from a folder of your images, through every stage "
    "(teacher, distillation, pruning), with live plots and sample previews.",
    "Adapting a model to your kind of images (scans, game art, photos from one camera) "
    "by fine-tuning it on a few of them.",
    "Exporting models to ONNX and safetensors, and measuring a model's quality (PSNR/SSIM) on your images.",
)
GET_FULL_EDITION = (
    "Download the full edition from the same place as this one (the file without “slim” in its name). "
    "In a Python install, install PyTorch (<code>pip install torch</code>) and restart DIPNet Studio. "
    "Your models and settings carry over."
)


class TrainUnavailableView(QWidget):
    """Shown instead of the training form when this install cannot train (the slim edition)."""

    def __init__(self, missing: list[str], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.title = QLabel("<h2>Training is part of the full edition</h2>")
        items = "".join(f"<li>{html.escape(t)}</li>" for t in FULL_EDITION_ADDS)
        self.explanation = QLabel(
            "<p>This is the slim edition of DIPNet Studio: it upscales images and folders and manages "
            "models on ONNX Runtime, without the PyTorch deep-learning framework, which makes the full "
            "edition several hundred megabytes larger.</p>"
            f"<p><b>The full edition adds:</b></p><ul>{items}</ul>"
            f"<p><b>Where to get it:</b> {GET_FULL_EDITION}</p>"
        )
        self.explanation.setWordWrap(True)
        self.explanation.setTextFormat(Qt.TextFormat.RichText)
        self.explanation.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.missing = hint_label(f"Not found in this install: {', '.join(missing)}." if missing else "")
        lay = QVBoxLayout(self)
        lay.setContentsMargins(24, 24, 24, 24)
        lay.addWidget(self.title)
        lay.addWidget(self.explanation)
        lay.addWidget(self.missing)
        lay.addStretch(1)
        self.explanation.setMaximumWidth(760)

    def text(self) -> str:
        """The explanation as plain text (for tests and accessibility tools)."""
        rich = " ".join((self.title.text(), self.explanation.text(), self.missing.text()))
        return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", rich)).split())
