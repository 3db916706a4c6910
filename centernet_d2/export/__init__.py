"""Export of every CenterNet model, decoding included, to torch.export (.pt2), ONNX, OpenVINO and
TorchScript files, checked against PyTorch: :class:`ExportAdapter` is what is exported (its
docstring the inputs and outputs), :func:`export_and_check` writes and checks a file,
:class:`~centernet_d2.deploy.ExportedModel` runs one. ``tools/export_model.py`` is the command
line; docs/export.md the guide."""

from ..deploy.runtime import METADATA_KEY, ExportedModel
from .adapter import (
    OUTPUT_NAMES,
    ExportAdapter,
    export_metadata,
    export_size,
    load_image,
    random_image,
)
from .formats import (
    EXPORT_FILES,
    EXPORT_FORMATS,
    ONNX_OPSET,
    export_and_check,
    export_model,
    export_program,
    max_differences,
    save_openvino,
)
from .quantize import quantize_int8

__all__ = [
    "EXPORT_FILES",
    "EXPORT_FORMATS",
    "METADATA_KEY",
    "ONNX_OPSET",
    "OUTPUT_NAMES",
    "ExportAdapter",
    "ExportedModel",
    "export_and_check",
    "export_metadata",
    "export_model",
    "export_program",
    "export_size",
    "load_image",
    "max_differences",
    "quantize_int8",
    "random_image",
    "save_openvino",
]
