"""Decoding CenterNet's dense outputs into detections, batched over images.

Shape shorthand:
    N: images, K: classes, H/W: output grid, T: detections kept per image (top-K).
"""

import dataclasses
from typing import Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F
import torchvision
from detectron2.layers import batched_nms
from detectron2.structures import Boxes, Instances
from torch import Tensor

# Least width and height of a multi-level candidate box, input pixels: CenterNet2's decoder widens
# a box of no width or height (all-zero distances) to this, so that it survives as a detection.
MIN_LEVEL_BOX_SIDE = 0.01

__all__ = [
    "InferenceSettings",
    "topk_peaks",
    "decode_boxes",
    "decode_ltrb_boxes",
    "decode_levels",
    "decode_predictions",
    "amodal_boxes_at",
    "cell_xy",
    "values_at",
    "to_instances",
    "clip_boxes",
    "fixed_size_nms",
]


@dataclasses.dataclass(frozen=True)
class InferenceSettings:
    """What a model keeps at inference.

    Attributes:
        score_thresh: detections below this score are dropped (``MODEL.CENTERNET.SCORE_THRESH_TEST``).
        topk: detections kept per image (``TEST.DETECTIONS_PER_IMAGE``): the top-K peaks
            before the score threshold; after the NMS for the multi-level CenterNet.
        nms_thresh: IoU of the multi-level CenterNet's class-wise NMS across levels.
        pre_nms_topk: candidates per level and image before that NMS.
    """

    score_thresh: float = 0.05
    topk: int = 100
    nms_thresh: float = 0.6
    pre_nms_topk: int = 1000


def topk_peaks(heatmap_logits: Tensor, k: int) -> Tuple[Tensor, Tensor, Tensor]:
    """Top-``k`` local maxima over classes and positions of each image.

    A position is a peak when it equals the max of its 3x3 neighbourhood (CenterNet's NMS
    replacement). Peaks are found on logits: sigmoid is monotonic, so the peaks are the same and
    only the kept ``k`` values go through the sigmoid.

    In eager mode the 3x3 test runs only on the heatmap rows that can hold a top-``k`` peak (see
    :func:`_topk_peaks_by_rows`), which gives the same peaks as testing every position (ties aside)
    at a fraction of the memory traffic; traced or compiled, it runs on the whole map.

    Args:
        heatmap_logits: (N, K, H, W), any memory format.
    Returns:
        scores (N, T) in [0, 1], descending; classes (N, T) long; positions (N, T) long
        ``y * W + x``; T = min(k, K * H * W) (0 for k = 0: empty tensors). Where an image has
        fewer than T peaks, the rest have score 0 (logit -inf).
    """
    if k < 0:
        raise ValueError(f"the number of detections k must be >= 0, got {k}")
    if torch.jit.is_tracing() or torch.jit.is_scripting() or _is_compiling():
        N, K, H, W = heatmap_logits.shape
        top, idx = _dense_peaks(heatmap_logits).flatten(1).topk(min(k, K * H * W))
    else:
        top, idx = _topk_peaks_by_rows(heatmap_logits, k)
    HW = heatmap_logits.shape[2] * heatmap_logits.shape[3]
    classes = torch.div(idx, HW, rounding_mode="floor")
    return torch.sigmoid(top), classes, idx - classes * HW


def _is_compiling() -> bool:
    compiler = getattr(torch, "compiler", None)
    return bool(
        compiler is not None and hasattr(compiler, "is_compiling") and compiler.is_compiling()
    )


def _dense_peaks(logits: Tensor) -> Tensor:
    """(N, K, H, W) logits with every position that is not a 3x3 local maximum set to -inf."""
    # 3x3 max as two separable shifted maxima: equal to max_pool2d(3, 1, 1), ~10x faster on CPU
    p = F.pad(logits, (1, 1, 1, 1), value=float("-inf"))
    rows = torch.maximum(torch.maximum(p[..., :-2], p[..., 1:-1]), p[..., 2:])
    pooled = torch.maximum(torch.maximum(rows[..., :-2, :], rows[..., 1:-1, :]), rows[..., 2:, :])
    return logits.masked_fill(pooled != logits, float("-inf"))


def _row_peaks(logits: Tensor, rows: Tensor) -> Tensor:
    """The given heatmap rows with every position that is not a 3x3 local maximum (of the whole
    map) set to -inf.

    Args:
        logits: (N, K, H, W).
        rows: (N, R) long row indices ``class * H + y``.
    Returns:
        (N, R, W).
    """
    N, K, H, W = logits.shape
    c = torch.div(rows, H, rounding_mode="floor")
    y = rows - c * H
    n = torch.arange(N, device=rows.device)[:, None]
    center = logits[n, c, y]  # (N, R, W)
    # the rows above and below; at the border the row itself, which does not change the max
    vertical = torch.maximum(
        torch.maximum(logits[n, c, (y - 1).clamp(min=0)], center),
        logits[n, c, (y + 1).clamp(max=H - 1)],
    )
    pooled = vertical.clone()
    torch.maximum(pooled[..., 1:], vertical[..., :-1], out=pooled[..., 1:])
    torch.maximum(pooled[..., :-1], vertical[..., 1:], out=pooled[..., :-1])
    return center.masked_fill(pooled != center, float("-inf"))


def _topk_peaks_by_rows(logits: Tensor, k: int) -> Tuple[Tensor, Tensor]:
    """Top-``k`` peaks as (logits (N, T), flat indices ``class * H * W + y * W + x`` (N, T)).

    A row of the heatmap (one class, one y) can hold a peak above ``v`` only if its maximum is
    above ``v``, and the rows whose maximum exceeds ``v`` are the first ones in the order of
    their maxima. So the 3x3 test runs on the first ``R`` rows in that order, starting with
    ``R = 2k``: if the k-th peak found is at least the maximum of row ``R + 1``, no other row can
    hold a better peak and the result is exact. Otherwise ``R`` grows to the number of rows whose
    maximum exceeds that k-th peak, which makes the next round exact, or four-fold while fewer
    than k peaks were found. Only one full pass over the map (the row maxima) is made, instead of
    the six of a dense 3x3 max, mask and top-k; smooth maps need a few hundred rows of thousands.
    """
    N, K, H, W = logits.shape
    if k == 0 or K * H * W == 0:  # TEST.DETECTIONS_PER_IMAGE 0: there is no k-th peak
        empty = logits.new_empty(N, 0)
        return empty, empty.long()
    if N > 1 and logits.is_contiguous(memory_format=torch.channels_last):
        # batched reductions over W are slow in this layout; one image at a time is not
        parts = [_topk_peaks_by_rows(logits[i : i + 1], k) for i in range(N)]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
    G = K * H
    if logits.is_contiguous():
        row_max = logits.amax(dim=3).reshape(N, G)  # (N, G)
    else:  # reduce W in the layout's own order: (N, H, W, K) for channels-last
        row_max = logits.permute(0, 2, 3, 1).amax(dim=2).transpose(1, 2).reshape(N, G)
    sorted_max, order = row_max.sort(dim=1, descending=True)  # (N, G)
    num_rows = min(G, 2 * k)
    while True:
        rows = order[:, :num_rows]
        values = _row_peaks(logits, rows).flatten(1)  # (N, num_rows * W)
        top, j = values.topk(min(k, values.shape[1]))
        if num_rows == G:
            break
        kth = top[:, -1]  # the k-th peak found, -inf if fewer than k
        if bool((kth >= sorted_max[:, num_rows]).all()):
            break
        if not bool(torch.isfinite(kth).all()):
            num_rows = min(G, 4 * num_rows)
        else:  # every row that may hold a better peak: the next round is exact
            needed = int((row_max > kth[:, None]).sum(dim=1).max())
            num_rows = min(G, max(needed, num_rows + 1))
    row = rows.gather(1, torch.div(j, W, rounding_mode="floor"))  # (N, T) class * H + y
    return top, row * W + j % W


def decode_boxes(
    heatmap_logits: Tensor, size: Tensor, offset: Tensor, stride: int, k: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """Boxes from peak, sub-cell offset and size (CenterNet eq. in Sec. 4): a box is
    ``(x + dx -/+ w / 2, y + dy -/+ h / 2) * stride``. Tensor-only, so ``torch.jit.trace`` works.

    Args:
        heatmap_logits: (N, K, H, W).
        size: (N, 2, H, W) (width, height) in cells.
        offset: (N, 2, H, W) (dx, dy) in cells.
        stride: input pixels per cell.
        k: detections per image.
    Returns:
        boxes (N, T, 4) float32 XYXY in input pixels, scores (N, T), classes (N, T) long.
    """
    scores, classes, pos = topk_peaks(heatmap_logits, k)
    return _size_offset_boxes_at(pos, size, offset, stride), scores, classes


def cell_xy(pos: Tensor, width) -> Tensor:
    """(..., 2) float32 (x, y) cells of positions (...) ``y * width + x`` (no ``%``: the ONNX
    exporter cannot take the remainder by a dynamic width)."""
    y = torch.div(pos, width, rounding_mode="floor")
    return torch.stack([pos - y * width, y], dim=-1).float()


def _size_offset_boxes_at(pos: Tensor, size: Tensor, offset: Tensor, stride: int) -> Tensor:
    """(N, T, 4) XYXY input pixels of the size / offset boxes (N, 2, H, W) at positions (N, T)."""
    # float32 positions and sums: in bfloat16 (autocast) x + dx rounds to a whole cell at x > 128
    xy = cell_xy(pos, size.shape[-1])  # (N, T, 2)
    gather = pos[:, None, :].expand(-1, 2, -1)  # (N, 2, T)
    wh = size.flatten(2).gather(2, gather).transpose(1, 2).float()  # (N, T, 2)
    center = xy + offset.flatten(2).gather(2, gather).transpose(1, 2).float()  # (N, T, 2)
    return torch.cat([center - wh / 2, center + wh / 2], dim=2) * stride


def decode_ltrb_boxes(
    heatmap_logits: Tensor, ltrb: Tensor, stride: int, k: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """Boxes from peak and the distances to the box sides predicted there (TTFNet): a peak at
    cell (x, y) with (l, t, r, b) gives ``(x + 0.5 - l, y + 0.5 - t, x + 0.5 + r, y + 0.5 + b) *
    stride``, the exact inverse of :func:`~.targets.ltrb_targets` (cell centre (x + 0.5, y + 0.5)).
    Tensor-only, so ``torch.jit.trace`` works.

    Args:
        heatmap_logits: (N, K, H, W).
        ltrb: (N, 4, H, W) (l, t, r, b) in cells.
        stride: input pixels per cell.
        k: detections per image.
    Returns:
        boxes (N, T, 4) float32 XYXY in input pixels, scores (N, T), classes (N, T) long.
    """
    scores, classes, pos = topk_peaks(heatmap_logits, k)
    return _ltrb_boxes_at(pos, ltrb, stride), scores, classes


def _ltrb_boxes_at(pos: Tensor, ltrb: Tensor, stride: int) -> Tensor:
    """(N, T, 4) XYXY input pixels of the ltrb boxes (N, 4, H, W) at positions (N, T)."""
    # float32 positions: a low-precision ``ltrb`` (bfloat16 autocast) would round x + 0.5
    xy = cell_xy(pos, ltrb.shape[-1]) + 0.5  # (N, T, 2) cell centres
    gather = pos[:, None, :].expand(-1, 4, -1)  # (N, 4, T)
    d = ltrb.flatten(2).gather(2, gather).transpose(1, 2).float()  # (N, T, 4)
    return torch.cat([xy - d[..., :2], xy + d[..., 2:]], dim=2) * stride


def values_at(dense: Tensor, pos: Tensor) -> Tensor:
    """The values of a dense output (N, C, H, W) at positions (N, T) ``y * W + x``: (N, T, C)."""
    gather = pos[:, None, :].expand(-1, dense.shape[1], -1)  # (N, C, T)
    return dense.flatten(2).gather(2, gather).transpose(1, 2)


def amodal_boxes_at(pos: Tensor, ltrb: Tensor, stride: int) -> Tensor:
    """CenterTrack's amodal boxes (its ``ltrb_amodal`` head): at a peak cell (x, y) the box
    ``(x + l, y + t, x + r, y + b) * stride`` from the distances (l, t, r, b) predicted there, in
    cells from the cell's corner, signed (a box may reach beyond the image).

    Args:
        pos: (N, T) long ``y * W + x``; ltrb: (N, 4, H, W) in cells.
    Returns:
        (N, T, 4) float32 XYXY input pixels.
    """
    xy = cell_xy(pos, ltrb.shape[-1])
    return (xy.repeat(1, 1, 2) + values_at(ltrb, pos).float()) * stride


def decode_levels(
    heatmap_logits: List[Tensor], ltrb: List[Tensor], strides: List[int], k: int
) -> Tuple[Tensor, Tensor, Tensor]:
    """Candidate boxes of the multi-level CenterNet (CenterNet2): on each level the ``k``
    best scores over classes and positions (no peak test: overlapping boxes are left to the NMS
    of :func:`to_instances`), each with the ltrb box at its cell as in :func:`decode_ltrb_boxes`.

    Args:
        heatmap_logits: per level (N, K, H_l, W_l).
        ltrb: per level (N, 4, H_l, W_l) (l, t, r, b) in cells of the level.
        strides: input pixels per cell of each level.
        k: candidates per level and image (PRE_NMS_TOPK_TEST).
    Returns:
        boxes (N, T, 4) XYXY input pixels, at least :data:`MIN_LEVEL_BOX_SIDE` wide and high as
        CenterNet2's, scores (N, T), classes (N, T) long; the levels' candidates concatenated,
        T = sum of min(k, K * H_l * W_l).
    """
    if k < 0:
        raise ValueError(f"the number of candidates k must be >= 0, got {k}")
    boxes, scores, classes = [], [], []
    for logits, box, stride in zip(heatmap_logits, ltrb, strides):
        N, K, H, W = logits.shape
        top, idx = logits.flatten(1).topk(min(k, K * H * W))
        cls = torch.div(idx, H * W, rounding_mode="floor")
        xyxy = _ltrb_boxes_at(idx - cls * H * W, box, stride)
        far = torch.maximum(xyxy[..., 2:], xyxy[..., :2] + MIN_LEVEL_BOX_SIDE)
        boxes.append(torch.cat([xyxy[..., :2], far], dim=2))
        scores.append(torch.sigmoid(top.float()))
        classes.append(cls)
    return torch.cat(boxes, dim=1), torch.cat(scores, dim=1), torch.cat(classes, dim=1)


def decode_predictions(
    predictions: Dict[str, Tensor], stride: int, k: int, box_head: str, with_positions=False
) -> Tuple[Tensor, ...]:
    """:func:`decode_ltrb_boxes` of the head's outputs for the "ltrb" box head, else
    :func:`decode_boxes` of "size" and "offset".

    Args:
        predictions: "heatmap" (N, K, H, W) logits and "box" (N, 4, H, W) ("ltrb") or "size"
            and "offset" (N, 2, H, W) ("size_offset"), in cells.
        box_head: the head's ``box_head``.
        with_positions: also return the detections' peak positions, for the other outputs at
            the peaks (keypoints).
    Returns:
        boxes (N, T, 4) XYXY in input pixels, scores (N, T), classes (N, T) long; with
        ``with_positions`` positions (N, T) long ``y * W + x``.
    """
    scores, classes, pos = topk_peaks(predictions["heatmap"], k)
    if box_head == "ltrb":
        boxes = _ltrb_boxes_at(pos, predictions["box"], stride)
    else:
        boxes = _size_offset_boxes_at(pos, predictions["size"], predictions["offset"], stride)
    return (boxes, scores, classes, pos) if with_positions else (boxes, scores, classes)


def to_instances(
    boxes: Tensor,
    scores: Tensor,
    classes: Tensor,
    image_sizes: List[Tuple[int, int]],
    score_thresh: float,
    nms_thresh: Optional[float] = None,
    topk: Optional[int] = None,
    fields: Optional[Dict[str, Tensor]] = None,
) -> List[Instances]:
    """Per image, the detections scoring at least ``score_thresh``, boxes clipped to the image;
    with ``nms_thresh``, then a class-wise NMS of that IoU and the ``topk`` best kept.

    Args:
        boxes: (N, T, 4) XYXY input pixels; scores: (N, T); classes: (N, T).
        image_sizes: per image (height, width) before padding.
        fields: more per-detection fields, name -> (N, T, ...), kept alike (e.g.
            "pred_keypoints" (N, T, J, 3)).
    """
    results = []
    for i, image_size in enumerate(image_sizes):
        keep = scores[i] >= score_thresh
        pred_boxes = Boxes(boxes[i][keep])
        pred_boxes.clip(image_size)
        result = Instances(
            image_size, pred_boxes=pred_boxes, scores=scores[i][keep], pred_classes=classes[i][keep]
        )
        for name, value in (fields or {}).items():
            result.set(name, value[i][keep])
        if nms_thresh is not None:
            kept = batched_nms(pred_boxes.tensor, result.scores, result.pred_classes, nms_thresh)
            result = result[kept[:topk]]
        results.append(result)
    return results


def clip_boxes(boxes: Tensor, height, width) -> Tensor:
    """``Boxes.clip`` of (N, T, 4) XYXY boxes to x in [0, ``width``], y in [0, ``height``],
    tensor-only (the sizes may be a traced or exported input's dynamic shape)."""
    one = torch.ones_like(boxes[..., :1])  # (N, T, 1)
    return torch.min(boxes.clamp(min=0), torch.cat([one * width, one * height] * 2, dim=-1))


def fixed_size_nms(
    boxes: Tensor, scores: Tensor, classes: Tensor, iou: float, k: int, *fields: Tensor
) -> Tuple[Tensor, ...]:
    """The class-wise NMS of :func:`to_instances` in a graph of fixed-size outputs: of each
    image's T candidates, those the greedy NMS of IoU ``iou`` keeps among the candidates of
    their image and class, the ``k`` best in descending score; where fewer are kept, the rest
    score 0. Candidates below a score threshold suppress only lower ones, so thresholding the
    outputs gives :func:`to_instances`' detections.

    Args:
        boxes: (N, T, 4) XYXY, clipped; scores: (N, T) in [0, 1]; classes: (N, T) long.
        fields: more per-candidate outputs (N, T, ...), gathered alike.
    Returns:
        boxes (N, k', 4), scores (N, k'), classes (N, k') and the fields, k' = min(k, T).
    """
    N, T = scores.shape
    group = (
        torch.arange(N, device=boxes.device)[:, None] * (classes.max() + 1) + classes
    ).flatten()
    # torchvision's batched_nms by its coordinate trick: each group's boxes moved apart
    apart = boxes.flatten(0, 1) + (group.to(boxes.dtype) * (boxes.max() + 1))[:, None]
    kept = torchvision.ops.nms(apart, scores.flatten(), iou)
    mask = torch.zeros_like(scores).flatten().index_fill(0, kept, 1.0).view(N, T) > 0
    top, idx = torch.where(mask, scores, torch.full_like(scores, -1.0)).topk(min(k, T), dim=1)
    gathered = [
        x.gather(1, idx.view(N, -1, *[1] * (x.dim() - 2)).expand(-1, -1, *x.shape[2:]))
        for x in (boxes, classes, *fields)
    ]
    return (gathered[0], top.clamp(min=0), gathered[1], *gathered[2:])
