"""Box geometry in numpy, for the code that runs without PyTorch or Detectron2 (the tracker, the
deploy side, evaluation). Boxes are XYXY."""

import numpy as np

__all__ = ["box_areas", "box_centers", "box_iou"]

_EPS = np.finfo(float).eps


def box_areas(boxes: np.ndarray) -> np.ndarray:
    """(B, 4) -> (B,) areas; 0 for a box without area."""
    sizes = np.clip(boxes[:, 2:] - boxes[:, :2], 0, None)
    return sizes[:, 0] * sizes[:, 1]


def box_centers(boxes: np.ndarray) -> np.ndarray:
    """(B, 4) -> (B, 2) centres."""
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(A, 4) and (B, 4) -> (A, B) IoU; 0 where both boxes are empty."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.clip(rb - lt, 0, None).prod(2)
    union = box_areas(a)[:, None] + box_areas(b)[None, :] - inter
    return np.where(union > 0, inter / np.maximum(union, _EPS), 0.0)
