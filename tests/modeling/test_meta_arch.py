import glob
import math
import os
import tempfile
import unittest
from unittest import mock

import pytest
import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import Boxes, ImageList, Instances, Keypoints, pairwise_iou
from detectron2.utils.events import EventStorage

from centernet_d2 import add_centernet_config
from centernet_d2.export import ExportAdapter, export_and_check
from centernet_d2.modeling import CenterNet, CenterNetHead, CenterTrack, MultiLevelCenterNet
from centernet_d2.modeling.decode import decode_levels, decode_predictions
from tests.common import (
    CONFIG_DIR,
    LTRB_CONFIG,
    MULTILEVEL_CONFIG,
    R18_CONFIG,
    gt_instances,
    model_cfg,
    training_inputs,
)

CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(CONFIG_DIR, "**", "*.yaml"), recursive=True)
    if not os.path.basename(p).startswith("Base-")
    # the published models' configs change their base config's input handling and test settings,
    # not its network: tests/test_official_weights.py builds and runs each; CenterNet2's, whose
    # head differs (biased GN convs, 3x3 outputs), stays here for its training step
    and not (p.endswith("_official.yaml") and "multilevel" not in p)
)


def get_config(path):
    return model_cfg(path)


def make_inputs(sizes, boxes_per_image, num_classes, seed=0):
    return training_inputs(sizes, boxes_per_image, num_classes, seed)


def _expected_boxes(boxes, scores, classes, input_size, output_size, score_thresh):
    """The detections an image should get from its decoded, unclipped boxes (input pixels):
    scores at least the threshold; boxes clipped to the input, scaled to the output size,
    clipped again, and dropped if empty (Detectron2's ``detector_postprocess``)."""
    (h, w), (oh, ow) = input_size, output_size
    keep = scores >= score_thresh
    b, s, c = boxes[keep].clone(), scores[keep], classes[keep]
    b[:, 0::2] = b[:, 0::2].clamp(0, w) * (ow / w)
    b[:, 1::2] = b[:, 1::2].clamp(0, h) * (oh / h)
    b[:, 0::2], b[:, 1::2] = b[:, 0::2].clamp(0, ow), b[:, 1::2].clamp(0, oh)
    nonempty = (b[:, 2] > b[:, 0]) & (b[:, 3] > b[:, 1])
    return b[nonempty], s[nonempty], c[nonempty]


@pytest.mark.slow
class TestEveryConfig(unittest.TestCase):
    def test_configs_found(self):
        self.assertGreaterEqual(len(CONFIGS), 8, CONFIGS)

    def test_train_step_and_inference(self):
        sizes = [(97, 131), (75, 120)]
        boxes = [[[10, 12, 60, 70], [70, 5, 120, 40]], []]  # the second image has no objects
        for path in CONFIGS:
            with self.subTest(config=os.path.relpath(path, CONFIG_DIR)):
                torch.manual_seed(0)
                cfg = get_config(path)
                model = build_model(cfg)
                self.assertIsInstance(model, CenterNet)
                model.train()
                inputs = make_inputs(sizes, boxes, cfg.MODEL.CENTERNET.NUM_CLASSES)
                if cfg.MODEL.KEYPOINT_ON:  # keypoints at random places in the boxes
                    for x, b in zip(inputs, boxes):
                        J, b = cfg.MODEL.CENTERNET.NUM_KEYPOINTS, torch.tensor(b).view(-1, 1, 4)
                        t = torch.rand(len(b), J, 2)
                        xy = b[..., :2] + t * (b[..., 2:] - b[..., :2])
                        x["instances"].gt_keypoints = Keypoints(
                            torch.cat([xy, torch.full((len(b), J, 1), 2.0)], dim=2)
                        )
                with EventStorage():
                    losses = model(inputs)
                box_losses = {"size_offset": {"loss_size", "loss_offset"}, "ltrb": {"loss_box"}}
                expected = {"loss_heatmap"} | box_losses[cfg.MODEL.CENTERNET.BOX_HEAD]
                if isinstance(model, CenterTrack):  # tracking configs: the displacement too
                    expected.add("loss_displacement")
                if cfg.MODEL.CENTERTRACK.AMODAL_BOX and isinstance(model, CenterTrack):
                    expected.add("loss_amodal_box")
                if cfg.MODEL.KEYPOINT_ON:
                    expected |= {"loss_keypoints", "loss_keypoint_heatmap", "loss_keypoint_offset"}
                self.assertEqual(set(losses), expected)
                total = sum(losses.values())
                self.assertTrue(torch.isfinite(total))
                total.backward()
                grads = [p.grad for p in model.head.parameters() if p.requires_grad]
                self.assertTrue(all(g is not None and torch.isfinite(g).all() for g in grads))

                model.eval()
                self.check_exported_function(model)
                eval_inputs = [{"image": x["image"], "height": 50, "width": 66} for x in inputs]
                if isinstance(model, MultiLevelCenterNet):  # decoding across levels: TestMultiLevel
                    with torch.no_grad():
                        outputs = model(eval_inputs)
                    for out in outputs:
                        inst = out["instances"]
                        self.assertEqual(inst.image_size, (50, 66))
                        self.assertLessEqual(len(inst), cfg.TEST.DETECTIONS_PER_IMAGE)
                    continue
                with torch.no_grad():
                    outputs = model(eval_inputs)
                    images = model.preprocess_image(eval_inputs)
                    predictions = model.run_network(images.tensor)
                    raw = decode_predictions(
                        predictions, model.stride, model.test_topk, cfg.MODEL.CENTERNET.BOX_HEAD,
                    )  # fmt: skip
                    if isinstance(model, CenterTrack):  # its boxes: amodal ones with that head
                        raw = model.decode(predictions)[:3]
                self.assertEqual(len(outputs), 2)
                for i, out in enumerate(outputs):
                    inst = out["instances"]
                    self.assertEqual(inst.image_size, (50, 66))
                    self.assertLessEqual(len(inst), cfg.TEST.DETECTIONS_PER_IMAGE)
                    expected = _expected_boxes(
                        *(x[i] for x in raw), images.image_sizes[i], (50, 66),
                        cfg.MODEL.CENTERNET.SCORE_THRESH_TEST,
                    )  # fmt: skip
                    torch.testing.assert_close(inst.pred_boxes.tensor, expected[0])
                    torch.testing.assert_close(inst.scores, expected[1])
                    self.assertTrue(torch.equal(inst.pred_classes, expected[2]))

    def check_exported_function(self, model):
        """What every export format traces (:class:`ExportAdapter`, the model's stages with the
        multi-level NMS in its fixed-size form) gives the model's inference once thresholded, on
        an input the export takes (a multiple of the size divisibility; CenterTrack: the image
        as its own previous frame, no previous tracks, as its inference without them)."""
        d = max(model.backbone.size_divisibility, 1)
        size = (2 * d, 3 * d) if d >= 32 else (64, 96)
        images = torch.rand(1, 3, *size, generator=torch.Generator().manual_seed(1)) * 255
        with torch.no_grad():
            boxes, scores, classes, *_ = ExportAdapter(model)(*model.example_inputs(images))
            (result,) = model([{"image": images[0]}])
        expected = result["instances"]
        # Detectron2's postprocessing drops empty boxes
        keep = (scores[0] >= model.test_score_thresh) & (boxes[0, :, 2:] > boxes[0, :, :2]).all(1)
        self.assertEqual(int(keep.sum()), len(expected))
        torch.testing.assert_close(boxes[0][keep], expected.pred_boxes.tensor, rtol=0, atol=1e-3)
        torch.testing.assert_close(scores[0][keep], expected.scores, rtol=0, atol=1e-5)
        self.assertTrue(torch.equal(classes[0][keep], expected.pred_classes))


class TestEmptyBatch(unittest.TestCase):
    def test_all_images_without_objects(self):
        torch.manual_seed(0)
        cfg = get_config(os.path.join(CONFIG_DIR, "CPU", "centernet_R_18_deconv_shapes.yaml"))
        model = build_model(cfg).train()
        inputs = make_inputs([(64, 64), (70, 50)], [[], []], 5)
        with EventStorage() as storage:
            losses = model(inputs)
            self.assertEqual(storage.latest()["num_objects"][0], 0)
        self.assertEqual(losses["loss_size"].item(), 0.0)
        self.assertEqual(losses["loss_offset"].item(), 0.0)
        self.assertGreater(losses["loss_heatmap"].item(), 0.0)
        sum(losses.values()).backward()


class TestWithoutConfig(unittest.TestCase):
    def test_build_from_modules(self):
        from detectron2.layers import ShapeSpec
        from detectron2.modeling import Backbone

        class Tiny(Backbone):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 8, 3, stride=4, padding=1)

            def forward(self, x):
                return {"p2": self.conv(x)}

            def output_shape(self):
                return {"p2": ShapeSpec(channels=8, stride=4)}

        model = CenterNet(
            backbone=Tiny(),
            head=CenterNetHead(input_shape=[ShapeSpec(channels=8, stride=4)], num_classes=3),
            head_in_features=["p2"],
            pixel_mean=[0.0, 0.0, 0.0],
            pixel_std=[1.0, 1.0, 1.0],
        )
        self.assertEqual(model.stride, 4)
        with EventStorage():
            losses = model(make_inputs([(32, 40)], [[[4, 4, 20, 30]]], 3))
        self.assertEqual(len(losses), 3)
        # heatmap bias from the prior 0.1
        bias = model.head.branches["heatmap"][-1].bias
        self.assertAlmostEqual(torch.sigmoid(bias[0]).item(), 0.1, places=6)

    def test_bad_values(self):
        with self.assertRaisesRegex(ValueError, "IN_FEATURES"):
            CenterNetHead(input_shape=[], num_classes=3)
        cfg = get_config(os.path.join(CONFIG_DIR, "CPU", "centernet_R_18_deconv_shapes.yaml"))
        cfg.MODEL.CENTERNET.TARGET_KIND = "square"
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERNET.TARGET_KIND"):
            build_model(cfg)
        cfg = get_config(os.path.join(CONFIG_DIR, "CPU", "centernet_R_18_deconv_shapes.yaml"))
        cfg.MODEL.CENTERNET.IN_FEATURES = ["p3"]
        with self.assertRaisesRegex(ValueError, "p3"):
            build_model(cfg)


def _ltrb_cfg(*opts):
    return model_cfg(LTRB_CONFIG, *opts)


class TestMultiLevel(unittest.TestCase):
    def _model(self, *opts):
        torch.manual_seed(0)
        return build_model(model_cfg(MULTILEVEL_CONFIG, *opts))

    def test_train_step(self):
        model = self._model().train()
        self.assertIsInstance(model, MultiLevelCenterNet)
        self.assertEqual(model.strides, [8, 16, 32, 64, 128])
        inputs = make_inputs([(96, 128), (80, 100)], [[[4, 6, 40, 40], [30, 20, 90, 76]], []], 5)
        with EventStorage() as storage:
            losses = model(inputs)
            # the first box (half diagonal 24.6) is positive on p3, the second (46.1) on p3 too
            self.assertEqual(storage.latest()["num_objects"][0], 2)
        self.assertEqual(set(losses), {"loss_heatmap", "loss_box"})
        sum(losses.values()).backward()
        for name in ("heatmap", "box"):
            grad = model.head.branches[name][-1].weight.grad
            self.assertTrue(torch.isfinite(grad).all() and grad.abs().sum() > 0, name)
        self.assertIsNotNone(model.head.level_scales.grad)
        with EventStorage():
            losses = model(make_inputs([(64, 64)], [[]], 5))
        self.assertEqual(losses["loss_box"].item(), 0.0)
        self.assertGreater(losses["loss_heatmap"].item(), 0.0)

    def test_train_step_losses_by_hand(self):
        # one 32 x 32 px object at centre (56, 56) of a 128 x 128 image: half diagonal 22.6, on
        # level 0 (stride 8) only, positive at cell (7, 7), boxes regressed on the 3 x 3 cells
        # around it (centres 52, 60, 68 px, all inside). The network's outputs are scripted:
        # heatmap logits -30 (no loss) but 0.5 at the positive and 1.0 at a cell of another
        # class (target 0, a negative); every box prediction (2, 2, 2, 2) cells.
        cfg = model_cfg(MULTILEVEL_CONFIG)
        model = self._model().train()
        c = cfg.MODEL.CENTERNET
        K, box = model.num_classes, [40.0, 40.0, 72.0, 72.0]
        shapes = [(16, 16), (8, 8), (4, 4), (2, 2), (1, 1)]
        heatmaps = [torch.full((1, K, h, w), -30.0) for h, w in shapes]
        heatmaps[0][0, 1, 7, 7] = 0.5
        heatmaps[2][0, 0, 0, 0] = 1.0
        predictions = {
            "heatmap": heatmaps,
            "box": [torch.full((1, 4, h, w), 2.0) for h, w in shapes],
        }
        inputs = [
            {"image": torch.zeros(3, 128, 128), "instances": gt_instances([box], [1], (128, 128))}
        ]
        with EventStorage(), mock.patch.object(model, "run_network", return_value=predictions):
            losses = model(inputs)

        def sigmoid(x):
            return 1 / (1 + math.exp(-x))

        a, balance = c.FOCAL_ALPHA, c.FOCAL_BALANCE
        positive = -((1 - sigmoid(0.5)) ** a) * math.log(sigmoid(0.5))
        negative = -(sigmoid(1.0) ** a) * math.log(1 - sigmoid(1.0))
        heatmap = (balance * positive + (1 - balance) * negative) / 1  # one positive
        self.assertAlmostEqual(losses["loss_heatmap"].item(), c.HEATMAP_WEIGHT * heatmap, places=5)

        def giou(p, q):  # boxes (x0, y0, x1, y1)
            inter = max(0, min(p[2], q[2]) - max(p[0], q[0])) * max(
                0, min(p[3], q[3]) - max(p[1], q[1])
            )
            union = (p[2] - p[0]) * (p[3] - p[1]) + (q[2] - q[0]) * (q[3] - q[1]) - inter
            hull = (max(p[2], q[2]) - min(p[0], q[0])) * (max(p[3], q[3]) - min(p[1], q[1]))
            return inter / union - (hull - union) / hull

        total = 0.0
        for cy in (52, 60, 68):
            for cx in (52, 60, 68):
                target = [box[0] - cx, box[1] - cy, box[2] - cx, box[3] - cy]  # around the cell
                total += 1 - giou([-16, -16, 16, 16], target)
        self.assertAlmostEqual(losses["loss_box"].item(), c.BOX_WEIGHT * total / 9, places=5)

    def test_inference_is_nms_of_the_level_candidates(self):
        model = self._model(
            "MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0", "TEST.DETECTIONS_PER_IMAGE", "7"
        ).eval()
        image = make_inputs([(96, 128)], [[]], 5)[0]["image"]
        with torch.no_grad():
            (out,) = model([{"image": image}])
            images = model.preprocess_image([{"image": image}])
            predictions = model.run_network(images.tensor)
        inst = out["instances"]
        self.assertEqual(len(inst), 7)
        self.assertEqual([len(x) for x in predictions["heatmap"]], [1] * 5)
        boxes, scores, classes = decode_levels(
            predictions["heatmap"], predictions["box"], model.strides, 1000
        )
        # the kept boxes: the best score first, and no two of one class overlapping above 0.6
        self.assertAlmostEqual(inst.scores[0].item(), scores.max().item(), places=6)
        self.assertTrue(bool((inst.scores[:-1] >= inst.scores[1:]).all()))
        iou = pairwise_iou(inst.pred_boxes, inst.pred_boxes)
        same = inst.pred_classes[:, None] == inst.pred_classes[None]
        off_diagonal = ~torch.eye(len(inst), dtype=torch.bool)
        self.assertLessEqual(iou[same & off_diagonal].max().item(), 0.6)

    def test_inference_equals_an_independent_decoding(self):
        # written here from the definition: every level's sigmoid scores and cell-centre ltrb
        # boxes, the PRE_NMS_TOPK best per level, the score threshold, torchvision's class-wise
        # NMS, the DETECTIONS_PER_IMAGE best; boxes clipped to the image
        import torchvision

        model = self._model(
            "MODEL.CENTERNET.SCORE_THRESH_TEST", "0.3", "MODEL.CENTERNET.PRE_NMS_TOPK_TEST", "40"
        ).eval()
        g = torch.Generator().manual_seed(3)
        shapes = [(12, 16), (6, 8), (3, 4), (2, 2), (1, 1)]
        predictions = {
            "heatmap": [torch.randn(1, 5, h, w, generator=g) * 2 for h, w in shapes],
            "box": [torch.rand(1, 4, h, w, generator=g) * 3 for h, w in shapes],
        }
        (inst,) = model.inference(ImageList(torch.zeros(1, 3, 96, 128), [(90, 120)]), predictions)
        boxes, scores, classes = [], [], []
        for heat, ltrb, stride in zip(predictions["heatmap"], predictions["box"], model.strides):
            _, K, H, W = heat.shape
            prob = torch.sigmoid(heat[0]).flatten()  # (K * H * W,) class-major
            top = prob.topk(min(40, prob.numel())).indices
            cls, cell = top // (H * W), top % (H * W)
            cx, cy = (cell % W + 0.5) * stride, (cell // W + 0.5) * stride
            d = ltrb[0].flatten(1)[:, cell] * stride  # (4, T) pixels
            box = torch.stack([cx - d[0], cy - d[1], cx + d[2], cy + d[3]], dim=1)
            box[:, 2:] = torch.maximum(box[:, 2:], box[:, :2] + 0.01)  # CenterNet2's least side
            boxes.append(box), scores.append(prob[top]), classes.append(cls)
        boxes, scores, classes = torch.cat(boxes), torch.cat(scores), torch.cat(classes)
        keep = scores >= 0.3
        boxes, scores, classes = boxes[keep], scores[keep], classes[keep]
        boxes[:, 0::2] = boxes[:, 0::2].clamp(0, 120)
        boxes[:, 1::2] = boxes[:, 1::2].clamp(0, 90)
        kept = torchvision.ops.batched_nms(boxes, scores, classes, 0.6)[:100]
        self.assertGreater(len(kept), 10)
        torch.testing.assert_close(inst.pred_boxes.tensor, boxes[kept])
        torch.testing.assert_close(inst.scores, scores[kept])
        self.assertEqual(inst.pred_classes.tolist(), classes[kept].tolist())

    def test_bad_values(self):
        with self.assertRaisesRegex(ValueError, "BOX_HEAD 'ltrb'"):
            self._model("MODEL.CENTERNET.BOX_HEAD", "size_offset")
        with self.assertRaisesRegex(ValueError, "SIZE_RANGES has 2 ranges"):
            self._model("MODEL.CENTERNET.SIZE_RANGES", "[[0, 64], [64, 100000]]")
        with self.assertRaisesRegex(ValueError, "TARGET_KIND 'multilevel', got 'ttf'"):
            self._model("MODEL.CENTERNET.TARGET_KIND", "ttf")
        # a config of before MultiLevelCenterNet (CenterNet with the level targets): the fix named
        with self.assertRaisesRegex(ValueError, "META_ARCHITECTURE 'MultiLevelCenterNet'"):
            self._model("MODEL.META_ARCHITECTURE", "CenterNet")
        with self.assertRaisesRegex(ValueError, "IN_FEATURES must name one feature"):
            self._model(
                "MODEL.META_ARCHITECTURE", "CenterNet", "MODEL.CENTERNET.TARGET_KIND", "ttf"
            )


class TestLtrbModel(unittest.TestCase):
    def _inputs(self, boxes_per_image, size=(48, 64)):
        g = torch.Generator().manual_seed(0)
        inputs = []
        for boxes in boxes_per_image:
            image = torch.randint(0, 256, (3, *size), generator=g).float()
            inst = gt_instances(boxes, [1] * len(boxes), size)
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
            boxes, scores, classes = ExportAdapter(model)(image[None])
            (result,) = model([{"image": image, "height": 64, "width": 64}])
        kept = result["instances"]  # Detectron2 drops empty boxes: compare those kept
        nonempty = ((boxes[0, :, 2:] - boxes[0, :, :2]) > 0).all(dim=1)
        torch.testing.assert_close(boxes[0][nonempty], kept.pred_boxes.tensor, rtol=0, atol=1e-4)
        torch.testing.assert_close(scores[0][nonempty], kept.scores, rtol=0, atol=1e-6)
        with tempfile.TemporaryDirectory() as out:
            _, diffs = export_and_check(model, (image[None],), out, "torchscript")
        self.assertLessEqual(diffs["boxes"], 1e-3)
        self.assertEqual(diffs["classes"], 0)


CONFIG = R18_CONFIG


OBJECTS = [
    [(10, 14, 50, 40, 0), (60, 60, 118, 100, 1), (20, 70, 44, 118, 2)],
    [(30, 8, 100, 50, 2), (8, 60, 40, 92, 0), (70, 66, 110, 122, 1)],
]


COLORS = torch.tensor([[230.0, 40, 40], [40, 200, 60], [50, 60, 220]])


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = []
    for objects in OBJECTS:
        image = torch.rand(3, 128, 128, generator=g) * 60 + 100  # grey noise
        for x0, y0, x1, y1, c in objects:
            image[:, y0:y1, x0:x1] = COLORS[c][:, None, None]
        inst = Instances((128, 128))
        inst.gt_boxes = Boxes(torch.tensor([o[:4] for o in objects], dtype=torch.float32))
        inst.gt_classes = torch.tensor([o[4] for o in objects])
        batch.append({"image": image, "instances": inst})
    return batch


@pytest.mark.slow
class TestOverfit(unittest.TestCase):
    def test_two_images_three_boxes(self):
        torch.manual_seed(0)
        cfg = get_cfg()
        add_centernet_config(cfg)
        cfg.merge_from_file(CONFIG)
        cfg.MODEL.DEVICE = "cpu"
        cfg.MODEL.CENTERNET.NUM_CLASSES = 3
        # GroupNorm: with one fixed batch of two images, BatchNorm's running statistics (what
        # eval mode uses) are a poor stand-in for the batch statistics the model was fit with.
        cfg.MODEL.RESNETS.NORM = "GN"
        cfg.MODEL.DECONV.NORM = "GN"
        model = build_model(cfg)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [140, 180])
        batch = make_batch()
        model.train()
        with EventStorage():
            for it in range(200):
                losses = model(batch)
                optimizer.zero_grad()
                sum(losses.values()).backward()
                optimizer.step()
                schedule.step()
        model.eval()
        with torch.no_grad():
            outputs = model([{"image": x["image"]} for x in batch])
        for x, out in zip(batch, outputs):
            gt, pred = x["instances"], out["instances"]
            pred = pred[pred.scores > 0.3]
            self.assertEqual(len(pred), len(gt), f"{pred} after {it + 1} iterations")
            iou = pairwise_iou(gt.gt_boxes, pred.pred_boxes)  # (gt, pred)
            best = iou.argmax(dim=1)
            self.assertEqual(sorted(best.tolist()), list(range(len(gt))))
            self.assertTrue((iou.max(dim=1).values > 0.9).all(), iou)
            self.assertEqual(pred.pred_classes[best].tolist(), gt.gt_classes.tolist())


if __name__ == "__main__":
    unittest.main()
