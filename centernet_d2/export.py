"""Export a CenterNet to TorchScript (tracing) or ONNX with decoding inside the graph.

The exported function is the model's preprocessing (mean/std), backbone, head and
the model's ``decode`` stage (size/offset or ltrb boxes, as the model's
``MODEL.CENTERNET.BOX_HEAD``, and keypoints), traced through Detectron2's ``TracingAdapter``; test-time
augmentation (``TEST.AUG``) is not exported:

    images (N, 3, H, W) float32 -> boxes (N, T, 4), scores (N, T), classes (N, T) int64
                                   [, keypoints (N, T, J, 3) with MODEL.KEYPOINT_ON]

* ``images``: pixel values 0-255 (not divided by 255) in the channel order of the config's
  ``INPUT.FORMAT`` ("RGB" for our configs), already resized to the export size (H, W), which is
  fixed at export; N may vary. ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` are applied inside.
* ``boxes``: XYXY in the pixels of ``images``, clipped to (W, H); ``scores`` in [0, 1], descending
  per image; ``classes`` in 0..K-1. T = ``TEST.DETECTIONS_PER_IMAGE``; no score threshold is applied
  (the config's ``MODEL.CENTERNET.SCORE_THRESH_TEST`` is recorded in the metadata).
* ``keypoints`` (models with keypoints): each detection's J keypoints, x and y in the pixels of
  ``images`` (not clipped) and a score, as ``Instances.pred_keypoints``
  (:func:`~centernet_d2.modeling.keypoints.decode_keypoints`).

Metadata (input size and format, class names, ...) travel in the file as JSON: ONNX metadata
``"centernet_d2"``; TorchScript extra file ``"centernet_d2.json"``.

Shape shorthand: N images, K classes, T detections per image, H/W the export size in pixels.
"""

import importlib
import inspect
import json
import logging
import os
import sys
import types
import warnings
from functools import partial
from typing import Any, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from .modeling.multilevel import MultiLevelCenterNet

__all__ = [
    "EXPORT_FORMATS",
    "checked_export_size",
    "ONNX_OPSET",
    "export_and_check",
    "export_metadata",
    "export_onnx",
    "export_path",
    "export_size",
    "export_torchscript",
    "exported_outputs",
    "load_image",
    "max_differences",
    "output_names",
    "random_image",
    "run_exported",
    "run_file",
    "save_onnx",
    "save_torchscript",
]

logger = logging.getLogger(__name__)

EXPORT_FORMATS = ("torchscript", "onnx")
# File name of each format in the output directory ("model.ts" as Detectron2's export_model.py).
EXPORT_FILES = {"torchscript": "model.ts", "onnx": "model.onnx"}
ONNX_OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAMES = ("boxes", "scores", "classes")
METADATA_KEY = "centernet_d2"  # ONNX metadata key; TorchScript extra file METADATA_KEY + ".json"
INPUT_FORMATS = ("RGB", "BGR")
# Largest pixel value of random_image's images, the top of the 0-255 input range.
MAX_PIXEL = 255.0
Outputs = Tuple[Tensor, ...]


def output_names(model: nn.Module) -> Tuple[str, ...]:
    """The exported outputs of ``model``, those of its ``decode`` stage: :data:`OUTPUT_NAMES`,
    then its ``decoded_fields`` without the "pred_" (e.g. "keypoints" for a model with
    keypoints)."""
    return OUTPUT_NAMES + tuple(f[len("pred_") :] for f in model.decoded_fields)


def export_size(min_size: int, divisibility: int) -> Tuple[int, int]:
    """The default export size: a square of side ``min_size`` (INPUT.MIN_SIZE_TEST) rounded up to a
    multiple of ``divisibility`` (the backbone's ``size_divisibility``).

    Returns:
        (height, width) in pixels.
    """
    if min_size <= 0:
        raise ValueError(
            f"INPUT.MIN_SIZE_TEST must be positive to give an export size, got {min_size}"
        )
    side = -(-min_size // divisibility) * divisibility if divisibility > 0 else min_size
    return side, side


def export_metadata(
    image_size: Tuple[int, int],
    input_format: str,
    pixel_mean: Sequence[float],
    pixel_std: Sequence[float],
    score_thresh: float,
    class_names: Optional[Sequence[str]] = None,
    outputs: Sequence[str] = OUTPUT_NAMES,
) -> Dict[str, Any]:
    """What a runtime needs to know besides the graph, stored in the exported file.

    Args:
        image_size: (H, W) of the export; input_format: INPUT.FORMAT; pixel_mean, pixel_std:
            MODEL.PIXEL_MEAN / PIXEL_STD (applied inside the graph); score_thresh: the
            config's MODEL.CENTERNET.SCORE_THRESH_TEST (recommended, not applied); class_names:
            of classes 0..K-1, if known; outputs: the output names (:func:`output_names`).
    """
    return {
        "input": INPUT_NAME,
        "input_layout": "NCHW",
        "height": int(image_size[0]),
        "width": int(image_size[1]),
        "input_format": input_format,
        "input_range": [0.0, MAX_PIXEL],
        "normalized_inside": True,
        "pixel_mean": [float(v) for v in pixel_mean],
        "pixel_std": [float(v) for v in pixel_std],
        "outputs": list(outputs),
        "box_format": "XYXY",
        "score_thresh": float(score_thresh),
        "class_names": list(class_names) if class_names else None,
    }


def load_image(path: str, size: Tuple[int, int], input_format: str = "RGB") -> Tensor:
    """An image file as the exported function takes it, prepared as in docs/export.md: read with
    OpenCV, converted to ``input_format``, resized to ``size`` (bilinear, aspect not kept).

    Args:
        path: image file.
        size: (height, width) of the export.
        input_format: "RGB" or "BGR" (the config's INPUT.FORMAT).
    Returns:
        (3, H, W) float32, values 0-255.
    """
    if input_format not in INPUT_FORMATS:
        raise ValueError(
            f"INPUT.FORMAT must be one of {INPUT_FORMATS} to export, got {input_format!r}"
        )
    image = cv2.imread(path, cv2.IMREAD_COLOR)  # (h, w, 3) uint8 BGR
    if image is None:
        raise FileNotFoundError(f"cannot read the image {path}")
    if input_format == "RGB":
        image = cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    height, width = size
    image = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return torch.from_numpy(image.astype(np.float32).transpose(2, 0, 1).copy())


def random_image(size: Tuple[int, int], seed: int = 0) -> Tensor:
    """(3, H, W) float32 uniform in [0, 255], for tracing when no sample image is given."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, *size, generator=generator) * MAX_PIXEL


def exported_outputs(model: nn.Module, images: Tensor, image_size: Tuple[int, int]) -> Outputs:
    """The function that is exported, run eagerly: what ``model`` computes at inference before
    its score threshold and rescaling to the original image, without test-time augmentation.

    Args:
        model: a ``CenterNet`` in eval mode.
        images: (N, 3, H, W) float, 0-255, in the model's input format; H and W multiples of
            ``model.backbone.size_divisibility`` (no padding is added).
        image_size: (H, W), the clipping bounds; a Python pair so that tracing records constants.
    Returns:
        boxes (N, T, 4) XYXY pixels of ``images``, clipped; scores (N, T) descending; classes
        (N, T) int64; for a model with keypoints, keypoints (N, T, J, 3).
    """
    x = (images - model.pixel_mean) / model.pixel_std  # DenseDetector.preprocess_image
    boxes, scores, classes, *rest = model.decode(model.run_network(x))
    height, width = image_size
    # Boxes.clip of the model's inference: x in [0, W], y in [0, H]
    limits = boxes.new_tensor([width, height, width, height])
    return (torch.min(boxes.clamp(min=0), limits), scores, classes, *rest)


def _tracing_adapter_class():
    """Detectron2's ``TracingAdapter``.

    Detectron2's main branch imports caffe2 in ``detectron2.export`` only when it is installed;
    v0.6 imports it unconditionally, and PyTorch no longer ships caffe2. There the module
    ``detectron2.export.flatten`` (which needs no caffe2) is imported with its package's
    ``__init__`` bypassed; the package is left unimported, as it was.
    """
    try:
        from detectron2.export import TracingAdapter

        return TracingAdapter
    except ImportError as e:
        if getattr(e, "name", None) != "caffe2" and "caffe2" not in str(e):
            raise
    import detectron2

    name = "detectron2.export"
    package = types.ModuleType(name)
    package.__path__ = [os.path.join(os.path.dirname(detectron2.__file__), "export")]
    sys.modules[name] = package
    try:
        return importlib.import_module(name + ".flatten").TracingAdapter
    finally:
        del sys.modules[name]


def checked_export_size(model: nn.Module, images: Tensor) -> Tuple[int, int]:
    """The export size (height, width) of ``images`` (N, C, H, W), checked to be multiples of the
    backbone's ``size_divisibility`` (the export adds no padding)."""
    image_size = (int(images.shape[2]), int(images.shape[3]))
    divisibility = model.backbone.size_divisibility
    if divisibility > 0 and (image_size[0] % divisibility or image_size[1] % divisibility):
        raise ValueError(
            f"the export size (height, width) must be multiples of {divisibility} (the backbone's "
            f"size_divisibility), got {image_size}"
        )
    return image_size


def _adapter(model: nn.Module, images: Tensor) -> nn.Module:
    """``TracingAdapter`` of :func:`exported_outputs` for inputs of ``images``' size.

    It is put in eval mode: a new module is in training mode, and ``torch.onnx.export``, which
    restores the exported module's mode recursively when it is done, would leave the model's
    BatchNorms in training mode."""
    if images.dim() != 4:
        raise ValueError(f"images must be (N, 3, H, W), got shape {tuple(images.shape)}")
    if isinstance(model, MultiLevelCenterNet):
        raise ValueError(
            "export supports the single-level CenterNet; MultiLevelCenterNet ends in a "
            "class-wise NMS of a varying number of boxes, which the fixed-size outputs (N, T) of "
            "this export do not hold yet"
        )
    inference = partial(exported_outputs, image_size=checked_export_size(model, images))
    return _tracing_adapter_class()(model, images, inference_func=inference).eval()


def _trace(adapter: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        # shapes become constants on purpose: the export size is fixed
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # check_trace would run the model twice more; export_and_check compares the outputs
        return torch.jit.trace(adapter, adapter.flattened_inputs, check_trace=False)


def export_torchscript(
    model: nn.Module, images: Tensor, path: str, metadata: Optional[Dict[str, Any]] = None
) -> str:
    """Trace :func:`exported_outputs` on ``images`` (N, 3, H, W) and save it to ``path``, with
    ``metadata`` as the JSON extra file "centernet_d2.json". Returns ``path``."""
    return save_torchscript(_adapter(model, images), path, metadata)


def save_torchscript(adapter: nn.Module, path: str, metadata: Optional[Dict[str, Any]]) -> str:
    """Trace a ``TracingAdapter`` on its inputs and save it to ``path`` with ``metadata`` as the
    JSON extra file "centernet_d2.json". Returns ``path``."""
    traced = _trace(adapter)
    extra = {METADATA_KEY + ".json": json.dumps(metadata or {})}
    torch.jit.save(traced, path, _extra_files=extra)
    return path


def export_onnx(
    model: nn.Module,
    images: Tensor,
    path: str,
    metadata: Optional[Dict[str, Any]] = None,
    opset: int = ONNX_OPSET,
) -> str:
    """Export :func:`exported_outputs` on ``images`` (N, 3, H, W) to ONNX at ``path`` with
    PyTorch's TorchScript-based exporter (``dynamo=False``: since PyTorch 2.9 the default is the
    ``torch.export``-based one), the batch dimension dynamic, ``metadata`` as the JSON metadata
    "centernet_d2". Inputs: "images"; outputs: "boxes", "scores", "classes" (and "keypoints",
    :func:`output_names`). Returns ``path``."""
    adapter = _adapter(model, images)
    return save_onnx(adapter, path, (INPUT_NAME,), output_names(model), metadata, opset)


def save_onnx(
    adapter: nn.Module,
    path: str,
    input_names: Sequence[str],
    output_names: Sequence[str],
    metadata: Optional[Dict[str, Any]],
    opset: int = ONNX_OPSET,
) -> str:
    """Export a ``TracingAdapter`` on its inputs to ONNX at ``path`` (see :func:`export_onnx`),
    the inputs and outputs named, the batch dimension of each dynamic. Returns ``path``."""
    try:
        import onnx
    except ImportError as e:
        raise ImportError(
            f"ONNX export needs the onnx package ({e}); install it with `pip install onnx "
            "onnxruntime` or `pip install -e .[export]`"
        ) from e
    kwargs = {}
    if "dynamo" in inspect.signature(torch.onnx.export).parameters:
        kwargs["dynamo"] = False
    batch = {0: "N"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            adapter,
            adapter.flattened_inputs,
            path,
            input_names=list(input_names),
            output_names=list(output_names),
            dynamic_axes={name: batch for name in (*input_names, *output_names)},
            opset_version=opset,
            do_constant_folding=True,
            **kwargs,
        )
    proto = onnx.load(path)
    entry = proto.metadata_props.add()
    entry.key, entry.value = METADATA_KEY, json.dumps(metadata or {})
    onnx.save(proto, path)
    return path


def run_exported(path: str, images: Tensor) -> Tuple[np.ndarray, ...]:
    """Run an exported file on ``images`` (N, 3, H, W): a ".onnx" with onnxruntime on the CPU, a
    ".ts" with ``torch.jit.load`` on the images' device.

    Returns:
        boxes (N, T, 4), scores (N, T), classes (N, T) (and keypoints (N, T, J, 3) when the
        file has them), as numpy arrays.
    """
    return run_file(path, {INPUT_NAME: images}, None)


def run_file(
    path: str, inputs: Dict[str, Tensor], output_names: Optional[Sequence[str]]
) -> Tuple[np.ndarray, ...]:
    """Run an exported file: a ".onnx" with onnxruntime on the CPU (inputs by name), a ".ts"
    with ``torch.jit.load`` on the first input's device (inputs in order).

    Returns:
        the outputs ``output_names`` (None: all), in order, as numpy arrays.
    """
    if path.endswith(".onnx"):
        try:
            import onnxruntime
        except ImportError as e:
            raise ImportError(
                f"running the ONNX file needs onnxruntime ({e}); install it with `pip install "
                "onnxruntime` or `pip install -e .[export]`"
            ) from e

        session = onnxruntime.InferenceSession(path, providers=["CPUExecutionProvider"])
        feed = {name: x.cpu().numpy() for name, x in inputs.items()}
        return tuple(session.run(None if output_names is None else list(output_names), feed))
    tensors = list(inputs.values())
    module = torch.jit.load(path, map_location=tensors[0].device)
    with torch.no_grad():
        return tuple(t.cpu().numpy() for t in module(*tensors))


def max_differences(
    expected: Sequence[np.ndarray], actual: Sequence[np.ndarray]
) -> Dict[str, float]:
    """Largest absolute differences of boxes (pixels) and scores, and the number of differing
    classes, between two (boxes, scores, classes) results of the same shapes; with a fourth
    output, keypoints (N, T, J, 3), also the largest difference of their x, y and score
    ("keypoints")."""
    if len(expected) != len(actual):
        raise ValueError(f"{len(expected)} outputs expected, got {len(actual)}")
    boxes, scores, classes, *keypoints = (np.asarray(a) for a in expected)
    boxes2, scores2, classes2, *keypoints2 = (np.asarray(a) for a in actual)
    shapes = [(a.shape, b.shape) for a, b in zip(expected, actual)]
    if any(np.shape(a) != np.shape(b) for a, b in zip(expected, actual)):
        raise ValueError(f"shapes differ: {shapes}")
    diffs = {
        "boxes": float(np.abs(boxes - boxes2).max(initial=0.0)),
        "scores": float(np.abs(scores - scores2).max(initial=0.0)),
        "classes": int((classes != classes2).sum()),
    }
    if keypoints:
        diffs["keypoints"] = float(np.abs(keypoints[0] - keypoints2[0]).max(initial=0.0))
    return diffs


def export_path(model: nn.Module, output_dir: str, fmt: str) -> str:
    """The file ``fmt`` ("torchscript" or "onnx") is written to in ``output_dir`` (created), after
    checking the format and that ``model`` is in eval mode."""
    if fmt not in EXPORT_FORMATS:
        raise ValueError(f"the export format must be one of {EXPORT_FORMATS}, got {fmt!r}")
    if model.training:
        raise ValueError("export a model in eval mode (call model.eval()): BatchNorm differs")
    os.makedirs(output_dir, exist_ok=True)
    return os.path.join(output_dir, EXPORT_FILES[fmt])


def export_and_check(
    model: nn.Module,
    trace_images: Tensor,
    output_dir: str,
    fmt: str,
    check_images: Optional[Tensor] = None,
    metadata: Optional[Dict[str, Any]] = None,
    opset: int = ONNX_OPSET,
) -> Tuple[str, Dict[str, float]]:
    """Export ``model`` (in eval mode) to ``output_dir``/model.ts or model.onnx, traced on
    ``trace_images``, then run the file (TorchScript: ``torch.jit.load``; ONNX: onnxruntime) and
    the eager :func:`exported_outputs` on ``check_images`` (default: ``trace_images``).

    Args:
        trace_images, check_images: (N, 3, H, W) float, 0-255, the export size.
        fmt: "torchscript" or "onnx".
    Returns:
        the file's path and :func:`max_differences` of its outputs from PyTorch's.
    """
    path = export_path(model, output_dir, fmt)
    device = model.pixel_mean.device
    trace_images = trace_images.to(device)
    check_images = trace_images if check_images is None else check_images.to(device)
    if check_images.shape[1:] != trace_images.shape[1:]:
        raise ValueError(
            f"check images {tuple(check_images.shape)} must have the size of the traced images "
            f"{tuple(trace_images.shape)} (only the batch size may differ)"
        )
    if fmt == "torchscript":
        export_torchscript(model, trace_images, path, metadata)
    else:
        export_onnx(model, trace_images, path, metadata, opset)
    logger.info(f"wrote {path}")
    with torch.no_grad():
        image_size = tuple(check_images.shape[2:])
        expected = [t.cpu().numpy() for t in exported_outputs(model, check_images, image_size)]
    return path, max_differences(expected, run_exported(path, check_images))
