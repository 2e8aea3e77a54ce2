"""The inference contract of a loaded model.

Everything the engine and the GUI need to know about a model (scale, channels,
input range, minimum size, tiling support, provenance) lives here, so no other
code hard-codes it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

DESCRIPTOR_KEY = "dipnet_descriptor"


@dataclass
class ModelDescriptor:
    arch: str  # "dipnet", "onnx", or "spandrel:<architecture name>"
    scale: int
    in_channels: int = 3
    out_channels: int = 3
    input_range: tuple[float, float] = (0.0, 1.0)
    config: dict[str, Any] | None = None  # DIPNetConfig.to_dict() for the DIPNet family
    name: str = ""
    source: str = ""
    license: str = ""
    params: int = 0
    min_size: int = 1
    tileable: bool = True
    supports_half: bool = True
    training: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        d = asdict(self)
        d["input_range"] = list(self.input_range)
        return json.dumps(d, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> ModelDescriptor:
        d = json.loads(text)
        known = {f for f in cls.__dataclass_fields__}
        d = {k: v for k, v in d.items() if k in known}
        d["input_range"] = tuple(d.get("input_range", (0.0, 1.0)))
        return cls(**d)

    @property
    def val_psnr_y(self) -> float | None:
        """Validation PSNR-Y recorded by the training run: the exporter writes it under
        ``training["final"]``; older files kept it at the top level of ``training``."""
        training = self.training if isinstance(self.training, dict) else {}  # a foreign file may hold null
        final = training.get("final")
        v = final.get("psnr_y") if isinstance(final, dict) else training.get("psnr_y")
        return float(v) if isinstance(v, (int, float)) else None

    def summary(self) -> str:
        widths = ""
        if self.config:
            from .config import DIPNetConfig

            widths = f", widths {DIPNetConfig.from_dict(self.config).widths_label()}"
        return f"{self.name or self.arch} x{self.scale} ({self.arch}, {self.params:,} params{widths})"
