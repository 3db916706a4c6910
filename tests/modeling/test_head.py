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

    def test_bad_values(self):
        shape = [ShapeSpec(channels=8, stride=4)]
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERNET.BOX_HEAD.*ltrb.*'xywh'"):
            CenterNetHead(input_shape=shape, num_classes=3, box_head="xywh")
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERNET.LTRB_SCALE"):
            CenterNetHead(input_shape=shape, num_classes=3, box_head="ltrb", ltrb_scale=0)
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERNET.BOX_HEAD"):
            build_model(_ltrb_cfg("MODEL.CENTERNET.BOX_HEAD", "xywh"))


if __name__ == "__main__":
    unittest.main()
