import math
import unittest

import torch

from centernet_d2.modeling.level_targets import build_level_targets, flatten_levels
from centernet_d2.modeling.targets import TargetSettings
from tests.common import gt_instances, peak_rss_growth_mib

# two levels on a 64 x 64 input: stride 8 (8 x 8 cells) and stride 16 (4 x 4)
SHAPES, STRIDES = [(8, 8), (4, 4)], [8, 16]
SETTINGS = TargetSettings(kind="multilevel", min_overlap=0.8, size_ranges=((0, 20), (16, 1e8)))
DELTA2 = (0.2 / 1.8) ** 2  # ((1 - o) / (1 + o))^2 at o = 0.8


def _targets(boxes_per_image, classes_per_image, settings=SETTINGS, num_classes=2):
    gt = [gt_instances(b, c, (64, 64)) for b, c in zip(boxes_per_image, classes_per_image)]
    return build_level_targets(gt, [(64, 64)] * len(gt), num_classes, SHAPES, STRIDES, settings)


class TestLevelTargets(unittest.TestCase):
    def test_hand_computed(self):
        # object 0: 20 x 16 px at centre (20, 18), half diagonal sqrt(400 + 256) / 2 = 12.8:
        #   level 0 only; r^2 = max(2 DELTA2 * 320, 4^2) = 16 px^2
        # object 1: the whole image, half diagonal 45.25: level 1 only; r^2 = 2 DELTA2 * 4096
        t = _targets([[[10, 10, 30, 26], [0, 0, 64, 64]]], [[1, 0]])
        hm0, hm1 = t.level("heatmap", 0)[0], t.level("heatmap", 1)[0]
        pos0, pos1 = t.level("positive", 0)[0], t.level("positive", 1)[0]
        # positives: the centre cell (2, 2) of object 0 at stride 8, (2, 2) of object 1 at 16
        self.assertEqual(pos0.nonzero().tolist(), [[1, 2, 2]])
        self.assertEqual(pos1.nonzero().tolist(), [[0, 2, 2]])
        self.assertEqual(t.num_objects, 2)
        # every level holds each object's peak (value 1), positive or not
        self.assertEqual(hm1[1, 1, 1].item(), 1.0)  # object 0's centre cell at stride 16
        self.assertFalse(pos1[1, 1, 1])
        self.assertEqual(hm0[0, 4, 4].item(), 1.0)  # object 1's centre cell (4, 4) at stride 8
        # cell (x 3, y 2) at stride 8 is the point (28, 20): d^2 = 64 + 4
        self.assertAlmostEqual(hm0[1, 2, 3].item(), math.exp(-68 / 16), places=6)
        # cell (x 1, y 2) at stride 16 is (24, 40): d^2 = 64 + 64 from (32, 32)
        self.assertAlmostEqual(hm1[0, 2, 1].item(), math.exp(-128 / (2 * DELTA2 * 4096)), 6)
        # far away values are below 1e-4 and set to 0: cell (7, 7) at stride 8 for object 0
        self.assertEqual(hm0[1, 7, 7].item(), 0.0)

        box0, box1 = t.level("box", 0)[0], t.level("box", 1)[0]
        w0, w1 = t.level("box_weight", 0)[0, 0], t.level("box_weight", 1)[0, 0]
        # object 0: the 3x3 cells around (2, 2) inside the box: rows y = 1, 2 (y = 3 is the
        # point 28 > 26), columns 1..3; object 1 on all 9 cells around (2, 2) at stride 16
        self.assertEqual(w0.nonzero().tolist(), [[y, x] for y in (1, 2) for x in (1, 2, 3)])
        self.assertEqual(w1.nonzero().tolist(), [[y, x] for y in (1, 2, 3) for x in (1, 2, 3)])
        # cell (1, 1) at stride 8 is (12, 12): (12 - 10, 12 - 10, 30 - 12, 26 - 12) / 8
        torch.testing.assert_close(box0[:, 1, 1], torch.tensor([2, 2, 18, 14]) / 8)
        # cell (3, 3) at stride 16 is (56, 56): (56, 56, 8, 8) / 16
        torch.testing.assert_close(box1[:, 3, 3], torch.tensor([3.5, 3.5, 0.5, 0.5]))
        self.assertEqual(box0[:, 3, 3].abs().sum().item(), 0.0)  # not regressed

    def test_overlapping_ranges_give_two_levels(self):
        # 24 x 24 px: half diagonal 16.97 is in [0, 20] and in [16, 1e8]
        t = _targets([[[20, 20, 44, 44]]], [[0]])
        self.assertEqual(t.level("positive", 0)[0].nonzero().tolist(), [[0, 4, 4]])
        self.assertEqual(t.level("positive", 1)[0].nonzero().tolist(), [[0, 2, 2]])
        self.assertEqual(t.num_objects, 2)

    def test_nearer_object_regresses_a_shared_cell(self):
        one_level = TargetSettings(kind="multilevel", min_overlap=0.8, size_ranges=((0, 1e8),))
        gt = [gt_instances([[8, 8, 40, 40], [16, 16, 48, 48]], [0, 1], (64, 64))]
        t = build_level_targets(gt, [(64, 64)], 2, [(8, 8)], [8], one_level)
        box = t.level("box", 0)[0]
        # cell (4, 3) is (36, 28): d^2 / r^2 = 160 / 25.28 for the first, 32 / 25.28 for the
        # second (both 32 x 32: r^2 = 2 DELTA2 * 1024 = 25.28): the second's box
        torch.testing.assert_close(box[:, 3, 4], torch.tensor([20, 12, 12, 20]) / 8)
        # each object's own centre cell: distance 0
        torch.testing.assert_close(box[:, 3, 3], torch.tensor([20, 20, 12, 12]) / 8)  # (28, 28)
        torch.testing.assert_close(box[:, 4, 4], torch.tensor([20, 20, 12, 12]) / 8)  # (36, 36)

    def test_chunks_of_objects_give_the_same_targets(self):
        # 3 images with duplicated boxes (ties broken by the lower index across chunks)
        g = torch.Generator().manual_seed(7)
        gt = []
        for _ in range(3):
            xy = torch.rand(9, 2, generator=g) * 48
            boxes = torch.cat([xy, xy + 4 + torch.rand(9, 2, generator=g) * 30], dim=1)
            boxes = torch.cat([boxes, boxes[:3]])  # identical objects of other classes
            gt.append(gt_instances(boxes, torch.randint(0, 2, (12,), generator=g), (64, 64)))
        sizes = [(64, 64)] * 3
        whole = build_level_targets(gt, sizes, 2, SHAPES, STRIDES, SETTINGS, chunk=1000)
        for chunk in (1, 5):
            parts = build_level_targets(gt, sizes, 2, SHAPES, STRIDES, SETTINGS, chunk=chunk)
            for name in ("heatmap", "positive", "box", "box_weight"):
                self.assertTrue(torch.equal(getattr(parts, name), getattr(whole, name)), name)

    def test_memory_bounded_whatever_the_objects(self):
        # 2 COCO inputs (800 x 1333, P3-P7) with 400 objects each: the (objects x positions)
        # tensors of all 800 at once took 730 MiB
        setup = (
            "from centernet_d2.modeling.level_targets import build_level_targets\n"
            "from centernet_d2.modeling.targets import TargetSettings\n"
            "from tests.common import gt_instances\n"
            "g = torch.Generator().manual_seed(0)\n"
            "def image():\n"
            "    xy = torch.rand(400, 2, generator=g) * torch.tensor([1200.0, 700.0])\n"
            "    boxes = torch.cat([xy, xy + 8 + torch.rand(400, 2, generator=g) * 120], 1)\n"
            "    return gt_instances(boxes, torch.randint(0, 80, (400,), generator=g), (800, 1333))\n"
            "gt = [image(), image()]\n"
            "shapes = [(100, 167), (50, 84), (25, 42), (13, 21), (7, 11)]\n"
            "ranges = ((0, 80), (64, 160), (128, 320), (256, 640), (512, 1e8))\n"
            "settings = TargetSettings(kind='multilevel', min_overlap=0.8, size_ranges=ranges)\n"
        )
        statement = (
            "build_level_targets(gt, [(800, 1333)] * 2, 80, shapes, [8, 16, 32, 64, 128], settings)"
        )
        self.assertLess(peak_rss_growth_mib(setup, statement), 300)

    def test_size_ranges_with_a_gap_refused(self):
        from centernet_d2.modeling.targets import check_size_ranges

        check_size_ranges([[0, 80], [64, 160], [128, 1e8]])  # overlapping: fine
        with self.assertRaisesRegex(ValueError, "gap between levels 1 and 2: .* 160 and 200"):
            check_size_ranges([[0, 80], [64, 160], [200, 1e8]])
        with self.assertLogs("centernet_d2.modeling.targets", "WARNING"):
            check_size_ranges([[10, 80], [64, 1e8]])  # objects under 10 px: no level
        from detectron2.modeling import build_model

        from tests.common import MULTILEVEL_CONFIG, model_cfg

        ranges = "[[0, 80], [64, 160], [200, 320], [256, 640], [512, 100000000]]"
        with self.assertRaisesRegex(ValueError, "SIZE_RANGES leave a gap"):
            build_model(model_cfg(MULTILEVEL_CONFIG, "MODEL.CENTERNET.SIZE_RANGES", ranges))

    def test_images_and_classes_apart(self):
        t = _targets([[[10, 10, 30, 26]], [], [[10, 10, 30, 26]]], [[1], [], [0]])
        self.assertEqual(t.positive.sum(dim=(1, 2)).tolist(), [1, 0, 1])
        self.assertEqual(t.heatmap[1].abs().sum().item(), 0.0)
        self.assertEqual(t.heatmap[0, 0].abs().sum().item(), 0.0)
        self.assertEqual(t.heatmap[2, 1].abs().sum().item(), 0.0)
        torch.testing.assert_close(t.heatmap[0, 1], t.heatmap[2, 0])
        self.assertEqual(t.box_weight[1].sum().item(), 0.0)

    def test_no_objects_and_clipping(self):
        t = _targets([[], []], [[], []])
        self.assertEqual(t.num_objects, 0)
        self.assertEqual((t.heatmap.abs().sum() + t.box.abs().sum()).item(), 0.0)
        self.assertEqual(tuple(t.heatmap.shape), (2, 2, 80))
        # a box outside the image is dropped; one across the border is clipped to (40, 40, 64, 64)
        t = _targets([[[70, 70, 90, 90], [40, 40, 100, 100]]], [[0, 1]])
        self.assertEqual(t.level("positive", 0)[0].nonzero().tolist(), [[1, 6, 6]])

    def test_bad_values(self):
        with self.assertRaisesRegex(ValueError, "SIZE_RANGES"):
            _targets([[]], [[]], TargetSettings(kind="multilevel", size_ranges=((0, 1e8),)))
        with self.assertRaisesRegex(ValueError, "SIZE_RANGES"):
            TargetSettings(kind="multilevel", size_ranges=((20, 10),))
        with self.assertRaisesRegex(ValueError, r"\[0, 2\)"):
            _targets([[[10, 10, 30, 26]]], [[2]])

    def test_flatten_levels(self):
        a, b = torch.arange(8.0).view(1, 2, 2, 2), torch.arange(2.0).view(1, 2, 1, 1)
        flat = flatten_levels([a, b])
        self.assertEqual(flat.tolist(), [[[0, 1, 2, 3, 0], [4, 5, 6, 7, 1]]])
