"""Training pipeline for DIPNet students: teacher, distillation, reparameterization, pruning, export.

Pure Python/PyTorch (no Qt). Entry points: :func:`run_pipeline` with a
:class:`TrainConfig` (see :func:`preset`), the stage functions in
:mod:`.stages` (one module per stage), the loop in :mod:`.loop`, and
``train_main``/``eval_main`` in :mod:`.cli` (evaluation itself is :mod:`dipnet_core.eval`).
"""

from .config import ConfigError, TrainConfig, load_config, preset, preset_names, save_config
from .pipeline import PipelineResult, resume_config, run_pipeline, stage_plan

__all__ = ["ConfigError", "PipelineResult", "TrainConfig", "load_config", "preset", "preset_names",
           "resume_config", "run_pipeline", "save_config", "stage_plan"]
