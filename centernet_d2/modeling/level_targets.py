"""Training targets of the multi-level CenterNet (CenterNet2's one-stage detector, Zhou et al.
2021, "Probabilistic two-stage detection"), built on the device for all objects of a batch at once.

Every level l of stride s_l has a grid of cells; cell (x, y) stands for its centre
((x + 0.5) s_l, (y + 0.5) s_l) in input pixels, as in :mod:`.targets`. The levels' cells are
concatenated, finest level first, row-major within a level: P positions in all.

* Heatmap: per class, the max over the class's objects of ``exp(-d^2 / r^2)``, with ``d`` the
  distance in pixels from the position to the box centre (0 at the cell holding the centre, on
  every level) and ``r^2 = max(2 delta^2 area, min_radius^2)``, ``delta = (1 - o) / (1 + o)``;
  values under 1e-4 are 0. Drawn on all levels: an object's peak on a level it is not assigned to
  is 1 there, so the focal loss ignores it instead of calling it a negative.
* Positives: the centre cell of each object on each level whose size range holds the object's
  half diagonal ``sqrt(w^2 + h^2) / 2`` (pixels; the ranges may overlap).
* Box: on the 3x3 cells around an object's centre cell on its levels, inside the box, the
  distances (l, t, r, b) from the cell centre to the box sides in cells of that level; where
  objects compete, the one of smallest ``d^2 / r^2``. Each such cell weighs 1.

The objects are taken in chunks of at most :data:`CHUNK_ELEMENTS` / P objects: the (objects x
positions) tensors of a chunk bound the memory, whatever the number of objects in the batch.

Shape shorthand:
    N: images, K: classes, M: objects of the batch, L: levels, P: positions of all levels.
"""

import math
from dataclasses import dataclass
from typing import List, Optional, Sequence, Tuple

import torch
from detectron2.structures import Instances
from torch import Tensor

from .targets import TargetSettings, batch_objects

__all__ = ["LevelTargets", "flatten_levels", "level_positions", "build_level_targets"]

# Heatmap values below 1e-4 are 0 (CenterNet2): no far-away negative is down-weighted; that is
# d^2 / r^2 above -log(1e-4).
_MAX_NORM_DIST2 = -math.log(1e-4)
# Elements of each (objects x positions) tensor built at once (8 MiB of float32): 94 objects of
# the ~22k positions of a COCO input (800 x 1333, P3-P7), where all 400 objects of a batch took
# 422 MiB; one chunk for the CPU configs' 256-320 px inputs.
CHUNK_ELEMENTS = 2**21


@dataclass
class LevelTargets:
    """Targets of one batch on all levels.

    Attributes:
        heatmap: (N, K, P) gaussian heatmaps.
        positive: (N, K, P) bool, the objects' centre cells on their levels.
        box: (N, 4, P) ltrb targets in cells of each position's level, 0 where not regressed.
        box_weight: (N, P) 1.0 where the box is regressed, else 0.
        level_shapes: (H, W) of each level, to cut the P positions back into levels.
    """

    heatmap: Tensor
    positive: Tensor
    box: Tensor
    box_weight: Tensor
    level_shapes: List[Tuple[int, int]]

    @property
    def num_objects(self) -> int:
        """Positive (object, level) pairs: the loss normaliser."""
        return int(self.positive.sum())

    def level(self, name: str, index: int) -> Tensor:
        """The target ``name`` ("heatmap", "box", ...) of level ``index`` as (N, C, H, W)."""
        start = sum(h * w for h, w in self.level_shapes[:index])
        h, w = self.level_shapes[index]
        x = getattr(self, name)
        x = x if x.dim() == 3 else x[:, None]
        return x[..., start : start + h * w].unflatten(-1, (h, w))


def flatten_levels(maps: Sequence[Tensor]) -> Tensor:
    """(N, C, H_l, W_l) per level -> (N, C, P), levels concatenated, finest first."""
    return torch.cat([x.flatten(2) for x in maps], dim=2)


def level_positions(
    level_shapes: Sequence[Tuple[int, int]], strides: Sequence[int], device
) -> Tuple[Tensor, Tensor, Tensor]:
    """Each position's cell, level and stride.

    Returns:
        cells (P, 2) long (x, y) on its level's grid, level (P,) long, stride (P,) float.
    """
    cells, levels = [], []
    for i, (h, w) in enumerate(level_shapes):
        ys, xs = torch.meshgrid(
            torch.arange(h, device=device), torch.arange(w, device=device), indexing="ij"
        )
        cells.append(torch.stack([xs.flatten(), ys.flatten()], dim=1))
        levels.append(torch.full((h * w,), i, dtype=torch.long, device=device))
    level = torch.cat(levels)
    stride = torch.tensor(strides, dtype=torch.float32, device=device)[level]
    return torch.cat(cells), level, stride


@torch.no_grad()
def build_level_targets(
    gt_instances: List[Instances],
    image_sizes: List[Tuple[int, int]],
    num_classes: int,
    level_shapes: Sequence[Tuple[int, int]],
    strides: Sequence[int],
    settings: TargetSettings,
    chunk: Optional[int] = None,
) -> LevelTargets:
    """Heatmap, positive and box targets of a batch on all levels (see the module docstring).

    Boxes are clipped to their image and dropped when no area is left, as in
    :func:`~.targets.build_targets`.

    Args:
        gt_instances: per image, ``gt_boxes`` (XYXY, input pixels) and ``gt_classes`` in [0, K).
        image_sizes: per image, (height, width) before padding.
        num_classes: K.
        level_shapes: (H, W) of each level's grid, finest first.
        strides: input pixels per cell of each level.
        settings: ``min_overlap`` (o), ``min_radius`` (pixels) and ``size_ranges`` (one
            (low, high) half-diagonal range in pixels per level, inclusive).
        chunk: objects whose (objects x positions) terms are computed at once; default
            ``CHUNK_ELEMENTS // P``.
    """
    if len(settings.size_ranges) != len(level_shapes):
        raise ValueError(
            f"MODEL.CENTERNET.SIZE_RANGES has {len(settings.size_ranges)} ranges but the head runs "
            f"on {len(level_shapes)} levels (MODEL.CENTERNET.IN_FEATURES): give one per level"
        )
    N, K = len(gt_instances), num_classes
    boxes, classes, image = batch_objects(gt_instances, image_sizes, K)  # (M, 4), (M,), (M,)
    device, M = boxes.device, boxes.shape[0]
    cells, level, stride = level_positions(level_shapes, strides, device)  # (P, 2), (P,), (P,)
    P = cells.shape[0]
    chunk = chunk or max(1, CHUNK_ELEMENTS // max(P, 1))
    ranges = torch.tensor(settings.size_ranges, dtype=torch.float32, device=device)  # (L, 2)
    heatmap = torch.zeros(N * K, P, device=device)
    positive = torch.zeros(N * K, P, dtype=torch.bool, device=device)
    # per (image, position) the regressed object of least normalised distance, then lowest index
    best = torch.full((N, P), float("inf"), device=device)
    index = torch.full((N, P), M, dtype=torch.long, device=device)
    for start in range(0, M, chunk):
        part = slice(start, start + chunk)
        g, norm_dist2, is_peak, regress = _object_position_terms(
            boxes[part], cells, level, stride, ranges, settings
        )  # (C, P) each, C objects of the chunk
        channels = image[part] * K + classes[part]  # (C,)
        heatmap.scatter_reduce_(0, channels[:, None].expand(-1, P), g, "amax")
        pos_obj, pos_at = is_peak.nonzero(as_tuple=True)
        positive[channels[pos_obj], pos_at] = True
        key = norm_dist2.masked_fill(~regress, float("inf"))
        rows = image[part][:, None].expand(-1, P)
        chunk_best = torch.full_like(best, float("inf")).scatter_reduce_(0, rows, key, "amin")
        candidate = regress & (key == chunk_best[image[part]])
        order = torch.arange(start, start + len(channels), device=device)[:, None].expand(-1, P)
        chunk_index = torch.full_like(index, M).scatter_reduce_(
            0, rows, order.masked_fill(~candidate, M), "amin"
        )
        # an earlier chunk keeps a tie: its objects come first
        better = chunk_best < best
        best = torch.where(better, chunk_best, best)
        index = torch.where(better, chunk_index, index)
    covered = index < M  # (N, P)
    x, y = cells[:, 0].float(), cells[:, 1].float()
    loc_x, loc_y = (x + 0.5) * stride, (y + 0.5) * stride  # (P,) cell centres in pixels
    b = boxes[index.clamp(max=max(M - 1, 0))] if M else boxes.new_zeros(N, P, 4)  # (N, P, 4)
    ltrb = torch.stack([loc_x - b[..., 0], loc_y - b[..., 1], b[..., 2] - loc_x, b[..., 3] - loc_y])
    box = torch.where(covered, ltrb / stride, 0.0)  # (4, N, P)
    return LevelTargets(
        heatmap=heatmap.view(N, K, P),
        positive=positive.view(N, K, P),
        box=box.permute(1, 0, 2),
        box_weight=covered.float(),
        level_shapes=[tuple(s) for s in level_shapes],
    )


def _object_position_terms(
    boxes: Tensor,
    cells: Tensor,
    level: Tensor,
    stride: Tensor,
    ranges: Tensor,
    settings: TargetSettings,
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    """For C objects against every position (see the module docstring):

    Returns:
        heatmap values (C, P), normalised squared distance ``d^2 / r^2`` (C, P), positives (C, P)
        bool (the centre cell on an assigned level), regressed cells (C, P) bool.
    """
    centers = (boxes[:, :2] + boxes[:, 2:]) / 2  # (C, 2)
    wh = boxes[:, 2:] - boxes[:, :2]  # (C, 2)
    x, y = cells[:, 0].float(), cells[:, 1].float()  # (P,) cells on their level's grid
    loc_x, loc_y = (x + 0.5) * stride, (y + 0.5) * stride  # (P,) cell centres in pixels
    cx, cy = centers[:, :1], centers[:, 1:]  # (C, 1)
    # cells from the cell holding the centre on the position's level
    off_x = (x - (cx / stride).floor()).abs()  # (C, P)
    off_y = (y - (cy / stride).floor()).abs()
    is_peak = (off_x == 0) & (off_y == 0)
    dist2 = ((loc_x - cx) ** 2 + (loc_y - cy) ** 2).masked_fill(is_peak, 0.0)  # (C, P)
    delta = (1 - settings.min_overlap) / (1 + settings.min_overlap)
    radius2 = (2 * delta**2 * wh.prod(dim=1)).clamp(min=settings.min_radius**2)  # (C,)
    norm_dist2 = dist2 / radius2[:, None]  # (C, P)
    # clamped first: exp of large negatives gives subnormal floats, which are slow on CPUs
    g = torch.exp(-norm_dist2.clamp(max=_MAX_NORM_DIST2))
    g = g.masked_fill(norm_dist2 > _MAX_NORM_DIST2, 0.0)

    half_diagonal = wh.norm(dim=1) / 2  # (C,)
    in_level = (half_diagonal[:, None] >= ranges[:, 0]) & (half_diagonal[:, None] <= ranges[:, 1])
    assigned = in_level[:, level]  # (C, P) the object belongs to the position's level
    inside = (loc_x > boxes[:, :1]) & (loc_x < boxes[:, 2:3])
    inside &= (loc_y > boxes[:, 1:2]) & (loc_y < boxes[:, 3:])
    regress = (off_x <= 1) & (off_y <= 1) & inside & assigned  # (C, P)
    return g, norm_dist2, is_peak & assigned, regress
