"""A backbone of a few convolutions for the export tests: tracing with ``torch.export`` and
converting to ONNX take time in proportion to the graph, and what those tests check (the adapter,
the decoding and NMS in the graph, the formats, the runtimes) does not depend on the backbone.
Every config's own backbone exports through ``tools/export_configs.py``."""

from typing import Dict, List

from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone
from torch import Tensor, nn

__all__ = ["TinyBackbone", "tiny_backbone_opts"]

CHANNELS = 32  # GroupNorm heads take 32 groups


class TinyBackbone(Backbone):
    """A stem of two stride-2 convolutions ("p2", stride 4), then one stride-2 convolution per
    further level ("p3" ... "p7"); returns ``out_features``."""

    def __init__(self, out_features: List[str], channels: int = CHANNELS):
        super().__init__()
        self.stem = nn.Sequential(
            nn.Conv2d(3, channels, 3, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(channels, channels, 3, stride=2, padding=1),
            nn.ReLU(),
        )
        last = max(int(f[1:]) for f in out_features)
        self.levels = nn.ModuleList(
            nn.Conv2d(channels, channels, 3, stride=2, padding=1) for _ in range(3, last + 1)
        )
        self._out_features = list(out_features)
        self._out_feature_strides = {f: 2 ** int(f[1:]) for f in out_features}
        self._out_feature_channels = {f: channels for f in out_features}

    @property
    def size_divisibility(self) -> int:
        return 32

    def forward(self, x: Tensor) -> Dict[str, Tensor]:
        features = {"p2": self.stem(x)}
        for i, conv in enumerate(self.levels, start=3):
            features[f"p{i}"] = conv(features[f"p{i - 1}"])
        return {f: features[f] for f in self._out_features}

    def output_shape(self) -> Dict[str, ShapeSpec]:
        return {
            f: ShapeSpec(channels=CHANNELS, stride=self._out_feature_strides[f])
            for f in self._out_features
        }


@BACKBONE_REGISTRY.register()
def build_tiny_test_backbone(cfg, input_shape):
    return TinyBackbone(cfg.MODEL.CENTERNET.IN_FEATURES)


def tiny_backbone_opts(levels: int = 1) -> List[str]:
    """Config overrides for the tiny backbone: "p2" (``levels`` 1) or "p3" ... "p7" (5), and a
    head of one 32-channel conv per branch."""
    features = ["p2"] if levels == 1 else [f"p{i}" for i in range(3, 3 + levels)]
    return [
        "MODEL.BACKBONE.NAME", "build_tiny_test_backbone",
        "MODEL.CENTERNET.IN_FEATURES", str(features),
        "MODEL.CENTERNET.HEAD_CHANNELS", str(CHANNELS),
        "MODEL.CENTERNET.HEAD_NUM_CONVS", "1",
    ]  # fmt: skip
