"""``dipnet info``: describe a model file (architecture, widths, cost, usable backends)."""

from __future__ import annotations

import argparse
import json
from typing import Any

from .common import EXIT_OK, load


def add_parser(sub: Any) -> None:
    p = sub.add_parser("info", help="describe a model file")
    p.add_argument("model", nargs="?", metavar="MODEL", help="model file (default: the built-in model)")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def info_dict(loaded: Any) -> dict[str, Any]:
    import dataclasses

    from ..engine import available_backends
    from ..models import DIPNetConfig

    d = loaded.descriptor
    info: dict[str, Any] = {"path": str(loaded.source_file) if loaded.source_file else None,
                            "descriptor": json.loads(d.to_json())}
    if d.config:
        cfg = DIPNetConfig.from_dict(d.config)
        info["widths"] = {"feat": cfg.feat, "label": cfg.widths_label(),
                          "blocks": [dataclasses.asdict(b) for b in cfg.blocks]}
        info["macs_per_input_pixel"] = cfg.macs_per_input_pixel()
    info["params"] = d.params
    info["backends"] = available_backends()
    from ..engine.backends.autoselect import cache_key, load_cached

    choice = load_cached(cache_key(loaded))
    info["auto_choice"] = choice.to_json() if choice else None
    info["int8_twin"] = _int8_twin_info(loaded, choice)
    return info


def _int8_twin_info(loaded: Any, choice: Any) -> dict[str, Any] | None:
    """The int8 twin beside the model and whether auto may use it here (the cached verdict, else checked now)."""
    from ..engine.backends.autoselect import INT8_BOUND_DB, INT8_LABEL, int8_quality_ok
    from ..engine.backends.onnxruntime_backend import int8_twin_path

    twin = int8_twin_path(loaded)
    if twin is None:
        return None
    if choice is not None and choice.int8_check:
        return {"path": str(twin), **choice.int8_check, "cached": True}
    if choice is not None and INT8_LABEL in choice.excluded:
        return {"path": str(twin), "ok": False, "reason": choice.excluded[INT8_LABEL], "cached": True}
    ok, why = int8_quality_ok(loaded)
    if not ok:
        return {"path": str(twin), "ok": False, "reason": why, "cached": False}
    from ..engine.backends.int8_guard import check_model_twin

    verdict = check_model_twin(loaded, INT8_BOUND_DB)  # ~0.5 s: three small sessions on the probe
    return {"path": str(twin), "ok": verdict.ok, "reason": f"{why}; {verdict.reason}", "measured": verdict.measured,
            "cached": False}


def run(args: argparse.Namespace) -> int:
    loaded = load(args.model)
    info = info_dict(loaded)
    if args.json:
        print(json.dumps(info, indent=2))
        return EXIT_OK
    d = loaded.descriptor
    rows = [("model", d.name or "(unnamed)"), ("file", info["path"] or "-"), ("architecture", d.arch),
            ("scale", f"x{d.scale}"), ("channels", f"{d.in_channels} -> {d.out_channels}"),
            ("parameters", f"{d.params:,}")]
    if "widths" in info:
        w = info["widths"]
        blocks = ", ".join(f"{b['mid1']}/{b['mid2']}/esa{b['esa']}" for b in w["blocks"])
        rows.append(("widths", f"features {w['feat']}; blocks {blocks}"))
        macs = info["macs_per_input_pixel"]
        rows.append(("MACs", f"{macs:,} per input pixel ({macs / 1e3:.0f} GMAC per input megapixel)"))
    rows += [("input range", f"{d.input_range[0]:g}..{d.input_range[1]:g}"), ("min size", f"{d.min_size} px"),
             ("tileable", "yes" if d.tileable else "no"),
             ("half precision", "yes" if d.supports_half else "no")]
    if d.source:
        rows.append(("source", d.source))
    if d.license:
        rows.append(("license", d.license))
    usable = [f"{b['backend']} {b['device']} ({'/'.join(b['precisions'])})" for b in info["backends"]
              if b["available"]]
    # dict.fromkeys: onnxruntime's CUDA and TensorRT providers give the same line.
    missing = list(dict.fromkeys(f"{b['backend']} {b['device']}: {b['detail']}" for b in info["backends"]
                                 if not b["available"]))
    rows.append(("backends", ", ".join(usable) or "none"))
    choice = info.get("auto_choice")
    rows.append(("auto choice", choice["reason"] if choice else "not measured yet (the first upscale measures it)"))
    twin = info.get("int8_twin")
    if twin:
        rows.append(("int8 twin", ("usable by auto here: " if twin["ok"] else "not used by auto here: ")
                     + twin["reason"]))
    if missing:
        rows.append(("unavailable", "; ".join(missing)))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k.ljust(width)}  {v}")
    return EXIT_OK
