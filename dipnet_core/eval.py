"""Benchmark evaluation with the standard SR protocol.

HR -> modcrop(scale) -> LR by MATLAB-compatible bicubic (rounded to uint8) ->
model -> round to uint8 -> PSNR/SSIM on the Y channel with ``border = scale``.
Also reports RGB PSNR (NTIRE-style, same border) and the bicubic-upscaling
baseline, so every number has its reference next to it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .cancel import CancelToken
from .cancel import check as check_cancel
from .image_folder import read_rgb_uint8, scan_images
from .metrics import psnr, ssim
from .models.blocks import min_input_size
from .resize import bicubic_downscale_uint8, imresize, modcrop

__all__ = ["evaluate", "evaluate_pairs", "make_runner"]

Runner = Callable[[np.ndarray], np.ndarray]  # LR uint8 HxWx3 -> SR uint8


def make_runner(model_or_path: Any, device: str | torch.device = "cpu") -> tuple[Runner, str, int | None]:
    """(LR->SR function, display name, model scale if known) for a module, LoadedModel or file path."""
    from .models.loader import LoadedModel, load_model

    name, scale = "model", None
    obj = model_or_path
    if isinstance(obj, (str, Path)):
        name = Path(obj).name
        obj = load_model(obj)
    if isinstance(obj, LoadedModel):
        scale = obj.descriptor.scale
        if obj.module is None:  # ONNX: run it with onnxruntime on CPU
            import onnxruntime as ort

            sess = ort.InferenceSession(str(obj.path), providers=["CPUExecutionProvider"])
            input_name = sess.get_inputs()[0].name

            def run_onnx(lr: np.ndarray) -> np.ndarray:
                x = (lr.astype(np.float32) / 255.0).transpose(2, 0, 1)[None]
                y = sess.run(None, {input_name: np.ascontiguousarray(x)})[0][0]
                return np.clip(np.round(y.transpose(1, 2, 0) * 255.0), 0, 255).astype(np.uint8)

            return run_onnx, name, scale
        obj = obj.module
    if not isinstance(obj, nn.Module):
        raise TypeError(f"cannot evaluate a {type(obj).__name__}; give a model file, LoadedModel or nn.Module")
    module = obj.to(device).eval()
    cfg = getattr(module, "config", None)
    if scale is None and cfg is not None:
        scale = int(getattr(cfg, "scale", 0)) or None
    dev = torch.device(device)

    @torch.inference_mode()
    def run_torch(lr: np.ndarray) -> np.ndarray:
        x = torch.from_numpy(lr.astype(np.float32).transpose(2, 0, 1) / 255.0)[None].to(dev)
        y = module(x).float()[0].clamp(0, 1)
        return (y * 255.0).round().byte().permute(1, 2, 0).cpu().numpy()

    return run_torch, name, scale


def _scores(sr: np.ndarray, hr: np.ndarray, border: int) -> dict[str, float]:
    return {"psnr_y": psnr(sr, hr, border=border), "ssim_y": ssim(sr, hr, border=border),
            "psnr_rgb": psnr(sr, hr, border=border, y_channel=False)}


def _score_row(runner: Runner, name: str, image: str, lr: np.ndarray, hr: np.ndarray, scale: int,
               bicubic: bool) -> dict[str, Any]:
    sr = runner(lr)
    if sr.shape != hr.shape:
        raise ValueError(f"{name} produced {sr.shape} for '{image}', expected {hr.shape}")
    row: dict[str, Any] = {"image": image, **_scores(sr, hr, scale)}
    if bicubic:
        up = np.clip(np.round(imresize(lr.astype(np.float64), scale=scale)), 0, 255).astype(np.uint8)
        row.update({f"bicubic_{k}": v for k, v in _scores(up, hr, scale).items()})
    return row


def _mean(rows: list[dict[str, Any]]) -> dict[str, float]:
    keys = [k for k in rows[0] if k != "image"]
    return {k: float(np.mean([r[k] for r in rows])) for k in keys}


def evaluate_pairs(model_or_path: Any, pairs: Sequence[tuple[str, np.ndarray, np.ndarray]], scale: int = 4,
                   device: str | torch.device = "cpu", bicubic: bool = True) -> dict[str, Any]:
    """Like :func:`evaluate` on ready ``(name, lr, hr)`` uint8 pairs (e.g. a training run's validation set)."""
    if not pairs:
        raise ValueError("no image pairs to evaluate")
    runner, name, model_scale = make_runner(model_or_path, device)
    if model_scale is not None and model_scale != scale:
        raise ValueError(f"{name} is a x{model_scale} model but evaluation asked for x{scale}")
    rows = [_score_row(runner, name, image, lr, hr, scale, bicubic) for image, lr, hr in pairs]
    return {"model": name, "scale": scale, "border": scale, "n_images": len(rows), "images": rows,
            "mean": _mean(rows)}


def evaluate(model_or_path: Any, data_dir: str | Path, scale: int = 4, device: str | torch.device = "cpu",
             max_images: int | None = None, bicubic: bool = True, cancel: CancelToken | None = None,
             progress: Callable[[int, int, str], None] | None = None) -> dict[str, Any]:
    """Per-image and mean PSNR-Y / SSIM-Y / PSNR-RGB of a model (and of bicubic) on HR images in ``data_dir``.

    ``progress(done, total, image_name)`` is called after each image; ``cancel`` is
    checked before each one (raises :class:`~dipnet_core.cancel.Cancelled`).
    """
    runner, name, model_scale = make_runner(model_or_path, device)
    if model_scale is not None and model_scale != scale:
        raise ValueError(f"{name} is a x{model_scale} model but evaluation asked for x{scale}")
    paths, skipped = scan_images([data_dir], min_side=min_input_size() * scale)
    if max_images is not None:
        paths = paths[:max_images]
    if not paths:
        raise ValueError(f"no usable HR images in '{data_dir}'" +
                         (f" ({'; '.join(f'{p}: {r}' for p, r in skipped[:5])})" if skipped else ""))
    rows: list[dict[str, Any]] = []
    seconds = 0.0

    def timed_runner(lr: np.ndarray) -> np.ndarray:  # the model's time only, not the scoring
        nonlocal seconds
        t0 = time.perf_counter()
        sr = runner(lr)
        seconds += time.perf_counter() - t0
        return sr

    for i, p in enumerate(paths):
        check_cancel(cancel)
        hr = modcrop(read_rgb_uint8(p), scale)
        lr = bicubic_downscale_uint8(hr, scale)
        rows.append(_score_row(timed_runner, name, p.name, lr, hr, scale, bicubic))
        if progress is not None:
            progress(i + 1, len(paths), p.name)
    mean = _mean(rows)
    return {"model": name, "data_dir": str(data_dir), "scale": scale, "border": scale, "n_images": len(rows),
            "images": rows, "mean": mean, "seconds": round(seconds, 3),
            "skipped": [list(s) for s in skipped]}
