"""Does this machine compute what the int8 twin's recorded loss was measured on? Checked by running it.

An int8 twin records its PSNR-Y loss against fp32, measured on one machine. onnxruntime's
integer kernels do not compute the same function everywhere: on x86 CPUs without VNNI the
u8 x s8 kernels add pairs of products in int16 and saturate, so a twin with 8-bit weights
loses more there (the built-in twin: 0.033 dB on Set5 where it was measured, with VNNI;
0.061 dB on an AVX2-only EPYC). Rather than guess from CPU flags, the guard reruns the
twin and the fp32 graph on the probe image the twin carries (:data:`~dipnet_core.export.int8.PARITY_KEY`)
and compares the deviation with the one recorded beside the loss.

Rules, with the numbers measured on the AVX2-only EPYC (no VNNI, onnxruntime 1.32) for the
built-in model's 8-bit twin; its QDQ arithmetic run in float (which is what VNNI kernels
compute: it scores exactly the recorded 30.907 dB on Set5) stands in for the Zen 4 record:

* Loss predicted here = recorded worst loss x (RMS deviation here / recorded RMS)^2.
  For small losses the PSNR loss is proportional to the error power the int8 rounding
  adds, so the ratio of deviation powers scales the loss. Measured: RMS 1.527 levels here
  against 0.942 recorded, ratio^2 2.63, so 0.033 dB predicts 0.086 dB where Set5 really
  loses 0.061: the prediction errs on the safe side (saturation adds big errors in few
  pixels, which cost less PSNR than their power suggests). Rejected when over the bound.
* Outliers: the 99.9th percentile of the deviation may grow to at most 2x its record + 1
  level. Saturation shows there first: 11.1 levels here against 3.9 recorded; a twin with
  7-bit weights here: 4.43 against 4.41 for its float QDQ arithmetic.
* Twins from before the record existed (no probe): the guard runs them on a synthetic probe
  against their own QDQ arithmetic in float; a twin whose kernels stray from it (RMS over
  0.35 level or 99.9th percentile over 3 levels) is rejected as unverified. Measured: the
  8-bit twin here 0.74 / 6.4 levels, a 7-bit twin 0.001 / 0.016 (on photo crops up to
  0.34 / 0.87 for 7-bit, 0.40 / 3.7 and more for 8-bit). Twins whose kernels keep to their
  QDQ arithmetic compute what a VNNI machine computes, so their recorded loss holds.

The check costs about half a second (three small single-threaded sessions) and its verdict is
cached with the engine choice (:mod:`.autoselect`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import BackendUnavailable

if TYPE_CHECKING:
    from ...models import LoadedModel

log = logging.getLogger(__name__)

#: 99.9th-percentile deviation may grow to ``P999_FACTOR`` x its record + ``P999_SLACK_LEVELS``.
P999_FACTOR = 2.0
P999_SLACK_LEVELS = 1.0
#: Twins without a parity record: how far their kernels may stray from their own QDQ arithmetic (levels).
LEGACY_RMS_LEVELS = 0.35
LEGACY_P999_LEVELS = 3.0
#: Side of the synthetic probe used for twins without a record.
SYNTHETIC_PROBE_SIZE = 64


@dataclass
class Int8Verdict:
    """Whether this machine may auto-select the twin, why, and the numbers behind it."""

    ok: bool
    reason: str
    measured: dict[str, Any] = field(default_factory=dict)


def synthetic_probe(size: int = SYNTHETIC_PROBE_SIZE, channels: int = 3) -> np.ndarray:
    """A deterministic uint8 HWC image (blocks with hard edges, a ramp, pixel noise) from integer hashing.

    Integer arithmetic only, so every machine and numpy version makes the same pixels.
    """
    y, x = np.mgrid[0:size, 0:size].astype(np.int64)

    def hashed(a: np.ndarray) -> np.ndarray:
        a = (a * 2654435761) & 0xFFFFFFFF
        a ^= a >> 15
        a = (a * 2246822519) & 0xFFFFFFFF
        a ^= a >> 13
        return (a & 0xFFFF).astype(np.float64) / 65536.0

    planes = []
    for c in range(channels):
        blocks = hashed((y // 11) * 977 + (x // 9) * 131 + c * 7919)
        ramp = (x + 2 * y) / (3.0 * size)
        noise = hashed(y * size + x + 100003 * (c + 1)) - 0.5
        planes.append(np.clip(0.6 * blocks + 0.3 * ramp + 0.25 * noise, 0.0, 1.0))
    return np.clip(np.rint(np.stack(planes, -1) * 255.0), 0, 255).astype(np.uint8)


def _fp32_reference(model: LoadedModel) -> bytes | None:
    """The fp32 graph the twin's loss is measured against (the model itself), or None if there is none."""
    from ...export.int8 import is_int8_graph
    from .onnxruntime_backend import _onnx_bytes, grid_twin_of

    try:
        data = _onnx_bytes(model, "fp32")
    except BackendUnavailable:
        data = None
    if data is not None and is_int8_graph(data):
        path = getattr(model, "path", None)
        grid = grid_twin_of(path) if path is not None else None
        data = grid.read_bytes() if grid is not None else None
    return data


def _worst_loss(quality: dict[str, Any] | None) -> float | None:
    try:
        losses = [float(v) for v in (quality or {}).get("loss_db", {}).values()]
    except (TypeError, ValueError, AttributeError):
        return None
    return max(losses) if losses else None


def check_twin(twin: bytes, reference: bytes | None, bound_db: float) -> Int8Verdict:
    """Run ``twin`` (and the fp32 ``reference``) on the twin's probe here; compare with its record."""
    from ...export.int8 import decode_probe, probe_deviations, read_int8_parity, read_int8_quality

    quality = read_int8_quality(twin)
    worst = _worst_loss(quality)
    record = read_int8_parity(twin)
    if record is None or "vs_fp32" not in record or "probe" not in record:
        return _check_legacy(twin)
    try:
        probe = decode_probe(record["probe"])
        ref_rms = float(record["vs_fp32"]["rms"])
        ref_p999 = float(record["vs_fp32"]["p999"])
    except (ValueError, KeyError, TypeError) as exc:
        return Int8Verdict(False, f"int8 twin rejected: its parity record is damaged ({exc})")
    where = (record.get("machine") or {}).get("cpu") or "the exporting machine"
    if reference is None:
        # Without the fp32 graph only the kernels against the twin's own arithmetic can be checked.
        legacy = _check_legacy(twin, probe)
        legacy.reason += " (no fp32 graph to compare with here)"
        return legacy
    here = probe_deviations(twin, reference, probe)
    dev = here["vs_fp32"]
    measured: dict[str, Any] = {"vs_fp32": dev, "vs_qdq": here["vs_qdq"], "recorded": record.get("vs_fp32"),
                                "recorded_on": where}
    power = (dev["rms"] / ref_rms) ** 2 if ref_rms > 0 else (1.0 if dev["rms"] == 0 else float("inf"))
    measured["power_ratio"] = round(power, 3)
    why_cpu = ""
    rec_qdq = record.get("vs_qdq") or {}
    if here["vs_qdq"]["rms"] > 2 * float(rec_qdq.get("rms", 0.0)) + 0.1:
        why_cpu = (f"; its int8 kernels here stray {here['vs_qdq']['rms']:.2f} levels RMS from its own QDQ "
                   f"arithmetic (recorded {float(rec_qdq.get('rms', 0.0)):.2f})"
                   + ("" if _has_vnni() else ", as u8 x s8 products saturate without VNNI"))
    if worst is not None:
        predicted = worst * max(1.0, power)
        measured["predicted_loss_db"] = round(predicted, 4)
        if predicted > bound_db:
            return Int8Verdict(False, (
                f"int8 twin rejected: on this CPU it deviates {dev['rms']:.2f} levels RMS from fp32 on its "
                f"probe, {power:.1f}x the error power recorded on {where} ({ref_rms:.2f}); its recorded loss "
                f"{worst:.3f} dB scales to {predicted:.3f} dB here (bound {bound_db} dB){why_cpu}"), measured)
    limit = P999_FACTOR * ref_p999 + P999_SLACK_LEVELS
    if dev["p999"] > limit:
        return Int8Verdict(False, (
            f"int8 twin rejected: on this CPU its largest deviations from fp32 (99.9th percentile "
            f"{dev['p999']:.1f} levels) exceed {limit:.1f}, twice those recorded on {where} ({ref_p999:.1f}) "
            f"plus one level{why_cpu}"), measured)
    return Int8Verdict(True, (f"int8 twin verified on this CPU: {dev['rms']:.2f} levels RMS from fp32 on its "
                              f"probe, recorded {ref_rms:.2f} on {where}"), measured)


def _has_vnni() -> bool:
    from .. import hardware

    return hardware.has_vnni()


def _check_legacy(twin: bytes, probe: np.ndarray | None = None) -> Int8Verdict:
    """A twin without a parity record: accept it only if its kernels keep to its own QDQ arithmetic here."""
    from ...export.int8 import probe_deviations

    probe = synthetic_probe() if probe is None else probe
    dev = probe_deviations(twin, None, probe)["vs_qdq"]
    measured = {"vs_qdq": dev, "unverified": True}
    if dev["rms"] > LEGACY_RMS_LEVELS or dev["p999"] > LEGACY_P999_LEVELS:
        return Int8Verdict(False, (
            f"int8 twin rejected: it has no parity record, and its int8 kernels here stray {dev['rms']:.2f} "
            f"levels RMS (99.9th percentile {dev['p999']:.1f}) from its own QDQ arithmetic, more than "
            f"{LEGACY_RMS_LEVELS} / {LEGACY_P999_LEVELS}" + ("" if _has_vnni() else
                                                              " (u8 x s8 saturation without VNNI)")), measured)
    return Int8Verdict(True, (f"int8 twin has no parity record; its kernels here keep to its QDQ arithmetic "
                              f"({dev['rms']:.2f} levels RMS), so its recorded loss holds"), measured)


def check_model_twin(model: LoadedModel, bound_db: float) -> Int8Verdict:
    """:func:`check_twin` for ``model``'s int8 twin beside it; failures to run are a rejection, with why."""
    from .onnxruntime_backend import int8_twin_path

    twin = int8_twin_path(model)
    if twin is None:
        return Int8Verdict(False, "no int8 twin (dipnet export --int8 makes one)")
    try:
        return check_twin(twin.read_bytes(), _fp32_reference(model), bound_db)
    except (OSError, RuntimeError, ValueError, BackendUnavailable) as exc:
        return Int8Verdict(False, f"int8 twin rejected: its parity check could not run here ({exc})")
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own pybind exception family
        return Int8Verdict(False, f"int8 twin rejected: its parity check could not run here ({exc})")
