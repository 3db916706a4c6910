"""Export of an :class:`~.adapter.ExportAdapter` to files, and the check of a file against PyTorch.

Formats (``EXPORT_FORMATS``), written as ``model.<ending>`` in an output folder:

* "pt2": ``torch.export``'s ``ExportedProgram`` (``torch.export.save``); runs with PyTorch alone.
* "onnx": ONNX by PyTorch's ``torch.export``-based exporter (``torch.onnx.export(...,
  dynamo=True)``, which needs ``onnxscript``), from the same program; onnxruntime or OpenVINO.
* "onnx_int8": the ONNX file quantized to INT8 by onnxruntime's static quantization, calibrated
  on images (:func:`~.quantize.quantize_int8`); written with model.onnx.
* "openvino": OpenVINO IR (model.xml + model.bin), converted from the ONNX file.
* "torchscript": ``torch.jit.trace``, which PyTorch deprecates in favour of ``torch.export``: kept
  while PyTorch has it, at a fixed input size.

ONNX, INT8 and OpenVINO exports leave model.pt2 (the program they are made from) and model.onnx
beside them. The batch is dynamic in every format but TorchScript; so is the input size (any multiple of the
backbone's size divisibility) where ``torch.export`` can keep it symbolic, else it is fixed at
the traced size with a warning naming the cause. The metadata (:func:`~.adapter.export_metadata`)
travel in the file: ONNX metadata and OpenVINO rt_info ``"centernet_d2"``, the extra file
``"centernet_d2.json"`` of .pt2 and .ts.
"""

import json
import logging
import os
import warnings
from typing import Any, Dict, Iterable, Optional, Sequence, Tuple, Union

import numpy as np
import torch
from torch import Tensor, nn

from ..deploy.runtime import (
    METADATA_KEY,
    ExportedModel,
    MissingPackageError,
    first_line,
    openvino_model,
)
from ..utils.boxes import box_iou
from .adapter import ExportAdapter
from .quantize import quantize_int8

__all__ = [
    "EXPORT_FORMATS",
    "EXPORT_FILES",
    "ONNX_OPSET",
    "export_and_check",
    "export_model",
    "export_program",
    "max_differences",
    "save_openvino",
]

logger = logging.getLogger(__name__)

# The file each format writes in the output folder, by format
EXPORT_FILES = {
    "pt2": "model.pt2",
    "onnx": "model.onnx",
    "onnx_int8": "model_int8.onnx",
    "openvino": "model.xml",
    "torchscript": "model.ts",  # as Detectron2's export_model.py
}
EXPORT_FORMATS = tuple(EXPORT_FILES)
ONNX_OPSET = 19  # 18 is the least of the torch.export-based exporter; DeformConv needs 19
# Largest batch and input side (pixels) of a dynamic export.
MAX_BATCH = 1024
MAX_SIDE = 4096


def _as_tuple(inputs) -> Tuple[Tensor, ...]:
    """Inputs as a tuple: a tensor alone is the images."""
    return (inputs,) if isinstance(inputs, Tensor) else tuple(inputs)


def _as_batch_of_two(inputs: Sequence[Tensor]) -> Tuple[Tensor, ...]:
    # torch.export takes a dimension of size 1 for a constant: trace a batch of at least two
    return tuple(torch.cat([x, x]) if x.shape[0] == 1 else x for x in inputs)


def _dynamic_shapes(adapter: ExportAdapter, dynamic_size: bool) -> Dict[str, Dict[int, Any]]:
    dim = torch.export.Dim
    shapes = {0: dim("batch", min=1, max=MAX_BATCH)}
    if dynamic_size:
        d = max(adapter.model.backbone.size_divisibility, 1)
        shapes[2] = d * dim("height", min=1, max=MAX_SIDE // d)
        shapes[3] = d * dim("width", min=1, max=MAX_SIDE // d)
    return {"inputs": tuple(dict(shapes) for _ in adapter.input_names)}


def export_program(
    adapter: ExportAdapter, inputs: Sequence[Tensor], dynamic_size: bool = True
) -> Tuple["torch.export.ExportedProgram", bool]:
    """``torch.export`` of ``adapter`` on ``inputs`` (see ``adapter.check_inputs``), the batch
    dynamic, with ``dynamic_size`` the height and width too where the model allows (else
    fixed, with a warning).

    Returns:
        the program and whether its input size is dynamic.
    """
    inputs = _as_batch_of_two(inputs)
    name = type(adapter.model).__name__
    with warnings.catch_warnings():
        # torchvision's nms registration uses a deprecated torch.export API: not the user's to fix
        warnings.simplefilter("ignore", FutureWarning)
        if dynamic_size:
            try:
                shapes = _dynamic_shapes(adapter, True)
                return torch.export.export(adapter, inputs, dynamic_shapes=shapes), True
            except Exception as e:  # the many errors of symbolic shapes: fixed size below
                logger.warning(
                    f"{name} does not export with a dynamic input size ({first_line(e)}); the "
                    f"export takes {tuple(inputs[0].shape[2:])} images only"
                )
        try:
            shapes = _dynamic_shapes(adapter, False)
            return torch.export.export(adapter, inputs, dynamic_shapes=shapes), False
        except Exception as e:
            raise RuntimeError(f"{name} cannot be exported by torch.export: {first_line(e)}") from e


def _check_onnx_packages() -> None:
    """Before tracing: the packages the ONNX formats need (the exporter's onnxscript, onnx)."""
    for module in ("onnxscript", "onnx"):
        try:
            __import__(module)
        except ImportError as e:
            raise MissingPackageError(
                f"ONNX export needs {module} ({e}): pip install onnxscript onnx onnxruntime, "
                "or pip install -e .[export]"
            ) from e


def _save_onnx(program, adapter: ExportAdapter, path: str, opset: int) -> None:
    # onnx_ir warns of an empty attribute list that the exporter writes: not the user's to fix
    onnx_ir_logger = logging.getLogger("onnx_ir")
    level = onnx_ir_logger.level
    onnx_ir_logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", (DeprecationWarning, FutureWarning, UserWarning))
            torch.onnx.export(
                program,
                (),
                path,
                dynamo=True,
                input_names=list(adapter.input_names),
                output_names=list(adapter.output_names),
                opset_version=opset,
                verbose=False,
                external_data=False,
            )
    finally:
        onnx_ir_logger.setLevel(level)


def _add_onnx_metadata(path: str, metadata: Dict[str, Any]) -> None:
    import onnx

    proto = onnx.load(path)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata)
    onnx.save(proto, path)


def save_openvino(onnx_path: str, path: str, metadata: Dict[str, Any]) -> None:
    try:
        import openvino as ov
    except ImportError as e:
        raise MissingPackageError(
            f"OpenVINO export needs openvino ({e}): pip install openvino"
        ) from e
    model = openvino_model(ov.Core(), onnx_path)
    model.set_rt_info(json.dumps(metadata), [METADATA_KEY])
    ov.save_model(model, path, compress_to_fp16=False)  # float32 weights: parity with PyTorch


def _save_torchscript(adapter: ExportAdapter, inputs, path: str, metadata) -> None:
    logger.info(
        "TorchScript is deprecated by PyTorch in favour of torch.export: prefer --format pt2 "
        "(or onnx); this file takes images of the traced size only"
    )
    with warnings.catch_warnings():
        # shapes become constants (the size is fixed); the deprecation is said above
        warnings.simplefilter(
            "ignore", (torch.jit.TracerWarning, FutureWarning, DeprecationWarning)
        )
        traced = torch.jit.trace(adapter, tuple(inputs), check_trace=False)
        torch.jit.save(traced, path, _extra_files={METADATA_KEY + ".json": json.dumps(metadata)})


def export_model(
    model: nn.Module,
    inputs: Union[Tensor, Sequence[Tensor]],
    output_dir: str,
    fmt: str,
    metadata: Optional[Dict[str, Any]] = None,
    opset: int = ONNX_OPSET,
    dynamic_size: bool = True,
    calibration: Optional[Iterable[np.ndarray]] = None,
) -> Tuple[str, Dict[str, Any]]:
    """Export ``model`` (in eval mode) traced on ``inputs`` (the tensors named by its
    ``export_input_names``; a tensor alone: the images) to ``output_dir``/``EXPORT_FILES[fmt]``.

    ``calibration``: for "onnx_int8", the (1, 3, H, W) float32 images to calibrate on.

    Returns:
        the file's path and the metadata written into it (``metadata`` with "dynamic_size").
    """
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"the export format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    adapter = ExportAdapter(model)
    inputs = _as_tuple(inputs)
    adapter.check_inputs(inputs)
    os.makedirs(output_dir, exist_ok=True)
    path = os.path.join(output_dir, EXPORT_FILES[fmt])
    metadata = dict(metadata or {}, inputs=list(adapter.input_names))
    metadata["outputs"] = list(adapter.output_names)
    if fmt == "torchscript":
        metadata["dynamic_size"] = False
        _save_torchscript(adapter, inputs, path, metadata)
        return path, metadata
    if fmt in ("onnx", "onnx_int8", "openvino"):
        _check_onnx_packages()
    program, metadata["dynamic_size"] = export_program(adapter, inputs, dynamic_size)
    # the program, which the other formats are made from, is kept as model.pt2 beside them
    with warnings.catch_warnings():
        # "No complete tensor found in the group": said of every CPU model's shared weights
        warnings.simplefilter("ignore", UserWarning)
        extra = {METADATA_KEY + ".json": json.dumps(metadata)}
        torch.export.save(program, os.path.join(output_dir, EXPORT_FILES["pt2"]), extra_files=extra)
    if fmt == "pt2":
        return path, metadata
    if fmt == "onnx_int8" and len(adapter.input_names) > 1:
        raise ValueError("onnx_int8 quantizes detectors of one input; export CenterTrack as onnx")
    onnx_path = path if fmt == "onnx" else os.path.join(output_dir, EXPORT_FILES["onnx"])
    _save_onnx(program, adapter, onnx_path, opset)
    _add_onnx_metadata(onnx_path, metadata)
    if fmt == "openvino":
        save_openvino(onnx_path, path, metadata)
    if fmt == "onnx_int8":
        if calibration is None:
            raise ValueError("onnx_int8 needs calibration images")
        quantize_int8(onnx_path, path, calibration, adapter.input_names[0])
    return path, metadata


def max_differences(
    names: Sequence[str],
    expected: Sequence[np.ndarray],
    actual: Sequence[np.ndarray],
    score_thresh: float = 0.0,
) -> Dict[str, float]:
    """How far two results of an exported function are apart (outputs in the order of
    ``names``: boxes, scores, classes, then per-detection outputs). Each expected detection
    scoring at least ``score_thresh`` is matched to the detection of the same image and class
    with the best IoU (so that near ties in another order still match); per output the largest
    absolute difference over the matched pairs; "classes": the expected detections without a
    match (the same class, and IoU >= 0.5 or every box side within 1 px)."""
    arrays = [(np.asarray(a), np.asarray(b)) for a, b in zip(expected, actual)]
    for name, (a, b) in zip(names, arrays):
        if a.shape != b.shape:
            raise ValueError(f"{name}: shapes differ, {a.shape} / {b.shape}")
    (boxes, boxes2), (scores, _), (classes, classes2) = arrays[:3]
    diffs = dict.fromkeys(n for n in names if n != "classes")
    diffs = {n: 0.0 for n in diffs}
    unmatched = 0
    for i in range(len(scores)):
        keep = np.flatnonzero(scores[i] >= score_thresh)
        # the same class and IoU >= 0.5, or boxes within 1 px (untrained ones may have no area)
        near = np.abs(boxes[i][keep, None] - boxes2[i][None]).max(axis=2) <= 1.0
        close = np.maximum(box_iou(boxes[i][keep], boxes2[i]), near * 1.0)
        close *= classes[i][keep, None] == classes2[i][None]
        best = close.argmax(axis=1) if len(keep) else np.zeros(0, dtype=int)
        found = close[np.arange(len(keep)), best] >= 0.5
        unmatched += int((~found).sum())
        for name, (a, b) in zip(names, arrays):
            if name != "classes" and found.any():
                d = np.abs(a[i][keep[found]].astype(np.float64) - b[i][best[found]])
                diffs[name] = max(diffs[name], float(d.max(initial=0.0)))
    diffs["classes"] = unmatched
    return diffs


def export_and_check(
    model: nn.Module,
    trace_inputs: Union[Tensor, Sequence[Tensor]],
    output_dir: str,
    fmt: str,
    check_inputs: Union[Tensor, Sequence[Tensor], None] = None,
    metadata: Optional[Dict[str, Any]] = None,
    opset: int = ONNX_OPSET,
    runtime: Optional[str] = None,
    dynamic_size: bool = True,
    calibration: Optional[Iterable[np.ndarray]] = None,
) -> Tuple[str, Dict[str, float]]:
    """:func:`export_model`, then the file run by ``runtime`` (:class:`ExportedModel`; default
    the file's first) and the model (:class:`~.adapter.ExportAdapter`, eager) on
    ``check_inputs`` (default ``trace_inputs``; another batch size, or another input size when
    the export's is dynamic).

    Returns:
        the file's path and :func:`max_differences` of its outputs from PyTorch's.
    """
    device = model.pixel_mean.device
    trace_inputs = tuple(x.to(device) for x in _as_tuple(trace_inputs))
    check_inputs = trace_inputs if check_inputs is None else _as_tuple(check_inputs)
    check_inputs = tuple(x.to(device) for x in check_inputs)
    path, metadata = export_model(
        model, trace_inputs, output_dir, fmt, metadata, opset, dynamic_size, calibration
    )
    if not metadata["dynamic_size"] and check_inputs[0].shape[2:] != trace_inputs[0].shape[2:]:
        raise ValueError(
            f"check images {tuple(check_inputs[0].shape)} must have the size of the traced "
            f"images {tuple(trace_inputs[0].shape)}: the export's size is fixed"
        )
    logger.info(f"wrote {path}")
    adapter = ExportAdapter(model)
    with torch.no_grad():
        expected = [t.cpu().numpy() for t in adapter(*check_inputs)]
    exported = ExportedModel(path, runtime)
    outputs = exported(**{n: x.cpu().numpy() for n, x in zip(adapter.input_names, check_inputs)})
    actual = [outputs[n] for n in adapter.output_names]
    thresh = float(metadata.get("score_thresh", model.test_score_thresh))
    return path, max_differences(adapter.output_names, expected, actual, thresh)
