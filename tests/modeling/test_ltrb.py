"""TTFNet's ltrb box head: targets, weighted GIoU loss, decoding, head, train step, export."""

import math
import os
import tempfile
import unittest

import numpy as np
import torch
from detectron2.config import get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from centernet_d2 import add_centernet_config
from centernet_d2.export import export_and_check, exported_outputs
from centernet_d2.modeling.decode import decode_ltrb_boxes, decode_predictions
from centernet_d2.modeling.head import CenterNetHead
from centernet_d2.modeling.losses import weighted_giou_loss
from centernet_d2.modeling.targets import build_targets, ltrb_targets

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
LTRB_CONFIG = os.path.join(CONFIG_DIR, "CPU", "centernet_MobileNetV3_small_FPN_shapes_ltrb.yaml")


def _instances(boxes, classes, size):
    inst = Instances(size)
    inst.gt_boxes = Boxes(torch.as_tensor(boxes, dtype=torch.float32).reshape(-1, 4))
    inst.gt_classes = torch.as_tensor(classes, dtype=torch.int64)
    return inst


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


def _giou_reference(pred, target, weight):
    """Float64 sum of weight * (1 - GIoU) by the formula, boxes (-l, -t, r, b) around 0."""
    total = 0.0
    for p, t, w in zip(pred.tolist(), target.tolist(), weight.tolist()):
        if w <= 0:
            continue
        (l1, t1, r1, b1), (l2, t2, r2, b2) = p, t
        inter = max(0.0, min(r1, r2) + min(l1, l2)) * max(0.0, min(b1, b2) + min(t1, t2))
        union = (l1 + r1) * (t1 + b1) + (l2 + r2) * (t2 + b2) - inter
        enclosing = (max(r1, r2) + max(l1, l2)) * (max(b1, b2) + max(t1, t2))
        giou = inter / union - (enclosing - union) / enclosing
        total += w * (1 - giou)
    return total


def _ltrb_cfg(*opts):
    cfg = get_cfg()
    add_centernet_config(cfg)
    cfg.merge_from_file(LTRB_CONFIG)
    cfg.merge_from_list(["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", "", *opts])
    return cfg


class TestLtrbTargets(unittest.TestCase):
    def test_hand_computed_one_object(self):
        # stride 4, box (8, 8, 24, 40) px = (2, 2, 6, 10) cells: 4 x 8 cells, centre (4, 6).
        # beta 0.54: rx = floor(0.27 * 4) = 1, ry = floor(0.27 * 8) = 2
        gt = [_instances([[8.0, 8.0, 24.0, 40.0]], [0], (64, 64))]
        t = build_targets(gt, [(64, 64)], (1, 2, 16, 16), 4, kind="ttf", ltrb_beta=0.54)
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
        t = build_targets(gt, sizes, shape, stride, kind=kind, ltrb_beta=beta)
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
            [_instances([], [], (32, 32))] * 2, [(32, 32)] * 2, (2, 1, 8, 8), 4, ltrb_beta=0.54
        )
        self.assertEqual(t.box.shape, (2, 4, 8, 8))
        self.assertEqual(t.box_weight.abs().sum().item(), 0.0)


class TestWeightedGIoU(unittest.TestCase):
    def test_hand_computed(self):
        pred = torch.zeros(1, 4, 1, 3)
        target = torch.zeros(1, 4, 1, 3)
        pred[0, :, 0, 0], target[0, :, 0, 0] = 1.0, 2.0  # a 2x2 box in a 4x4 box: GIoU = 1 / 4
        pred[0, :, 0, 1] = target[0, :, 0, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # equal: 0
        # disjoint 1x1 boxes side by side: IoU 0, enclosing 2x1, union 2: GIoU 0
        pred[0, :, 0, 2] = torch.tensor([0.0, 0.0, 1.0, 1.0])
        target[0, :, 0, 2] = torch.tensor([-1.0, 0.0, 2.0, 1.0])
        weight = torch.tensor([[[2.0, 5.0, 3.0]]])
        loss = weighted_giou_loss(pred, target, weight)
        self.assertAlmostEqual(loss.item(), 2.0 * 0.75 + 0.0 + 3.0 * 1.0, places=5)

    def test_against_reference(self):
        g = torch.Generator().manual_seed(0)
        pred = torch.rand(2, 4, 5, 6, generator=g) * 6
        target = torch.rand(2, 4, 5, 6, generator=g) * 6 + 0.1
        target[:, 0] -= 1.0  # some cell centres outside their box: l < 0, l + r > 0 still
        weight = torch.rand(2, 5, 6, generator=g) * (torch.rand(2, 5, 6, generator=g) > 0.4)
        loss = weighted_giou_loss(pred.requires_grad_(), target, weight)
        flat = lambda x: x.detach().double().permute(0, 2, 3, 1).reshape(-1, 4)  # noqa: E731
        ref = _giou_reference(flat(pred), flat(target), weight.double().flatten())
        self.assertAlmostEqual(loss.item(), ref, delta=1e-5 * ref)
        loss.backward()
        # cells of weight 0 get no gradient
        self.assertEqual(pred.grad.permute(0, 2, 3, 1)[weight == 0].abs().sum().item(), 0.0)

    def test_no_positive_cells(self):
        pred = torch.rand(1, 4, 3, 3, requires_grad=True)
        loss = weighted_giou_loss(pred, torch.zeros(1, 4, 3, 3), torch.zeros(1, 3, 3))
        self.assertEqual(loss.item(), 0.0)
        loss.backward()  # still part of the graph
        self.assertEqual(pred.grad.abs().sum().item(), 0.0)


class TestDecodeLtrb(unittest.TestCase):
    def test_planted_peaks(self):
        logits = torch.full((2, 3, 6, 8), -8.0)
        ltrb = torch.zeros(2, 4, 6, 8)
        logits[0, 2, 3, 2], ltrb[0, :, 3, 2] = 3.0, torch.tensor([1.0, 2.0, 3.0, 0.5])
        logits[1, 0, 0, 7], ltrb[1, :, 0, 7] = 1.0, torch.tensor([0.5, 0.5, 0.5, 0.5])
        boxes, scores, classes = decode_ltrb_boxes(logits, ltrb, stride=4, k=2)
        # centre (2.5, 3.5): (2.5 - 1, 3.5 - 2, 2.5 + 3, 3.5 + 0.5) * 4
        self.assertEqual(boxes[0, 0].tolist(), [6.0, 6.0, 22.0, 16.0])
        self.assertEqual(classes[0, 0].item(), 2)
        self.assertAlmostEqual(scores[0, 0].item(), 1 / (1 + math.exp(-3.0)), places=6)
        # centre (7.5, 0.5) +- 0.5: (7, 0, 8, 1) * 4
        self.assertEqual(boxes[1, 0].tolist(), [28.0, 0.0, 32.0, 4.0])
        same = decode_predictions({"heatmap": logits, "box": ltrb}, 4, 2)
        for a, b in zip(same, (boxes, scores, classes)):
            self.assertTrue(torch.equal(a, b))

    def test_inverse_of_targets(self):
        # a box's ltrb target at any cell of its area decodes to the box, exactly
        box = [13.0, 6.0, 45.0, 30.0]
        t = build_targets(
            [_instances([box], [1], (48, 64))], [(48, 64)], (1, 2, 12, 16), 4, "ttf", ltrb_beta=0.54
        )
        logits = torch.full((1, 2, 12, 16), -5.0)
        ys, xs = torch.nonzero(t.box_weight[0], as_tuple=True)
        self.assertGreater(len(xs), 1)
        for y, x in zip(ys.tolist(), xs.tolist()):
            peak = logits.clone()
            peak[0, 1, y, x] = 2.0
            boxes, _, classes = decode_ltrb_boxes(peak, t.box, 4, 1)
            self.assertEqual(classes[0, 0].item(), 1)
            self.assertEqual(boxes[0, 0].tolist(), box)

    def test_traceable(self):
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 3, 6, 8, generator=g)
        ltrb = torch.rand(2, 4, 6, 8, generator=g) * 3
        traced = torch.jit.trace(lambda a, b: decode_ltrb_boxes(a, b, 4, 5), (logits, ltrb))
        logits2 = torch.randn(2, 3, 6, 8, generator=g)
        for x, y in zip(traced(logits2, ltrb), decode_ltrb_boxes(logits2, ltrb, 4, 5)):
            self.assertTrue(torch.equal(x, y))


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


class TestLtrbModel(unittest.TestCase):
    def _inputs(self, boxes_per_image, size=(48, 64)):
        g = torch.Generator().manual_seed(0)
        inputs = []
        for boxes in boxes_per_image:
            image = torch.randint(0, 256, (3, *size), generator=g).float()
            inst = _instances(boxes, [1] * len(boxes), size)
            inputs.append({"image": image, "instances": inst, "height": size[0], "width": size[1]})
        return inputs

    def test_train_step_and_inference(self):
        torch.manual_seed(0)
        cfg = _ltrb_cfg()
        self.assertEqual(cfg.MODEL.CENTERNET.BOX_HEAD, "ltrb")
        model = build_model(cfg).train()
        inputs = self._inputs([[[4, 6, 40, 40], [30, 20, 60, 46]], []])
        with EventStorage():
            losses = model(inputs)
        self.assertEqual(set(losses), {"loss_heatmap", "loss_box"})
        # about 5 * (1 - GIoU) with GIoU in [-1, 1]
        self.assertTrue(0 < losses["loss_box"].item() <= 10)
        sum(losses.values()).backward()
        grad = model.head.branches["box"][-1].weight.grad
        self.assertTrue(torch.isfinite(grad).all() and grad.abs().sum() > 0)

        with EventStorage():  # no objects: no box loss, still in the graph
            losses = model(self._inputs([[], []]))
        self.assertEqual(losses["loss_box"].item(), 0.0)
        sum(losses.values()).backward()

        model.eval()
        with torch.no_grad():
            (out,) = model([{"image": inputs[0]["image"], "height": 32, "width": 40}])
        self.assertEqual(out["instances"].image_size, (32, 40))
        self.assertTrue(out["instances"].has("pred_boxes"))

    def test_export(self):
        torch.manual_seed(0)
        cfg = _ltrb_cfg("MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0")
        model = build_model(cfg).eval()
        image = self._inputs([[]], size=(64, 64))[0]["image"]
        with torch.no_grad():
            boxes, scores, classes = exported_outputs(model, image[None], (64, 64))
            (result,) = model([{"image": image, "height": 64, "width": 64}])
        kept = result["instances"]  # Detectron2 drops empty boxes: compare those kept
        nonempty = ((boxes[0, :, 2:] - boxes[0, :, :2]) > 0).all(dim=1)
        torch.testing.assert_close(boxes[0][nonempty], kept.pred_boxes.tensor, rtol=0, atol=1e-4)
        torch.testing.assert_close(scores[0][nonempty], kept.scores, rtol=0, atol=1e-6)
        with tempfile.TemporaryDirectory() as out:
            _, diffs = export_and_check(model, image[None], out, "torchscript")
        self.assertLessEqual(diffs["boxes"], 1e-3)
        self.assertEqual(diffs["classes"], 0)
