#!/usr/bin/env python3
"""Copy a finished run's model into a model folder as a built-in: the file, its ONNX twin and its grid twin.

    python scripts/ship_model.py runs/default-model-291d/dipnet-studio-x4.safetensors resources/models

What shipping changes in the file: the run's closing comparison is dropped from the training record
(it compared the model with the one it replaces; a copy imported into a library later would ask
"install a model that is worse?" about the better one). Everything else in the descriptor stays,
including ``started_from``, the start model's own record for runs that continued a finished model.
Then ``NAME.onnx`` (plain twin) and ``NAME.grid.onnx`` (the engine's exact-tiling graph) are written
beside it and checked against the PyTorch model. The int8 twin is ``scripts/make_int8_twin.py``'s job
(it measures the loss), the card and its numbers the benchmarks' (see ``training/README.md``).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

from dipnet_core.cli import main as dipnet
from dipnet_core.models import DIPNet, load_model, save_model


def ship(model: Path, folder: Path) -> list[Path]:
    """Write the shipped file and its two ONNX twins into ``folder``; returns their paths."""
    loaded = load_model(model)
    if not isinstance(loaded.module, DIPNet):
        raise ValueError(f"'{model}' is not a fused DIPNet model file")
    training = {k: v for k, v in loaded.descriptor.training.items() if k != "comparison"}
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{model.stem}.safetensors"
    save_model(target, loaded.module, dataclasses.replace(loaded.descriptor, training=training))
    written = [target]
    # The twins come from the shipped file (so they carry its descriptor), through `dipnet export --check`.
    for suffix, extra in ((".onnx", []), (".grid.onnx", ["--grid-aware"])):
        path = folder / f"{model.stem}{suffix}"
        if dipnet(["export", str(target), "-o", str(path), "--check", *extra]) != 0:
            raise RuntimeError(f"'{path}': export or its check against the PyTorch model failed")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    ap.add_argument("model", type=Path, help="the run's .safetensors (e.g. runs/NAME/NAME.safetensors)")
    ap.add_argument("folder", type=Path, help="where built-in models live (resources/models)")
    args = ap.parse_args(argv)
    try:
        for path in ship(args.model, args.folder):
            print(f"wrote {path}")
    except (ValueError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
