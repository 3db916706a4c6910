"""Training targets of CenterNet, built on the device for all objects of a batch at once.

Shape shorthand:
    N: images, K: classes, M: ground-truth objects of the whole batch, H/W: output grid.

Naming convention:
    Boxes are XYXY in input pixels unless a name says ``cells`` (output-grid units, input pixels
    divided by the stride). ``channels`` index the flattened (N * K) heatmap planes.

Cell positions (ltrb head): cell (x, y) stands for its centre, the point (x + 0.5, y + 0.5) in
cells, i.e. ((x + 0.5) * stride, (y + 0.5) * stride) in input pixels. Its ltrb target is the
distances from that point to the four box sides; :func:`~.decode.decode_ltrb_boxes` is the exact
inverse. The centre (unlike TTFNet's corner ``x * stride``) maps a cell onto a cell under a
horizontal flip of the padded input, which flip test-time augmentation relies on.
"""

import logging
import math
from dataclasses import dataclass
from typing import Any, List, Optional, Sequence, Tuple

import torch
from detectron2.structures import Instances
from torch import Tensor

from ..utils.radius import cornernet_code_radii

logger = logging.getLogger(__name__)

__all__ = [
    "check_size_ranges",
    "TARGET_KINDS",
    "TargetSettings",
    "CenterNetTargets",
    "cornernet_radius",
    "cornernet_paper_radius",
    "ttf_radii",
    "draw_gaussians",
    "ltrb_targets",
    "batch_objects",
    "center_cells",
    "build_targets",
]

TARGET_KINDS = ("cornernet", "cornernet_exact", "ttf", "multilevel")


@dataclass(frozen=True)
class TargetSettings:
    """How a model's targets are drawn (``MODEL.CENTERNET.*``), see :func:`build_targets`.

    Attributes:
        kind: ``TARGET_KIND``: "cornernet" (round gaussian, the radius of the paper's code,
            :func:`cornernet_paper_radius`), "cornernet_exact" (round gaussian, the exact
            CornerNet radius, :func:`cornernet_radius`, about 3.4x smaller) or "ttf" (elliptical
            gaussian, radii ``ttf_alpha`` times half the box sides) or "multilevel"
            (CenterNet2's targets on several levels, :func:`~.level_targets.build_level_targets`).
        min_overlap: ``MIN_OVERLAP`` of the CornerNet radius, and of the multi-level gaussians.
        ttf_alpha: ``TTF_ALPHA``.
        ltrb_beta: ``TTF_BETA``: the ltrb regression area, gaussians of radii ``ltrb_beta``
            times half the box sides (used by the "ltrb" box head only).
        size_ranges: ``SIZE_RANGES`` ("multilevel"): per level, the (low, high) half diagonal
            ``sqrt(w^2 + h^2) / 2`` in input pixels of the objects assigned to it.
        min_radius: ``MIN_RADIUS`` ("multilevel"): least gaussian radius, input pixels.
    """

    kind: str = "cornernet"
    min_overlap: float = 0.7
    ttf_alpha: float = 0.54
    ltrb_beta: float = 0.54
    size_ranges: Tuple[Tuple[float, float], ...] = ((0.0, math.inf),)
    min_radius: float = 4.0

    def __post_init__(self):
        if self.kind not in TARGET_KINDS:
            raise ValueError(
                f"MODEL.CENTERNET.TARGET_KIND must be one of {TARGET_KINDS}, got {self.kind!r}"
            )
        bad = [r for r in self.size_ranges if len(r) != 2 or not 0 <= r[0] <= r[1]]
        if bad:
            raise ValueError(
                "MODEL.CENTERNET.SIZE_RANGES must be [low, high] pairs with 0 <= low <= high, "
                f"got {bad}"
            )


@torch.no_grad()
def cornernet_radius(sizes: Tensor, min_overlap: float) -> Tensor:
    """Gaussian radius of CornerNet/CenterNet: the largest corner shift ``r`` (in the units of
    ``sizes``) for which a box with corners shifted by ``r`` still has IoU >= ``min_overlap`` with
    the ground truth, taking the smallest ``r`` of CornerNet's three cases:

    1. one corner inside, one outside:  (w-r)(h-r) / (2wh - (w-r)(h-r)) = o
       => r^2 - (w+h) r + wh (1-o)/(1+o) = 0
    2. both corners inside:             (w-2r)(h-2r) / (wh) = o
       => 4 r^2 - 2 (w+h) r + (1-o) wh = 0
    3. both corners outside:            wh / ((w+2r)(h+2r)) = o
       => 4o r^2 + 2o (w+h) r + (o-1) wh = 0

    each solved for its smallest non-negative root, ``(-b - sqrt(b^2 - 4ac)) / (2a)`` for 1 and 2
    and ``(-b + sqrt(b^2 - 4ac)) / (2a)`` for 3. The original CornerNet code (copied by CenterNet
    and most ports) computes ``(b + sqrt(b^2 - 4ac)) / 2`` in all three cases: the wrong root in
    cases 1 and 2, and no division by ``a`` in cases 2 and 3, so its radius is too large (mostly
    set by case 3, off by a factor of about 1 / (4o)). This function uses the derivation above.

    Args:
        sizes: (M, 2) box (width, height), any positive unit.
        min_overlap: IoU the shifted box must keep, in (0, 1).
    Returns:
        (M,) float radii in the units of ``sizes``, >= 0.
    """
    w, h = sizes.double().unbind(1)
    o = min_overlap
    b1 = w + h
    r1 = (b1 - torch.sqrt(b1**2 - 4 * w * h * (1 - o) / (1 + o))) / 2
    b2 = 2 * (w + h)
    r2 = (b2 - torch.sqrt(b2**2 - 16 * (1 - o) * w * h)) / 8
    b3 = 2 * o * (w + h)
    r3 = (-b3 + torch.sqrt(b3**2 + 16 * o * (1 - o) * w * h)) / (8 * o)
    return torch.min(torch.min(r1, r2), r3).clamp(min=0).to(sizes.dtype)


@torch.no_grad()
def cornernet_paper_radius(sizes: Tensor, min_overlap: float) -> Tensor:
    """The gaussian radius of the paper's code (CornerNet's ``gaussian_radius``, which CenterNet
    and every published CenterNet model use): for each of the three cases of
    :func:`cornernet_radius`, with ``a r^2 + b r + c = 0`` as written there, it takes
    ``(b' + sqrt(b'^2 - 4 a c)) / 2`` with ``b'`` the code's coefficient (``w + h``,
    ``2 (w + h)``, ``-2 o (w + h)``) and keeps the smallest. This is not the root of the
    equations (the larger root in cases 1 and 2, no division by ``a`` in cases 2 and 3), so the
    radius is larger than the exact one, about 3.4x for square boxes at ``o`` = 0.7; case 3 sets
    it. The paper's numbers were trained with it; the paper's code calls it with
    ``(ceil(h), ceil(w))`` in output cells and truncates the result (see :func:`build_targets`).

    Args:
        sizes: (M, 2) box (width, height), any positive unit.
        min_overlap: ``o`` in (0, 1).
    Returns:
        (M,) float radii in the units of ``sizes``, >= 0.
    """
    w, h = sizes.double().unbind(1)
    r1, r2, r3 = cornernet_code_radii(w, h, min_overlap, torch.sqrt)
    return torch.min(torch.min(r1, r2), r3).clamp(min=0).to(sizes.dtype)


@torch.no_grad()
def ttf_radii(sizes: Tensor, alpha: float) -> Tensor:
    """TTFNet's elliptical gaussian radii: ``alpha`` times half of each box side, floored.

    Args:
        sizes: (M, 2) box (width, height) in output-grid cells.
    Returns:
        (M, 2) long (radius_x, radius_y).
    """
    return (sizes * (alpha / 2)).floor().long().clamp(min=0)


def check_size_ranges(size_ranges: Sequence[Sequence[float]]) -> None:
    """Refuse multi-level size ranges (``MODEL.CENTERNET.SIZE_RANGES``, one ``[low, high]`` of
    half diagonals in pixels per level, finest first) with a gap, which no level would train:
    each range must start at or below the previous one's end. ``ValueError`` naming the gap."""
    for i, ((low, high), (next_low, _)) in enumerate(zip(size_ranges, size_ranges[1:])):
        if low > high:
            raise ValueError(f"MODEL.CENTERNET.SIZE_RANGES[{i}] = [{low}, {high}] is empty")
        if next_low > high:
            raise ValueError(
                f"MODEL.CENTERNET.SIZE_RANGES leave a gap between levels {i} and {i + 1}: objects "
                f"of half diagonal between {high} and {next_low} px would be on no level; let "
                f"range {i + 1} start at or below {high}"
            )
    if size_ranges and (size_ranges[0][0] > 0 or size_ranges[-1][1] < 1e5):
        logger.warning(
            f"MODEL.CENTERNET.SIZE_RANGES {[list(r) for r in size_ranges]} do not cover all sizes "
            f"from 0: smaller or larger objects are trained on no level"
        )


@torch.no_grad()
def draw_gaussians(
    centers: Tensor, radii: Tensor, channels: Tensor, shape: Tuple[int, int, int, int]
) -> Tensor:
    """Render one truncated gaussian per object and merge them with a max per heatmap plane.

    Each gaussian is exp(-(dx^2 / (2 sx^2) + dy^2 / (2 sy^2))) with ``s = (2 r + 1) / 6`` (the
    diameter over six, as in CenterNet and TTFNet), limited to ``|dx| <= rx`` and ``|dy| <= ry``.

    Args:
        centers: (M, 2) long (x, y) peak cells on the output grid.
        radii: (M, 2) long (rx, ry) in cells; a round gaussian has rx == ry.
        channels: (M,) long plane index ``image * K + class``.
        shape: (N, K, H, W) of the result.
    Returns:
        (N, K, H, W) float: exactly 1.0 at each peak, the max where gaussians of a plane overlap.

    Each gaussian is drawn in a window of the largest radius around its peak, not on the whole
    map: memory (M, 2 ry + 1, 2 rx + 1) instead of (M, H, W), which matters for many objects on a
    large map (CenterTrack's previous-frame heatmap at the input's resolution).
    """
    N, K, H, W = shape
    out = torch.zeros(N * K * H * W, device=centers.device)
    if centers.numel() == 0:
        return out.view(N, K, H, W)
    rx, ry = (int(r) for r in radii.amax(dim=0).clamp(min=0).tolist())  # the window's half sides
    sigma = (2 * radii + 1).float() / 6  # (M, 2)
    x, gx = _axis_window(centers[:, 0], radii[:, 0], sigma[:, 0], rx, W)  # (M, Sx) each
    y, gy = _axis_window(centers[:, 1], radii[:, 1], sigma[:, 1], ry, H)  # (M, Sy)
    g = gy[:, :, None] * gx[:, None, :]  # (M, Sy, Sx), separable: exp(a + b) = exp(a) exp(b)
    # cells outside the map have weight 0: clamped onto the border, they leave the max unchanged
    cell = y.clamp(0, H - 1)[:, :, None] * W + x.clamp(0, W - 1)[:, None, :]  # (M, Sy, Sx)
    index = channels[:, None, None] * (H * W) + cell
    out.scatter_reduce_(0, index.flatten(), g.flatten(), "amax")
    return out.view(N, K, H, W)


def _axis_window(
    center: Tensor, radius: Tensor, sigma: Tensor, max_radius: int, size: int
) -> Tuple[Tensor, Tensor]:
    """Along one axis of ``size`` cells: the cells of each object's window (M, S) and its
    gaussian there, 0 beyond the radius and off the map. The window is the ``2 max_radius + 1``
    cells around the centre, or the whole axis where that is no longer."""
    if 2 * max_radius + 1 >= size:
        cells = torch.arange(size, device=center.device).expand(len(center), size)  # (M, size)
    else:
        offsets = torch.arange(-max_radius, max_radius + 1, device=center.device)
        cells = center[:, None] + offsets  # (M, 2 max_radius + 1)
    d = cells - center[:, None]
    g = torch.exp(-(d.float() ** 2) / (2 * sigma[:, None] ** 2))
    return cells, g * ((d.abs() <= radius[:, None]) & (cells >= 0) & (cells < size))


def _gaussians(centers: Tensor, radii: Tensor, H: int, W: int) -> Tensor:
    """(M, H, W) float: the truncated gaussian of each object alone, see :func:`draw_gaussians`."""
    dx = torch.arange(W, device=centers.device) - centers[:, :1]  # (M, W)
    dy = torch.arange(H, device=centers.device) - centers[:, 1:]  # (M, H)
    sigma = (2 * radii + 1).float() / 6  # (M, 2)
    gx = torch.exp(-(dx.float() ** 2) / (2 * sigma[:, :1] ** 2)) * (dx.abs() <= radii[:, :1])
    gy = torch.exp(-(dy.float() ** 2) / (2 * sigma[:, 1:] ** 2)) * (dy.abs() <= radii[:, 1:])
    return gy[:, :, None] * gx[:, None, :]  # separable: exp(a + b) = exp(a) exp(b)


@torch.no_grad()
def ltrb_targets(
    boxes: Tensor,
    object_weights: Tensor,
    image: Tensor,
    centers: Tensor,
    radii: Tensor,
    shape: Tuple[int, int, int],
) -> Tuple[Tensor, Tensor]:
    """TTFNet's box-regression targets (Liu et al. 2020, Sec. 3.3): every cell inside an object's
    truncated elliptical gaussian regresses the object's box.

    The target of cell (x, y) for the box (x0, y0, x1, y1) (cells) is the distances from the cell
    centre to the box sides, ``(l, t, r, b) = (x + 0.5 - x0, y + 0.5 - y0, x1 - x - 0.5,
    y1 - y - 0.5)`` (see the module docstring). Its weight is ``G(x, y) / sum(G) * w``, with ``G``
    the object's gaussian (:func:`draw_gaussians` with these ``radii``, summed over the whole
    grid) and ``w`` the object's weight (TTFNet: the log of its area), so each object weighs ``w``
    in all. Where the areas of objects of one image overlap, the box of smaller area wins (TTFNet
    draws large boxes first, smaller ones over them); between equal areas the first object.

    Args:
        boxes: (M, 4) XYXY in cells.
        object_weights: (M,) float, the total weight ``w`` of each object.
        image: (M,) long image index of each object.
        centers: (M, 2) long (x, y) gaussian centre cells.
        radii: (M, 2) long (rx, ry) gaussian radii in cells (:func:`ttf_radii`).
        shape: (N, H, W) of the output grid.
    Returns:
        box_target (N, 4, H, W) ltrb in cells, box_weight (N, H, W); both 0 outside every area.
    """
    N, H, W = shape
    M, device = boxes.shape[0], boxes.device
    box_target = boxes.new_zeros(N, 4, H * W)
    box_weight = boxes.new_zeros(N, H * W)
    if M == 0:
        return box_target.view(N, 4, H, W), box_weight.view(N, H, W)
    g = _gaussians(centers, radii, H, W).flatten(1)  # (M, H * W)
    areas = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1)  # (M,)
    order = torch.argsort(areas, stable=True)  # rank -> object, smallest area first
    rank = torch.empty_like(order)
    rank[order] = torch.arange(M, device=device)
    # per cell of each image the lowest rank among the objects covering it; M where none does
    key = torch.where(g > 0, rank[:, None], M)  # (M, H * W)
    winner = torch.full((N, H * W), M, dtype=torch.long, device=device)
    winner.scatter_reduce_(0, image[:, None].expand(-1, H * W), key, "amin")
    covered = winner < M  # (N, H * W)
    obj = order[winner.clamp(max=M - 1)]  # (N, H * W) object of each cell (garbage if uncovered)
    weight = g.gather(0, obj) / g.sum(dim=1)[obj] * object_weights[obj]
    box_weight = torch.where(covered, weight, box_weight)
    xs = torch.arange(W, device=device).repeat(H) + 0.5  # (H * W,) cell centres
    ys = torch.arange(H, device=device).repeat_interleave(W) + 0.5
    b = boxes[obj]  # (N, H * W, 4)
    ltrb = torch.stack([xs - b[..., 0], ys - b[..., 1], b[..., 2] - xs, b[..., 3] - ys], dim=1)
    box_target = torch.where(covered[:, None], ltrb, box_target)
    return box_target.view(N, 4, H, W), box_weight.view(N, H, W)


@dataclass
class CenterNetTargets:
    """Targets of one batch.

    Attributes:
        heatmap: (N, K, H, W) gaussian heatmaps.
        index: (M,) long flat position ``image * H * W + y * W + x`` of each object's peak cell.
        size: (M, 2) object (width, height) in cells.
        offset: (M, 2) sub-cell position of the centre, ``center / stride - floor(...)`` in [0, 1).
        box: (N, 4, H, W) ltrb regression targets in cells (:func:`ltrb_targets`), or None when
            not requested.
        box_weight: (N, H, W) weight of each cell's ltrb target, or None.
        keypoints: the objects' keypoint targets (:class:`~.keypoints.KeypointTargets`), or
            None.
        num_objects: number of objects M (degenerate boxes excluded).
    """

    heatmap: Tensor
    index: Tensor
    size: Tensor
    offset: Tensor
    box: Optional[Tensor] = None
    box_weight: Optional[Tensor] = None
    keypoints: Optional[Any] = None

    @property
    def num_objects(self) -> int:
        return self.index.numel()


@torch.no_grad()
def batch_objects(
    gt_instances: List[Instances],
    image_sizes: List[Tuple[int, int]],
    num_classes: int,
    return_keep: bool = False,
) -> Tuple[Tensor, ...]:
    """The objects of a batch as one set: boxes clipped to their image, those with no area left
    (zero, negative or outside the image) dropped.

    Raises:
        ValueError: a class id outside [0, K).

    Returns:
        boxes (M, 4) XYXY input pixels, classes (M,) long, image (M,) long index of each; with
        ``return_keep`` also keep (M0,) bool over the batch's objects in order (the M kept),
        for the objects' other fields (e.g. keypoints).
    """
    K = num_classes
    boxes = torch.cat([x.gt_boxes.tensor for x in gt_instances])  # (M, 4)
    classes = torch.cat([x.gt_classes for x in gt_instances]).long()  # (M,)
    bad = (classes < 0) | (classes >= K)
    if bool(bad.any()):  # else drawn into another image's or class's heatmap plane
        raise ValueError(
            f"gt_classes must be in [0, K) = [0, {K}), got {classes[bad].unique().tolist()}"
        )
    device = boxes.device
    image = torch.repeat_interleave(
        torch.arange(len(gt_instances), device=device),
        torch.tensor([len(x) for x in gt_instances], device=device),
    )  # (M,)
    hw = torch.tensor(image_sizes, dtype=boxes.dtype, device=device)[image]  # (M, 2)
    limit = hw.flip(1).repeat(1, 2)  # (M, 4) as (w, h, w, h)
    boxes = torch.minimum(boxes.clamp(min=0), limit)
    keep = (boxes[:, 2:] > boxes[:, :2]).all(dim=1)
    if return_keep:
        return boxes[keep], classes[keep], image[keep], keep
    return boxes[keep], classes[keep], image[keep]


def center_cells(boxes: Tensor, stride: int, height: int, width: int) -> Tuple[Tensor, Tensor]:
    """The centres of boxes (M, 4) XYXY input pixels on an output grid of ``height`` x
    ``width`` cells: centres (M, 2) float (x, y) in cells and their cells (M, 2) long, the
    centre's floor clamped to the grid (a centre on the padded border belongs to the last cell).
    """
    centers = (boxes[:, :2] + boxes[:, 2:]) / (2 * stride)  # (M, 2) cells
    cells = centers.floor().long()
    cells = torch.minimum(cells, torch.tensor([width - 1, height - 1], device=boxes.device))
    return centers, cells


@torch.no_grad()
def build_targets(
    gt_instances: List[Instances],
    image_sizes: List[Tuple[int, int]],
    shape: Tuple[int, int, int, int],
    stride: int,
    settings: TargetSettings = TargetSettings(),
    with_ltrb: bool = False,
) -> CenterNetTargets:
    """Build heatmap, size and offset targets for a batch, and the ltrb targets if asked.

    Boxes are clipped to their image; boxes with no area left (zero, negative or outside the image)
    are dropped. Images without objects give all-zero heatmaps.

    Raises:
        ValueError: a class id outside [0, K).

    Args:
        gt_instances: per image, ``gt_boxes`` (XYXY, input pixels) and ``gt_classes`` (in [0, K)).
        image_sizes: per image, (height, width) before padding, in input pixels.
        shape: (N, K, H, W) of the heatmap.
        stride: input pixels per output cell.
        settings: the gaussians (:class:`TargetSettings`).
        with_ltrb: also the ltrb targets of :func:`ltrb_targets` (``box``, ``box_weight``) on
            the elliptical gaussians of radii ``settings.ltrb_beta`` times half the box sides
            (TTFNet's beta), each object weighing ``log(max(area, 1))``, area in input pixels^2
            (TTFNet's log-area weight; boxes under 1 px^2 get no weight, not a negative one).
    """
    N, K, H, W = shape
    boxes, classes, image = batch_objects(gt_instances, image_sizes, K)
    sizes = (boxes[:, 2:] - boxes[:, :2]) / stride  # (M, 2) cells

    centers, cells = center_cells(boxes, stride, H, W)  # (M, 2) cells
    if settings.kind == "cornernet":  # as the paper's code: int(radius(ceil(h), ceil(w)))
        radius = cornernet_paper_radius(sizes.ceil(), settings.min_overlap)
        radii = radius.floor().long()[:, None].expand(-1, 2)
    elif settings.kind == "cornernet_exact":
        radii = cornernet_radius(sizes, settings.min_overlap).floor().long()[:, None].expand(-1, 2)
    elif settings.kind == "ttf":
        radii = ttf_radii(sizes, settings.ttf_alpha)
    else:
        raise ValueError(
            f"TARGET_KIND {settings.kind!r} draws targets on several levels: "
            "use level_targets.build_level_targets"
        )
    heatmap = draw_gaussians(cells, radii, image * K + classes, shape)
    box = box_weight = None
    if with_ltrb:
        log_areas = (boxes[:, 2:] - boxes[:, :2]).prod(dim=1).clamp(min=1).log()  # (M,) of px^2
        box, box_weight = ltrb_targets(
            boxes / stride, log_areas, image, cells, ttf_radii(sizes, settings.ltrb_beta), (N, H, W)
        )
    return CenterNetTargets(
        heatmap=heatmap,
        index=(image * H + cells[:, 1]) * W + cells[:, 0],
        size=sizes,
        offset=centers - cells,
        box=box,
        box_weight=box_weight,
    )
