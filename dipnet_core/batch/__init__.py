"""The batch job shared by the CLI and the GUI, in three steps.

:mod:`.plan` maps input files to output paths (mirroring folder trees, never onto
an input, never taking this batch's own earlier outputs as inputs); :mod:`.run`
upscales them one by one, reporting typed events through a callback and
continuing past files that fail; :mod:`.report` holds the outcome, saved as JSON
and fed back with :meth:`BatchReport.failed_items` to retry only the failures.
"""

from .plan import (
    DEFAULT_NAME_TEMPLATE,
    TEMPLATE_FIELDS,
    BatchItem,
    check_name_template,
    image_pixels,
    normalize_format,
    output_suffix,
    plan_batch,
    render_name,
    validate_items,
)
from .report import REPORT_NAME, BatchReport, ReportEntry, ReportError, ReportWriteError
from .run import (
    BatchEvent,
    BatchFinished,
    BatchProgress,
    ItemDone,
    ItemFailed,
    ItemProgress,
    ItemSkipped,
    ItemStarted,
    UpscalerSource,
    animation_warning,
    run_batch,
)

__all__ = [
    "DEFAULT_NAME_TEMPLATE",
    "REPORT_NAME",
    "TEMPLATE_FIELDS",
    "BatchEvent",
    "BatchFinished",
    "BatchItem",
    "BatchProgress",
    "BatchReport",
    "ItemDone",
    "ItemFailed",
    "ItemProgress",
    "ItemSkipped",
    "ItemStarted",
    "ReportEntry",
    "ReportError",
    "ReportWriteError",
    "UpscalerSource",
    "animation_warning",
    "check_name_template",
    "image_pixels",
    "normalize_format",
    "output_suffix",
    "plan_batch",
    "render_name",
    "run_batch",
    "validate_items",
]
