"""The inference contract of a loaded model.

Everything the engine and the GUI need to know about a model (scale, channels,
input range, minimum size, tiling support, provenance) lives here, so no other
code hard-codes it. A descriptor read from a file is validated field by field:
model files come from anywhere, and a wrong type here would surface much later
as an unrelated crash.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import ModelError

DESCRIPTOR_KEY = "dipnet_descriptor"


# Far above any real model, low enough that a hostile value cannot make the load-time probe
# (an input of min_size pixels squared) or the engine's buffers explode.
_LIMITS = {"scale": 16, "in_channels": 64, "out_channels": 64, "min_size": 512}


class DescriptorError(ModelError, ValueError):
    """A descriptor read from a file is not valid JSON or breaks the contract; says which field and why."""


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
        """Parse and validate; raises :class:`DescriptorError` naming the problem. Ignores unknown keys."""
        try:
            d = json.loads(text)
        except (json.JSONDecodeError, TypeError) as exc:
            raise DescriptorError(f"it is not JSON ({exc})") from exc
        return cls.from_dict(d)

    @classmethod
    def from_dict(cls, d: Any) -> ModelDescriptor:
        if not isinstance(d, dict):
            raise DescriptorError(f"it must be a JSON object, not {_json_kind(d)}")
        missing = [k for k in ("arch", "scale") if k not in d]
        if missing:
            raise DescriptorError(f"required field(s) missing: {', '.join(missing)}")
        known = set(cls.__dataclass_fields__)
        values = {k: v for k, v in d.items() if k in known}
        values["arch"] = _text(values, "arch", allow_empty=False)
        for key in ("name", "source", "license"):
            if key in values:
                values[key] = _text(values, key)
        for key, maximum in _LIMITS.items():
            if key in values:
                values[key] = _count(values, key, 1, maximum)
        if "params" in values:
            values["params"] = _count(values, "params", 0, None)
        for key in ("tileable", "supports_half"):
            if key in values and not isinstance(values[key], bool):
                raise DescriptorError(f"'{key}' must be true or false, not {_json_kind(values[key])}")
        if "input_range" in values:
            values["input_range"] = _input_range(values["input_range"])
        if values.get("config") is not None and not isinstance(values["config"], dict):
            raise DescriptorError(f"'config' must be an object, not {_json_kind(values['config'])}")
        if "training" in values:
            training = values["training"]
            if training is None:  # a foreign file may hold null: it means "no record"
                values["training"] = {}
            elif not isinstance(training, dict):
                raise DescriptorError(f"'training' must be an object, not {_json_kind(training)}")
        return cls(**values)

    @property
    def val_psnr_y(self) -> float | None:
        """Validation PSNR-Y recorded by the training run: the exporter writes it under
        ``training["final"]``; older files kept it at the top level of ``training``."""
        training = self.training if isinstance(self.training, dict) else {}  # a foreign file may hold null
        final = training.get("final")
        v = final.get("psnr_y") if isinstance(final, dict) else training.get("psnr_y")
        return float(v) if isinstance(v, (int, float)) else None

    @property
    def comparison(self) -> dict[str, Any] | None:
        """The comparison a training run here recorded (new model vs its start and bicubic), or None."""
        training = self.training if isinstance(self.training, dict) else {}
        found = training.get("comparison")
        return found if isinstance(found, dict) else None

    def summary(self) -> str:
        widths = ""
        if self.config:
            from .config import DIPNetConfig

            widths = f", widths {DIPNetConfig.from_dict(self.config).widths_label()}"
        return f"{self.name or self.arch} x{self.scale} ({self.arch}, {self.params:,} params{widths})"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _text(values: dict[str, Any], key: str, allow_empty: bool = True) -> str:
    value = values[key]
    if not isinstance(value, str) or (not allow_empty and not value):
        kind = "a string" if allow_empty else "a non-empty string"
        raise DescriptorError(f"'{key}' must be {kind}, not {_json_kind(value)}")
    return value


def _count(values: dict[str, Any], key: str, minimum: int, maximum: int | None) -> int:
    value = values[key]
    # JSON has one number type: accept 4.0 for 4, refuse 2.5, true and "4".
    whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
    if isinstance(value, bool) or not whole or value < minimum or (maximum is not None and value > maximum):
        bounds = f"from {minimum} to {maximum}" if maximum is not None else f">= {minimum}"
        raise DescriptorError(f"'{key}' must be a whole number {bounds}, not {_json_kind(value)}")
    return int(value)


def _input_range(value: Any) -> tuple[float, float]:
    ok = (isinstance(value, (list, tuple)) and len(value) == 2
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
          and value[0] < value[1])
    if not ok:
        raise DescriptorError(f"'input_range' must be two finite numbers [low, high] with low < high, "
                              f"not {json.dumps(value)[:60]}")
    return float(value[0]), float(value[1])
