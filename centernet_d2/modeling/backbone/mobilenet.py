"""torchvision MobileNet V2 / V3 as a Detectron2 backbone with outputs "m2".."m5" (strides 4..32).

The torchvision model's ``features`` (an ``nn.Sequential``) is kept as ``self.features``, so the
parameter names are torchvision's (``features.<i>.*``) and a torchvision checkpoint loads after
dropping its ``classifier.*`` keys. The blocks are grouped into stages by their output stride:

    stage 1 ("stem")  blocks at stride 2          (not an output)
    stage 2 ("m2")    blocks at stride 4          m2 = output of its last block
    stage 3 ("m3")    blocks at stride 8
    stage 4 ("m4")    blocks at stride 16
    stage 5 ("m5")    blocks at stride 32, including the final 1x1 conv of ``features``

e.g. mobilenet_v2: stem = features[0:2], m2 = [2:4], m3 = [4:7], m4 = [7:14], m5 = [14:19].

Shape shorthand: N images, C channels, H/W height and width of the input images.
"""

import logging
import math
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torchvision
from detectron2.layers import FrozenBatchNorm2d, ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

from .common import GN_GROUPS, check_choice

__all__ = ["MobileNetBackbone", "build_mobilenet_backbone", "build_mobilenet_bottom_up"]

logger = logging.getLogger(__name__)

# name -> (torchvision constructor, BN eps, BN momentum): torchvision's own norm settings, kept so
# that torchvision checkpoints behave the same.
MOBILENETS = {
    "mobilenet_v2": (torchvision.models.mobilenet_v2, 1e-5, 0.1),
    "mobilenet_v3_large": (torchvision.models.mobilenet_v3_large, 1e-3, 0.01),
    "mobilenet_v3_small": (torchvision.models.mobilenet_v3_small, 1e-3, 0.01),
}
# Norms usable in a MobileNet; GN (32 groups) does not divide widths such as 16, 24, 72 or 88.
MOBILENET_NORMS = ("BN", "SyncBN", "FrozenBN")
MOBILENET_FEATURES = ("m2", "m3", "m4", "m5")
NUM_STAGES = 5  # stem + m2..m5; freeze_at counts them from 1


def _block_stride(block: nn.Module) -> int:
    """Spatial stride of a torchvision block: the product of its convs' strides (the SE convs
    are 1x1 stride 1, and only one conv of an inverted residual is strided)."""
    return math.prod(m.stride[0] for m in block.modules() if isinstance(m, nn.Conv2d))


def _norm_layer(norm: str, eps: float, momentum: float) -> Callable[[int], nn.Module]:
    def make(channels: int) -> nn.Module:
        layer = get_norm(norm, channels)
        layer.eps = eps
        if hasattr(layer, "momentum"):  # FrozenBatchNorm2d has none
            layer.momentum = momentum
        return layer

    return make


class MobileNetBackbone(Backbone):
    """The ``features`` of a torchvision MobileNet, returning the last map of each stride."""

    def __init__(
        self,
        name: str = "mobilenet_v2",
        norm: str = "BN",
        in_channels: int = 3,
        out_features: Optional[Sequence[str]] = None,
        freeze_at: int = 0,
    ):
        """
        Args:
            name: "mobilenet_v2", "mobilenet_v3_large" or "mobilenet_v3_small" (random init).
            norm: "BN", "SyncBN" or "FrozenBN" (detectron2.layers.get_norm), used in every block.
            in_channels: channels of the input images; torchvision's first conv is replaced when
                it is not 3.
            out_features: subset of "m2".."m5" to return (default: all); blocks after the last one
                are not built.
            freeze_at: number of stages (stem = 1, m2 = 2, ..., m5 = 5) whose parameters are
                frozen and whose BatchNorms become FrozenBatchNorm2d; 0 freezes nothing.
        """
        super().__init__()
        assert name in MOBILENETS, name
        assert norm in MOBILENET_NORMS, norm
        assert 0 <= freeze_at <= NUM_STAGES, freeze_at
        out_features = list(out_features or MOBILENET_FEATURES)
        assert out_features and set(out_features) <= set(MOBILENET_FEATURES), out_features
        build, eps, momentum = MOBILENETS[name]
        features = build(weights=None, norm_layer=_norm_layer(norm, eps, momentum)).features
        if in_channels != 3:
            old = features[0][0]
            features[0][0] = nn.Conv2d(
                in_channels,
                old.out_channels,
                old.kernel_size,
                stride=old.stride,
                padding=old.padding,
                bias=False,
            )
            nn.init.kaiming_normal_(features[0][0].weight, mode="fan_out")

        # Stage of each block from its output stride: stride 2 -> 1 (stem), 4 -> 2 (m2), ...
        stride, block_stage, channels = 1, [], {}
        for block in features:
            stride *= _block_stride(block)
            block_stage.append(int(math.log2(stride)))
            channels[block_stage[-1]] = _out_channels(block)
        assert sorted(set(block_stage)) == list(range(1, NUM_STAGES + 1)), (name, block_stage)
        # Index of the last block of each stage.
        self._stage_ends = {s: len(block_stage) - 1 - block_stage[::-1].index(s) for s in channels}

        last = max(self._stage_ends[int(f[1:])] for f in out_features)
        self.features = features[: last + 1]  # a slice keeps the indices "0", "1", ...
        self._out_features = [f for f in MOBILENET_FEATURES if f in out_features]
        self._out_feature_strides = {f: 2 ** int(f[1:]) for f in self._out_features}
        self._out_feature_channels = {f: channels[int(f[1:])] for f in self._out_features}
        self._return_at = {self._stage_ends[int(f[1:])]: f for f in self._out_features}
        self.freeze(freeze_at)

    @property
    def size_divisibility(self) -> int:
        return 2**NUM_STAGES

    def freeze(self, freeze_at: int = 0) -> "MobileNetBackbone":
        """Freeze the first ``freeze_at`` stages (stem = 1) like Detectron2's ``ResNet.freeze``:
        no gradients for their parameters and FrozenBatchNorm2d for their BatchNorms.

        Returns:
            self
        """
        if freeze_at == 0:
            return self
        for i in range(min(self._stage_ends[freeze_at] + 1, len(self.features))):
            for p in self.features[i].parameters():
                p.requires_grad = False
            self.features[i] = FrozenBatchNorm2d.convert_frozen_batchnorm(self.features[i])
        return self

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: (N, C, H, W) images, H and W multiples of 32.

        Returns:
            ``{"m<s>": (N, C_s, H / 2**s, W / 2**s)}`` for each of ``out_features``.
        """
        outputs = {}
        for i, block in enumerate(self.features):
            x = block(x)
            if i in self._return_at:
                outputs[self._return_at[i]] = x
        return outputs


def _out_channels(block: nn.Module) -> int:
    """Output channels of a torchvision block: those of its last conv (SE convs come before the
    projection conv in ``modules()`` order)."""
    convs: List[nn.Conv2d] = [m for m in block.modules() if isinstance(m, nn.Conv2d)]
    return convs[-1].out_channels


def build_mobilenet_bottom_up(
    cfg, input_shape: ShapeSpec, out_features: Sequence[str] = MOBILENET_FEATURES
) -> MobileNetBackbone:
    """:class:`MobileNetBackbone` from MODEL.MOBILENET.{NAME, NORM, FREEZE_AT}, returning
    ``out_features`` (a subset of "m2".."m5")."""
    c = cfg.MODEL.MOBILENET
    check_choice("MODEL.MOBILENET.NAME", c.NAME, MOBILENETS)
    if c.NORM == "GN":
        raise ValueError(
            f"MODEL.MOBILENET.NORM='GN' is not supported: GN uses {GN_GROUPS} groups and MobileNet "
            f"widths (16, 24, 72, 88, ...) are not multiples of {GN_GROUPS}; use one of "
            f"{list(MOBILENET_NORMS)}"
        )
    check_choice("MODEL.MOBILENET.NORM", c.NORM, MOBILENET_NORMS)
    if not 0 <= c.FREEZE_AT <= NUM_STAGES:
        raise ValueError(
            f"MODEL.MOBILENET.FREEZE_AT must be in 0..{NUM_STAGES} (0: none, 1: stem, 2: up to "
            f"m2, ..., 5: all), got {c.FREEZE_AT}"
        )
    return MobileNetBackbone(
        c.NAME,
        norm=c.NORM,
        in_channels=input_shape.channels,
        out_features=out_features,
        freeze_at=c.FREEZE_AT,
    )


@BACKBONE_REGISTRY.register()
def build_mobilenet_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """:class:`MobileNetBackbone` from MODEL.MOBILENET.*, returning "m2".."m5" (strides 4, 8,
    16, 32)."""
    return build_mobilenet_bottom_up(cfg, input_shape)
