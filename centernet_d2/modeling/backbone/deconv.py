"""ResNet + deconvolution upsampler: the ResNet variant of CenterNet ("Objects as Points", sec. 4).

A bottom-up ResNet gives a stride-32 map (``res5``); ``len(channels)`` stages each apply a 3x3 conv
(+ norm + ReLU) and a stride-2 transposed conv (+ norm + ReLU) that doubles the resolution exactly,
so three stages give one stride-4 map named ``"p2"``. The paper's 3x3 conv is deformable (DCNv2,
``deformable=True``: :class:`~centernet_d2.layers.ModulatedDeformConv2d`); the default is a plain
convolution, whose parameter names are unchanged.

Shape shorthand: N images, C channels, H/W height and width of a feature map.
"""

import logging
import math
from typing import Dict, Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

from .common import (
    GN_GROUPS,
    RESNET_FEATURES,
    bilinear_upsample_kernel,
    build_norm,
    build_resnet_bottom_up,
    check_choice,
    conv_norm_relu,
)

__all__ = ["DeconvUpsampler", "build_resnet_deconv_backbone"]

logger = logging.getLogger(__name__)

# Norm names accepted by DeconvUpsampler (passed to common.build_norm; "" means none).
DECONV_NORMS = ("BN", "SyncBN", "FrozenBN", "GN", "")
# Transposed-conv kernel size -> (padding, output_padding) giving an output of exactly 2x the
# input, as in the reference CenterNet's ``_get_deconv_cfg``.
DECONV_PADDING = {4: (1, 0), 3: (1, 1), 2: (0, 0)}


class _DeconvStage(nn.Module):
    """3x3 conv (deformable or plain) + norm + ReLU, then a stride-2 transposed conv + norm + ReLU:
    (N, C_in, H, W) -> (N, C_out, 2H, 2W)."""

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int, norm: str, deformable: bool
    ):
        super().__init__()
        use_bias = norm == ""  # the norm has its own bias
        self.conv = conv_norm_relu(in_channels, out_channels, norm, deformable)
        padding, output_padding = DECONV_PADDING[kernel_size]
        self.up = nn.ConvTranspose2d(
            out_channels,
            out_channels,
            kernel_size,
            stride=2,
            padding=padding,
            output_padding=output_padding,
            bias=use_bias,
        )
        self.up_norm = build_norm(norm, out_channels)
        # Each channel is upsampled bilinearly on its own (weight is (C_in, C_out, k, k)). The
        # reference code's fill_up_weights writes the kernel into w[:, 0] only, which is right for
        # the depthwise convs it was written for; for a full transposed conv the diagonal is the
        # bilinear upsampler.
        with torch.no_grad():
            self.up.weight.zero_()
            kernel = bilinear_upsample_kernel(kernel_size)
            for c in range(out_channels):
                self.up.weight[c, c] = kernel
            if self.up.bias is not None:
                self.up.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.up(self.conv(x))
        if self.up_norm is not None:
            x = self.up_norm(x)
        return F.relu(x)


class DeconvUpsampler(Backbone):
    """Upsamples one feature of a bottom-up backbone with stride-2 transposed convolutions.

    The output is named ``p<log2 stride>``: ``"p2"`` for ``res5`` (stride 32) and three stages.
    Module names: ``bottom_up.*`` (the wrapped backbone), ``stage<i>.conv``, ``stage<i>.up``,
    ``stage<i>.up_norm`` for i = 1..len(channels); a deformable ``stage<i>.conv`` adds
    ``stage<i>.conv.conv_offset_mask``.
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_feature: str,
        channels: Sequence[int],
        kernel_size: int = 4,
        norm: str = "BN",
        deformable: bool = False,
    ):
        """
        Args:
            bottom_up: backbone producing ``in_feature``.
            in_feature: name of the bottom-up feature to upsample, e.g. ``"res5"``.
            channels: output channels of each stage; each stage halves the stride.
            kernel_size: transposed-conv kernel, one of 2, 3, 4 (the paper uses 4).
            norm: one of "BN", "SyncBN", "FrozenBN", "GN", "" (none).
            deformable: each stage's 3x3 conv is a modulated deformable conv (DCNv2), as in the
                paper's ResNet variant, instead of a plain conv.
        """
        super().__init__()
        in_shape = bottom_up.output_shape()[in_feature]
        assert len(channels) > 0, channels
        assert in_shape.stride % 2 ** len(channels) == 0, (in_shape.stride, channels)
        assert kernel_size in DECONV_PADDING, kernel_size
        self.bottom_up = bottom_up
        self.in_feature = in_feature
        in_channels = in_shape.channels
        for i, out_channels in enumerate(channels, start=1):
            stage = _DeconvStage(in_channels, out_channels, kernel_size, norm, deformable)
            self.add_module(f"stage{i}", stage)
            in_channels = out_channels
        self._num_stages = len(channels)
        stride = in_shape.stride // 2 ** len(channels)
        name = f"p{int(math.log2(stride))}"
        self._out_features = [name]
        self._out_feature_channels = {name: channels[-1]}
        self._out_feature_strides = {name: stride}
        # Finer strides are derived from this one by exact doubling, so only the bottom-up's
        # stride constrains the input size.
        self._size_divisibility = in_shape.stride

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: (N, C_in, H, W) images, H and W multiples of ``size_divisibility``.

        Returns:
            ``{"p2": (N, channels[-1], H / 4, W / 4)}`` for three stages on ``res5``.
        """
        y = self.bottom_up(x)[self.in_feature]  # (N, C, H / 32, W / 32) for res5
        for i in range(1, self._num_stages + 1):
            y = getattr(self, f"stage{i}")(y)  # resolution doubles at each stage
        return {self._out_features[0]: y}


@BACKBONE_REGISTRY.register()
def build_resnet_deconv_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """ResNet / ResNeXt (MODEL.RESNETS.*, depth 18/34/50/101/152) + :class:`DeconvUpsampler`
    (MODEL.DECONV.*). MODEL.RESNETS.OUT_FEATURES is ignored.

    Returns:
        a backbone with the single output ``"p2"`` (stride 4) for the default config.
    """
    c = cfg.MODEL.DECONV
    check_choice("MODEL.DECONV.IN_FEATURE", c.IN_FEATURE, RESNET_FEATURES)
    check_choice("MODEL.DECONV.KERNEL_SIZE", c.KERNEL_SIZE, DECONV_PADDING)
    check_choice("MODEL.DECONV.NORM", c.NORM, DECONV_NORMS)
    channels = list(c.CHANNELS)
    if c.NORM == "GN" and any(ch % GN_GROUPS for ch in channels):
        raise ValueError(
            f"MODEL.DECONV.CHANNELS must be multiples of {GN_GROUPS} with "
            f"MODEL.DECONV.NORM='GN', got {channels}"
        )
    bottom_up = build_resnet_bottom_up(cfg, input_shape, [c.IN_FEATURE])
    in_stride = bottom_up.output_shape()[c.IN_FEATURE].stride
    max_stages = int(math.log2(in_stride))
    if not 0 < len(channels) <= max_stages or any(ch <= 0 for ch in channels):
        raise ValueError(
            f"MODEL.DECONV.CHANNELS must list 1 to {max_stages} positive channel counts "
            f"(one per stride-2 stage on {c.IN_FEATURE}, stride {in_stride}), got {channels}"
        )
    return DeconvUpsampler(
        bottom_up,
        c.IN_FEATURE,
        channels,
        kernel_size=c.KERNEL_SIZE,
        norm=c.NORM,
        deformable=c.DEFORMABLE,
    )
