"""CenterNet's head: one small conv tower per output branch, on a single feature map or shared
by the levels of a pyramid (the multi-level CenterNet of CenterNet2).

Shape shorthand:
    N: images, C: input channels, K: classes, H/W: output grid, L: levels.
"""

import math
from typing import Dict, List, Optional, Union

import torch
import torch.nn.functional as F
from detectron2.config import configurable
from detectron2.layers import Conv2d, ShapeSpec, get_norm
from torch import Tensor, nn

__all__ = ["BOX_HEADS", "CenterNetHead"]

# "size_offset": CenterNet's size + sub-cell offset at the peak; "ltrb": TTFNet's distances from
# each cell to the four box sides.
BOX_HEADS = ("size_offset", "ltrb")
# Initial ltrb distance to each box side, in cells: a 2x2-cell box around every cell, so that the
# ReLU of the box branch starts active and the GIoU loss has an intersection to grow.
LTRB_INIT = 1.0


class CenterNetHead(nn.Module):
    """Predicts, on one feature map, the class heatmap logits (K channels) and the boxes: with
    ``box_head="size_offset"`` (CenterNet) the object size (width, height in cells) and the
    sub-cell centre offset (dx, dy in cells); with ``"ltrb"`` (TTFNet) the distances (l, t, r, b)
    in cells from each cell's centre to the four box sides, ``ReLU(x) * ltrb_scale``.

    Each branch is ``num_convs`` 3x3 convs (+ norm) + ReLU followed by a 1x1 conv, as in the
    paper (one 3x3 conv of 64 or 256 channels per branch); CenterNet2's head has four 3x3 convs
    with bias + GN per branch and a 3x3 output conv (``conv_bias``, ``out_kernel_size``).

    With ``per_level=True`` (the multi-level CenterNet) the branches are shared by all input
    levels, as in CenterNet2 and RetinaNet, the ltrb output of level l is multiplied by a learned
    scale of its own (FCOS's ``Scale``, initially 1) and every output is a list over levels.
    """

    @configurable
    def __init__(
        self,
        *,
        input_shape: List[ShapeSpec],
        num_classes: int,
        channels: int = 64,
        num_convs: int = 1,
        norm: str = "",
        prior_prob: float = 0.1,
        box_head: str = "size_offset",
        ltrb_scale: float = 4.0,
        per_level: bool = False,
        num_keypoints: int = 0,
        extra_outputs: Optional[Dict[str, int]] = None,
        conv_bias: bool = False,
        out_kernel_size: int = 1,
    ):
        """
        Args:
            input_shape: shapes of the input features: one, or with ``per_level`` any number
                of equal channels.
            num_classes: K.
            channels: width of each branch's 3x3 convs.
            num_convs: 3x3 convs per branch (0: the 1x1 output conv alone).
            norm: norm after each 3x3 conv: "" (none), "BN", "SyncBN", "GN", ...
            prior_prob: initial heatmap probability everywhere; sets the heatmap output bias.
            box_head: "size_offset" (branches "size" and "offset") or "ltrb" (branch "box").
            ltrb_scale: cells per unit of the ltrb branch's ReLU output (TTFNet's
                ``wh_offset_base`` of 16 pixels is 4 cells at stride 4).
            per_level: outputs as lists over the input levels, branches shared (see above).
            num_keypoints: J > 0 adds the keypoint branches (:mod:`.keypoints`): "keypoints"
                (2J offsets of the keypoints from the cell), "keypoint_heatmap" (J logits,
                initialised as the heatmap's) and "keypoint_offset" (2, the sub-cell offset).
            extra_outputs: more branches, name -> output channels, built as the box branches
                (tracking's "displacement": 2); their outputs are returned under their names.
            conv_bias: the 3x3 convs have a bias even when a norm follows (CenterNet2's head);
                False: a bias only without norm.
            out_kernel_size: kernel of each branch's output conv: 1 (CenterNet) or 3
                (CenterNet2), any odd size.
        """
        super().__init__()
        if not per_level and len(input_shape) != 1:
            raise ValueError(
                "CenterNetHead takes one feature map (MODEL.CENTERNET.IN_FEATURES of length 1) "
                f"unless per_level (MODEL.META_ARCHITECTURE 'MultiLevelCenterNet'), got {len(input_shape)}"
            )
        if len({s.channels for s in input_shape}) != 1:
            raise ValueError(
                "the levels of a shared head need equal channels, got "
                f"{[s.channels for s in input_shape]}"
            )
        if box_head not in BOX_HEADS:
            raise ValueError(
                f"MODEL.CENTERNET.BOX_HEAD must be one of {BOX_HEADS}, got {box_head!r}"
            )
        if out_kernel_size < 1 or out_kernel_size % 2 == 0:
            raise ValueError(
                f"MODEL.CENTERNET.HEAD_OUT_KERNEL_SIZE must be odd and positive, got "
                f"{out_kernel_size}"
            )
        if ltrb_scale <= 0:
            raise ValueError(f"MODEL.CENTERNET.LTRB_SCALE must be positive, got {ltrb_scale}")
        self.box_head = box_head
        self.ltrb_scale = ltrb_scale
        self.per_level = per_level
        if box_head == "ltrb":
            outputs = {"heatmap": num_classes, "box": 4}
        else:
            outputs = {"heatmap": num_classes, "size": 2, "offset": 2}
        if num_keypoints < 0:
            raise ValueError(f"MODEL.CENTERNET.NUM_KEYPOINTS must be >= 0, got {num_keypoints}")
        if num_keypoints:
            outputs.update(
                keypoints=2 * num_keypoints, keypoint_heatmap=num_keypoints, keypoint_offset=2
            )
        clashes = sorted(set(outputs) & set(extra_outputs or {}))
        if clashes:
            raise ValueError(f"extra_outputs {clashes} are names of the head's own branches")
        outputs.update(extra_outputs or {})
        self.branches = nn.ModuleDict(
            {
                name: self._branch(
                    input_shape[0].channels,
                    channels,
                    num_convs,
                    norm,
                    out,
                    conv_bias,
                    out_kernel_size,
                )
                for name, out in outputs.items()
            }
        )
        bias = -math.log((1 - prior_prob) / prior_prob)
        nn.init.constant_(self.branches["heatmap"][-1].bias, bias)
        if num_keypoints:
            nn.init.constant_(self.branches["keypoint_heatmap"][-1].bias, bias)
        if box_head == "ltrb":
            nn.init.constant_(self.branches["box"][-1].bias, LTRB_INIT / ltrb_scale)
            if per_level:
                self.level_scales = nn.Parameter(torch.ones(len(input_shape)))

    @staticmethod
    def _branch(in_channels, channels, num_convs, norm, out_channels, conv_bias, out_kernel_size):
        layers = []
        for i in range(num_convs):
            conv = Conv2d(
                in_channels if i == 0 else channels,
                channels,
                kernel_size=3,
                padding=1,
                bias=conv_bias or not norm,
                norm=get_norm(norm, channels),
            )
            nn.init.kaiming_normal_(conv.weight, mode="fan_out", nonlinearity="relu")
            if conv.bias is not None:
                nn.init.zeros_(conv.bias)
            layers += [conv, nn.ReLU(inplace=True)]
        out = nn.Conv2d(
            channels if num_convs else in_channels,
            out_channels,
            kernel_size=out_kernel_size,
            padding=out_kernel_size // 2,
        )
        nn.init.normal_(out.weight, std=0.01)
        nn.init.zeros_(out.bias)
        return nn.Sequential(*layers, out)

    @classmethod
    def from_config(cls, cfg, input_shape: List[ShapeSpec]):
        c = cfg.MODEL.CENTERNET
        return {
            "input_shape": input_shape,
            "num_classes": c.NUM_CLASSES,
            "channels": c.HEAD_CHANNELS,
            "num_convs": c.HEAD_NUM_CONVS,
            "norm": c.HEAD_NORM,
            "prior_prob": c.PRIOR_PROB,
            "box_head": c.BOX_HEAD,
            "ltrb_scale": c.LTRB_SCALE,
            "per_level": len(input_shape) > 1,
            "num_keypoints": c.NUM_KEYPOINTS if cfg.MODEL.KEYPOINT_ON else 0,
            "conv_bias": c.HEAD_CONV_BIAS,
            "out_kernel_size": c.HEAD_OUT_KERNEL_SIZE,
        }

    def forward(self, features: List[Tensor]) -> Dict[str, Union[Tensor, List[Tensor]]]:
        """
        Args:
            features: one (N, C, H, W) map, or with ``per_level`` one per level.
        Returns:
            "heatmap": (N, K, H, W) logits; "size_offset": "size" (N, 2, H, W) and "offset"
            (N, 2, H, W); "ltrb": "box" (N, 4, H, W) >= 0; all in cells; with keypoints
            "keypoints" (N, 2J, H, W), "keypoint_heatmap" (N, J, H, W) logits and
            "keypoint_offset" (N, 2, H, W), in cells. With ``per_level``
            each is a list of these over the levels.
        """
        if not self.per_level:
            return self._run(features[0], None)
        scales = self.level_scales if self.box_head == "ltrb" else [None] * len(features)
        levels = [self._run(x, scale) for x, scale in zip(features, scales)]
        return {name: [out[name] for out in levels] for name in self.branches}

    def _run(self, x: Tensor, box_scale: Optional[Tensor]) -> Dict[str, Tensor]:
        out = {name: branch(x) for name, branch in self.branches.items()}
        if self.box_head == "ltrb":
            box = out["box"] if box_scale is None else out["box"] * box_scale
            out["box"] = F.relu(box) * self.ltrb_scale
        return out
