"""centernet_d2.modeling.backbone.bifpn: fusion by hand, level shapes, gradients, errors, the
DLA-BiFPN builder."""

import unittest

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import BACKBONE_REGISTRY, Backbone, build_backbone

from centernet_d2.modeling.backbone import DLA
from centernet_d2.modeling.backbone.bifpn import FUSION_EPS, BiFPN, BiFPNLayer, SeparableConv
from tests.modeling.test_backbones import make_cfg
from tests.modeling.test_dla import BOTTOM_UP_PARAMS, num_params

# CenterNet2's DLA-BiFPN: DLA-34 levels 3-5 (strides 8, 16, 32), p6 and p7 by max pooling
DLA_P3_P7 = [
    "MODEL.BIFPN.IN_FEATURES", ["level3", "level4", "level5"],
    "MODEL.BIFPN.NUM_LEVELS", 5,
    "MODEL.BIFPN.OUT_FEATURES", ["p3", "p4", "p5", "p6", "p7"],
]  # fmt: skip
# the single-level head: DLA-34 levels 2-5 (strides 4..32), returning p2 alone
DLA_P2 = [
    "MODEL.BIFPN.IN_FEATURES", ["level2", "level3", "level4", "level5"],
    "MODEL.BIFPN.NUM_LEVELS", 4,
    "MODEL.BIFPN.OUT_FEATURES", ["p2"],
]  # fmt: skip


class _BottomUp(Backbone):
    """Strided convs giving c3 (stride 8, 6 ch), c4 (16, 10 ch), c5 (32, 12 ch)."""

    def __init__(self):
        super().__init__()
        self.c3 = torch.nn.Conv2d(3, 6, 3, stride=8, padding=1)
        self.c4 = torch.nn.Conv2d(6, 10, 3, stride=2, padding=1)
        self.c5 = torch.nn.Conv2d(10, 12, 3, stride=2, padding=1)

    def forward(self, x):
        c3 = self.c3(x)
        c4 = self.c4(c3)
        return {"c3": c3, "c4": c4, "c5": self.c5(c4)}

    def output_shape(self):
        return {f: ShapeSpec(channels=c, stride=s) for f, c, s in
                [("c3", 6, 8), ("c4", 10, 16), ("c5", 12, 32)]}  # fmt: skip


class TestFusion(unittest.TestCase):
    def test_fast_normalised_fusion_by_hand(self):
        a, b = torch.full((1, 1, 2, 2), 2.0), torch.full((1, 1, 2, 2), 6.0)
        # relu(w) = (1, 3): (1 * 2 + 3 * 6) / (1 + 3 + eps)
        out = BiFPNLayer.fuse(torch.tensor([1.0, 3.0, 9.0]), [a, b])
        torch.testing.assert_close(out, torch.full_like(a, 20 / (4 + FUSION_EPS)))
        # a negative weight counts as 0: 2 * 6 / (2 + eps)
        out = BiFPNLayer.fuse(torch.tensor([-1.0, 2.0]), [a, b])
        torch.testing.assert_close(out, torch.full_like(a, 12 / (2 + FUSION_EPS)))

    def test_separable_conv_parameters(self):
        # depthwise 8 * 3 * 3, pointwise 8 * 8 without bias, BatchNorm weight and bias 2 * 8
        conv = SeparableConv(8, "BN")
        self.assertEqual(sum(p.numel() for p in conv.parameters()), 72 + 64 + 16)


class TestBiFPN(unittest.TestCase):
    def test_levels_and_strides(self):
        torch.manual_seed(0)
        net = BiFPN(_BottomUp(), ["c3", "c4", "c5"], 16, num_levels=5, num_repeats=2)
        self.assertEqual(net.size_divisibility, 128)
        shapes = net.output_shape()
        self.assertEqual(list(shapes), ["p3", "p4", "p5", "p6", "p7"])
        out = net(torch.rand(2, 3, 256, 384))
        for f, x in out.items():
            s = shapes[f].stride
            self.assertEqual(tuple(x.shape), (2, 16, 256 // s, 384 // s), f)
        sum(x.sum() for x in out.values()).backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        self.assertEqual(missing, [])

    def test_finest_level_only_has_no_unused_parameters(self):
        torch.manual_seed(0)
        net = BiFPN(_BottomUp(), ["c3", "c4", "c5"], 8, 4, num_repeats=2, out_features=["p3"])
        self.assertFalse(net.layers[-1].bottom_up_path)
        self.assertTrue(net.layers[0].bottom_up_path)
        out = net(torch.rand(1, 3, 128, 128))
        self.assertEqual(list(out), ["p3"])
        self.assertEqual(tuple(out["p3"].shape), (1, 8, 16, 16))
        out["p3"].sum().backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        self.assertEqual(missing, [])  # DistributedDataParallel needs every gradient

    def test_odd_sizes(self):
        net = BiFPN(_BottomUp(), ["c3", "c4"], 8, num_levels=3, num_repeats=1)
        out = net(torch.rand(1, 3, 72, 40))  # c3 9 x 5, c4 5 x 3, p5 3 x 2
        self.assertEqual([tuple(x.shape[-2:]) for x in out.values()], [(9, 5), (5, 3), (3, 2)])

    def test_bad_values(self):
        with self.assertRaisesRegex(ValueError, "NUM_LEVELS must be at least 3"):
            BiFPN(_BottomUp(), ["c3", "c4", "c5"], 8, num_levels=2)
        with self.assertRaisesRegex(ValueError, r"OUT_FEATURES \['p2'\]"):
            BiFPN(_BottomUp(), ["c3", "c4", "c5"], 8, 3, out_features=["p2"])
        with self.assertRaisesRegex(ValueError, "doubling strides"):
            BiFPN(_BottomUp(), ["c3", "c5"], 8, 3)
        with self.assertRaisesRegex(ValueError, "NUM_REPEATS"):
            BiFPN(_BottomUp(), ["c3", "c4"], 8, 3, num_repeats=0)


class TestDLABiFPN(unittest.TestCase):
    """build_dla_bifpn_backbone from a cfg: the DLA-34 bottom-up alone under the BiFPN."""

    def setUp(self):
        torch.manual_seed(0)

    def build(self, opts):
        cfg = make_cfg(
            "build_dla_bifpn_backbone",
            ["MODEL.BIFPN.OUT_CHANNELS", 16, "MODEL.BIFPN.NUM_REPEATS", 2, *opts],
        )
        return build_backbone(cfg)

    def test_registered(self):
        self.assertIn("build_dla_bifpn_backbone", BACKBONE_REGISTRY)

    def test_p3_to_p7(self):
        net = self.build(DLA_P3_P7)
        self.assertIsInstance(net.bottom_up, DLA)
        # the whole DLA-34 bottom-up (level2 feeds level3), no DLA-up / IDA-up
        self.assertEqual(num_params(net.bottom_up), sum(BOTTOM_UP_PARAMS.values()))
        self.assertEqual(
            [n for n, _ in net.named_children()], ["bottom_up", "lateral_convs", "layers"]
        )
        self.assertEqual(net.size_divisibility, 128)  # p7
        shapes = net.output_shape()
        self.assertEqual(list(shapes), ["p3", "p4", "p5", "p6", "p7"])
        self.assertEqual([s.stride for s in shapes.values()], [8, 16, 32, 64, 128])
        self.assertEqual({s.channels for s in shapes.values()}, {16})
        # DLA-34 widths of levels 3-5 into the 1x1 laterals
        self.assertEqual([c.in_channels for c in net.lateral_convs], [128, 256, 512])
        out = net(torch.rand(2, 3, 128, 256))
        self.assertEqual(list(out), ["p3", "p4", "p5", "p6", "p7"])
        sizes = [tuple(x.shape) for x in out.values()]
        self.assertEqual(
            sizes, [(2, 16, 16, 32), (2, 16, 8, 16), (2, 16, 4, 8), (2, 16, 2, 4), (2, 16, 1, 2)]
        )

    def test_p2_single_level(self):
        net = self.build(DLA_P2)
        self.assertEqual(net.size_divisibility, 32)  # p5, and DLA's own
        self.assertEqual(net.output_shape(), {"p2": ShapeSpec(channels=16, stride=4)})
        self.assertEqual([c.in_channels for c in net.lateral_convs], [64, 128, 256, 512])
        out = net(torch.rand(1, 3, 64, 96))
        self.assertEqual(list(out), ["p2"])
        self.assertEqual(tuple(out["p2"].shape), (1, 16, 16, 24))

    def test_p3_single_level_stops_at_level4(self):
        net = self.build(
            ["MODEL.BIFPN.IN_FEATURES", ["level3", "level4"], "MODEL.BIFPN.NUM_LEVELS", 2]
            + ["MODEL.BIFPN.OUT_FEATURES", ["p3"]]
        )
        self.assertFalse(hasattr(net.bottom_up, "level5"))
        self.assertEqual(net.size_divisibility, 32)  # DLA's, larger than p4's 16
        self.assertEqual(net.output_shape(), {"p3": ShapeSpec(channels=16, stride=8)})
        out = net(torch.rand(1, 3, 64, 32))
        self.assertEqual(tuple(out["p3"].shape), (1, 16, 8, 4))

    def test_backward_reaches_the_bottom_up(self):
        net = self.build(DLA_P3_P7)
        out = net(torch.rand(2, 3, 128, 128))
        sum(x.sum() for x in out.values()).backward()
        missing = [n for n, p in net.named_parameters() if p.grad is None]
        self.assertEqual(missing, [])
        # the stem and the last tree's root get non-zero gradients through the BiFPN
        for p in (net.bottom_up.base_layer[0].weight, net.bottom_up.level5.root.conv.weight):
            self.assertGreater(p.grad.abs().sum().item(), 0)

    def test_bad_values(self):
        with self.assertRaisesRegex(ValueError, "IN_FEATURES must be features of .*level0"):
            self.build(["MODEL.BIFPN.IN_FEATURES", ["res3", "res4", "res5"]])
        with self.assertRaisesRegex(ValueError, "MODEL.DLA.NORM must be one of"):
            self.build(DLA_P3_P7 + ["MODEL.DLA.NORM", ""])


if __name__ == "__main__":
    unittest.main()
