"""DLA-34 upsampled to stride 4 by DLA-up and IDA-up: the DLA variant of CenterNet ("Objects as
Points", sec. 4 and fig. 6).

Bottom-up (Deep Layer Aggregation, Yu et al. 2018): a 7x7 stem and six levels; level i has
stride 2**i. Levels 0 and 1 are plain 3x3 convs; levels 2..5 are aggregation trees of basic blocks
whose roots (1x1 conv + norm + ReLU) merge the blocks' outputs and, for ``level_root`` trees, the
downsampled input of the level (hierarchical deep aggregation). DLA-34: tree depths
(1, 1, 1, 2, 2, 1), channels (16, 32, 64, 128, 256, 512).

Up path: :class:`DLAUp` aggregates levels 2..5 from coarse to fine with iterative deep aggregation
(:class:`IDAUp`: 3x3 projection, bilinear-initialised transposed conv, 3x3 aggregation node), and a
last IDAUp merges its stride-4, 8 and 16 outputs into one stride-4 map of 64 channels, ``"p2"``.
The 3x3 convs of the up path are modulated deformable convs (DCNv2) in the paper, plain convs with
``deformable=False``.

Parameter names are those of the DLA authors' ImageNet model (``base_layer.0``,
``level3.tree1.tree2.conv1``, ``level5.root.bn``, ``level2.project.0``, ...), so its state dict
without ``fc.*`` matches ``backbone.bottom_up.*``; the up path keeps CenterNet's module names
``dla_up.ida_<i>.{proj,up,node}_<j>`` and ``ida_up.*``. The original code also builds a
``project`` in the depth-2 trees (level3, level4) whose output is never used (their first subtree
computes its own residual); it is not built here: parameters without gradients break
DistributedDataParallel.

Shape shorthand: N images, C channels, H/W height and width of the input images.
"""

import math
from typing import Dict, List, Optional, Sequence

import torch
import torch.nn.functional as F
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import nn

from .common import bilinear_upsample_kernel, build_norm, check_choice, conv_norm_relu

__all__ = ["DLA", "DLAUp", "DLAUpsampler", "IDAUp", "Tree", "build_dla34_backbone"]

# DLA-34: depth of each level's tree (levels 0 and 1: number of convs) and channels per level.
DLA34_LEVELS = (1, 1, 1, 2, 2, 1)
DLA34_CHANNELS = (16, 32, 64, 128, 256, 512)
DLA_FEATURES = tuple(f"level{i}" for i in range(len(DLA34_LEVELS)))
# Bottom-up levels merged by the up path (strides 4, 8, 16, 32); the output has the first's stride.
UP_FEATURES = ("level2", "level3", "level4", "level5")
# "" (no norm) is left out: the blocks have no biases. Passed to common.build_norm: "GN" has 32
# groups, gcd(32, C) on layers of fewer channels (the 16-channel stem).
DLA_NORMS = ("BN", "SyncBN", "FrozenBN", "GN")


def _conv_bn_relu(
    in_channels: int, out_channels: int, kernel_size: int, stride: int, norm: str
) -> List[nn.Module]:
    """[conv (no bias), norm, ReLU] as separate layers, the layers of the stem and of levels 0 and 1
    (named ``<i>``, ``<i + 1>``, ``<i + 2>`` in their ``nn.Sequential``, as in the DLA authors'
    model)."""
    return [
        nn.Conv2d(
            in_channels,
            out_channels,
            kernel_size,
            stride=stride,
            padding=kernel_size // 2,
            bias=False,
        ),
        build_norm(norm, out_channels),
        nn.ReLU(inplace=True),
    ]


class BasicBlock(nn.Module):
    """ResNet's basic block: 3x3 conv (carries the stride) + norm + ReLU, 3x3 conv + norm, sum with
    the residual, ReLU. (N, C_in, H, W) -> (N, C_out, H / stride, W / stride)."""

    def __init__(self, in_channels: int, out_channels: int, stride: int, norm: str):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = build_norm(norm, out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = build_norm(norm, out_channels)

    def forward(self, x: torch.Tensor, residual: Optional[torch.Tensor] = None) -> torch.Tensor:
        """``residual``: the shortcut, (N, C_out, H / stride, W / stride); ``x`` when None."""
        residual = x if residual is None else residual
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + residual)


class Root(nn.Module):
    """Aggregation node: 1x1 conv + norm + ReLU over the concatenated children."""

    def __init__(self, in_channels: int, out_channels: int, norm: str):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, bias=False)
        self.bn = build_norm(norm, out_channels)

    def forward(self, children: Sequence[torch.Tensor]) -> torch.Tensor:
        """``children``: maps of one size, channels summing to ``in_channels``."""
        return F.relu(self.bn(self.conv(torch.cat(list(children), dim=1))))


class Tree(nn.Module):
    """DLA aggregation tree of depth ``levels`` (hierarchical deep aggregation, Yu et al. 2018).

    Depth 1: two basic blocks (the first carries the stride, its shortcut is the input max-pooled
    and, when the width changes, projected by a 1x1 conv + norm); the root merges
    ``[block 2, block 1, *children]``. Depth d > 1: ``tree1`` of depth d - 1 carries the stride;
    ``tree2`` of depth d - 1 runs on its output and gets it as an extra child of its root, so every
    subtree's output reaches one root. With ``level_root`` the max-pooled input of the tree is a
    child of that root as well.
    """

    def __init__(
        self,
        levels: int,
        in_channels: int,
        out_channels: int,
        stride: int = 1,
        level_root: bool = False,
        root_channels: int = 0,
        norm: str = "BN",
    ):
        """
        Args:
            levels: depth of the tree, >= 1.
            in_channels, out_channels: channels of the input and of the output.
            stride: 1 or 2 (the first block's conv and the max-pool of the shortcut).
            level_root: the max-pooled input is a child of the root.
            root_channels: input channels of the root: its two blocks' outputs plus the
                children the caller passes (0: no children, ``2 * out_channels``); the level
                root's input adds ``in_channels``.
            norm: one of DLA_NORMS.
        """
        super().__init__()
        assert levels >= 1, levels
        if root_channels == 0:
            root_channels = 2 * out_channels
        if level_root:
            root_channels += in_channels
        if levels == 1:
            self.tree1 = BasicBlock(in_channels, out_channels, stride, norm)
            self.tree2 = BasicBlock(out_channels, out_channels, 1, norm)
            self.root = Root(root_channels, out_channels, norm)
        else:
            self.tree1 = Tree(levels - 1, in_channels, out_channels, stride, norm=norm)
            self.tree2 = Tree(
                levels - 1,
                out_channels,
                out_channels,
                root_channels=root_channels + out_channels,
                norm=norm,
            )
        self.levels = levels
        self.level_root = level_root
        self.downsample = nn.MaxPool2d(stride, stride=stride) if stride > 1 else None
        self.project = None
        if levels == 1 and in_channels != out_channels:
            self.project = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, bias=False), build_norm(norm, out_channels)
            )

    def forward(self, x: torch.Tensor, children: Sequence[torch.Tensor] = ()) -> torch.Tensor:
        """
        Args:
            x: (N, C_in, H, W).
            children: maps of size (H / stride, W / stride) for the root, from the caller.

        Returns:
            (N, C_out, H / stride, W / stride).
        """
        if self.levels == 1 or self.level_root:
            bottom = x if self.downsample is None else self.downsample(x)
            if self.level_root:
                children = [*children, bottom]
        if self.levels == 1:
            residual = bottom if self.project is None else self.project(bottom)
            x1 = self.tree1(x, residual)
            x2 = self.tree2(x1)
            return self.root([x2, x1, *children])
        x1 = self.tree1(x)
        return self.tree2(x1, children=[*children, x1])


class DLA(Backbone):
    """DLA bottom-up (DLA-34 by default) returning ``"level<i>"`` (stride 2**i) for the chosen
    levels; levels after the last of them are not built."""

    def __init__(
        self,
        levels: Sequence[int] = DLA34_LEVELS,
        channels: Sequence[int] = DLA34_CHANNELS,
        in_channels: int = 3,
        norm: str = "BN",
        out_features: Optional[Sequence[str]] = None,
    ):
        """
        Args:
            levels: depth of the trees of levels 2..5 and number of convs of levels 0 and 1.
            channels: output channels of the stem (= level 0) and of each level.
            in_channels: channels of the input images.
            norm: one of DLA_NORMS, used after every conv.
            out_features: subset of "level0".."level5" (default: "level2".."level5").
        """
        super().__init__()
        assert len(levels) == len(channels) == len(DLA_FEATURES), (levels, channels)
        assert norm in DLA_NORMS, norm
        out_features = list(out_features or UP_FEATURES)
        assert out_features and set(out_features) <= set(DLA_FEATURES), out_features
        self._num_levels = max(DLA_FEATURES.index(f) for f in out_features) + 1

        self.base_layer = nn.Sequential(*_conv_bn_relu(in_channels, channels[0], 7, 1, norm))
        for i in range(min(2, self._num_levels)):
            convs = []
            for j in range(levels[i]):
                c_in = channels[max(i - 1, 0)] if j == 0 else channels[i]
                stride = 2 if i == 1 and j == 0 else 1
                convs += _conv_bn_relu(c_in, channels[i], 3, stride, norm)
            self.add_module(f"level{i}", nn.Sequential(*convs))
        for i in range(2, self._num_levels):
            tree = Tree(levels[i], channels[i - 1], channels[i], 2, level_root=i > 2, norm=norm)
            self.add_module(f"level{i}", tree)
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")

        self._out_features = [f for f in DLA_FEATURES if f in out_features]
        self._out_feature_strides = {f: 2 ** DLA_FEATURES.index(f) for f in self._out_features}
        self._out_feature_channels = {
            f: channels[DLA_FEATURES.index(f)] for f in self._out_features
        }

    @property
    def size_divisibility(self) -> int:
        # Each of levels 2..5 halves the size with a stride-2 conv and a 2x2 max-pool in parallel,
        # which agree only on even sizes.
        return 2 ** (len(DLA_FEATURES) - 1)

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: (N, C, H, W) images, H and W multiples of 32.

        Returns:
            ``{"level<i>": (N, channels[i], H / 2**i, W / 2**i)}`` for each of ``out_features``.
        """
        x = self.base_layer(x)
        outputs = {}
        for i in range(self._num_levels):
            x = getattr(self, f"level{i}")(x)
            if DLA_FEATURES[i] in self._out_feature_strides:
                outputs[DLA_FEATURES[i]] = x
        return outputs


class IDAUp(nn.Module):
    """Iterative deep aggregation upwards (CenterNet's fig. 6): with x[0] the finest map,

        out[0] = x[0],  out[i] = node_i(up_i(proj_i(x[i])) + out[i - 1])

    ``proj_i`` (3x3: C_i -> C_out) and ``node_i`` (3x3: C_out -> C_out) are conv + norm + ReLU;
    ``up_i`` is a depthwise transposed conv that upsamples x[i] by ``up_factors[i]`` to x[0]'s
    size, initialised to bilinear interpolation and trained.
    """

    def __init__(
        self,
        out_channels: int,
        in_channels: Sequence[int],
        up_factors: Sequence[int],
        norm: str,
        deformable: bool,
    ):
        """
        Args:
            out_channels: C_out, channels of every output but out[0] (which is x[0]).
            in_channels: channels of x[0], x[1], ...
            up_factors: stride of x[i] / stride of x[0], each a power of 2 (up_factors[0] = 1).
            norm: one of DLA_NORMS.
            deformable: proj and node convs are modulated deformable convs.
        """
        super().__init__()
        assert len(in_channels) == len(up_factors) >= 2, (in_channels, up_factors)
        for i in range(1, len(in_channels)):
            f = up_factors[i]
            assert f >= 2 and f & (f - 1) == 0, up_factors
            self.add_module(
                f"proj_{i}", conv_norm_relu(in_channels[i], out_channels, norm, deformable)
            )
            # kernel 2f, stride f, padding f / 2: exactly f times the size.
            up = nn.ConvTranspose2d(
                out_channels,
                out_channels,
                2 * f,
                stride=f,
                padding=f // 2,
                groups=out_channels,
                bias=False,
            )
            with torch.no_grad():
                up.weight.copy_(bilinear_upsample_kernel(2 * f, stride=f).expand_as(up.weight))
            self.add_module(f"up_{i}", up)
            self.add_module(
                f"node_{i}", conv_norm_relu(out_channels, out_channels, norm, deformable)
            )
        self._num_inputs = len(in_channels)

    def forward(self, x: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """
        Args:
            x: (N, C_i, H * up_factors[i]^-1, W * up_factors[i]^-1) for each i, (H, W) the size
                of x[0].

        Returns:
            [x[0], out[1], ...]: out[i] is (N, C_out, H, W).
        """
        assert len(x) == self._num_inputs, len(x)
        outputs = [x[0]]
        for i in range(1, self._num_inputs):
            y = getattr(self, f"up_{i}")(getattr(self, f"proj_{i}")(x[i]))
            outputs.append(getattr(self, f"node_{i}")(y + outputs[-1]))
        return outputs


class DLAUp(nn.Module):
    """DLA-up: IDA steps from coarse to fine over n maps. Step i (``ida_i``) starts at map
    j = n - 2 - i: it brings the maps after j (as the previous step left them) to map j's size and
    channels and aggregates them one after another onto map j; its last output is the result at
    map j's stride. ``ida_0`` merges the two coarsest maps, ``ida_<n-2>`` ends at the finest.
    """

    def __init__(self, in_channels: Sequence[int], norm: str, deformable: bool):
        """
        Args:
            in_channels: channels of the input maps, finest first, strides doubling.
            norm: one of DLA_NORMS.
            deformable: the IDA convs are modulated deformable convs.
        """
        super().__init__()
        n = len(in_channels)
        assert n >= 2, in_channels
        # Channels and strides (relative to the finest) of the maps after each step.
        channels, scales = list(in_channels), [2**i for i in range(n)]
        for i in range(n - 1):
            j = n - 2 - i
            ups = [s // scales[j] for s in scales[j:]]
            self.add_module(f"ida_{i}", IDAUp(in_channels[j], channels[j:], ups, norm, deformable))
            # Step i leaves every map from j on at level j's size and channels.
            channels[j + 1 :] = [in_channels[j]] * (n - 1 - j)
            scales[j + 1 :] = [scales[j]] * (n - 1 - j)
        self._num_inputs = n

    def forward(self, x: Sequence[torch.Tensor]) -> List[torch.Tensor]:
        """
        Args:
            x: (N, in_channels[k], H / 2**k, W / 2**k) for each k, finest first.

        Returns:
            maps of the same shapes as ``x``: entry k aggregates the levels k and coarser (the
            last is x[-1] itself).
        """
        assert len(x) == self._num_inputs, len(x)
        layers = list(x)
        outputs = [layers[-1]]
        for i in range(self._num_inputs - 1):
            j = self._num_inputs - 2 - i
            layers[j:] = getattr(self, f"ida_{i}")(layers[j:])
            outputs.insert(0, layers[-1])
        return outputs


class DLAUpsampler(Backbone):
    """A DLA bottom-up + :class:`DLAUp` + a last :class:`IDAUp`: one map at the stride of the
    first of ``in_features`` with its channels, named ``p<log2 stride>`` (``"p2"``, 64 channels
    for DLA-34), optionally with bottom-up levels as further outputs.

    Module names: ``bottom_up.*`` (the :class:`DLA`), ``dla_up.ida_<i>.*``, ``ida_up.*``.
    """

    def __init__(
        self,
        bottom_up: Backbone,
        in_features: Sequence[str] = UP_FEATURES,
        norm: str = "BN",
        deformable: bool = True,
        extra_out_features: Sequence[str] = (),
    ):
        """
        Args:
            bottom_up: backbone returning ``in_features`` and ``extra_out_features``.
            in_features: bottom-up maps merged by the up path, finest first, strides doubling.
            norm: one of DLA_NORMS.
            deformable: the 3x3 convs of the up path are modulated deformable convs (DCNv2).
            extra_out_features: bottom-up maps returned as they are, besides the upsampled one.
        """
        super().__init__()
        shapes = bottom_up.output_shape()
        strides = [shapes[f].stride for f in in_features]
        assert len(in_features) >= 2, in_features
        assert all(b == 2 * a for a, b in zip(strides, strides[1:])), strides
        assert set(extra_out_features) <= set(shapes), (extra_out_features, shapes)
        channels = [shapes[f].channels for f in in_features]
        self.bottom_up = bottom_up
        self.in_features = list(in_features)
        self.dla_up = DLAUp(channels, norm, deformable)
        # Merges DLA-up's outputs but the coarsest (CenterNet's last_level = 5: strides 4..16).
        ups = [2**k for k in range(len(channels) - 1)]
        self.ida_up = IDAUp(channels[0], channels[:-1], ups, norm, deformable)

        name = f"p{int(math.log2(strides[0]))}"
        self._extra_out_features = [f for f in extra_out_features if f != name]
        self._out_features = [name] + self._extra_out_features
        self._out_feature_channels = {name: channels[0]}
        self._out_feature_strides = {name: strides[0]}
        for f in self._extra_out_features:
            self._out_feature_channels[f] = shapes[f].channels
            self._out_feature_strides[f] = shapes[f].stride
        self._size_divisibility = max(bottom_up.size_divisibility, strides[-1])

    @property
    def size_divisibility(self) -> int:
        return self._size_divisibility

    def forward(self, x: torch.Tensor) -> Dict[str, torch.Tensor]:
        """
        Args:
            x: (N, C, H, W) images, H and W multiples of ``size_divisibility``.

        Returns:
            ``{"p2": (N, 64, H / 4, W / 4)}`` for DLA-34, and the extra bottom-up levels.
        """
        features = self.bottom_up(x)
        up = self.dla_up([features[f] for f in self.in_features])  # strides 4, 8, 16, 32
        y = self.ida_up(up[:-1])[-1]  # (N, C_0, H / 4, W / 4)
        outputs = {self._out_features[0]: y}
        outputs.update({f: features[f] for f in self._extra_out_features})
        return outputs


@BACKBONE_REGISTRY.register()
def build_dla34_backbone(cfg, input_shape: ShapeSpec) -> Backbone:
    """DLA-34 + DLA-up / IDA-up (MODEL.DLA.{NORM, DEFORMABLE, OUT_FEATURES}).

    Returns:
        a :class:`DLAUpsampler` with output ``"p2"`` (stride 4, 64 channels) and the bottom-up
        levels listed in MODEL.DLA.OUT_FEATURES.
    """
    c = cfg.MODEL.DLA
    check_choice("MODEL.DLA.NORM", c.NORM, DLA_NORMS)
    out_features = list(c.OUT_FEATURES)
    if "p2" not in out_features or not set(out_features) <= {"p2", *DLA_FEATURES}:
        raise ValueError(
            f"MODEL.DLA.OUT_FEATURES must hold 'p2' and any of {list(DLA_FEATURES)}, "
            f"got {out_features!r}"
        )
    extra = [f for f in DLA_FEATURES if f in out_features]
    bottom_up = DLA(
        in_channels=input_shape.channels,
        norm=c.NORM,
        out_features=list(UP_FEATURES) + [f for f in extra if f not in UP_FEATURES],
    )
    return DLAUpsampler(
        bottom_up, UP_FEATURES, norm=c.NORM, deformable=c.DEFORMABLE, extra_out_features=extra
    )
