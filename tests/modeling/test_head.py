"""centernet_d2.modeling.head: the CenterNet head's outputs, initialisation and checks."""

import unittest

import torch
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model

from centernet_d2.modeling.head import CenterNetHead
from tests.common import LTRB_CONFIG, model_cfg


def _ltrb_cfg(*opts):
    return model_cfg(LTRB_CONFIG, *opts)


class TestLtrbHead(unittest.TestCase):
    def test_outputs_and_init(self):
        torch.manual_seed(0)
        head = CenterNetHead(
            input_shape=[ShapeSpec(channels=8, stride=4)], num_classes=3, box_head="ltrb"
        )
        self.assertEqual(set(head.branches), {"heatmap", "box"})
        out = head([torch.randn(2, 8, 5, 7)])
        self.assertEqual(out["box"].shape, (2, 4, 5, 7))
        self.assertTrue((out["box"] >= 0).all())
        # starts near 1 cell to each side: ReLU(1 / 4 + small) * LTRB_SCALE 4
        self.assertEqual(head.branches["box"][-1].bias.tolist(), [0.25] * 4)
        self.assertAlmostEqual(out["box"].mean().item(), 1.0, delta=0.25)

    def test_classic_parameter_names_unchanged(self):
        head = CenterNetHead(input_shape=[ShapeSpec(channels=8, stride=4)], num_classes=3)
        names = {k.split(".")[1] for k in head.state_dict()}
        self.assertEqual(names, {"heatmap", "size", "offset"})
        self.assertIn("branches.size.2.weight", head.state_dict())

    def test_shared_by_levels(self):
        torch.manual_seed(0)
        shapes = [ShapeSpec(channels=8, stride=8), ShapeSpec(channels=8, stride=16)]
        head = CenterNetHead(
            input_shape=shapes, num_classes=3, box_head="ltrb", ltrb_scale=1.0, per_level=True
        )
        x = torch.randn(2, 8, 6, 6)
        with torch.no_grad():
            head.level_scales[1] = 2.0
            out = head([x, x[..., :3, :3]])
            same = head([x, x])
        self.assertEqual([tuple(o.shape) for o in out["heatmap"]], [(2, 3, 6, 6), (2, 3, 3, 3)])
        self.assertEqual([tuple(o.shape) for o in out["box"]], [(2, 4, 6, 6), (2, 4, 3, 3)])
        # one set of branches: the same input gives the same heatmap on both levels, and the
        # box of level 1 is ReLU(2 x) where level 0's is ReLU(x)
        torch.testing.assert_close(same["heatmap"][1], same["heatmap"][0])
        raw = head.branches["box"](x).detach()
        torch.testing.assert_close(same["box"][0], torch.relu(raw))
        torch.testing.assert_close(same["box"][1], torch.relu(2 * raw))
        self.assertEqual(len(head.level_scales), 2)
        with self.assertRaisesRegex(ValueError, "equal channels"):
            CenterNetHead(input_shape=[shapes[0], ShapeSpec(channels=4)], num_classes=3,
                          per_level=True)  # fmt: skip
        with self.assertRaisesRegex(ValueError, "unless per_level"):
            CenterNetHead(input_shape=shapes, num_classes=3)

    def test_bad_values(self):
        shape = [ShapeSpec(channels=8, stride=4)]
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERNET.BOX_HEAD.*ltrb.*'xywh'"):
            CenterNetHead(input_shape=shape, num_classes=3, box_head="xywh")
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERNET.LTRB_SCALE"):
            CenterNetHead(input_shape=shape, num_classes=3, box_head="ltrb", ltrb_scale=0)
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERNET.BOX_HEAD"):
            build_model(_ltrb_cfg("MODEL.CENTERNET.BOX_HEAD", "xywh"))


class TestCenterNet2HeadOptions(unittest.TestCase):
    def test_conv_bias_and_output_kernel(self):
        shape = ShapeSpec(channels=32, stride=8)
        head = CenterNetHead(
            input_shape=[shape] * 2,
            num_classes=3,
            channels=32,
            num_convs=2,
            norm="GN",
            box_head="ltrb",
            per_level=True,
            conv_bias=True,
            out_kernel_size=3,
        )
        # conv 0 (bias + GN), ReLU, conv 2 (bias + GN), ReLU, output conv 4: CenterNet2's towers
        tower = head.branches["heatmap"]
        self.assertEqual(tuple(tower[0].bias.shape), (32,))
        self.assertEqual(tuple(tower[0].norm.weight.shape), (32,))
        self.assertEqual(tuple(tower[4].weight.shape), (3, 32, 3, 3))
        out = head([torch.randn(1, 32, 6, 5), torch.randn(1, 32, 3, 3)])
        self.assertEqual(tuple(out["heatmap"][0].shape), (1, 3, 6, 5))  # padding keeps the size
        self.assertEqual(tuple(out["box"][1].shape), (1, 4, 3, 3))
        # the default: no bias before a norm, 1x1 output convs
        plain = CenterNetHead(input_shape=[shape], num_classes=3, channels=32, norm="GN")
        self.assertIsNone(plain.branches["heatmap"][0].bias)
        self.assertEqual(tuple(plain.branches["heatmap"][2].weight.shape), (3, 32, 1, 1))

    def test_even_output_kernel_refused(self):
        with self.assertRaisesRegex(ValueError, "HEAD_OUT_KERNEL_SIZE"):
            CenterNetHead(input_shape=[ShapeSpec(channels=8)], num_classes=3, out_kernel_size=2)


if __name__ == "__main__":
    unittest.main()
