"""What is exported: a model's inference stages as one function of named tensors.

    images (N, 3, H, W) float32 [, prev_images, prev_heatmaps for CenterTrack]
    -> boxes (N, T, 4), scores (N, T), classes (N, T) int64
       [, keypoints (N, T, J, 3) with MODEL.KEYPOINT_ON] [, displacements (N, T, 2) CenterTrack]

* ``images``: pixel values 0-255 (not divided by 255) in the channel order of the config's
  ``INPUT.FORMAT``, H and W multiples of the backbone's size divisibility (no padding is
  added). ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD`` are applied inside.
* ``prev_images``, ``prev_heatmaps`` (CenterTrack): the previous frame as ``images`` (for the
  first frame of a video, the frame itself) and its tracks drawn as the model's input heatmap
  (N, 1, H, W) in [0, 1] (:func:`~centernet_d2.modeling.centertrack.render_prev_heatmap`; zeros
  for the first frame).
* ``boxes``: XYXY in the pixels of ``images``, clipped to (W, H); ``scores`` in [0, 1],
  descending per image; ``classes`` in 0..K-1. T is fixed: ``TEST.DETECTIONS_PER_IMAGE`` for
  CenterNet (its 3x3 peak test needs no NMS); for the multi-level CenterNet its class-wise NMS runs
  inside the graph and keeps the ``TEST.DETECTIONS_PER_IMAGE`` best, empty slots scoring 0. No
  score threshold is applied: keep the detections at or above the one you want.
* ``keypoints``: x, y in the pixels of ``images`` (not clipped) and a score, as
  ``Instances.pred_keypoints``; ``displacements``: the centre in the previous frame minus the
  centre, pixels of ``images``.

Test-time augmentation (``TEST.AUG``) is not exported. Shape shorthand: N images, T detections
per image, J keypoints, H/W the input size in pixels.
"""

from typing import Any, Dict, Optional, Sequence, Tuple

import cv2
import numpy as np
import torch
from torch import Tensor, nn

from ..modeling.decode import clip_boxes, fixed_size_nms

__all__ = [
    "ExportAdapter",
    "OUTPUT_NAMES",
    "export_metadata",
    "export_size",
    "load_image",
    "random_image",
]

OUTPUT_NAMES = ("boxes", "scores", "classes")
INPUT_FORMATS = ("RGB", "BGR")
# Largest pixel value of the input range 0-255.
MAX_PIXEL = 255.0


class ExportAdapter(nn.Module):
    """A detector (``CenterNet`` or a subclass, in eval mode) as the exported function of the
    module docstring, wired from the model's own stages: ``normalize_inputs``, ``run_network``,
    ``decode`` and, for a model with an NMS (``nms_settings``), the NMS in a fixed-size form
    (:func:`~centernet_d2.modeling.decode.fixed_size_nms`). Its outputs before the score threshold
    equal the model's inference on the same images (the threshold applied, boxes in the input's
    pixels)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if model.training:
            raise ValueError("export a model in eval mode (call model.eval()): BatchNorm differs")
        self.model = model

    @property
    def input_names(self) -> Tuple[str, ...]:
        return tuple(self.model.export_input_names)

    @property
    def output_names(self) -> Tuple[str, ...]:
        """:data:`OUTPUT_NAMES`, then the model's ``decoded_fields`` without the "pred_"."""
        return OUTPUT_NAMES + tuple(f[len("pred_") :] for f in self.model.decoded_fields)

    def check_inputs(self, inputs: Sequence[Tensor]) -> None:
        """Raise ``ValueError`` naming the input whose count, rank or size does not fit."""
        if len(inputs) != len(self.input_names):
            raise ValueError(f"the export takes {self.input_names}, got {len(inputs)} tensors")
        images = inputs[0]
        if images.dim() != 4 or images.shape[1] != 3:
            raise ValueError(f"images must be (N, 3, H, W), got {tuple(images.shape)}")
        divisibility = self.model.backbone.size_divisibility
        height, width = images.shape[2:]
        if divisibility > 0 and (height % divisibility or width % divisibility):
            raise ValueError(
                f"the input size (height, width) must be multiples of {divisibility} (the "
                f"backbone's size_divisibility), got {(height, width)}"
            )
        for name, x in zip(self.input_names[1:], inputs[1:]):
            if x.shape[0] != images.shape[0] or x.shape[2:] != images.shape[2:]:
                raise ValueError(
                    f"{name} must be (N, C, H, W) of the images' N, H, W "
                    f"{(images.shape[0], *images.shape[2:])}, got {tuple(x.shape)}"
                )

    def forward(self, *inputs: Tensor) -> Tuple[Tensor, ...]:
        m = self.model
        boxes, scores, classes, *fields = m.decode(m.run_network(*m.normalize_inputs(*inputs)))
        boxes = clip_boxes(boxes, inputs[0].shape[2], inputs[0].shape[3])
        iou, kept = m.nms_settings
        if iou is not None:
            return fixed_size_nms(boxes, scores, classes, iou, kept, *fields)
        return (boxes, scores, classes, *fields)


def export_size(min_size: int, divisibility: int) -> Tuple[int, int]:
    """The default input size of an export: a square of side ``min_size`` (INPUT.MIN_SIZE_TEST)
    rounded up to a multiple of ``divisibility`` (the backbone's ``size_divisibility``).

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
    adapter: ExportAdapter,
    image_size: Tuple[int, int],
    input_format: str,
    score_thresh: float,
    class_names: Optional[Sequence[str]] = None,
    dynamic_size: bool = False,
    test_resize: Optional[Tuple[int, int]] = None,
    tracking: Optional[Dict[str, Any]] = None,
) -> Dict[str, Any]:
    """What a runtime needs besides the graph, stored in the exported file as JSON.

    Args:
        image_size: (H, W) the export was traced at (the only one if not ``dynamic_size``);
            input_format: INPUT.FORMAT; score_thresh: the config's
            MODEL.CENTERNET.SCORE_THRESH_TEST (recommended, not applied); class_names: of
            classes 0..K-1, if known; dynamic_size: whether H and W may be any multiples of
            the size divisibility; test_resize: (INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST), the
            resize of a deployment (:class:`~centernet_d2.deploy.DeployPredictor`);
            tracking: a tracking model's tracker, "settings" (the fields of
            :class:`~centernet_d2.tracking.TrackerSettings`) and "prev_heatmap_score"
            (TEST.TRACKING), for :class:`~centernet_d2.deploy.DeployTracker`.
    """
    model = adapter.model
    return {
        "inputs": list(adapter.input_names),
        "outputs": list(adapter.output_names),
        "input_layout": "NCHW",
        "height": int(image_size[0]),
        "width": int(image_size[1]),
        "dynamic_size": bool(dynamic_size),
        "size_divisibility": int(model.backbone.size_divisibility),
        "input_format": input_format,
        "input_range": [0.0, MAX_PIXEL],
        "normalized_inside": True,
        "pixel_mean": [float(v) for v in model.pixel_mean.flatten()],
        "pixel_std": [float(v) for v in model.pixel_std.flatten()],
        "box_format": "XYXY",
        "score_thresh": float(score_thresh),
        "class_names": list(class_names) if class_names else None,
        "model": type(model).__name__,
        "min_size_test": int(test_resize[0]) if test_resize else None,
        "max_size_test": int(test_resize[1]) if test_resize else None,
        "tracking": tracking,
    }


def load_image(path: str, size: Tuple[int, int], input_format: str = "RGB") -> Tensor:
    """An image file as the exported function takes it: read with OpenCV, converted to
    ``input_format`` ("RGB" or "BGR"), resized to ``size`` (height, width; bilinear, aspect not
    kept). Returns (3, H, W) float32, values 0-255."""
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
    """(3, H, W) float32 uniform in [0, 255], to trace when no sample image is given."""
    generator = torch.Generator().manual_seed(seed)
    return torch.rand(3, *size, generator=generator) * MAX_PIXEL
