"""CenterNet's model: importing this registers the meta-architectures (CenterNet,
MultiLevelCenterNet, CenterTrack) and the backbones."""

from . import backbone  # noqa: F401  (registers the backbones)
from .centertrack import CenterTrack
from .decode import (
    InferenceSettings,
    decode_boxes,
    decode_ltrb_boxes,
    decode_predictions,
    to_instances,
    topk_peaks,
)
from .head import BOX_HEADS, CenterNetHead
from .losses import LossSettings, heatmap_focal_loss, l1_at_peaks, weighted_giou_loss
from .meta_arch import CenterNet
from .multilevel import MultiLevelCenterNet
from .targets import (
    CenterNetTargets,
    TargetSettings,
    build_targets,
    cornernet_paper_radius,
    cornernet_radius,
    draw_gaussians,
    ltrb_targets,
    ttf_radii,
)
from .tta import CenterNetWithTTA

__all__ = [
    "BOX_HEADS",
    "CenterNet",
    "MultiLevelCenterNet",
    "CenterTrack",
    "CenterNetWithTTA",
    "CenterNetHead",
    "TargetSettings",
    "InferenceSettings",
    "LossSettings",
    "CenterNetTargets",
    "build_targets",
    "cornernet_radius",
    "cornernet_paper_radius",
    "ttf_radii",
    "draw_gaussians",
    "ltrb_targets",
    "heatmap_focal_loss",
    "l1_at_peaks",
    "weighted_giou_loss",
    "topk_peaks",
    "decode_boxes",
    "decode_ltrb_boxes",
    "decode_predictions",
    "to_instances",
]
