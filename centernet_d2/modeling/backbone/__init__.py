"""CenterNet backbones; importing this package registers their builders in BACKBONE_REGISTRY.

MODEL.BACKBONE.NAME and outputs:

- ``build_resnet_deconv_backbone``: "p2"; ResNet res5 + transposed convs (MODEL.DECONV),
  optionally with deformable convs (DECONV.DEFORMABLE).
- ``build_dla34_backbone``: "p2"; DLA-34 + DLA-up / IDA-up (MODEL.DLA), optionally bottom-up
  levels "level0".."level5".
- ``build_resnet_fpn_p2_backbone``: "p2"; ResNet res2..res5 + FPN (MODEL.FPN).
- ``build_mobilenet_fpn_p2_backbone``: "p2"; MobileNet m2..m5 + FPN (MODEL.MOBILENET, MODEL.FPN).
- ``build_resnet_fpn_p3p7_backbone``, ``build_mobilenet_fpn_p3p7_backbone``: "p3".."p7"; FPN over
  res3..res5 / m3..m5, P6/P7 from P5 (the multi-level CenterNet, as CenterNet2).
- ``build_resnet_bifpn_backbone``, ``build_mobilenet_bifpn_backbone``,
  ``build_dla_bifpn_backbone``: the levels of MODEL.BIFPN.OUT_FEATURES ("p2" or "p3".."p7", ...);
  BiFPN over the ResNet / MobileNet / DLA-34 bottom-up (MODEL.BIFPN.IN_FEATURES "res<i>", "m<i>",
  "level<i>").
- ``build_mobilenet_backbone``: "m2".."m5"; torchvision MobileNet V2 / V3 (MODEL.MOBILENET).

Pieces they share (the ResNet bottom-up, the 3x3 conv + norm + ReLU block, the GN group count, the
"must be one of" check) are in ``common.py``.
"""

from .bifpn import (
    BiFPN,
    build_dla_bifpn_backbone,
    build_mobilenet_bifpn_backbone,
    build_resnet_bifpn_backbone,
)
from .common import build_resnet_bottom_up
from .deconv import DeconvUpsampler, build_resnet_deconv_backbone
from .dla import DLA, DLAUpsampler, build_dla34_backbone
from .fpn import (
    FinestLevelFPN,
    build_mobilenet_fpn_p2_backbone,
    build_mobilenet_fpn_p3p7_backbone,
    build_resnet_fpn_p2_backbone,
    build_resnet_fpn_p3p7_backbone,
)
from .mobilenet import MobileNetBackbone, build_mobilenet_backbone, build_mobilenet_bottom_up

__all__ = [
    "BiFPN",
    "build_dla_bifpn_backbone",
    "build_mobilenet_bifpn_backbone",
    "build_resnet_bifpn_backbone",
    "DLA",
    "DLAUpsampler",
    "DeconvUpsampler",
    "FinestLevelFPN",
    "MobileNetBackbone",
    "build_dla34_backbone",
    "build_mobilenet_backbone",
    "build_mobilenet_bottom_up",
    "build_mobilenet_fpn_p2_backbone",
    "build_resnet_bottom_up",
    "build_resnet_deconv_backbone",
    "build_resnet_fpn_p2_backbone",
    "build_mobilenet_fpn_p3p7_backbone",
    "build_resnet_fpn_p3p7_backbone",
]
