"""The last stage of every run: an honest comparison of the new model with where it started.

The exported model (what the user would install), the model the run started
from (``student.from_model``; for a run from scratch, the built-in model, the
one it would replace) and plain bicubic are scored with the standard x4
protocol on the run's validation images (``--val`` or the held-out split) and
on a benchmark folder (Set5 when present). The result is the stage's metrics,
so it lands in ``metrics.json`` under the stable key ``"comparison"``, in the
:class:`~..events.Comparison` event and in :class:`~..events.RunFinished`; it is
also written into the exported model's descriptor (``training["comparison"]``), so
whoever installs the file later sees it. ``worse_than_reference`` tells a GUI to
warn before "Install as default".
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import dipnet_core

from ...eval import evaluate, evaluate_pairs
from ...models.loader import load_model, save_model
from ...resources import builtin_model_path
from .. import events as ev
from ..context import RunContext
from ..distributed import broadcast_object
from .common import done_metrics, resolve_model_path

__all__ = ["STAGE", "compare", "default_benchmark_dir"]

STAGE = "comparison"
_DEFAULT_BENCHMARK = Path("benchmarks") / "Set5"


def default_benchmark_dir() -> Path:
    """Set5 in the reference data folder beside the repository (``../shared/benchmarks/Set5``)."""
    return Path(dipnet_core.__file__).resolve().parents[1].parent / "shared" / _DEFAULT_BENCHMARK


def _benchmark(ctx: RunContext) -> tuple[Path | None, str]:
    """(benchmark folder, "") or (None, why there is none)."""
    value = ctx.config.compare.benchmark_dir
    if not value:
        return None, "off (compare.benchmark_dir is empty)"
    folder = default_benchmark_dir() if value == "auto" else Path(value)
    if not folder.is_dir() or not any(p.is_file() for p in folder.iterdir()):
        return None, f"no benchmark images at '{folder}'"
    return folder, ""


def _models(ctx: RunContext) -> tuple[dict[str, dict[str, str]], str | None]:
    """Models to score ({key: {label, path}}) and the key of the reference the new model must beat."""
    exported = ctx.state.get("exported", {}).get("model_path")
    if not exported:
        raise RuntimeError("the comparison needs the exported model; run the export stage first")
    models = {"new": {"label": f"new model ({Path(exported).stem})", "path": str(exported)}}
    reference = None
    start = ctx.config.student.from_model
    if start:
        path = resolve_model_path(start, "student.from_model")
        label = "built-in model (start)" if start == "builtin" else f"starting model ({path.name})"
        models["start"] = {"label": label, "path": str(path)}
        reference = "start"
    builtin = builtin_model_path()
    if builtin is not None and not (start and Path(models["start"]["path"]).resolve() == builtin.resolve()):
        models["builtin"] = {"label": "built-in model", "path": str(builtin)}
        reference = reference or "builtin"
    return models, reference


def _scores(results: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """{"psnr_y": {model: dB, ..., "bicubic": dB}, "ssim_y": {...}} from per-model evaluation results."""
    first = next(iter(results.values()))
    out: dict[str, Any] = {"n_images": first["n_images"]}
    for metric in ("psnr_y", "ssim_y"):
        row = {key: round(r["mean"][metric], 4) for key, r in results.items()}
        row["bicubic"] = round(first["mean"][f"bicubic_{metric}"], 4)
        out[metric] = row
    return out


def _summary(datasets: dict[str, dict[str, Any]], models: dict[str, dict[str, str]], reference: str | None
             ) -> tuple[dict[str, dict[str, float]], bool | None, str]:
    deltas: dict[str, dict[str, float]] = {}
    lines = []
    for name, d in datasets.items():
        p = d["psnr_y"]
        deltas[name] = {"vs_bicubic_db": round(p["new"] - p["bicubic"], 4)}
        parts = [f"new {p['new']:.2f} dB"]
        if reference is not None:
            deltas[name]["vs_reference_db"] = round(p["new"] - p[reference], 4)
            parts.append(f"{models[reference]['label']} {p[reference]:.2f} dB "
                         f"({p['new'] - p[reference]:+.2f})")
        parts.append(f"bicubic {p['bicubic']:.2f} dB ({p['new'] - p['bicubic']:+.2f})")
        lines.append(f"{name} ({d['n_images']} images, PSNR-Y): " + ", ".join(parts))
    worse = None
    if reference is not None and datasets:
        primary = "validation" if "validation" in datasets else next(iter(datasets))
        worse = bool(deltas[primary]["vs_reference_db"] < 0)
    return deltas, worse, "\n".join(lines)


def _record_in_model(path: Path, comparison: dict[str, Any]) -> None:
    """Keep the comparison in the model file's descriptor (rewritten atomically; weights unchanged)."""
    loaded = load_model(path)
    assert loaded.module is not None
    loaded.descriptor.training = {**(loaded.descriptor.training or {}), "comparison": comparison}
    save_model(path, loaded.module, loaded.descriptor)


def compare(ctx: RunContext) -> dict[str, Any]:
    """Score the exported model against its reference and bicubic; record and announce the result."""
    if ctx.is_done(STAGE):
        return done_metrics(ctx, STAGE)
    metrics: dict[str, Any] = {}
    if ctx.is_main:
        ctx.emit(ev.StageStarted(STAGE, 0))
        models, reference = _models(ctx)
        scale, device = ctx.config.data.scale, "cpu"
        datasets: dict[str, dict[str, Any]] = {}
        skipped: dict[str, str] = {}
        if ctx.val:
            pairs = [(it.name, it.lr, it.hr) for it in ctx.val]
            source = (f"--val folder '{ctx.config.data.val_dir}'" if ctx.config.data.val_dir
                      else "held out from the training folders")
            crop = f", centre crops of at most {ctx.config.data.val_crop} px" if ctx.config.data.val_crop else ""
            datasets["validation"] = {"source": source + crop, **_scores(
                {key: evaluate_pairs(m["path"], pairs, scale, device) for key, m in models.items()})}
        else:
            skipped["validation"] = "the run has no validation images"
        folder, why = _benchmark(ctx)
        if folder is not None:
            datasets[folder.name] = {"source": str(folder), **_scores(
                {key: evaluate(m["path"], folder, scale, device) for key, m in models.items()})}
        else:
            skipped["benchmark"] = why
        deltas, worse, summary = _summary(datasets, models, reference)
        metrics = {"models": models, "reference": reference, "datasets": datasets, "skipped": skipped,
                   "delta": deltas, "worse_than_reference": worse, "summary": summary}
        _record_in_model(Path(models["new"]["path"]), {
            k: metrics[k] for k in ("reference", "datasets", "delta", "worse_than_reference", "summary")})
        if worse:
            ctx.log(f"comparison: the new model is WORSE than the {models[str(reference)]['label']} on "
                    "the validation images; keep using that one")
    metrics = broadcast_object(metrics, ctx.dist)
    ctx.finish_stage(STAGE, metrics)
    ctx.emit(ev.Comparison(metrics))
    return metrics
