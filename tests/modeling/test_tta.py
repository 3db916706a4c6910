"""Test-time augmentation: flip merging, multi-scale merging, the CenterNetWithTTA wrapper, and
its use from CenterNetPredictor, Trainer.test_with_TTA and tools/train_net.py --eval-only."""

import math
import os
import tempfile
import unittest

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances

from centernet_d2.data import generate_shapes_dataset, register_coco_dataset
from centernet_d2.engine.predictor import CenterNetPredictor
from centernet_d2.modeling.tta import (
    CenterNetWithTTA,
    canvas_size,
    mean_probability_logits,
    merge_detections,
    merge_flipped,
    place_on_canvas,
    resize_image,
    resize_input,
    scaled_size,
)
from tests.common import CONFIG, LTRB_CONFIG, MULTILEVEL_CONFIG, TRACK_CONFIG, model_cfg

CPU_CONFIG = CONFIG
_cfg = model_cfg


def _model(path, *opts):
    """A model of the config, random weights from seed 0, in eval mode."""
    torch.manual_seed(0)
    return build_model(_cfg(path, *opts)).eval()


def _tta(model, path, *opts):
    """``model`` wrapped in CenterNetWithTTA built from the config with ``opts``."""
    return CenterNetWithTTA(_cfg(path, "TEST.AUG.ENABLED", "True", *opts), model)


def _symmetric_image(height=64, width=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    half = torch.randint(0, 256, (3, height, width // 2), generator=g).float()
    return torch.cat([half, half.flip(-1)], dim=-1)


def _sorted_rows(inst):
    """(score, class, box) rows of Instances sorted lexicographically, for set comparisons."""
    rows = torch.cat(
        [inst.scores[:, None], inst.pred_classes[:, None].float(), inst.pred_boxes.tensor], dim=1
    ).double()
    for col in reversed(range(rows.shape[1])):
        rows = rows[torch.argsort(rows[:, col], stable=True)]
    return rows


def _instances(boxes, scores, classes, size=(50, 60)):
    return Instances(
        size,
        pred_boxes=Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)),
        scores=torch.tensor(scores, dtype=torch.float32),
        pred_classes=torch.tensor(classes, dtype=torch.int64),
    )


class TestFlipMerge(unittest.TestCase):
    def test_mean_probability(self):
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(2, 3, 4, 5, generator=g).mul(4).unbind(0)
        merged = mean_probability_logits([a, b])
        ref = (torch.sigmoid(a.double()) + torch.sigmoid(b.double())) / 2
        torch.testing.assert_close(torch.sigmoid(merged.double()), ref, rtol=0, atol=1e-6)
        # finite at extreme logits: p = (1 + 0) / 2 -> logit 0; (1 + 1) / 2 -> about +100
        extreme = mean_probability_logits(
            [torch.tensor([100.0, 100.0]), torch.tensor([-100.0, 100.0])]
        )
        self.assertAlmostEqual(extreme[0].item(), 0.0, places=5)
        self.assertAlmostEqual(extreme[1].item(), 100.0, places=3)

    def test_hand_computed(self):
        # W = 3; the mirror's values at x are the image's at 2 - x after flipping back
        heat = torch.zeros(1, 1, 1, 3)
        heat_m = torch.tensor([[[[0.0, 0.0, math.log(3.0)]]]])  # p = 3 / 4 at mirror x = 2
        size = torch.tensor([[[[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]]]])  # (1, 2, 1, 3)
        size_m = torch.tensor([[[[7.0, 8.0, 9.0]], [[1.0, 1.0, 1.0]]]])
        offset, offset_m = torch.rand(1, 2, 1, 3), torch.rand(1, 2, 1, 3)
        out = merge_flipped(
            {"heatmap": heat, "size": size, "offset": offset},
            {"heatmap": heat_m, "size": size_m, "offset": offset_m},
            "size_offset",
        )
        # x = 0: p = (1/2 + 3/4) / 2 = 5/8; elsewhere 1/2
        np.testing.assert_allclose(torch.sigmoid(out["heatmap"]).flatten(), [5 / 8, 0.5, 0.5])
        np.testing.assert_allclose(out["size"][0, :, 0], [[5.0, 5.0, 5.0], [2.5, 3.0, 3.5]])
        self.assertTrue(torch.equal(out["offset"], offset))

        box = torch.zeros(1, 4, 1, 3)
        box_m = torch.zeros(1, 4, 1, 3)
        box_m[0, :, 0, 2] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # mirror x = 2 -> image x = 0
        out = merge_flipped(
            {"heatmap": heat, "box": box}, {"heatmap": heat_m, "box": box_m}, "ltrb"
        )
        # l and r swap when mirrored back: (3, 2, 1, 4) / 2
        self.assertEqual(out["box"][0, :, 0, 0].tolist(), [1.5, 1.0, 0.5, 2.0])
        self.assertEqual(out["box"][0, :, 0, 1:].abs().sum().item(), 0.0)

    def test_displacement(self):
        # CenterTrack's displacement (previous centre - centre): the mirror's x negated
        heat = torch.zeros(1, 1, 1, 3)
        size = torch.zeros(1, 2, 1, 3)
        disp = torch.tensor([[[[1.0, 2.0, 3.0]], [[4.0, 5.0, 6.0]]]])
        disp_m = torch.tensor([[[[7.0, 8.0, 9.0]], [[1.0, 1.0, 1.0]]]])
        out = _model(TRACK_CONFIG).merge_mirrored(
            {"heatmap": heat, "size": size, "offset": size, "displacement": disp},
            {"heatmap": heat, "size": size, "offset": size, "displacement": disp_m},
        )
        # x: (1 - 9) / 2, (2 - 8) / 2, (3 - 7) / 2; y: (4 + 1) / 2, ...
        self.assertEqual(out["displacement"][0, :, 0].tolist(), [[-4, -3, -2], [2.5, 3, 3.5]])


class TestScales(unittest.TestCase):
    def test_scaled_size(self):
        self.assertEqual(scaled_size(480, 640, 384, 1000), (384, 512))
        self.assertEqual(scaled_size(480, 640, 600, 700), (525, 700))  # long side capped
        # 1x1000 at short side 64, long side capped at 320: the short side, 0.32, would round to 0
        self.assertEqual(scaled_size(1, 1000, 64, 320), (1, 320))
        self.assertEqual(scaled_size(1000, 1, 64, 320), (320, 1))

    def test_resize_input(self):
        image, prev = torch.zeros(3, 20, 40), torch.ones(3, 20, 40)
        x = {"image": image, "height": 10, "prev_image": prev, "prev_boxes": [[4.0, 2, 8, 6]]}
        tracker, detector = _model(TRACK_CONFIG), _model(CONFIG)
        out = resize_input(tracker, x, (30, 50), torch.device("cpu"))
        self.assertEqual(set(out), {"image", "prev_image", "prev_boxes"})
        self.assertEqual(out["image"].shape, (3, 30, 50))
        torch.testing.assert_close(out["prev_image"], torch.ones(3, 30, 50))
        self.assertEqual(out["prev_boxes"].tolist(), [[5.0, 3.0, 10.0, 9.0]])  # x 5 / 4, y 3 / 2
        self.assertEqual(
            set(resize_input(tracker, {"image": image}, (30, 50), image.device)), {"image"}
        )
        self.assertEqual(set(resize_input(detector, x, (30, 50), image.device)), {"image"})

    def test_resize_image(self):
        image = torch.arange(12, dtype=torch.uint8).view(1, 3, 4)
        same = resize_image(image, (3, 4))
        self.assertEqual(same.dtype, torch.float32)
        self.assertTrue(torch.equal(same, image.float()))
        self.assertEqual(resize_image(image, (6, 8)).shape, (1, 6, 8))

    def test_merge_duplicates(self):
        box = [10.0, 10.0, 30.0, 40.0]
        scale1 = _instances([box, [0.0, 0.0, 5.0, 5.0]], [0.9, 0.3], [2, 1])
        scale2 = _instances([box, box, [31.0, 0.0, 50.0, 9.0]], [0.8, 0.7, 0.5], [2, 0, 2])
        merged = merge_detections([scale1, scale2], nms_thresh=0.5, topk=10)
        # the two class-2 copies of the box become one (the better); class 0's copy stays
        np.testing.assert_allclose(merged.scores.numpy(), [0.9, 0.7, 0.5, 0.3])
        self.assertEqual(merged.pred_classes.tolist(), [2, 0, 2, 1])
        self.assertEqual(merged.pred_boxes.tensor[0].tolist(), box)
        self.assertEqual(merged.image_size, (50, 60))
        top2 = merge_detections([scale1, scale2], nms_thresh=0.5, topk=2)
        np.testing.assert_allclose(top2.scores.numpy(), [0.9, 0.7])


class TestWrapper(unittest.TestCase):
    def test_one_scale_without_flip_is_the_plain_model(self):
        image = _symmetric_image(64, 96)
        inputs = [{"image": image, "height": 48, "width": 72}]
        model = _model(CPU_CONFIG)
        # one scale, the input's own size (64 = 48 * 64 / 48), no flip
        one = _tta(model, CPU_CONFIG, "TEST.AUG.FLIP", "False", "TEST.AUG.MIN_SIZES", "(64,)")
        with torch.no_grad():
            ref = model(inputs)[0]["instances"]
            out = one(inputs)[0]["instances"]
        self.assertEqual(out.image_size, (48, 72))
        self.assertTrue(torch.equal(out.pred_boxes.tensor, ref.pred_boxes.tensor))
        self.assertTrue(torch.equal(out.scores, ref.scores))
        self.assertTrue(torch.equal(out.pred_classes, ref.pred_classes))

    def test_flip_on_symmetric_image_is_symmetric(self):
        # every peak kept (T > K * H * W; non-peaks score 0): the detections as a set
        opts = ["TEST.DETECTIONS_PER_IMAGE", "2000", "MODEL.CENTERNET.SCORE_THRESH_TEST", "1e-9"]
        model = _model(LTRB_CONFIG, *opts)
        tta = _tta(model, LTRB_CONFIG, *opts, "TEST.AUG.MIN_SIZES", "()")
        width = 64
        image = _symmetric_image(64, width)
        images = model.preprocess_image([{"image": image}])
        with torch.no_grad():
            merged = tta.predict(images.tensor)
            plain = model.run_network(images.tensor)
            (out,) = tta([{"image": image}])
        # the network alone is not mirror-symmetric, the flip-merged outputs are
        self.assertFalse(torch.allclose(plain["heatmap"], plain["heatmap"].flip(-1), atol=1e-3))
        self.assertTrue(torch.equal(merged["heatmap"], merged["heatmap"].flip(-1)))
        self.assertTrue(torch.equal(merged["box"], merged["box"].flip(-1)[:, [2, 1, 0, 3]]))
        inst = out["instances"]
        self.assertGreater(len(inst), 100)
        mirrored = inst.pred_boxes.tensor[:, [2, 1, 0, 3]] * torch.tensor([-1, 1, -1, 1]) + (
            torch.tensor([width, 0, width, 0])
        )
        mirror = Instances(inst.image_size, pred_boxes=Boxes(mirrored))
        mirror.scores, mirror.pred_classes = inst.scores, inst.pred_classes
        torch.testing.assert_close(_sorted_rows(mirror), _sorted_rows(inst), rtol=0, atol=1e-4)

    def test_flip_classic_head(self):
        model = _model(CPU_CONFIG)
        tta = _tta(model, CPU_CONFIG, "TEST.AUG.MIN_SIZES", "()")
        with torch.no_grad():
            (out,) = tta([{"image": _symmetric_image(64, 64), "height": 32, "width": 32}])
        self.assertEqual(out["instances"].image_size, (32, 32))
        self.assertLessEqual(len(out["instances"]), 100)

    def test_flip_multilevel(self):
        # each level merged with its own mirror: symmetric on a symmetric image (128 px: every
        # level of P3-P7 covers the image exactly, so cells mirror onto cells)
        model = _model(MULTILEVEL_CONFIG)
        tta = _tta(model, MULTILEVEL_CONFIG, "TEST.AUG.MIN_SIZES", "()")
        images = model.preprocess_image([{"image": _symmetric_image(128, 128)}])
        with torch.no_grad():
            merged = tta.predict(images.tensor)
            (out,) = tta([{"image": _symmetric_image(128, 128), "height": 64, "width": 64}])
        self.assertEqual(len(merged["heatmap"]), 5)
        for heatmap, box in zip(merged["heatmap"], merged["box"]):
            self.assertTrue(torch.equal(heatmap, heatmap.flip(-1)))
            self.assertTrue(torch.equal(box, box.flip(-1)[:, [2, 1, 0, 3]]))
        self.assertEqual(out["instances"].image_size, (64, 64))

    def test_multi_scale_merges_duplicates(self):
        inputs = [{"image": _symmetric_image(64, 80, seed=1), "height": 32, "width": 40}]
        opts = ["TEST.AUG.FLIP", "False", "TEST.AUG.MAX_SIZE", "80"]
        opts += ["MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0"]
        model = _model(LTRB_CONFIG, "MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0")
        twice = _tta(model, LTRB_CONFIG, *opts, "TEST.AUG.MIN_SIZES", "(64, 64)")
        once = _tta(model, LTRB_CONFIG, *opts, "TEST.AUG.MIN_SIZES", "(64,)")
        with torch.no_grad():
            (doubled,) = twice(inputs)
            (single,) = once(inputs)
        # the same scale twice: every detection twice, merged back to one -> the single scale's
        # detections after the same NMS
        expected = merge_detections([single["instances"]], 0.5, 100)
        self.assertEqual(len(doubled["instances"]), len(expected))  # not 2 * len(single)
        torch.testing.assert_close(
            _sorted_rows(doubled["instances"]), _sorted_rows(expected), rtol=0, atol=0
        )

    def test_a_scale_maps_back_like_a_run_on_the_rescaled_image(self):
        # original 100 x 125; scale 40 (long side <= 60): the image is run at 40 x 50 and its
        # boxes are scaled by 125 / 50 = 2.5 in x and 100 / 40 = 2.5 in y
        opts = ["MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0"]
        model = _model(LTRB_CONFIG, *opts)
        tta = _tta(model, LTRB_CONFIG, *opts, "TEST.AUG.FLIP", "False",
                   "TEST.AUG.MIN_SIZES", "(40,)", "TEST.AUG.MAX_SIZE", "60")  # fmt: skip
        image = _symmetric_image(64, 80)
        self.assertEqual(scaled_size(100, 125, 40, 60), (40, 50))
        rescaled = torch.nn.functional.interpolate(
            image[None], size=(40, 50), mode="bilinear", align_corners=False
        )[0]
        with torch.no_grad():
            (out,) = tta([{"image": image, "height": 100, "width": 125}])
            (ref,) = model([{"image": rescaled}])  # boxes in the 40 x 50 image, unscaled
        inst, ref = out["instances"], ref["instances"]
        self.assertEqual(inst.image_size, (100, 125))
        self.assertEqual(len(inst), len(ref))
        expected = ref.pred_boxes.tensor * 2.5
        expected[:, 0::2] = expected[:, 0::2].clamp(0, 125)
        expected[:, 1::2] = expected[:, 1::2].clamp(0, 100)
        torch.testing.assert_close(inst.pred_boxes.tensor, expected, rtol=0, atol=1e-3)
        torch.testing.assert_close(inst.scores, ref.scores)

    def test_bad_values(self):
        model = _model(CPU_CONFIG)
        with self.assertRaisesRegex(ValueError, "TEST.AUG.MIN_SIZES"):
            _tta(model, CPU_CONFIG, "TEST.AUG.MIN_SIZES", "(0,)")
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERNET.TTA_NMS_THRESH"):
            _tta(model, CPU_CONFIG, "MODEL.CENTERNET.TTA_NMS_THRESH", "0.0")


class TestTTAApplied(unittest.TestCase):
    def test_predictor_wraps_the_model(self):
        opts = ["TEST.AUG.MIN_SIZES", "(48, 64)", "INPUT.MIN_SIZE_TEST", "64"]
        opts += ["INPUT.MAX_SIZE_TEST", "64", "DATASETS.TEST", "()"]
        plain = CenterNetPredictor(_cfg(LTRB_CONFIG, *opts))
        self.assertNotIsInstance(plain.model, CenterNetWithTTA)
        predictor = CenterNetPredictor(_cfg(LTRB_CONFIG, "TEST.AUG.ENABLED", "True", *opts))
        self.assertIsInstance(predictor.model, CenterNetWithTTA)
        self.assertEqual(predictor.model.min_sizes, (48, 64))
        image = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
        out = predictor(image)
        self.assertIsInstance(out["instances"], Instances)
        self.assertEqual(out["instances"].image_size, (40, 50))

    def test_trainer_test_with_tta(self):
        from centernet_d2.engine import Trainer

        name = "tta_test_shapes"
        with tempfile.TemporaryDirectory() as root:
            json_file = generate_shapes_dataset(
                root, "val", num_images=2, seed=3, image_size=64, max_size=32
            )
            register_coco_dataset(name, json_file, os.path.join(root, "val"))
            try:
                cfg = _cfg(
                    CPU_CONFIG,
                    *["DATASETS.TEST", f"('{name}',)", "OUTPUT_DIR", root],
                    *["INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64"],
                    *["TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "(48, 64)"],
                    *["DATALOADER.NUM_WORKERS", "0"],
                )
                results = Trainer.test_with_TTA(cfg, Trainer.build_model(cfg))
                self.assertTrue(os.path.isdir(os.path.join(root, "inference_TTA")))
            finally:
                DatasetCatalog.remove(name)
                MetadataCatalog.remove(name)
        self.assertIn("AP", results["bbox_TTA"])


class TestCanvas(unittest.TestCase):
    """INPUT.CENTERNET.TEST_CANVAS: CenterNet's test inputs, the image centred on black."""

    def test_sizes(self):
        self.assertEqual(canvas_size(384, 512, "square", 32), (512, 512))
        self.assertEqual(canvas_size(300, 200, "square", 32), (320, 320))
        # CenterNet's (side | 31) + 1: 512 becomes 544, 383 becomes 384
        self.assertEqual(canvas_size(512, 383, "keep_res"), (544, 384))
        with self.assertRaisesRegex(ValueError, "TEST_CANVAS"):
            canvas_size(10, 10, "letterbox")

    def test_place_on_canvas(self):
        image = torch.arange(1, 9, dtype=torch.float32).view(1, 2, 4)
        x = {"image": image, "prev_image": image + 10, "prev_boxes": torch.tensor([[0, 0, 2, 1]])}
        out, offset = place_on_canvas(_model(TRACK_CONFIG), x, (5, 7), torch.device("cpu"))
        # top (5 - 2) // 2 = 1, left (7 - 4) // 2 = 1
        self.assertEqual(offset.tolist(), [1.0, 1.0])
        self.assertEqual(out["image"][0, 1:3, 1:5].tolist(), image[0].tolist())
        self.assertEqual(float(out["image"].sum()), float(image.sum()))  # black elsewhere
        self.assertEqual(out["prev_image"][0, 2, 4].item(), 18.0)
        self.assertEqual(out["prev_boxes"].tolist(), [[1.0, 1.0, 3.0, 2.0]])

    def test_wrapper_equals_the_model_on_the_centred_image(self):
        model = _model(CONFIG, "MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0")
        wrapped = CenterNetWithTTA(_cfg(CONFIG, "INPUT.CENTERNET.TEST_CANVAS", "square"), model)
        self.assertFalse(wrapped.flip)  # TEST.AUG.ENABLED False: the canvas alone
        g = torch.Generator().manual_seed(4)
        image = torch.randint(0, 256, (3, 64, 96), generator=g).float()
        (out,) = wrapped([{"image": image, "height": 64, "width": 96}])
        # by hand: the image at row 16 of a black 96 x 96 canvas, detections moved up 16 rows
        canvas = torch.zeros(3, 96, 96)
        canvas[:, 16:80] = image
        with torch.no_grad():
            (ref,) = model([{"image": canvas}])
        ref = ref["instances"]
        boxes = Boxes(ref.pred_boxes.tensor - torch.tensor([0.0, 16.0, 0.0, 16.0]))
        boxes.clip((64, 96))
        keep = boxes.nonempty()
        torch.testing.assert_close(out["instances"].pred_boxes.tensor, boxes.tensor[keep])
        torch.testing.assert_close(out["instances"].scores, ref.scores[keep])

    def test_trainer_and_predictor_use_it(self):
        cfg = _cfg(CONFIG, "INPUT.CENTERNET.TEST_CANVAS", "keep_res")
        predictor = CenterNetPredictor(cfg)
        self.assertIsInstance(predictor.model, CenterNetWithTTA)
        self.assertEqual(predictor.model.canvas, "keep_res")
        out = predictor(np.full((50, 70, 3), 100, np.uint8))
        self.assertEqual(out["instances"].image_size, (50, 70))


class TestKeypointFlipMap(unittest.TestCase):
    """The flip test never averages left and right keypoints: the flip map comes from the config,
    else from the weights, else the wrapper refuses."""

    CONFIG = os.path.join(
        os.path.dirname(CONFIG), "centernet_keypoints_MobileNetV3_small_FPN_shapes.yaml"
    )

    def test_saved_with_the_weights_or_refused(self):
        trained = _model(self.CONFIG)  # the config's flip map, as a trained run has it
        flip = trained.keypoint_flip_indices.tolist()
        self.assertEqual(flip[:4], [0, 2, 1, 3])
        bare = _model(self.CONFIG, "MODEL.CENTERNET.KEYPOINT_FLIP_INDICES", "[]")
        self.assertEqual(bare.keypoint_flip_indices.tolist(), [-1] * 16)
        image = torch.randint(0, 256, (3, 64, 64), generator=torch.Generator().manual_seed(1))
        inputs = [{"image": image.float(), "height": 64, "width": 64}]
        wrapped = _tta(bare, self.CONFIG, "MODEL.CENTERNET.KEYPOINT_FLIP_INDICES", "[]")
        with self.assertRaisesRegex(ValueError, "KEYPOINT_FLIP_INDICES"):
            wrapped(inputs)
        # the trained weights bring their flip map to the bare config
        bare.load_state_dict(trained.state_dict())
        self.assertEqual(bare.keypoint_flip_indices.tolist(), flip)
        (out,) = wrapped(inputs)
        (expected,) = _tta(trained, self.CONFIG)(inputs)
        torch.testing.assert_close(
            out["instances"].pred_keypoints, expected["instances"].pred_keypoints
        )

    def test_flip_map_must_be_a_permutation(self):
        with self.assertRaisesRegex(ValueError, "permutation of 0..15"):
            _model(self.CONFIG, "MODEL.CENTERNET.KEYPOINT_FLIP_INDICES", "[0, 0]")


class TestCenterTrackWrapper(unittest.TestCase):
    """The wrapper on a CenterTrack: the previous frame and its heatmap are flipped and resized
    with the image."""

    @classmethod
    def setUpClass(cls):
        # CenterTrack's random start of the fusion: the previous frame changes the outputs; every
        # peak kept (random weights score under the config's threshold)
        cls.opts = ["MODEL.CENTERTRACK.FUSION_ZERO_INIT", "False"]
        cls.opts += ["MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0", "TEST.DETECTIONS_PER_IMAGE", "10"]
        cls.model = _model(TRACK_CONFIG, *cls.opts)
        # untrained sizes are ~0 and Detectron2's postprocessing drops empty boxes: 4-cell boxes
        torch.nn.init.constant_(cls.model.head.branches["size"][-1].bias, 4.0)
        cls.inputs = [
            {
                "image": _symmetric_image(64, 64, seed=1),
                "prev_image": _symmetric_image(64, 64, seed=2),
                "prev_boxes": torch.tensor([[8.0, 10, 21, 30], [43, 10, 56, 30]]),
                "height": 96,
                "width": 96,
            }
        ]

    def test_flip_commutes_with_mirroring_the_pair(self):
        # flip-merged outputs of a mirrored pair (image, previous image, previous boxes) are the
        # mirror of those of the pair: only if the previous frame is flipped with the image
        tta = _tta(self.model, TRACK_CONFIG, *self.opts, "TEST.AUG.MIN_SIZES", "()")
        (x,) = self.inputs
        # centres 14.5 and 49.5 fall in pixels 14 and 63 - 14 of the 64 px wide image
        pair = {"image": x["image"][..., :32].repeat(1, 1, 2)}
        pair["prev_image"] = x["prev_image"][..., :32].repeat(1, 1, 2)
        pair["prev_boxes"] = torch.tensor([[8.0, 10, 21, 30]])
        mirrored = {"image": pair["image"].flip(-1), "prev_image": pair["prev_image"].flip(-1)}
        mirrored["prev_boxes"] = torch.tensor([[43.0, 10, 56, 30]])
        with torch.no_grad():
            outputs = []
            for inputs in ([pair], [mirrored]):
                images = self.model.preprocess_image(inputs)
                outputs.append(tta.predict(*self.model.network_inputs(inputs, images)))
            plain = self.model.run_network(
                *self.model.network_inputs([pair], self.model.preprocess_image([pair]))
            )
            (out,) = tta(self.inputs)
        merged, of_mirror = outputs
        d, back = merged["displacement"], of_mirror["displacement"].flip(-1)
        torch.testing.assert_close(d[:, 0], -back[:, 0], rtol=0, atol=1e-6)  # x mirrored
        torch.testing.assert_close(d[:, 1], back[:, 1], rtol=0, atol=1e-6)
        torch.testing.assert_close(merged["heatmap"], of_mirror["heatmap"].flip(-1))
        p = plain["displacement"]
        self.assertGreater((d - p).abs().max().item(), 1e-3)  # the flip changed the outputs
        inst = out["instances"]
        self.assertEqual(inst.image_size, (96, 96))
        self.assertEqual(inst.pred_displacements.shape, (len(inst), 2))

    def test_a_scale_is_the_model_on_the_resized_pair(self):
        tta = _tta(
            self.model, TRACK_CONFIG, *self.opts, "TEST.AUG.FLIP", "False", "TEST.AUG.MIN_SIZES",
            "(32,)",
        )  # fmt: skip
        (x,) = self.inputs
        resized = {
            "image": resize_image(x["image"], (32, 32)),
            "prev_image": resize_image(x["prev_image"], (32, 32)),
            "prev_boxes": x["prev_boxes"] / 2,
            "height": 96,
            "width": 96,
        }
        with torch.no_grad():
            ref = self.model([resized])[0]["instances"]
            out = tta(self.inputs)[0]["instances"]
            without_prev = self.model([{"image": resized["image"], "height": 96, "width": 96}])
        self.assertGreater(len(ref), 0)
        for field in ("pred_boxes", "scores", "pred_classes", "pred_displacements"):
            a, b = ref.get(field), out.get(field)
            a, b = getattr(a, "tensor", a), getattr(b, "tensor", b)
            self.assertTrue(torch.equal(a, b), field)
        self.assertFalse(torch.equal(ref.scores, without_prev[0]["instances"].scores))


if __name__ == "__main__":
    unittest.main()
