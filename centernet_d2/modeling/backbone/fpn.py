"""FPN backbones: ones that return only their finest level, "p2" (stride 4), for CenterNet's
single map, and P3-P7 ones (P6 and P7 from P5, as CenterNet2 and FCOS) for the multi-level
CenterNet.

Shape shorthand: N images, C channels, H/W height and width of the input images.
"""

import math
from typing import Callable, Dict, Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, FPN, Backbone
from detectron2.modeling.backbone.fpn import LastLevelP6P7

from .common import RESNET_FEATURES, build_resnet_bottom_up, check_choice
from .mobilenet import MOBILENET_FEATURES, build_mobilenet_bottom_up

__all__ = [
    "FinestLevelFPN",
    "build_mobilenet_fpn_p2_backbone",
    "build_resnet_fpn_p2_backbone",
    "build_mobilenet_fpn_p3p7_backbone",
    "build_resnet_fpn_p3p7_backbone",
]

FUSE_TYPES = ("sum", "avg")
# (cfg, input_shape, out_features) -> bottom-up backbone returning out_features.
BottomUpBuilder = Callable[..., Backbone]


class FinestLevelFPN(FPN):
    """Detectron2's :class:`FPN` without top block, computing and returning only its finest level
    ``p<log2 stride of in_features[0]>``.

    Only that level's 3x3 output conv is built (the coarser ones would be parameters without
    gradient, which DistributedDataParallel rejects); the other module names are the FPN's, so a
    Detectron2 FPN checkpoint loads with the unused ``fpn_output{3,4,5}`` keys left out.
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: Sequence[str],
        out_channels: int,
        norm: str = "",
        fuse_type: str = "sum",
    ):
        """
        Args:
            bottom_up: backbone returning ``in_features``.
            in_features: bottom-up features, finest first, strides doubling, e.g. res2..res5.
            out_channels: channels of the lateral convs and of the output.
            norm: detectron2.layers.get_norm name, "" for none.
            fuse_type: "sum" or "avg" of the lateral and the upsampled top-down features.
        """
        super().__init__(
            bottom_up, in_features, out_channels, norm=norm, top_block=None, fuse_type=fuse_type
        )
        stride = bottom_up.output_shape()[in_features[0]].stride
        stage = int(math.log2(stride))
        for f in in_features[1:]:
            delattr(self, f"fpn_output{int(math.log2(bottom_up.output_shape()[f].stride))}")
        self._output_conv_name = f"fpn_output{stage}"
        del self.output_convs  # the base class's list, which holds the deleted modules
        name = f"p{stage}"
        self._out_features = [name]
        self._out_feature_strides = {name: stride}
        self._out_feature_channels = {name: out_channels}

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: (N, C, H, W) images, H and W multiples of ``size_divisibility``.

        Returns:
            ``{"p2": (N, out_channels, H / 4, W / 4)}`` for in_features starting at stride 4.
        """
        bottom_up_features = self.bottom_up(x)
        # Top-down: self.lateral_convs and reversed in_features go from coarse to fine.
        coarse_to_fine = self.in_features[::-1]
        top_down = self.lateral_convs[0](bottom_up_features[coarse_to_fine[0]])
        for lateral_conv, f in zip(self.lateral_convs[1:], coarse_to_fine[1:]):
            upsampled = F.interpolate(top_down, scale_factor=2.0, mode="nearest")
            top_down = lateral_conv(bottom_up_features[f]) + upsampled
            if self._fuse_type == "avg":
                top_down = top_down / 2
        output_conv = getattr(self, self._output_conv_name)
        return {self._out_features[0]: output_conv(top_down)}


def _fpn_p2(cfg, build_bottom_up: BottomUpBuilder, input_shape: ShapeSpec, features) -> Backbone:
    """:class:`FinestLevelFPN` from MODEL.FPN.{IN_FEATURES, OUT_CHANNELS, NORM, FUSE_TYPE} over
    ``build_bottom_up(cfg, input_shape, MODEL.FPN.IN_FEATURES)``; ``features`` are the bottom-up's
    feature names by increasing stride, the first of stride 4."""
    c = cfg.MODEL.FPN
    n = len(c.IN_FEATURES)
    if n == 0 or list(c.IN_FEATURES) != list(features[:n]):
        raise ValueError(
            f"MODEL.FPN.IN_FEATURES must be {list(features[:1])} or a longer prefix of "
            f"{list(features)} (strides 4, 8, ...; the FPN returns the stride-4 p2), "
            f"got {c.IN_FEATURES!r}"
        )
    check_choice("MODEL.FPN.FUSE_TYPE", c.FUSE_TYPE, FUSE_TYPES)
    bottom_up = build_bottom_up(cfg, input_shape, c.IN_FEATURES)
    fpn = FinestLevelFPN(
        bottom_up, c.IN_FEATURES, c.OUT_CHANNELS, norm=c.NORM, fuse_type=c.FUSE_TYPE
    )
    assert fpn.output_shape()["p2"].stride == 4, fpn.output_shape()
    return fpn


@BACKBONE_REGISTRY.register()
def build_resnet_fpn_p2_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """ResNet (MODEL.RESNETS.*) + FPN (MODEL.FPN.*, IN_FEATURES e.g. res2..res5) returning "p2"
    only. The ResNet returns MODEL.FPN.IN_FEATURES whatever MODEL.RESNETS.OUT_FEATURES says."""
    return _fpn_p2(cfg, build_resnet_bottom_up, input_shape, RESNET_FEATURES)


@BACKBONE_REGISTRY.register()
def build_mobilenet_fpn_p2_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """MobileNet (MODEL.MOBILENET.*) + FPN (MODEL.FPN.*, IN_FEATURES e.g. m2..m5) returning "p2"
    only."""
    return _fpn_p2(cfg, build_mobilenet_bottom_up, input_shape, MOBILENET_FEATURES)


def _fpn_p3p7(cfg, build_bottom_up: BottomUpBuilder, input_shape: ShapeSpec, features) -> Backbone:
    """Detectron2's :class:`FPN` from MODEL.FPN.{IN_FEATURES, OUT_CHANNELS, NORM, FUSE_TYPE} over
    the bottom-up levels of strides 8, 16, 32 (``features[1:4]``), with P6 and P7 made from P5 by
    3x3 convs of stride 2 (``LastLevelP6P7`` on "p5", CenterNet2's ``LastLevelP6P7_P5``):
    "p3".."p7", strides 8..128."""
    c = cfg.MODEL.FPN
    if list(c.IN_FEATURES) != list(features[1:4]):
        raise ValueError(
            f"MODEL.FPN.IN_FEATURES must be {list(features[1:4])} (strides 8, 16, 32) for a "
            f"P3-P7 FPN, got {c.IN_FEATURES!r}"
        )
    check_choice("MODEL.FPN.FUSE_TYPE", c.FUSE_TYPE, FUSE_TYPES)
    bottom_up = build_bottom_up(cfg, input_shape, c.IN_FEATURES)
    top_block = LastLevelP6P7(c.OUT_CHANNELS, c.OUT_CHANNELS, in_feature="p5")
    return FPN(
        bottom_up,
        c.IN_FEATURES,
        c.OUT_CHANNELS,
        norm=c.NORM,
        top_block=top_block,
        fuse_type=c.FUSE_TYPE,
    )


@BACKBONE_REGISTRY.register()
def build_resnet_fpn_p3p7_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """ResNet (MODEL.RESNETS.*) + FPN (MODEL.FPN.*, IN_FEATURES res3..res5) returning p3..p7,
    P6/P7 from P5 (CenterNet2's ``build_p67_resnet_fpn_backbone``)."""
    return _fpn_p3p7(cfg, build_resnet_bottom_up, input_shape, RESNET_FEATURES)


@BACKBONE_REGISTRY.register()
def build_mobilenet_fpn_p3p7_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """MobileNet (MODEL.MOBILENET.*) + FPN (MODEL.FPN.*, IN_FEATURES m3..m5) returning p3..p7,
    P6/P7 from P5."""
    return _fpn_p3p7(cfg, build_mobilenet_bottom_up, input_shape, MOBILENET_FEATURES)
