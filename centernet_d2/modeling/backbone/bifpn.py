"""BiFPN (EfficientDet, Tan et al. 2020) over the ResNet, MobileNet and DLA-34 bottom-ups.

Each BiFPN layer runs a top-down then a bottom-up path over the levels; every node fuses its
inputs with fast normalised fusion, ``sum_i relu(w_i) x_i / (sum_i relu(w_i) + eps)``, then a
depthwise separable 3x3 convolution (depthwise 3x3, pointwise 1x1, norm) after a swish, as the
paper. Levels beyond the bottom-up's coarsest come from 3x3 max pools of stride 2.

Shape shorthand: N images, C channels (``out_channels``), L levels, level ``i`` of stride
``2 ** (first + i)``.
"""

import math
from typing import Callable, Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import Tensor, nn

from .common import RESNET_FEATURES, build_resnet_bottom_up, check_choice
from .dla import DLA, DLA_FEATURES, DLA_NORMS
from .mobilenet import MOBILENET_FEATURES, build_mobilenet_bottom_up

__all__ = [
    "BiFPN",
    "BiFPNLayer",
    "build_dla_bifpn_backbone",
    "build_mobilenet_bifpn_backbone",
    "build_resnet_bifpn_backbone",
]

FUSION_EPS = 1e-4  # EfficientDet's epsilon of the fast normalised fusion
BottomUpBuilder = Callable[..., Backbone]


class SeparableConv(nn.Sequential):
    """Swish, depthwise 3x3 conv, pointwise 1x1 conv with a norm: a BiFPN node's convolution."""

    def __init__(self, channels: int, norm: str):
        super().__init__(
            nn.SiLU(),
            Conv2d(channels, channels, 3, padding=1, groups=channels, bias=False),
            Conv2d(channels, channels, 1, bias=not norm, norm=get_norm(norm, channels)),
        )


def _resize(x: Tensor, size) -> Tensor:
    """``x`` brought to ``size`` (h, w): 3x3 max pool of stride 2 when the target is coarser,
    nearest upsampling when finer (odd sizes handled by the final interpolate)."""
    if x.shape[-1] > size[-1]:
        x = F.max_pool2d(x, 3, stride=2, padding=1)
    if tuple(x.shape[-2:]) != tuple(size):
        x = F.interpolate(x, size=size, mode="nearest")
    return x


class BiFPNLayer(nn.Module):
    """One BiFPN layer over L levels of C channels, finest first. Without ``bottom_up_path`` it
    is the top-down path alone (the last layer of a BiFPN that returns only its finest level: the
    bottom-up nodes would be parameters without gradient)."""

    def __init__(self, num_levels: int, channels: int, norm: str = "BN", bottom_up_path=True):
        super().__init__()
        if num_levels < 2:
            raise ValueError(f"a BiFPN layer needs at least 2 levels, got {num_levels}")
        L = num_levels
        # fusion weights: top-down nodes fuse 2 inputs, bottom-up nodes 3 (the coarsest 2)
        self.top_down_weights = nn.Parameter(torch.ones(L - 1, 2))
        self.top_down_convs = nn.ModuleList(SeparableConv(channels, norm) for _ in range(L - 1))
        self.bottom_up_path = bottom_up_path
        if bottom_up_path:
            self.bottom_up_weights = nn.Parameter(torch.ones(L - 1, 3))
            self.bottom_up_convs = nn.ModuleList(
                SeparableConv(channels, norm) for _ in range(L - 1)
            )

    @staticmethod
    def fuse(weights: Tensor, inputs: Sequence[Tensor]) -> Tensor:
        """Fast normalised fusion of ``inputs`` with the first ``len(inputs)`` ``weights``."""
        w = F.relu(weights[: len(inputs)])
        w = w / (w.sum() + FUSION_EPS)
        return sum(wi * x for wi, x in zip(w, inputs))

    def forward(self, levels: List[Tensor]) -> List[Tensor]:
        """
        Args:
            levels: L maps (N, C, H_i, W_i), finest first.
        Returns:
            L maps of the same shapes (the top-down path's, without ``bottom_up_path``).
        """
        L = len(levels)
        top_down = [None] * L
        top_down[-1] = levels[-1]
        for i in range(L - 2, -1, -1):
            up = _resize(top_down[i + 1], levels[i].shape[-2:])
            fused = self.fuse(self.top_down_weights[i], [levels[i], up])
            top_down[i] = self.top_down_convs[i](fused)
        if not self.bottom_up_path:
            return top_down
        out = [top_down[0]]
        for i in range(1, L):
            down = _resize(out[-1], levels[i].shape[-2:])
            inputs = [levels[i], top_down[i], down] if i < L - 1 else [levels[i], down]
            out.append(
                self.bottom_up_convs[i - 1](self.fuse(self.bottom_up_weights[i - 1], inputs))
            )
        return out


class BiFPN(Backbone):
    """A bottom-up backbone, 1x1 lateral convs to ``out_channels``, extra levels by max pooling,
    then ``num_repeats`` :class:`BiFPNLayer`; returns the levels named in ``out_features``
    (``p<log2 stride>``), e.g. ``["p2"]`` for CenterNet's single map or ``p3``..``p7``."""

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: Sequence[str],
        out_channels: int,
        num_levels: int,
        num_repeats: int = 3,
        norm: str = "BN",
        out_features: Optional[Sequence[str]] = None,
    ):
        """
        Args:
            bottom_up: backbone returning ``in_features``.
            in_features: bottom-up features, finest first, strides doubling.
            out_channels: C, the width of every level.
            num_levels: levels of the BiFPN, at least ``len(in_features)``; the extra ones
                come from max pooling the coarsest.
            num_repeats: BiFPN layers.
            norm: detectron2.layers.get_norm name of the lateral and node convs, "" for none.
            out_features: the levels returned; default all.
        """
        super().__init__()
        shapes = bottom_up.output_shape()
        strides = [shapes[f].stride for f in in_features]
        if any(b != 2 * a for a, b in zip(strides, strides[1:])):
            raise ValueError(f"BiFPN in_features must have doubling strides, got {strides}")
        if num_levels < max(len(in_features), 2):
            raise ValueError(
                f"MODEL.BIFPN.NUM_LEVELS must be at least {max(len(in_features), 2)} "
                f"(the input levels), got {num_levels}"
            )
        if num_repeats < 1:
            raise ValueError(f"MODEL.BIFPN.NUM_REPEATS must be at least 1, got {num_repeats}")
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.lateral_convs = nn.ModuleList(
            Conv2d(shapes[f].channels, out_channels, 1, bias=not norm,
                   norm=get_norm(norm, out_channels))
            for f in in_features
        )  # fmt: skip
        first = int(math.log2(strides[0]))
        self._levels = [f"p{first + i}" for i in range(num_levels)]
        out_features = list(out_features or self._levels)
        finest_only = out_features == self._levels[:1]
        self.layers = nn.ModuleList(
            BiFPNLayer(num_levels, out_channels, norm, not (finest_only and i == num_repeats - 1))
            for i in range(num_repeats)
        )
        unknown = [f for f in out_features if f not in self._levels]
        if unknown:
            raise ValueError(
                f"MODEL.BIFPN.OUT_FEATURES {unknown} are not levels of this BiFPN, "
                f"which has {self._levels}"
            )
        self._out_features = out_features
        self._out_feature_strides = {f: 2 ** int(f[1:]) for f in self._levels}
        self._out_feature_channels = {f: out_channels for f in self._levels}
        # the coarsest level must not be rounded, nor the bottom-up's (DLA: 32)
        self._size_divisibility = max(2 ** (first + num_levels - 1), bottom_up.size_divisibility)

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        """
        Args:
            x: (N, 3, H, W) images, H and W multiples of ``size_divisibility``.
        Returns:
            {name: (N, C, H / stride, W / stride)} for ``out_features``.
        """
        features = self.bottom_up(x)
        levels = [conv(features[f]) for conv, f in zip(self.lateral_convs, self.in_features)]
        while len(levels) < len(self._levels):
            levels.append(F.max_pool2d(levels[-1], 3, stride=2, padding=1))
        for layer in self.layers:
            levels = layer(levels)
        named = dict(zip(self._levels, levels))
        return {f: named[f] for f in self._out_features}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            f: ShapeSpec(
                channels=self._out_feature_channels[f], stride=self._out_feature_strides[f]
            )
            for f in self._out_features
        }


def _bifpn(cfg, build_bottom_up: BottomUpBuilder, input_shape: ShapeSpec, features) -> Backbone:
    """:class:`BiFPN` from MODEL.BIFPN.* over ``build_bottom_up(cfg, input_shape, IN_FEATURES)``;
    ``features`` are the bottom-up's feature names by increasing stride."""
    c = cfg.MODEL.BIFPN
    names = list(features)
    if not c.IN_FEATURES or any(f not in names for f in c.IN_FEATURES):
        raise ValueError(
            f"MODEL.BIFPN.IN_FEATURES must be features of {names}, got {c.IN_FEATURES}"
        )
    bottom_up = build_bottom_up(cfg, input_shape, list(c.IN_FEATURES))
    return BiFPN(
        bottom_up,
        c.IN_FEATURES,
        c.OUT_CHANNELS,
        num_levels=c.NUM_LEVELS,
        num_repeats=c.NUM_REPEATS,
        norm=c.NORM,
        out_features=c.OUT_FEATURES,
    )


@BACKBONE_REGISTRY.register()
def build_resnet_bifpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """ResNet (MODEL.RESNETS.*) + BiFPN (MODEL.BIFPN.*, IN_FEATURES e.g. res3..res5)."""
    return _bifpn(cfg, build_resnet_bottom_up, input_shape, RESNET_FEATURES)


@BACKBONE_REGISTRY.register()
def build_mobilenet_bifpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """MobileNet (MODEL.MOBILENET.*) + BiFPN (MODEL.BIFPN.*, IN_FEATURES e.g. m2..m5)."""
    return _bifpn(cfg, build_mobilenet_bottom_up, input_shape, MOBILENET_FEATURES)


def _build_dla_bottom_up(cfg, input_shape: ShapeSpec, out_features: List[str]) -> Backbone:
    """The DLA-34 bottom-up alone (MODEL.DLA.NORM; no DLA-up / IDA-up, so MODEL.DLA.DEFORMABLE
    and MODEL.DLA.OUT_FEATURES do not apply) returning ``out_features``, "level<i>" of stride
    ``2 ** i``; levels after the last of them are not built."""
    check_choice("MODEL.DLA.NORM", cfg.MODEL.DLA.NORM, DLA_NORMS)
    return DLA(in_channels=input_shape.channels, norm=cfg.MODEL.DLA.NORM, out_features=out_features)


@BACKBONE_REGISTRY.register()
def build_dla_bifpn_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """DLA-34 bottom-up (MODEL.DLA.NORM) + BiFPN (MODEL.BIFPN.*, IN_FEATURES e.g. level3..level5
    with NUM_LEVELS 5 for p3..p7, as CenterNet2's DLA-BiFPN, or level2..level5 for p2). The
    bottom-up's parameters are ``bottom_up.*`` with the names of the DLA authors' ImageNet model,
    as in :func:`~centernet_d2.modeling.backbone.dla.build_dla34_backbone`."""
    return _bifpn(cfg, _build_dla_bottom_up, input_shape, DLA_FEATURES)
