"""Model architectures, descriptors and loading."""

from .descriptor import ModelDescriptor
from .dipnet import BlockWidths, DIPNet, DIPNetConfig, count_parameters
from .loader import (
    LoadedModel,
    ModelLoadError,
    detect_dipnet_config,
    dipnet_descriptor,
    load_model,
    read_descriptor,
    save_model,
    unwrap_state_dict,
)

__all__ = [
    "BlockWidths", "DIPNet", "DIPNetConfig", "LoadedModel", "ModelDescriptor", "ModelLoadError",
    "count_parameters", "detect_dipnet_config", "dipnet_descriptor", "load_model", "read_descriptor",
    "save_model", "unwrap_state_dict",
]
