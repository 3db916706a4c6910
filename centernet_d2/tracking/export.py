"""Export of a CenterTrack's network to TorchScript (tracing) or ONNX, decoding inside the graph,
as :mod:`centernet_d2.export` exports a CenterNet (same files, metadata and parity check):

    images (N, 3, H, W), prev_images (N, 3, H, W), prev_heatmaps (N, 1, H, W) float32
    -> boxes (N, T, 4), scores (N, T), classes (N, T) int64, displacements (N, T, 2)

* ``images``, ``prev_images``: the frame and the previous one, as the detector's export takes
  images (0-255, ``INPUT.FORMAT`` order, the export size; normalised inside); for the first
  frame of a video, the frame itself.
* ``prev_heatmaps``: the previous frame's tracks drawn as the model's input heatmap, values in
  [0, 1] (:func:`~centernet_d2.modeling.centertrack.render_prev_heatmap`: a round gaussian of peak
  1 per track box); zeros for the first frame.
* ``displacements``: per detection, its centre in the previous frame minus its centre, in the
  pixels of ``images``; linking to tracks is left to the runtime (:class:`.tracker.Tracker`).

Shape shorthand: N frames, T detections per frame, H/W the export size in pixels.
"""

import logging
from functools import partial
from typing import Any, Dict, Optional, Tuple

import numpy as np
import torch
from torch import Tensor, nn

from ..export import (
    ONNX_OPSET,
    _tracing_adapter_class,
    checked_export_size,
    export_path,
    run_file,
    save_onnx,
    save_torchscript,
)
from ..modeling.centertrack import CenterTrack, render_prev_heatmap

__all__ = [
    "TRACKING_INPUT_NAMES",
    "TRACKING_OUTPUT_NAMES",
    "export_tracking_and_check",
    "exported_tracking_outputs",
    "tracking_inputs_from_frames",
    "tracking_differences",
]

logger = logging.getLogger(__name__)

TRACKING_INPUT_NAMES = ("images", "prev_images", "prev_heatmaps")
TRACKING_OUTPUT_NAMES = ("boxes", "scores", "classes", "displacements")
Inputs = Tuple[Tensor, Tensor, Tensor]


def exported_tracking_outputs(
    model: nn.Module,
    images: Tensor,
    prev_images: Tensor,
    prev_heatmaps: Tensor,
    image_size: Tuple[int, int],
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """The function that is exported, run eagerly: what a CenterTrack in eval mode computes
    before its score threshold, as :func:`centernet_d2.export.exported_outputs`, and the
    detections' displacements.

    Args:
        model: a CenterTrack in eval mode.
        images, prev_images: (N, 3, H, W) float, 0-255, the export size; prev_heatmaps:
            (N, 1, H, W) in [0, 1].
        image_size: (H, W), the clipping bounds (a Python pair: constants when traced).
    Returns:
        boxes (N, T, 4) XYXY pixels, clipped; scores (N, T) descending; classes (N, T) int64;
        displacements (N, T, 2) pixels.
    """
    x = (images - model.pixel_mean) / model.pixel_std  # DenseDetector.preprocess_image
    prev = (prev_images - model.pixel_mean) / model.pixel_std
    predictions = model.run_network(x, prev, prev_heatmaps)
    boxes, scores, classes, displacements = model.decode(predictions)
    height, width = image_size
    limits = boxes.new_tensor([width, height, width, height])  # Boxes.clip of the inference
    return torch.min(boxes.clamp(min=0), limits), scores, classes, displacements


def _adapter(model: nn.Module, inputs: Inputs) -> nn.Module:
    """``TracingAdapter`` of :func:`exported_tracking_outputs` for inputs of these sizes, in
    eval mode (see :func:`centernet_d2.export._adapter`)."""
    if not isinstance(model, CenterTrack):
        raise ValueError(f"tracking export needs a CenterTrack, got {type(model).__name__}")
    images, prev_images, prev_heatmaps = inputs
    if images.dim() != 4 or prev_images.shape != images.shape:
        raise ValueError(
            "images and prev_images must be (N, 3, H, W) of one shape, got "
            f"{tuple(images.shape)} and {tuple(prev_images.shape)}"
        )
    if prev_heatmaps.shape != (images.shape[0], 1, *images.shape[2:]):
        raise ValueError(
            f"prev_heatmaps must be (N, 1, H, W) = {(images.shape[0], 1, *images.shape[2:])}, "
            f"got {tuple(prev_heatmaps.shape)}"
        )
    image_size = checked_export_size(model, images)
    inference = partial(exported_tracking_outputs, image_size=image_size)
    return _tracing_adapter_class()(model, tuple(inputs), inference_func=inference).eval()


@torch.no_grad()
def tracking_inputs_from_frames(model: nn.Module, images: Tensor) -> Inputs:
    """Inputs for tracing and checking made of frames alone: each frame's previous frame is the
    one before it in ``images`` (the first: itself), and its heatmap shows the model's own
    detections there scoring at least its ``test_score_thresh`` (the first: none).

    Args:
        images: (N, 3, H, W) float, 0-255.
    Returns:
        images, prev_images, prev_heatmaps (N, 1, H, W).
    """
    prev_images = torch.cat([images[:1], images[:-1]])
    zeros = images.new_zeros(images.shape[0], 1, *images.shape[2:])
    boxes, scores, _, _ = exported_tracking_outputs(
        model, prev_images, prev_images, zeros, tuple(images.shape[2:])
    )
    kept = [b[s >= model.test_score_thresh] for b, s in zip(boxes, scores)]
    kept[0] = kept[0][:0]
    return images, prev_images, render_prev_heatmap(kept, tuple(zeros.shape))


def tracking_differences(
    expected: Tuple[np.ndarray, ...], actual: Tuple[np.ndarray, ...]
) -> Dict[str, float]:
    """Largest absolute differences of boxes and displacements (pixels) and scores, and the
    number of differing classes, between two results of :data:`TRACKING_OUTPUT_NAMES`."""
    for name, a, b in zip(TRACKING_OUTPUT_NAMES, expected, actual):
        if np.shape(a) != np.shape(b):
            raise ValueError(f"{name}: shapes differ, {np.shape(a)} / {np.shape(b)}")
    diffs = {
        name: float(np.abs(np.asarray(a) - np.asarray(b)).max(initial=0.0))
        for name, a, b in zip(TRACKING_OUTPUT_NAMES, expected, actual)
        if name != "classes"
    }
    diffs["classes"] = int((np.asarray(expected[2]) != np.asarray(actual[2])).sum())
    return diffs


def export_tracking_and_check(
    model: nn.Module,
    trace_inputs: Inputs,
    output_dir: str,
    fmt: str,
    check_inputs: Optional[Inputs] = None,
    metadata: Optional[Dict[str, Any]] = None,
    opset: int = ONNX_OPSET,
) -> Tuple[str, Dict[str, float]]:
    """Export a CenterTrack (in eval mode) to ``output_dir``/model.ts or model.onnx, traced on
    ``trace_inputs`` (images, prev_images, prev_heatmaps), then run the file (TorchScript or
    onnxruntime) and the eager :func:`exported_tracking_outputs` on ``check_inputs`` (default:
    ``trace_inputs``; only the batch size may differ).

    Returns:
        the file's path and :func:`tracking_differences` of its outputs from PyTorch's.
    """
    path = export_path(model, output_dir, fmt)
    device = model.pixel_mean.device
    trace_inputs = tuple(x.to(device) for x in trace_inputs)
    check_inputs = (
        trace_inputs if check_inputs is None else tuple(x.to(device) for x in check_inputs)
    )
    if check_inputs[0].shape[1:] != trace_inputs[0].shape[1:]:
        raise ValueError(
            f"check images {tuple(check_inputs[0].shape)} must have the size of the traced "
            f"images {tuple(trace_inputs[0].shape)} (only the batch size may differ)"
        )
    metadata = dict(
        metadata or {},
        inputs=list(TRACKING_INPUT_NAMES),
        outputs=list(TRACKING_OUTPUT_NAMES),
    )
    adapter = _adapter(model, trace_inputs)
    if fmt == "torchscript":
        save_torchscript(adapter, path, metadata)
    else:
        save_onnx(adapter, path, TRACKING_INPUT_NAMES, TRACKING_OUTPUT_NAMES, metadata, opset)
    logger.info(f"wrote {path}")
    with torch.no_grad():
        size = tuple(check_inputs[0].shape[2:])
        expected = [t.cpu().numpy() for t in exported_tracking_outputs(model, *check_inputs, size)]
    actual = run_file(path, dict(zip(TRACKING_INPUT_NAMES, check_inputs)), TRACKING_OUTPUT_NAMES)
    return path, tracking_differences(expected, actual)
