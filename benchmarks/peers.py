"""Detectron2's RetinaNet and FCOS built like a CenterNet config, and their stages.

The peers are built from Detectron2's ``COCO-Detection/retinanet_R_50_FPN_1x.yaml`` with the
CenterNet config's ResNet depth, norm, frozen stages, pixel mean/std, class count and test size,
so only the detector design differs. FCOS follows Detectron2's ``fcos_R_50_FPN_1x`` (P6/P7 from
P5, GN head); it has no config entry in Detectron2 v0.6, so it is built from its modules.
"""

import logging
import warnings
from typing import Dict, List, Tuple

import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model, build_resnet_backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7
from detectron2.modeling.meta_arch.dense_detector import DenseDetector
from detectron2.modeling.meta_arch.fcos import FCOS, FCOSHead
from detectron2.structures import ImageList, Instances
from torch import Tensor, nn

__all__ = ["PEERS", "build_peer", "is_channels_last", "PeerStages"]

logger = logging.getLogger(__name__)

PEERS = ("retinanet", "fcos")
RETINANET_CONFIG = "COCO-Detection/retinanet_R_50_FPN_1x.yaml"
# FCOS's head: GroupNorm groups after each 3x3 conv (Detectron2's fcos.py, norm="GN")
FCOS_GN_GROUPS = 32
# Detectron2 v0.6's anchor generator calls torch.meshgrid without ``indexing``
warnings.filterwarnings("ignore", r"torch\.meshgrid: in an upcoming release", UserWarning)


def _peer_cfg(cfg: CfgNode) -> CfgNode:
    with warnings.catch_warnings():
        # Detectron2 v0.6's model zoo imports pkg_resources, which setuptools deprecates: a
        # warning nobody running the benchmark can act on
        warnings.filterwarnings("ignore", "pkg_resources is deprecated", UserWarning)
        from detectron2 import model_zoo  # imported only when peers are wanted

    peer = get_cfg()
    # Detectron2's own Base-RetinaNet.yaml computes its anchor sizes with a python tag, and its
    # loader warns about unsafe YAML each time: nothing a benchmark user can act on
    config_logger = logging.getLogger("fvcore.common.config")
    level = config_logger.level
    config_logger.setLevel(logging.ERROR)
    try:
        peer.merge_from_file(model_zoo.get_config_file(RETINANET_CONFIG))
    finally:
        config_logger.setLevel(level)
    depth = cfg.MODEL.RESNETS.DEPTH
    if "resnet" not in cfg.MODEL.BACKBONE.NAME:
        logger.warning(
            f"backbone {cfg.MODEL.BACKBONE.NAME} is not a ResNet: the peers use ResNet-{depth}"
        )
    peer.MODEL.RESNETS.DEPTH = depth
    peer.MODEL.RESNETS.RES2_OUT_CHANNELS = 64 if depth in (18, 34) else 256
    for key in ("NORM", "STRIDE_IN_1X1", "NUM_GROUPS", "WIDTH_PER_GROUP"):
        peer.MODEL.RESNETS[key] = cfg.MODEL.RESNETS[key]
    peer.MODEL.BACKBONE.FREEZE_AT = cfg.MODEL.BACKBONE.FREEZE_AT
    peer.MODEL.PIXEL_MEAN = list(cfg.MODEL.PIXEL_MEAN)
    peer.MODEL.PIXEL_STD = list(cfg.MODEL.PIXEL_STD)
    peer.INPUT.FORMAT = cfg.INPUT.FORMAT
    peer.INPUT.MIN_SIZE_TEST = cfg.INPUT.MIN_SIZE_TEST
    peer.INPUT.MAX_SIZE_TEST = cfg.INPUT.MAX_SIZE_TEST
    peer.MODEL.RETINANET.NUM_CLASSES = cfg.MODEL.CENTERNET.NUM_CLASSES
    peer.TEST.DETECTIONS_PER_IMAGE = cfg.TEST.DETECTIONS_PER_IMAGE
    peer.MODEL.WEIGHTS = ""
    return peer


def _build_fcos(cfg: CfgNode) -> FCOS:
    # Detectron2's configs/common/models/fcos.py, which v0.6 has only as a LazyConfig
    bottom_up = build_resnet_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
    channels = cfg.MODEL.FPN.OUT_CHANNELS
    backbone = FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=channels,
        top_block=LastLevelP6P7(channels, channels, in_feature="p5"),
    )
    in_features = ["p3", "p4", "p5", "p6", "p7"]
    head = FCOSHead(
        input_shape=[backbone.output_shape()[f] for f in in_features],
        conv_dims=[channels] * cfg.MODEL.RETINANET.NUM_CONVS,
        num_classes=cfg.MODEL.RETINANET.NUM_CLASSES,
        prior_prob=cfg.MODEL.RETINANET.PRIOR_PROB,
    )
    # norm="GN" as in Detectron2's config; v0.6's RetinaNetHead probes get_norm("GN", 1), which
    # recent PyTorch rejects, so the GroupNorms go in after each 3x3 conv here instead
    head.cls_subnet = _with_group_norm(head.cls_subnet)
    head.bbox_subnet = _with_group_norm(head.bbox_subnet)
    return FCOS(
        backbone=backbone,
        head=head,
        head_in_features=in_features,
        num_classes=cfg.MODEL.RETINANET.NUM_CLASSES,
        max_detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
    )


def _with_group_norm(subnet: nn.Sequential) -> nn.Sequential:
    layers = []
    for layer in subnet:
        layers.append(layer)
        if isinstance(layer, nn.Conv2d):
            layers.append(nn.GroupNorm(FCOS_GN_GROUPS, layer.out_channels))
    return nn.Sequential(*layers)


def build_peer(name: str, cfg: CfgNode, device: str, channels_last: bool = False) -> nn.Module:
    """Detectron2's RetinaNet or FCOS with the CenterNet cfg's backbone depth, classes and input
    size, random weights, on ``device``, its weights channels-last if ``channels_last``."""
    if name not in PEERS:
        raise ValueError(f"peer must be one of {PEERS}, got {name!r}")
    peer = _peer_cfg(cfg)
    peer.MODEL.DEVICE = device
    model = build_model(peer) if name == "retinanet" else _build_fcos(peer)
    model.to(torch.device(device))
    if channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def is_channels_last(model: nn.Module) -> bool:
    """Whether the model's convolution weights are in channels-last memory format."""
    # a 1x1 conv's weight is contiguous in both formats: look at a larger kernel
    conv = next(
        (m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight[0, 0].numel() > 1),
        None,
    )
    return conv is not None and conv.weight.is_contiguous(memory_format=torch.channels_last)


PeerOutputs = Tuple[List[Tensor], List]  # (features of head_in_features, head outputs)


class PeerStages:
    """A Detectron2 ``DenseDetector`` (RetinaNet, FCOS) seen through the stages the runs time
    (:class:`~.runs.Stages`), each one of Detectron2's own calls: the network is its backbone
    and head (images channels-last when its weights are), the targets its anchors and
    ``label_anchors``, the losses ``forward_training`` (which labels the anchors again, so
    :attr:`rebuilds_targets`) and the decoding ``forward_inference``."""

    rebuilds_targets = True

    def __init__(self, model: DenseDetector):
        self.model = model
        self.channels_last = is_channels_last(model)

    def network(self, images: Tensor) -> PeerOutputs:
        if self.channels_last:
            images = images.contiguous(memory_format=torch.channels_last)
        features = self.model.backbone(images)
        features = [features[f] for f in self.model.head_in_features]
        return features, self.model.head(features)

    def targets(self, images: ImageList, outputs: PeerOutputs, gt_instances: List[Instances]):
        features, _ = outputs
        return self.model.label_anchors(self.model.anchor_generator(features), gt_instances)

    def losses(
        self, images: ImageList, outputs: PeerOutputs, gt_instances: List[Instances], targets
    ) -> Dict[str, Tensor]:
        return self.model.forward_training(images, *outputs, gt_instances)

    def inference(self, images: ImageList, outputs: PeerOutputs) -> List[Instances]:
        return self.model.forward_inference(images, *outputs)
