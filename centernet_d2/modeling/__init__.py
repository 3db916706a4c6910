"""CenterNet's model: importing this registers the meta-architecture and the backbones."""

from . import backbone  # noqa: F401  (registers the backbones)
from .decode import decode_boxes, to_instances, topk_peaks
from .head import CenterNetHead
from .losses import heatmap_focal_loss, l1_at_peaks
from .meta_arch import CenterNet
from .targets import CenterNetTargets, build_targets, cornernet_radius, draw_gaussians, ttf_radii

__all__ = [
    "CenterNet",
    "CenterNetHead",
    "CenterNetTargets",
    "build_targets",
    "cornernet_radius",
    "ttf_radii",
    "draw_gaussians",
    "heatmap_focal_loss",
    "l1_at_peaks",
    "topk_peaks",
    "decode_boxes",
    "to_instances",
]
