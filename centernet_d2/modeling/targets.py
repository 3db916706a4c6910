"""Training targets of CenterNet, built on the device for all objects of a batch at once.

Shape shorthand:
    N: images, K: classes, M: ground-truth objects of the whole batch, H/W: output grid.

Naming convention:
    Boxes are XYXY in input pixels unless a name says ``cells`` (output-grid units, input pixels
    divided by the stride). ``channels`` index the flattened (N * K) heatmap planes.
"""

from dataclasses import dataclass
from typing import List, Tuple

import torch
from detectron2.structures import Instances
from torch import Tensor

__all__ = [
    "TARGET_KINDS",
    "CenterNetTargets",
    "cornernet_radius",
    "ttf_radii",
    "draw_gaussians",
    "build_targets",
]

TARGET_KINDS = ("cornernet", "ttf")


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
def ttf_radii(sizes: Tensor, alpha: float) -> Tensor:
    """TTFNet's elliptical gaussian radii: ``alpha`` times half of each box side, floored.

    Args:
        sizes: (M, 2) box (width, height) in output-grid cells.
    Returns:
        (M, 2) long (radius_x, radius_y).
    """
    return (sizes * (alpha / 2)).floor().long().clamp(min=0)


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
    """
    N, K, H, W = shape
    out = torch.zeros(N * K, H * W, device=centers.device)
    if centers.numel() == 0:
        return out.view(N, K, H, W)
    dx = torch.arange(W, device=centers.device) - centers[:, :1]  # (M, W)
    dy = torch.arange(H, device=centers.device) - centers[:, 1:]  # (M, H)
    sigma = (2 * radii + 1).float() / 6  # (M, 2)
    gx = torch.exp(-(dx.float() ** 2) / (2 * sigma[:, :1] ** 2)) * (dx.abs() <= radii[:, :1])
    gy = torch.exp(-(dy.float() ** 2) / (2 * sigma[:, 1:] ** 2)) * (dy.abs() <= radii[:, 1:])
    g = gy[:, :, None] * gx[:, None, :]  # (M, H, W); separable: exp(a + b) = exp(a) exp(b)
    out.scatter_reduce_(0, channels[:, None].expand(-1, H * W), g.flatten(1), "amax")
    return out.view(N, K, H, W)


@dataclass
class CenterNetTargets:
    """Targets of one batch.

    Attributes:
        heatmap: (N, K, H, W) gaussian heatmaps.
        index: (M,) long flat position ``image * H * W + y * W + x`` of each object's peak cell.
        size: (M, 2) object (width, height) in cells.
        offset: (M, 2) sub-cell position of the centre, ``center / stride - floor(...)`` in [0, 1).
        num_objects: number of objects M (degenerate boxes excluded).
    """

    heatmap: Tensor
    index: Tensor
    size: Tensor
    offset: Tensor

    @property
    def num_objects(self) -> int:
        return self.index.numel()


@torch.no_grad()
def build_targets(
    gt_instances: List[Instances],
    image_sizes: List[Tuple[int, int]],
    shape: Tuple[int, int, int, int],
    stride: int,
    kind: str = "cornernet",
    min_overlap: float = 0.7,
    ttf_alpha: float = 0.54,
) -> CenterNetTargets:
    """Build heatmap, size and offset targets for a batch.

    Boxes are clipped to their image; boxes with no area left (zero, negative or outside the image)
    are dropped. Images without objects give all-zero heatmaps.

    Args:
        gt_instances: per image, ``gt_boxes`` (XYXY, input pixels) and ``gt_classes`` (in [0, K)).
        image_sizes: per image, (height, width) before padding, in input pixels.
        shape: (N, K, H, W) of the heatmap.
        stride: input pixels per output cell.
        kind: "cornernet" (round gaussian, radius from ``min_overlap``) or "ttf" (elliptical
            gaussian, radii ``ttf_alpha`` times half the box sides).
    """
    if kind not in TARGET_KINDS:
        raise ValueError(f"target kind must be one of {TARGET_KINDS}, got {kind!r}")
    N, K, H, W = shape
    boxes = torch.cat([x.gt_boxes.tensor for x in gt_instances])  # (M, 4)
    classes = torch.cat([x.gt_classes for x in gt_instances]).long()  # (M,)
    device = boxes.device
    image = torch.repeat_interleave(
        torch.arange(len(gt_instances), device=device),
        torch.tensor([len(x) for x in gt_instances], device=device),
    )  # (M,)
    hw = torch.tensor(image_sizes, dtype=boxes.dtype, device=device)[image]  # (M, 2)
    limit = hw.flip(1).repeat(1, 2)  # (M, 4) as (w, h, w, h)
    boxes = torch.minimum(boxes.clamp(min=0), limit)
    sizes = (boxes[:, 2:] - boxes[:, :2]) / stride  # (M, 2) cells
    keep = (sizes > 0).all(dim=1)
    boxes, sizes, classes, image = boxes[keep], sizes[keep], classes[keep], image[keep]

    centers = (boxes[:, :2] + boxes[:, 2:]) / (2 * stride)  # (M, 2) cells
    cells = centers.floor().long()
    cells = torch.minimum(cells, torch.tensor([W - 1, H - 1], device=device))
    if kind == "cornernet":
        radii = cornernet_radius(sizes, min_overlap).floor().long()[:, None].expand(-1, 2)
    else:
        radii = ttf_radii(sizes, ttf_alpha)
    heatmap = draw_gaussians(cells, radii, image * K + classes, shape)
    return CenterNetTargets(
        heatmap=heatmap,
        index=(image * H + cells[:, 1]) * W + cells[:, 0],
        size=sizes,
        offset=centers - cells,
    )
