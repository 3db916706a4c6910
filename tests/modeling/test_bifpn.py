"""centernet_d2.modeling.backbone.bifpn: fusion by hand, level shapes, gradients, errors."""

import unittest

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import Backbone

from centernet_d2.modeling.backbone.bifpn import FUSION_EPS, BiFPN, BiFPNLayer, SeparableConv


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


if __name__ == "__main__":
    unittest.main()
