import math
import unittest

import numpy as np
import torch
from detectron2.structures import Boxes, Instances

from centernet_d2.modeling.targets import build_targets, cornernet_radius, draw_gaussians, ttf_radii


def _iou_after_shift(w, h, r):
    """CornerNet's three cases, written as IoUs of the shifted box with the GT box."""
    one = (w - r) * (h - r) / (2 * w * h - (w - r) * (h - r))
    two = (w - 2 * r) * (h - 2 * r) / (w * h) if r < min(w, h) / 2 else 0.0
    three = w * h / ((w + 2 * r) * (h + 2 * r))
    return min(one, two, three)


def _radius_by_bisection(w, h, overlap):
    lo, hi = 0.0, min(w, h) / 2
    for _ in range(200):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _iou_after_shift(w, h, mid) >= overlap else (lo, mid)
    return lo


def _reference_targets(boxes_per_image, classes_per_image, sizes, shape, stride, kind, overlap):
    """Slow float64 reference: one object, then one pixel at a time."""
    N, K, H, W = shape
    heatmap = np.zeros(shape, dtype=np.float64)
    objects = []
    for i, (boxes, classes) in enumerate(zip(boxes_per_image, classes_per_image)):
        img_h, img_w = sizes[i]
        for box, cls in zip(boxes.tolist(), classes.tolist()):
            x0, y0 = min(max(box[0], 0), img_w), min(max(box[1], 0), img_h)
            x1, y1 = min(max(box[2], 0), img_w), min(max(box[3], 0), img_h)
            w, h = (x1 - x0) / stride, (y1 - y0) / stride
            if w <= 0 or h <= 0:
                continue
            cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
            ix, iy = min(math.floor(cx), W - 1), min(math.floor(cy), H - 1)
            if kind == "cornernet":
                rx = ry = math.floor(_radius_by_bisection(w, h, overlap))
            else:
                rx, ry = math.floor(0.54 * w / 2), math.floor(0.54 * h / 2)
            sx, sy = (2 * rx + 1) / 6, (2 * ry + 1) / 6
            for y in range(max(0, iy - ry), min(H, iy + ry + 1)):
                for x in range(max(0, ix - rx), min(W, ix + rx + 1)):
                    g = math.exp(-((x - ix) ** 2) / (2 * sx**2) - (y - iy) ** 2 / (2 * sy**2))
                    heatmap[i, cls, y, x] = max(heatmap[i, cls, y, x], g)
            objects.append(((i * H + iy) * W + ix, (w, h), (cx - ix, cy - iy)))
    return heatmap, objects


def _instances(boxes, classes, size):
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.as_tensor(classes, dtype=torch.int64)
    return inst


class TestRadius(unittest.TestCase):
    def test_hand_computed(self):
        # w = h = 10, o = 0.7. Case 2 gives the smallest root:
        # 4r^2 - 40r + 30 = 0 -> r = (40 - sqrt(1600 - 480)) / 8 = 0.8166...
        r = cornernet_radius(torch.tensor([[10.0, 10.0]]), 0.7)
        self.assertAlmostEqual(r.item(), (40 - math.sqrt(1120)) / 8, places=5)

    def test_against_bisection(self):
        g = torch.Generator().manual_seed(0)
        sizes = torch.rand(200, 2, generator=g, dtype=torch.float64) * 60 + 0.5
        for overlap in (0.3, 0.5, 0.7, 0.9):
            r = cornernet_radius(sizes, overlap)
            ref = [_radius_by_bisection(w, h, overlap) for w, h in sizes.tolist()]
            np.testing.assert_allclose(r.numpy(), ref, rtol=1e-7, atol=1e-9)
            # and the IoU at the radius is exactly the minimum overlap
            ious = [_iou_after_shift(w, h, x) for (w, h), x in zip(sizes.tolist(), r.tolist())]
            np.testing.assert_allclose(ious, overlap, rtol=1e-6)

    def test_ttf_radii(self):
        r = ttf_radii(torch.tensor([[10.0, 3.0], [1.0, 40.0]]), 0.54)
        # floor(0.27 * side)
        self.assertEqual(r.tolist(), [[2, 0], [0, 10]])


class TestDrawGaussians(unittest.TestCase):
    def test_radius_one_peak(self):
        t = torch.tensor
        hm = draw_gaussians(t([[3, 2]]), t([[1, 1]]), t([0]), (1, 1, 5, 6))
        self.assertEqual(hm[0, 0, 2, 3].item(), 1.0)
        # sigma = 3 / 6, one cell away: exp(-1 / (2 * 0.25)) = exp(-2)
        self.assertAlmostEqual(hm[0, 0, 2, 4].item(), math.exp(-2), places=6)
        self.assertAlmostEqual(hm[0, 0, 1, 4].item(), math.exp(-4), places=6)
        self.assertEqual(hm[0, 0, 2, 5].item(), 0.0)  # outside the radius
        self.assertEqual((hm > 0).sum().item(), 9)

    def test_overlap_takes_max_and_classes_separate(self):
        t = torch.tensor
        hm = draw_gaussians(
            t([[2, 2], [3, 2], [2, 2]]), t([[2, 2], [2, 2], [1, 1]]), t([0, 0, 1]), (1, 2, 5, 6)
        )
        self.assertEqual(hm[0, 0, 2, 2].item(), 1.0)
        self.assertEqual(hm[0, 0, 2, 3].item(), 1.0)
        # (2, 4): 2 cells from the first peak, 1 from the second, sigma = 5 / 6
        self.assertAlmostEqual(hm[0, 0, 2, 4].item(), math.exp(-1 / (2 * (5 / 6) ** 2)), 6)
        self.assertEqual(hm[0, 1, 2, 4].item(), 0.0)  # other class, radius 1

    def test_empty(self):
        hm = draw_gaussians(
            torch.zeros(0, 2, dtype=torch.long),
            torch.zeros(0, 2, dtype=torch.long),
            torch.zeros(0, dtype=torch.long),
            (2, 3, 4, 5),
        )
        self.assertEqual(hm.shape, (2, 3, 4, 5))
        self.assertEqual(hm.abs().sum().item(), 0.0)


class TestBuildTargets(unittest.TestCase):
    def _compare(self, kind, seed):
        g = torch.Generator().manual_seed(seed)
        stride, shape, sizes = 4, (3, 4, 24, 32), [(90, 128), (96, 110), (70, 77)]
        boxes, classes = [], []
        for n, (h, w) in zip([7, 0, 12], sizes):  # the second image has no objects
            xy = torch.rand(n, 2, generator=g) * torch.tensor([w + 20.0, h + 20.0]) - 10
            wh = torch.rand(n, 2, generator=g) * 60 + 1
            b = torch.cat([xy, xy + wh], dim=1)
            if n:
                b[0] = torch.tensor([0.0, 0.0, w, 9.0])  # touches three borders
                b[1] = torch.tensor([w - 3.0, h - 3.0, w + 10.0, h + 10.0])  # mostly outside
                b[2] = torch.tensor([5.0, 5.0, 5.0, 30.0])  # zero width: dropped
                b[3] = b[4] + torch.tensor([2.0, 1.0, 2.0, 1.0])  # heavy overlap
            boxes.append(b)
            classes.append(torch.randint(0, shape[1], (n,), generator=g))
        gt = [_instances(b, c, s) for b, c, s in zip(boxes, classes, sizes)]
        t = build_targets(gt, sizes, shape, stride, kind=kind, min_overlap=0.7)
        ref_hm, ref_objects = _reference_targets(boxes, classes, sizes, shape, stride, kind, 0.7)
        np.testing.assert_allclose(t.heatmap.numpy(), ref_hm, atol=1e-6)
        self.assertEqual(t.num_objects, len(ref_objects))
        self.assertEqual(t.index.tolist(), [o[0] for o in ref_objects])
        np.testing.assert_allclose(t.size.numpy(), [o[1] for o in ref_objects], atol=1e-5)
        np.testing.assert_allclose(t.offset.numpy(), [o[2] for o in ref_objects], atol=1e-5)
        self.assertTrue(((t.offset >= 0) & (t.offset < 1)).all())
        # every object's peak cell is exactly 1 in its class plane
        flat = t.heatmap.permute(0, 2, 3, 1).reshape(-1, shape[1])
        self.assertTrue((flat.max(dim=1).values[t.index] == 1).all())
        self.assertEqual(t.heatmap[1].abs().sum().item(), 0.0)

    def test_cornernet_against_reference(self):
        for seed in range(3):
            self._compare("cornernet", seed)

    def test_ttf_against_reference(self):
        for seed in range(3):
            self._compare("ttf", seed)

    def test_all_images_empty(self):
        gt = [_instances([], [], (64, 64)), _instances([], [], (64, 64))]
        t = build_targets(gt, [(64, 64)] * 2, (2, 3, 16, 16), 4)
        self.assertEqual(t.num_objects, 0)
        self.assertEqual(t.heatmap.sum().item(), 0.0)
        self.assertEqual(t.size.shape, (0, 2))

    def test_does_not_modify_gt(self):
        gt = [_instances([[-5.0, -5.0, 200.0, 30.0]], [1], (64, 64))]
        before = gt[0].gt_boxes.tensor.clone()
        build_targets(gt, [(64, 64)], (1, 3, 16, 16), 4)
        self.assertTrue(torch.equal(gt[0].gt_boxes.tensor, before))

    def test_unknown_kind(self):
        with self.assertRaisesRegex(ValueError, "cornernet"):
            build_targets([_instances([], [], (8, 8))], [(8, 8)], (1, 1, 2, 2), 4, kind="round")
