"""Pieces shared by the backbones: the ResNet bottom-up, the 3x3 conv + norm + ReLU block (plain or
modulated deformable), norms with the GN group-count rule, the bilinear upsampling kernel and the
"must be one of" check of config values.

Only the registered builders read the cfg; :func:`build_resnet_bottom_up` is the one helper here
that takes it, as it is the bottom-up half of two builders (ResNet + deconv, ResNet + FPN).

Shape shorthand: C channels, H/W height and width of a feature map.
"""

import math
from typing import Any, Collection, List, Optional

import fvcore.nn.weight_init as weight_init
import torch
import torch.nn.functional as F
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from detectron2.modeling import Backbone, build_resnet_backbone
from torch import nn

from ...layers import ModulatedDeformConv2d

__all__ = [
    "GN_GROUPS",
    "RESNET_FEATURES",
    "bilinear_upsample_kernel",
    "build_norm",
    "build_resnet_bottom_up",
    "check_choice",
    "conv_norm_relu",
]

# Groups of detectron2's "GN" (nn.GroupNorm(32, C)); build_norm uses gcd(32, C) for narrower maps.
GN_GROUPS = 32
# Outputs of detectron2's ResNet, strides 4, 8, 16, 32.
RESNET_FEATURES = ("res2", "res3", "res4", "res5")


def check_choice(key: str, value: Any, allowed: Collection) -> None:
    """Raise ``ValueError("<key> must be one of [...], got <value>")`` unless ``value`` is one of
    ``allowed``.

    Args:
        key: the config key (e.g. ``"MODEL.DLA.NORM"``) or argument name the value comes from.
        value: the given value.
        allowed: the accepted values (a dict: its keys), listed in the message.
    """
    if value not in allowed:
        raise ValueError(f"{key} must be one of {list(allowed)}, got {value!r}")


def build_norm(norm: str, channels: int) -> Optional[nn.Module]:
    """``detectron2.layers.get_norm(norm, channels)``, except that "GN" has ``gcd(32, channels)``
    groups, so that maps of fewer than 32 channels (DLA's 16-channel stem) get a valid GroupNorm;
    for multiples of 32 both are ``nn.GroupNorm(32, channels)``.

    Returns:
        the norm module, or None for ``norm=""``.
    """
    if norm == "GN":
        return nn.GroupNorm(math.gcd(GN_GROUPS, channels), channels)
    return get_norm(norm, channels)


def conv_norm_relu(
    in_channels: int, out_channels: int, norm: str, deformable: bool = False
) -> nn.Module:
    """3x3 conv (stride 1, padding 1) + norm + ReLU in one ``Conv2d``-like module, MSRA-initialised:
    (N, C_in, H, W) -> (N, C_out, H, W).

    Args:
        in_channels, out_channels: C_in and C_out.
        norm: a :func:`build_norm` name, "" for none; the conv has a bias only without norm.
        deformable: a modulated deformable conv (DCNv2,
            :class:`~centernet_d2.layers.ModulatedDeformConv2d`, which adds ``conv_offset_mask.*``
            parameters) instead of a plain ``detectron2.layers.Conv2d``.

    Returns:
        the module; its parameters are ``weight``, ``bias`` (no norm), ``norm.*``.
    """
    norm_layer = build_norm(norm, out_channels)
    conv_type = ModulatedDeformConv2d if deformable else Conv2d
    conv = conv_type(
        in_channels,
        out_channels,
        kernel_size=3,
        padding=1,
        bias=norm_layer is None,
        norm=norm_layer,
        activation=F.relu,
    )
    weight_init.c2_msra_fill(conv)
    return conv


def bilinear_upsample_kernel(kernel_size: int, stride: int = 2) -> torch.Tensor:
    """Bilinear-interpolation weights of a transposed conv that upsamples by ``stride``.

    The taps are those of the reference CenterNet / FCN bilinear filter,
    ``(1 - |i - center| / f)`` along each axis with ``f = ceil(kernel_size / 2)``; the taps of each
    of the ``stride`` output phases are then normalised to sum to 1, so that a constant map stays
    constant away from the border (a no-op for kernel 3 and 4; kernel 2 becomes nearest-neighbour).

    Returns:
        (kernel_size, kernel_size) float tensor. For kernel 4: the outer product of
        ``[0.25, 0.75, 0.75, 0.25]`` with itself.
    """
    f = math.ceil(kernel_size / 2)
    center = f - 1 if kernel_size % 2 == 1 else f - 0.5
    taps = 1 - (torch.arange(kernel_size, dtype=torch.float64) - center).abs() / f  # (k,)
    for phase in range(stride):
        taps[phase::stride] /= taps[phase::stride].sum()
    return torch.outer(taps, taps).float()


def build_resnet_bottom_up(cfg, input_shape: ShapeSpec, out_features: List[str]) -> Backbone:
    """Detectron2's ResNet (MODEL.RESNETS.*) returning ``out_features`` whatever
    MODEL.RESNETS.OUT_FEATURES says; stages after the last of them are not built.

    The given cfg is not modified (a clone is changed).
    """
    if len(out_features) == 0 or any(f not in RESNET_FEATURES for f in out_features):
        raise ValueError(
            f"out_features must be a non-empty list of {list(RESNET_FEATURES)}, "
            f"got {out_features!r}"
        )
    r = cfg.MODEL.RESNETS
    if r.DEPTH in (18, 34) and r.RES2_OUT_CHANNELS != 64:
        raise ValueError(
            f"MODEL.RESNETS.RES2_OUT_CHANNELS must be 64 for MODEL.RESNETS.DEPTH={r.DEPTH}, "
            f"got {r.RES2_OUT_CHANNELS}"
        )
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.RESNETS.OUT_FEATURES = list(out_features)
    return build_resnet_backbone(cfg, input_shape)
