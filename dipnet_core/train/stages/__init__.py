"""The stages of DIPNet training, one module each, in the order of the method.

``teacher -> distill (progressive phases distill_1..N) -> reparam ->
prune_1..n (each with a fine-tune) -> finetune -> export -> comparison``

Every stage reads its input model from the previous stage's ``model.pt``,
trains through :func:`~..loop.train_loop` (checkpoints, resume, cancel, EMA,
DDP), writes its output ``model.pt`` and ``metrics.json`` and marks itself done
in ``state.json``. A stage that is already done returns its recorded metrics.
"""

from .common import measure_config_latency, new_student, student_config
from .compare import STAGE as compare_stage
from .compare import compare
from .distill import ProgressiveSchedule, distill, distill_stage_names
from .export import export
from .finetune import finetune
from .prune import plan_pruning, prune_round
from .reparam import reparameterize
from .teacher import train_teacher

__all__ = [
    "ProgressiveSchedule",
    "compare",
    "compare_stage",
    "distill",
    "distill_stage_names",
    "export",
    "finetune",
    "measure_config_latency",
    "new_student",
    "plan_pruning",
    "prune_round",
    "reparameterize",
    "student_config",
    "train_teacher",
]
