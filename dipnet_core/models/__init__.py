"""Model architectures, descriptors and loading."""

from .blocks import min_input_size
from .descriptor import DescriptorError, ModelDescriptor
from .dipnet import BlockWidths, DIPNet, DIPNetConfig, DIPNetSkeleton, count_parameters
from .loader import (
    LoadedModel,
    ModelLoadError,
    ModelWarning,
    detect_dipnet_config,
    dipnet_descriptor,
    load_model,
    read_descriptor,
    save_model,
    unwrap_state_dict,
)
from .probe import ProbeResult, probe_onnx
from .registry import Architecture, ModelFile, register, registered_architectures

__all__ = [
    "Architecture", "BlockWidths", "DIPNet", "DIPNetConfig", "DIPNetSkeleton", "DescriptorError",
    "LoadedModel", "ModelDescriptor", "ModelFile", "ModelLoadError", "ModelWarning", "ProbeResult",
    "count_parameters", "detect_dipnet_config", "dipnet_descriptor", "load_model", "min_input_size",
    "probe_onnx", "read_descriptor", "register", "registered_architectures", "save_model",
    "unwrap_state_dict",
]
