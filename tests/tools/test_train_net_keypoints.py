"""tools/train_net.py with keypoints: a generated COCO-keypoints json (per-class keypoint sets,
a class without any) through --coco-dataset, training, evaluation (box and keypoint AP),
--eval-only and test-time augmentation; and the errors of keypoint settings."""

import json
import math
import os
import tempfile
import unittest

import pytest

from centernet_d2.data import register_coco_dataset
from centernet_d2.engine.defaults import fill_keypoint_settings
from centernet_d2.evaluation import keypoint_oks_sigmas
from tests.common import TrainedBoxesRun, model_cfg, run_main, write_boxes_coco

KEYPOINT_CONFIG = os.path.join(
    os.path.dirname(__file__), "..", "..", "configs", "CPU",
    "centernet_keypoints_MobileNetV3_small_FPN_shapes.yaml",
)  # fmt: skip


@pytest.mark.slow
class TestKeypointTraining(unittest.TestCase):
    """Train on a set the model learns: squares, one class with two keypoints (a left / right
    pair, swapped by the training's flips), one without."""

    @classmethod
    def setUpClass(cls):
        extra = ["MODEL.CENTERNET.NUM_CLASSES", "2", "MODEL.CENTERNET.NUM_KEYPOINTS", "2"]
        extra += ["TEST.KEYPOINT_OKS_SIGMAS", "(0.067, 0.067)"]
        # the shapes' keypoint sets out: training takes this set's
        extra += ["MODEL.CENTERNET.CLASS_KEYPOINTS", "[]"]
        extra += ["MODEL.CENTERNET.KEYPOINT_FLIP_INDICES", "[]"]
        cls.trained = TrainedBoxesRun(
            KEYPOINT_CONFIG, "kp_boxes", extra, keypoints=True, iterations=200
        )
        cls.argv, cls.out, cls.results = cls.trained.argv, cls.trained.out, cls.trained.results

    @classmethod
    def tearDownClass(cls):
        cls.trained.cleanup()

    def test_keypoint_ap_next_to_box_ap(self):
        self.assertIn("AP", self.results["bbox"])
        # the analysis has the keypoints' precision-recall curves too (OKS of the set's sigmas)
        folder = os.path.join(self.out, "inference", "kp_boxes")
        self.assertTrue(os.path.isfile(os.path.join(folder, "pr_curves_keypoints.png")))
        self.assertTrue(math.isfinite(self.results["keypoints"]["AP50"]))
        # learning, if not yet well in 200 iterations: the keypoint losses fall to under half
        # their start (to 0.25 and 0.09 of it on this project's CPU machine; keypoint AP after a
        # few hundred iterations varies with the machine)
        with open(os.path.join(self.out, "metrics.json")) as f:
            rows = [json.loads(line) for line in f if "loss_keypoints" in line]
        for key in ("loss_keypoints", "loss_keypoint_heatmap"):
            self.assertLess(rows[-1][key], rows[0][key] / 2, key)
        self.assertTrue(math.isnan(self.results["keypoints"]["AP-plain"]))  # no keypoints
        # the run's config carries what training filled from the dataset
        cfg = model_cfg(os.path.join(self.out, "config.yaml"))
        self.assertEqual(cfg.MODEL.CENTERNET.CLASS_KEYPOINTS, [[0, 1], []])
        self.assertEqual(cfg.MODEL.CENTERNET.KEYPOINT_FLIP_INDICES, [1, 0])

    def test_eval_only_gives_the_same_numbers(self):
        weights = os.path.join(self.out, "model_final.pth")
        with tempfile.TemporaryDirectory() as out:
            argv = ["--eval-only"] + self.argv + ["MODEL.WEIGHTS", weights, "OUTPUT_DIR", out]
            results = run_main(argv + ["TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "()"])
        for task in ("bbox", "keypoints"):
            for key in ("AP", "AP50", "AP75"):
                self.assertAlmostEqual(results[task][key], self.results[task][key], places=6)
        # with flip test-time augmentation (keypoint heatmaps averaged with left / right swapped)
        self.assertIn("AP", results["keypoints_TTA"])


class TestKeypointSettings(unittest.TestCase):
    """The keypoint layout comes from the training set, as the class names do."""

    def test_taken_from_the_training_set(self):
        cfg = model_cfg(KEYPOINT_CONFIG, "DATASETS.TRAIN", "('shapes_val',)")
        c = cfg.MODEL.CENTERNET
        c.NUM_KEYPOINTS, c.CLASS_KEYPOINTS, c.KEYPOINT_FLIP_INDICES = 0, [], []
        cfg.TEST.KEYPOINT_OKS_SIGMAS = []
        fill_keypoint_settings(cfg)
        self.assertEqual(c.NUM_KEYPOINTS, 16)
        self.assertEqual(c.CLASS_KEYPOINTS[:2], [[], [0, 1, 2]])
        # the flip map swaps left and right: triangle_right (1) <-> triangle_left (2)
        self.assertEqual(c.KEYPOINT_FLIP_INDICES[:3], [0, 2, 1])
        self.assertEqual(list(cfg.TEST.KEYPOINT_OKS_SIGMAS), [0.067] * 16)

    def test_another_training_set_replaces_the_configs_layout(self):
        with tempfile.TemporaryDirectory() as root:
            json_file = write_boxes_coco(root, keypoints=True)
            register_coco_dataset("kp_boxes_other", json_file, os.path.join(root, "images"))
            # the shapes config's 16-keypoint layout, a 2-keypoint set: one warning, no error
            cfg = model_cfg(KEYPOINT_CONFIG, "DATASETS.TRAIN", "('kp_boxes_other',)")
            with self.assertLogs("centernet_d2.engine.defaults", "WARNING") as logs:
                fill_keypoint_settings(cfg)
            c = cfg.MODEL.CENTERNET
            self.assertEqual((c.NUM_KEYPOINTS, c.CLASS_KEYPOINTS), (2, [[0, 1], []]))
            self.assertEqual(c.KEYPOINT_FLIP_INDICES, [1, 0])
            self.assertEqual(len(cfg.TEST.KEYPOINT_OKS_SIGMAS), 2)
            replaced = [m for m in logs.output if "replace the config's" in m]
            self.assertEqual(len(replaced), 1)
            self.assertIn("MODEL.CENTERNET.NUM_KEYPOINTS 16 -> 2", replaced[0])
            # for testing, the model's keypoints must be the set's
            test_cfg = model_cfg(KEYPOINT_CONFIG, "DATASETS.TEST", "('kp_boxes_other',)")
            with self.assertRaisesRegex(ValueError, "NUM_KEYPOINTS 16, the dataset's 2"):
                fill_keypoint_settings(test_cfg, training=False)
            json_file = write_boxes_coco(root)
            register_coco_dataset("kp_boxes_only", json_file, os.path.join(root, "images"))
            boxes_only = model_cfg(KEYPOINT_CONFIG, "DATASETS.TRAIN", "('kp_boxes_only',)")
            with self.assertRaisesRegex(ValueError, "has no keypoints"):
                fill_keypoint_settings(boxes_only)
            with self.assertRaisesRegex(ValueError, "has 3 values"):
                keypoint_oks_sigmas("kp_boxes_other", [0.1, 0.1, 0.1])


if __name__ == "__main__":
    unittest.main()
