import math
import re
import unittest

import numpy as np
import torch

from centernet_d2.modeling.targets import (
    TargetSettings,
    build_targets,
    cornernet_paper_radius,
    cornernet_radius,
    draw_gaussians,
    ltrb_targets,
    ttf_radii,
)
from tests.common import gt_instances, peak_rss_growth_mib


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
    """Slow float64 reference: one object, then one pixel at a time. Returns the heatmap, per
    object (flat peak index, size, offset) and per object its (rx, ry)."""
    N, K, H, W = shape
    heatmap = np.zeros(shape, dtype=np.float64)
    objects, radii = [], []
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
            if kind == "cornernet_exact":
                rx = ry = math.floor(_radius_by_bisection(w, h, overlap))
            elif kind == "cornernet":  # the paper's code: int(radius(ceil(h), ceil(w)))
                rx = ry = int(_paper_radius(math.ceil(w), math.ceil(h), overlap))
            else:
                rx, ry = math.floor(0.54 * w / 2), math.floor(0.54 * h / 2)
            sx, sy = (2 * rx + 1) / 6, (2 * ry + 1) / 6
            for y in range(max(0, iy - ry), min(H, iy + ry + 1)):
                for x in range(max(0, ix - rx), min(W, ix + rx + 1)):
                    g = math.exp(-((x - ix) ** 2) / (2 * sx**2) - (y - iy) ** 2 / (2 * sy**2))
                    heatmap[i, cls, y, x] = max(heatmap[i, cls, y, x], g)
            objects.append(((i * H + iy) * W + ix, (w, h), (cx - ix, cy - iy)))
            radii.append((rx, ry))
    return heatmap, objects, radii


_instances = gt_instances


def _paper_radius(w, h, o):
    """CornerNet's ``gaussian_radius`` as its code (and CenterNet's) writes it, float64."""
    b1, c1 = h + w, w * h * (1 - o) / (1 + o)
    r1 = (b1 + math.sqrt(b1**2 - 4 * c1)) / 2
    b2, c2 = 2 * (h + w), (1 - o) * w * h
    r2 = (b2 + math.sqrt(b2**2 - 4 * 4 * c2)) / 2
    a3, b3, c3 = 4 * o, -2 * o * (h + w), (o - 1) * w * h
    r3 = (b3 + math.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


class TestRadius(unittest.TestCase):
    def test_hand_computed(self):
        # w = h = 10, o = 0.7. Case 2 gives the smallest root:
        # 4r^2 - 40r + 30 = 0 -> r = (40 - sqrt(1600 - 480)) / 8 = 0.8166...
        r = cornernet_radius(torch.tensor([[10.0, 10.0]]), 0.7)
        self.assertAlmostEqual(r.item(), (40 - math.sqrt(1120)) / 8, places=5)

    def test_paper_radius_hand_computed(self):
        # the paper's code at o = 0.7, case 3 smallest: r = (-1.4 (w + h) + sqrt(1.96 (w + h)^2
        # + 3.36 w h)) / 2; w = h = 10: (-28 + sqrt(784 + 336)) / 2 = 2.7332...
        # w = h = 4: (-11.2 + sqrt(125.44 + 53.76)) / 2 = 1.0933...; w = 8, h = 24:
        # (-44.8 + sqrt(2007.04 + 645.12)) / 2 = 3.3496...
        sizes = torch.tensor([[10.0, 10.0], [4.0, 4.0], [8.0, 24.0]], dtype=torch.float64)
        r = cornernet_paper_radius(sizes, 0.7)
        expected = [(-28 + math.sqrt(1120)) / 2, (-11.2 + math.sqrt(179.2)) / 2,
                    (-44.8 + math.sqrt(2652.16)) / 2]  # fmt: skip
        np.testing.assert_allclose(r.numpy(), expected, rtol=1e-12)
        np.testing.assert_allclose(r.numpy(), [2.733200530, 1.093280212, 3.349563103], atol=1e-8)
        # about 3.35x the exact radius (0.8166 at 10 x 10), which is 0 below 12 cells
        self.assertAlmostEqual(r[0].item() / cornernet_radius(sizes, 0.7)[0].item(), 3.347, 3)
        self.assertEqual(int(cornernet_radius(torch.tensor([[12.0, 12.0]]), 0.7)), 0)

    def test_against_float64_references(self):
        # the exact radius against bisection on the IoU, the paper's against its code's formula
        g = torch.Generator().manual_seed(0)
        sizes = torch.rand(200, 2, generator=g, dtype=torch.float64) * 60 + 0.5
        for overlap in (0.3, 0.5, 0.7, 0.9):
            paper = cornernet_paper_radius(sizes, overlap)
            ref = [_paper_radius(w, h, overlap) for w, h in sizes.tolist()]
            np.testing.assert_allclose(paper.numpy(), ref, rtol=1e-9)
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

    def test_windows_equal_the_gaussians_on_the_whole_map(self):
        # elliptical gaussians of mixed radii, at the border and beyond the map's size; the
        # reference renders each on the whole map in float64
        g = torch.Generator().manual_seed(5)
        H, W, M = 9, 13, 40
        centers = torch.stack(
            [torch.randint(0, W, (M,), generator=g), torch.randint(0, H, (M,), generator=g)], 1
        )
        radii = torch.randint(0, 20, (M, 2), generator=g)
        channels = torch.randint(0, 6, (M,), generator=g)
        hm = draw_gaussians(centers, radii, channels, (2, 3, H, W))
        ref = torch.zeros(6, H, W, dtype=torch.float64)
        yy, xx = torch.meshgrid(torch.arange(H), torch.arange(W), indexing="ij")
        for (cx, cy), (rx, ry), ch in zip(centers.tolist(), radii.tolist(), channels.tolist()):
            sx, sy = (2 * rx + 1) / 6, (2 * ry + 1) / 6
            dx, dy = (xx - cx).double(), (yy - cy).double()
            gauss = torch.exp(-(dx**2) / (2 * sx**2) - dy**2 / (2 * sy**2))
            gauss *= (dx.abs() <= rx) & (dy.abs() <= ry)
            ref[ch] = torch.maximum(ref[ch], gauss)
        torch.testing.assert_close(hm.view(6, H, W).double(), ref, atol=1e-6, rtol=0)

    def test_memory_of_many_objects_on_a_large_map(self):
        # CenterTrack's previous-frame heatmap of 240 boxes at 544 x 960 input pixels: drawn on
        # the whole map each gaussian took 2 MiB, 480 MiB in all
        setup = (
            "from centernet_d2.modeling.centertrack import render_prev_heatmap\n"
            "g = torch.Generator().manual_seed(0)\n"
            "xy = torch.rand(240, 2, generator=g) * torch.tensor([900.0, 500.0])\n"
            "boxes = [torch.cat([xy, xy + 8 + torch.rand(240, 2, generator=g) * 90], 1)]\n"
            "render_prev_heatmap([boxes[0][:2]], (1, 1, 544, 960))"
        )
        growth = peak_rss_growth_mib(setup, "render_prev_heatmap(boxes, (1, 1, 544, 960))")
        self.assertLess(growth, 100)


class TestBuildTargets(unittest.TestCase):
    def _compare(self, kind, seed):
        """build_targets against the reference on boxes of 1 to 100 cells (stride 4), so that
        the gaussians have many radii. Returns the reference's (rx, ry) of the objects kept."""
        g = torch.Generator().manual_seed(seed)
        stride, shape, sizes = 4, (3, 4, 128, 128), [(500, 512), (512, 480), (420, 460)]
        boxes, classes = [], []
        for n, (h, w) in zip([20, 0, 20], sizes):  # the second image has no objects
            # sides spread evenly over 1 to 100 cells, in random order
            side = (torch.randperm(n, generator=g) + torch.rand(n, generator=g)) / max(n, 1)
            side = (side[:, None] * 99 + 1) * stride
            wh = side * torch.exp((torch.rand(n, 2, generator=g) - 0.5) * 0.4)  # aspect 0.8-1.2
            room = (torch.tensor([w, h]) - wh).clamp(min=0)  # inside the image where it fits
            centre = wh / 2 + torch.rand(n, 2, generator=g) * room
            b = torch.cat([centre - wh / 2, centre + wh / 2], dim=1)
            if n:
                b[0] = torch.tensor([0.0, 0.0, w, 9.0])  # touches three borders
                b[1] = torch.tensor([w - 3.0, h - 3.0, w + 10.0, h + 10.0])  # mostly outside
                b[2] = torch.tensor([5.0, 5.0, 5.0, 30.0])  # zero width: dropped
                b[3] = b[4] + torch.tensor([2.0, 1.0, 2.0, 1.0])  # heavy overlap
                b[5] = torch.tensor([-30.0, 50.0, -2.0, 80.0])  # outside the image: dropped
            boxes.append(b)
            classes.append(torch.randint(0, shape[1], (n,), generator=g))
        gt = [_instances(b, c, s) for b, c, s in zip(boxes, classes, sizes)]
        t = build_targets(gt, sizes, shape, stride, TargetSettings(kind=kind, min_overlap=0.7))
        ref_hm, ref_objects, ref_radii = _reference_targets(
            boxes, classes, sizes, shape, stride, kind, 0.7
        )
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
        return ref_radii

    def test_cornernet_paper_against_reference(self):
        for seed in range(3):
            radii = self._compare("cornernet", seed)
            rx = [r[0] for r in radii]
            self.assertEqual(rx, [r[1] for r in radii])
            self.assertGreaterEqual(len(set(rx)), 15, rx)  # round gaussians of many radii

    def test_cornernet_exact_against_reference(self):
        for seed in range(3):
            radii = self._compare("cornernet_exact", seed)
            # round gaussians of every radius from 0 (a point) to 7 cells, each several times
            rx = [r[0] for r in radii]
            self.assertEqual(rx, [r[1] for r in radii])
            for r in range(8):
                self.assertGreaterEqual(rx.count(r), 2, (seed, r, rx))

    def test_ttf_against_reference(self):
        for seed in range(3):
            radii = self._compare("ttf", seed)
            self.assertGreaterEqual(len({r for r, _ in radii}), 15)
            self.assertTrue(any(rx != ry for rx, ry in radii))

    def test_class_out_of_range(self):
        # a class id >= K would land in the next image's heatmap, < 0 in the previous one's
        box = [[4.0, 4.0, 20.0, 20.0]]
        for bad, got in ((([3], [0]), "[3]"), (([0], [-1]), "[-1]"), (([5], [-2]), "[-2, 5]")):
            gt = [_instances(box, bad[0], (32, 32)), _instances(box, bad[1], (32, 32))]
            with self.subTest(classes=bad):
                with self.assertRaisesRegex(
                    ValueError, re.escape(f"gt_classes must be in [0, K) = [0, 3), got {got}")
                ):
                    build_targets(gt, [(32, 32)] * 2, (2, 3, 8, 8), 4)

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
        with self.assertRaisesRegex(ValueError, "TARGET_KIND must be one of"):
            TargetSettings(kind="round")


def _reference_ltrb(boxes_per_image, sizes, grid, stride, beta):
    """Slow float64 reference, drawn as TTFNet does: per image, the objects from the largest box
    to the smallest (the first of equal areas last), each overwriting the cells of its gaussian
    area with its ltrb distances from the cell centre and its weight g / sum(g) * log(area)."""
    N, H, W = grid
    target = np.zeros((N, 4, H, W))
    weight = np.zeros((N, H, W))
    for i, boxes in enumerate(boxes_per_image):
        img_h, img_w = sizes[i]
        objects = []
        for j, box in enumerate(boxes.tolist()):
            x0, y0 = min(max(box[0], 0), img_w), min(max(box[1], 0), img_h)
            x1, y1 = min(max(box[2], 0), img_w), min(max(box[3], 0), img_h)
            if x1 <= x0 or y1 <= y0:
                continue
            objects.append(((x1 - x0) * (y1 - y0), j, (x0, y0, x1, y1)))
        for area, _, (x0, y0, x1, y1) in sorted(objects, key=lambda o: (-o[0], -o[1])):
            w, h = (x1 - x0) / stride, (y1 - y0) / stride
            cx, cy = (x0 + x1) / 2 / stride, (y0 + y1) / 2 / stride
            ix, iy = min(math.floor(cx), W - 1), min(math.floor(cy), H - 1)
            rx, ry = math.floor(beta * w / 2), math.floor(beta * h / 2)
            sx, sy = (2 * rx + 1) / 6, (2 * ry + 1) / 6
            cells = {}
            for y in range(max(0, iy - ry), min(H, iy + ry + 1)):
                for x in range(max(0, ix - rx), min(W, ix + rx + 1)):
                    g = math.exp(-((x - ix) ** 2) / (2 * sx**2) - (y - iy) ** 2 / (2 * sy**2))
                    cells[(x, y)] = g
            total = sum(cells.values())
            for (x, y), g in cells.items():
                px, py = x + 0.5, y + 0.5
                ltrb = [px - x0 / stride, py - y0 / stride, x1 / stride - px, y1 / stride - py]
                target[i, :, y, x] = ltrb
                weight[i, y, x] = g / total * math.log(max(area, 1.0))
    return target, weight


class TestLtrbTargets(unittest.TestCase):
    def test_hand_computed_one_object(self):
        # stride 4, box (8, 8, 24, 40) px = (2, 2, 6, 10) cells: 4 x 8 cells, centre (4, 6).
        # beta 0.54: rx = floor(0.27 * 4) = 1, ry = floor(0.27 * 8) = 2
        gt = [_instances([[8.0, 8.0, 24.0, 40.0]], [0], (64, 64))]
        t = build_targets(gt, [(64, 64)], (1, 2, 16, 16), 4, TargetSettings("ttf"), with_ltrb=True)
        # centre cell (4, 6), its centre (4.5, 6.5): l = 2.5, t = 4.5, r = 1.5, b = 3.5
        self.assertEqual(t.box[0, :, 6, 4].tolist(), [2.5, 4.5, 1.5, 3.5])
        # (5, 8), centre (5.5, 8.5): l = 3.5, t = 6.5, r = 0.5, b = 1.5
        self.assertEqual(t.box[0, :, 8, 5].tolist(), [3.5, 6.5, 0.5, 1.5])
        # sigma_x = 3 / 6, sigma_y = 5 / 6: sum of g = (1 + 2 e^-2)(1 + 2 e^-0.72 + 2 e^-2.88)
        total = (1 + 2 * math.exp(-2)) * (1 + 2 * math.exp(-0.72) + 2 * math.exp(-2.88))
        self.assertAlmostEqual(t.box_weight[0, 6, 4].item(), math.log(16 * 32) / total, places=6)
        self.assertAlmostEqual(t.box_weight.sum().item(), math.log(512), places=5)
        self.assertEqual((t.box_weight > 0).sum().item(), 3 * 5)
        self.assertEqual(t.box_weight[0, 6, 6].item(), 0.0)  # outside rx
        self.assertEqual(t.box[0, :, 6, 6].abs().sum().item(), 0.0)

    def test_smaller_box_wins(self):
        t = torch.tensor
        boxes = t([[1.0, 1.0, 5.0, 4.0], [2.0, 2.0, 3.0, 3.0]])  # cells; the second inside
        target, weight = ltrb_targets(
            boxes, t([1.0, 2.0]), t([0, 0]), t([[3, 2], [2, 2]]), t([[1, 1], [0, 0]]), (1, 6, 7)
        )
        # cell (2, 2) is in both areas: the small box, its only cell, weight 1 * 2
        self.assertEqual(target[0, :, 2, 2].tolist(), [0.5, 0.5, 0.5, 0.5])
        self.assertEqual(weight[0, 2, 2].item(), 2.0)
        # cell (3, 2), the large box's centre: (3.5 - 1, 2.5 - 1, 5 - 3.5, 4 - 2.5)
        self.assertEqual(target[0, :, 2, 3].tolist(), [2.5, 1.5, 1.5, 1.5])
        # sigma 1 / 2 both ways: sum of g = (1 + 2 e^-2)^2; its centre cell weighs 1 / that
        self.assertAlmostEqual(weight[0, 2, 3].item(), 1 / (1 + 2 * math.exp(-2)) ** 2, places=6)

    def _compare(self, seed, kind, beta):
        g = torch.Generator().manual_seed(seed)
        stride, shape, sizes = 4, (3, 2, 20, 24), [(78, 96), (80, 90), (60, 70)]
        boxes = []
        for n, (h, w) in zip([9, 0, 14], sizes):  # the second image has no objects
            xy = torch.rand(n, 2, generator=g) * torch.tensor([w + 20.0, h + 20.0]) - 10
            wh = torch.rand(n, 2, generator=g) * 50 + 0.5
            b = torch.cat([xy, xy + wh], dim=1)
            if n:
                b[0] = torch.tensor([0.0, 0.0, w, 9.0])  # touches three borders
                b[1] = torch.tensor([5.0, 5.0, 5.0, 30.0])  # zero width: dropped
                b[2] = torch.tensor([10.0, 10.0, 40.0, 30.0])  # equal areas, overlapping:
                b[3] = torch.tensor([14.0, 12.0, 44.0, 32.0])  # the first wins
                b[4] = torch.tensor([30.0, 30.0, 30.5, 31.0])  # under 1 px^2: weight 0
            boxes.append(b)
        classes = [torch.randint(0, 2, (len(b),), generator=g) for b in boxes]
        gt = [_instances(b, c, s) for b, c, s in zip(boxes, classes, sizes)]
        t = build_targets(gt, sizes, shape, stride, TargetSettings(kind, ltrb_beta=beta), True)
        ref_target, ref_weight = _reference_ltrb(boxes, sizes, (3, 20, 24), stride, beta)
        np.testing.assert_allclose(t.box.numpy(), ref_target, atol=1e-5)
        np.testing.assert_allclose(t.box_weight.numpy(), ref_weight, atol=1e-6)
        self.assertEqual(t.box_weight[1].abs().sum().item(), 0.0)

    def test_against_reference(self):
        for seed in range(3):
            self._compare(seed, "ttf", 0.54)
        self._compare(3, "cornernet", 0.3)  # the regression area does not follow the heatmap

    def test_not_requested_and_empty(self):
        gt = [_instances([[0.0, 0.0, 20.0, 20.0]], [0], (32, 32))]
        self.assertIsNone(build_targets(gt, [(32, 32)], (1, 1, 8, 8), 4).box)
        t = build_targets(
            [_instances([], [], (32, 32))] * 2, [(32, 32)] * 2, (2, 1, 8, 8), 4, with_ltrb=True
        )
        self.assertEqual(t.box.shape, (2, 4, 8, 8))
        self.assertEqual(t.box_weight.abs().sum().item(), 0.0)


if __name__ == "__main__":
    unittest.main()
