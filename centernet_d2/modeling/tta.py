"""Test-time augmentation of CenterNet as pure functions: flip merging of the head's outputs,
resizing for multi-scale testing, and merging of the detections of several scales.

:class:`~.meta_arch.CenterNet` runs them when built with ``TEST.AUG.ENABLED``: per scale it runs
the network on the images and their mirror images in one batch, merges the two outputs with
:func:`merge_flipped` before decoding, maps the detections to the original images, and merges
the scales with :func:`merge_detections`.

Shape shorthand:
    N: images, K: classes, H/W: output grid, V: views (augmented copies) of an image.
"""

from typing import Dict, List, Sequence, Tuple

import torch
import torch.nn.functional as F
from detectron2.data.transforms import ResizeShortestEdge
from detectron2.structures import Instances
from torch import Tensor
from torchvision.ops import batched_nms

__all__ = [
    "mean_probability_logits",
    "merge_flipped",
    "scaled_size",
    "resize_image",
    "merge_detections",
]

# The ltrb channels (l, t, r, b) of a mirror image, mirrored back: l and r swap.
_MIRROR_LTRB = [2, 1, 0, 3]


def mean_probability_logits(logits: Sequence[Tensor]) -> Tensor:
    """The logits of the mean of the probabilities ``sigmoid(x_v)`` of V views (CenterNet's flip
    test averages heatmap probabilities, not logits):
    ``log(sum_v sigmoid(x_v)) - log(sum_v sigmoid(-x_v))`` by ``logsumexp`` of ``logsigmoid``,
    finite for any finite logits (the 1 / V of both means cancels).

    Args:
        logits: V tensors of one shape, e.g. (N, K, H, W).
    Returns:
        float32 logits of that shape; ``sigmoid`` of them is the mean probability.
    """
    x = torch.stack(list(logits)).float()  # (V, ...)
    return torch.logsumexp(F.logsigmoid(x), dim=0) - torch.logsumexp(F.logsigmoid(-x), dim=0)


def merge_flipped(predictions: Dict[str, Tensor], mirrored: Dict[str, Tensor]) -> Dict[str, Tensor]:
    """Merge the head's outputs on images and on their horizontal mirror images (the whole padded
    input flipped, so output cell x of the mirror is cell W - 1 - x of the image).

    The mirror's outputs are flipped back along W, then:
      * "heatmap": logits of the mean probability (:func:`mean_probability_logits`);
      * "size": mean of the two;
      * "box" (ltrb): mean of the two, the mirror's l and r swapped (a cell centre maps onto a
        cell centre, see :mod:`.targets`);
      * "offset": the image's alone, as CenterNet's reference code (a mirrored sub-cell offset
        belongs to the neighbouring cell when the centre is not on a cell boundary).

    Args:
        predictions, mirrored: the head's outputs, "heatmap" (N, K, H, W) logits and "size" /
            "offset" (N, 2, H, W) or "box" (N, 4, H, W), in cells.
    Returns:
        the merged outputs, same keys and shapes.
    """
    merged = {}
    for name, x in predictions.items():
        back = mirrored[name].flip(-1)
        if name == "heatmap":
            merged[name] = mean_probability_logits([x, back])
        elif name == "size":
            merged[name] = (x + back) / 2
        elif name == "box":
            merged[name] = (x + back[:, _MIRROR_LTRB]) / 2
        elif name == "offset":
            merged[name] = x
        else:
            raise ValueError(
                f"flip test-time augmentation merges the outputs heatmap, size, offset and box, "
                f"got {name!r}"
            )
    return merged


def scaled_size(height: int, width: int, min_size: int, max_size: int) -> Tuple[int, int]:
    """(height, width) of an image of the given size resized so that its short side is
    ``min_size``, unless its long side would exceed ``max_size`` (Detectron2's
    ``ResizeShortestEdge``, as TEST.AUG.MIN_SIZES / MAX_SIZE for Detectron2's R-CNN TTA), each
    side at least 1 pixel (a 1x1000 image would otherwise get a side of 0)."""
    h, w = ResizeShortestEdge.get_output_shape(height, width, min_size, max_size)
    return max(h, 1), max(w, 1)


def resize_image(image: Tensor, size: Tuple[int, int]) -> Tensor:
    """An image (C, h, w), any dtype, resized bilinearly to ``size`` (height, width), as float32;
    returned unresized (as float32) if it has that size already."""
    image = image.float()
    if tuple(image.shape[-2:]) == tuple(size):
        return image
    return F.interpolate(image[None], size=size, mode="bilinear", align_corners=False)[0]


def merge_detections(instances: List[Instances], nms_thresh: float, topk: int) -> Instances:
    """One image's detections from several scales, in the same (original) image size, merged:
    duplicates removed by class-wise NMS (``torchvision.ops.batched_nms``), then the ``topk``
    highest scores kept.

    Args:
        instances: Instances with ``pred_boxes`` (XYXY pixels), ``scores``, ``pred_classes``.
        nms_thresh: IoU above which the lower-scored of two same-class boxes is dropped.
        topk: detections kept.
    Returns:
        Instances sorted by descending score.
    """
    merged = Instances.cat(instances)
    keep = batched_nms(
        merged.pred_boxes.tensor.float(), merged.scores.float(), merged.pred_classes, nms_thresh
    )
    return merged[keep[:topk]]
