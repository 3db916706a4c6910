"""CenterNet's keypoints ("Objects as Points", Sec. 4 "Human pose estimation"; per class as in
the TF Object Detection API): targets, losses and decoding as tensor functions, batched over
images and objects.

An object's J keypoints are regressed at its centre cell as offsets from that cell (2J channels,
"keypoints"); a J-channel keypoint heatmap ("keypoint_heatmap") and a sub-cell offset
("keypoint_offset", 2 channels shared by the keypoints) find the keypoints bottom-up; at
inference each regressed keypoint moves to the nearest confident heatmap peak inside the object's
box (:func:`decode_keypoints`).

Per-class keypoint sets use a union layout: the keypoints of every class in one list of J
(:func:`centernet_d2.data.keypoint_layout`), a class owning some of them (``class_keypoints``),
a class without keypoints none; an object's other keypoints are not labelled (visibility 0).

Shape shorthand:
    N: images, K: classes, J: keypoints, M: objects of the batch, V: labelled keypoints of the
    batch, H/W: output grid, T: detections per image, P: heatmap peaks per keypoint and image.

Naming convention:
    Keypoints are (x, y) in input pixels (Detectron2's continuous coordinates) unless a name
    says cells (input pixels / stride). As for object centres, a point at ``u`` cells lies in
    cell ``floor(u)`` with the sub-cell offset ``u - floor(u)``; a keypoint's offset target is
    ``u - centre cell`` (CenterNet's ``pts - ct_int``).
"""

from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from detectron2.structures import Instances
from torch import Tensor

from .decode import _dense_peaks, cell_xy
from .losses import gather_at_peaks
from .targets import batch_objects, center_cells, cornernet_paper_radius, draw_gaussians

# Keypoint heatmap peaks per keypoint type that snapping considers, at least (CenterNet's K).
MIN_KEYPOINT_PEAKS = 100
# Farthest snap, in box sides (the longer): a nearer regressed keypoint is kept (the paper's code).
SNAP_DISTANCE = 0.3

__all__ = [
    "KeypointSettings",
    "KeypointTargets",
    "class_keypoint_mask",
    "keypoint_targets",
    "keypoint_offset_loss",
    "decode_keypoints",
]


@dataclass(frozen=True)
class KeypointSettings:
    """A model's keypoint settings (``MODEL.KEYPOINT_ON`` and ``MODEL.CENTERNET.*``).

    Attributes:
        num_keypoints: J (``NUM_KEYPOINTS``), the union layout's keypoints.
        class_keypoints: per class the indices of its keypoints (``CLASS_KEYPOINTS``); empty:
            every class has all J.
        min_overlap: ``MIN_OVERLAP`` of the keypoint gaussians' radius (the object's CornerNet
            radius of the paper's code, as the paper's multi-pose targets).
        snap: move regressed keypoints to heatmap peaks at inference (``KEYPOINT_SNAP``).
        snap_thresh: least heatmap probability of a peak to snap to (``KEYPOINT_SNAP_THRESH``,
            the paper's 0.1).
    """

    num_keypoints: int
    class_keypoints: Tuple[Tuple[int, ...], ...] = ()
    min_overlap: float = 0.7
    snap: bool = True
    snap_thresh: float = 0.1

    def __post_init__(self):
        J = self.num_keypoints
        if J <= 0:
            raise ValueError(
                f"MODEL.CENTERNET.NUM_KEYPOINTS must be positive, got {J} (0 is filled from the "
                "training dataset before training; to build a model without one, set it, as a "
                "trained run's config.yaml does)"
            )
        bad = sorted({j for ks in self.class_keypoints for j in ks if not 0 <= j < J})
        if bad:
            raise ValueError(
                f"MODEL.CENTERNET.CLASS_KEYPOINTS names keypoints {bad}, outside [0, {J}) "
                f"(NUM_KEYPOINTS {J})"
            )
        if not 0 <= self.snap_thresh <= 1:
            raise ValueError(
                f"MODEL.CENTERNET.KEYPOINT_SNAP_THRESH must be in [0, 1], got {self.snap_thresh}"
            )


def class_keypoint_mask(
    class_keypoints: Sequence[Sequence[int]], num_classes: int, num_keypoints: int
) -> Tensor:
    """(K, J) bool: which keypoints each class has; all where ``class_keypoints`` is empty."""
    if not class_keypoints:
        return torch.ones(num_classes, num_keypoints, dtype=torch.bool)
    if len(class_keypoints) != num_classes:
        raise ValueError(
            f"MODEL.CENTERNET.CLASS_KEYPOINTS has {len(class_keypoints)} entries for "
            f"{num_classes} classes (NUM_CLASSES): give one list per class ([] for none)"
        )
    mask = torch.zeros(num_classes, num_keypoints, dtype=torch.bool)
    for k, joints in enumerate(class_keypoints):
        mask[k, list(joints)] = True
    return mask


@dataclass
class KeypointTargets:
    """Keypoint targets of one batch, for the objects of :func:`~.targets.build_targets` in
    its order.

    Attributes:
        offset: (M, J, 2) keypoint minus the object's centre cell, in cells (0 where unlabelled).
        labelled: (M, J) bool, the keypoints with a target (visibility > 0, inside the image).
        heatmap: (N, J, H, W) gaussian keypoint heatmaps.
        index: (V,) long flat position ``image * H * W + y * W + x`` of each labelled keypoint.
        subcell: (V, 2) its sub-cell offset.
    """

    offset: Tensor
    labelled: Tensor
    heatmap: Tensor
    index: Tensor
    subcell: Tensor

    @property
    def num_labelled(self) -> int:
        return self.index.numel()


@torch.no_grad()
def keypoint_targets(
    gt_instances: List[Instances],
    image_sizes: List[Tuple[int, int]],
    num_classes: int,
    shape: Tuple[int, int, int, int],
    stride: int,
    min_overlap: float = 0.7,
) -> KeypointTargets:
    """The keypoint targets of a batch (the paper's multi-pose targets).

    The objects are those of :func:`~.targets.batch_objects` (boxes clipped, no-area ones
    dropped), in its order. A keypoint has a target when its visibility is > 0 (COCO: 1 labelled
    but hidden, 2 visible) and it lies in its image (``0 <= x <= width``, ``0 <= y <=
    height``; Detectron2's augmentation already unlabels those it moves outside). Its heatmap
    gaussian has the object's radius, :func:`~.targets.cornernet_paper_radius` of the box's
    ``ceil`` size in cells, truncated (CenterNet's ``hp_radius``); gaussians of one keypoint
    type merge by their maximum.

    Args:
        gt_instances: per image ``gt_boxes``, ``gt_classes`` and ``gt_keypoints`` (Detectron2
            ``Keypoints``, (M_i, J, 3) x, y, visibility in input pixels); an image without
            objects may lack ``gt_keypoints``.
        image_sizes: per image (height, width) before padding.
        num_classes: K, to check the class ids as :func:`~.targets.batch_objects`.
        shape: (N, J, H, W) of the keypoint heatmap.
        stride: input pixels per cell.
    Raises:
        ValueError: an image with objects but no keypoints, or keypoints of other than J.
    """
    N, J, H, W = shape
    keypoints = []
    for i, x in enumerate(gt_instances):
        if x.has("gt_keypoints"):
            kp = x.gt_keypoints.tensor
        elif len(x) == 0:
            kp = x.gt_boxes.tensor.new_zeros(0, J, 3)
        else:
            raise ValueError(
                f"image {i} of the batch has objects without keypoints (no gt_keypoints), but "
                "MODEL.KEYPOINT_ON is set: train on a dataset with keypoints"
            )
        if kp.shape[1:] != (J, 3):
            raise ValueError(
                f"the dataset's objects have {kp.shape[1]} keypoints, but "
                f"MODEL.CENTERNET.NUM_KEYPOINTS is {J}"
            )
        keypoints.append(kp)
    boxes, _, image, keep = batch_objects(gt_instances, image_sizes, num_classes, True)
    kp = torch.cat(keypoints)[keep].float()  # (M, J, 3)
    xy, vis = kp[..., :2], kp[..., 2]
    hw = torch.tensor(image_sizes, dtype=xy.dtype, device=xy.device)[image]  # (M, 2)
    inside = (xy >= 0).all(dim=2) & (xy <= hw.flip(1)[:, None]).all(dim=2)
    labelled = (vis > 0) & inside  # (M, J)
    _, centres = center_cells(boxes, stride, H, W)  # (M, 2)
    u = xy / stride  # (M, J, 2) cells
    offset = (u - centres[:, None]) * labelled[..., None]
    limit = torch.tensor([W - 1, H - 1], device=xy.device)
    cells = torch.minimum(u.floor().long().clamp(min=0), limit)  # (M, J, 2)
    sizes = (boxes[:, 2:] - boxes[:, :2]) / stride
    radius = cornernet_paper_radius(sizes.ceil(), min_overlap).floor().long()  # (M,)
    m, j = labelled.nonzero(as_tuple=True)  # (V,), (V,)
    c = cells[m, j]  # (V, 2)
    heatmap = draw_gaussians(c, radius[m, None].expand(-1, 2), image[m] * J + j, shape)
    return KeypointTargets(
        offset=offset,
        labelled=labelled,
        heatmap=heatmap,
        index=(image[m] * H + c[:, 1]) * W + c[:, 0],
        subcell=u[m, j] - c,
    )


def keypoint_offset_loss(pred: Tensor, index: Tensor, target: Tensor, labelled: Tensor) -> Tensor:
    """L1 loss of the keypoints regressed at object centres: per labelled keypoint the mean of
    its x and y errors, summed (CenterNet's ``RegWeightedL1Loss`` before its division by the
    labelled coordinates).

    Args:
        pred: (N, 2J, H, W) offsets (x_1, y_1, ..., x_J, y_J) in cells.
        index: (M,) long flat centre positions (:func:`~.losses.gather_at_peaks`).
        target: (M, J, 2); labelled: (M, J) bool.
    Returns:
        scalar; divide by the labelled keypoints.
    """
    p = gather_at_peaks(pred, index).float().view(target.shape)  # (M, J, 2)
    return ((p - target).abs().mean(dim=2) * labelled).sum()


def decode_keypoints(
    predictions: Dict[str, Tensor],
    positions: Tensor,
    boxes: Tensor,
    classes: Tensor,
    stride: int,
    settings: KeypointSettings,
    class_mask: Optional[Tensor] = None,
) -> Tensor:
    """The keypoints of detections, as the paper decodes them (its code's
    ``multi_pose_decode``): the J offsets regressed at each detection's peak cell; with
    ``settings.snap``, each then moved to the nearest peak of its keypoint heatmap (3x3 local
    maximum, among its ``max(T, MIN_KEYPOINT_PEAKS)`` best) of probability >=
    ``settings.snap_thresh``, if that peak lies inside the detection's box and within
    ``SNAP_DISTANCE`` times the box's longer side of the regressed keypoint. A keypoint's score
    is the keypoint heatmap's probability where it ends: its peak's, or at its cell when not
    snapped; keypoints that the detection's class does not have (``class_mask``) score 0.
    Tensor-only, so ``torch.jit.trace`` works.

    Args:
        predictions: "keypoints" (N, 2J, H, W) offsets from the cell in cells,
            "keypoint_heatmap" (N, J, H, W) logits, "keypoint_offset" (N, 2, H, W) in cells.
        positions: (N, T) long ``y * W + x`` of the detections' peaks.
        boxes: (N, T, 4) XYXY input pixels; classes: (N, T) long.
        stride: input pixels per cell.
        class_mask: (K, J) bool (:func:`class_keypoint_mask`), or None: all keypoints.
    Returns:
        (N, T, J, 3) float32: x, y in input pixels and score, Detectron2's ``pred_keypoints``.
    """
    heat = predictions["keypoint_heatmap"]  # (N, J, H, W)
    N, J, H, W = heat.shape
    T = positions.shape[1]
    xy = cell_xy(positions, W)  # (N, T, 2)
    gather = positions[:, None, :].expand(-1, 2 * J, -1)  # (N, 2J, T)
    offsets = predictions["keypoints"].flatten(2).gather(2, gather).transpose(1, 2).float()
    regressed = offsets.reshape(N, T, J, 2) + xy[:, :, None]  # (N, T, J, 2) cells
    limit = torch.tensor([W - 1, H - 1], device=heat.device)
    cell = torch.minimum(regressed.floor().long().clamp(min=0), limit)
    flat = (cell[..., 1] * W + cell[..., 0]).permute(0, 2, 1)  # (N, J, T)
    score = torch.sigmoid(heat.flatten(2).gather(2, flat).float()).permute(0, 2, 1)  # (N, T, J)
    keypoints = regressed * stride
    P = min(max(T, MIN_KEYPOINT_PEAKS), H * W)
    if settings.snap and T > 0:
        top, idx = _dense_peaks(heat).flatten(2).topk(P)  # (N, J, P)
        sub = predictions["keypoint_offset"].flatten(2)  # (N, 2, H * W)
        sub = sub.gather(2, idx.reshape(N, 1, J * P).expand(-1, 2, -1)).float()  # (N, 2, J * P)
        sub = sub.view(N, 2, J, P).permute(0, 2, 3, 1)  # (N, J, P, 2)
        peaks = (cell_xy(idx, W) + sub) * stride  # (N, J, P, 2) input pixels
        peak_score = torch.sigmoid(top.float())  # (N, J, P); -inf logits (no peak): 0
        confident = (peak_score >= settings.snap_thresh)[:, None]  # (N, 1, J, P)
        distance = ((keypoints[:, :, :, None] - peaks[:, None]) ** 2).sum(dim=4)  # (N, T, J, P)
        distance = torch.where(confident, distance, torch.full_like(distance, float("inf")))
        nearest, best = distance.min(dim=3)  # (N, T, J)
        index = best[..., None, None].expand(-1, -1, -1, 1, 2)
        chosen = peaks[:, None].expand(-1, T, -1, -1, -1).gather(3, index).squeeze(3)
        b = boxes[:, :, None, :]  # (N, T, 1, 4)
        side = (b[..., 2:] - b[..., :2]).amax(dim=3)  # (N, T, 1) the box's longer side
        snapped = (
            (nearest.sqrt() <= SNAP_DISTANCE * side)  # inf (no confident peak): False
            & (chosen[..., 0] >= b[..., 0])
            & (chosen[..., 0] <= b[..., 2])
            & (chosen[..., 1] >= b[..., 1])
            & (chosen[..., 1] <= b[..., 3])
        )  # (N, T, J)
        keypoints = torch.where(snapped[..., None], chosen, keypoints)
        chosen_score = peak_score[:, None].expand(-1, T, -1, -1).gather(3, best[..., None])
        score = torch.where(snapped, chosen_score.squeeze(3), score)
    if class_mask is not None:
        score = score * class_mask.to(score.device)[classes]
    return torch.cat([keypoints, score[..., None]], dim=3)
