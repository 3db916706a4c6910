"""Detectron2 itself works in this install: one of its model-zoo models trains, evaluates,
predicts and draws on CPU, and its C++ ops, when missing, fail with a message that says how to
get them."""

import json
import os
import tempfile
import unittest

import cv2
import detectron2._C
import numpy as np
import torch
from detectron2 import model_zoo
from detectron2.config import get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import register_coco_instances
from detectron2.engine import DefaultPredictor, DefaultTrainer, hooks
from detectron2.evaluation import COCOEvaluator
from detectron2.layers import nms_rotated
from detectron2.structures import Instances, RotatedBoxes, pairwise_iou_rotated
from detectron2.utils.visualizer import Visualizer

from centernet_d2.data import SHAPE_CLASSES, generate_shapes_dataset

# A real build's _C is a compiled extension; the pure-Python stand-in carries FULL_BUILD_HINT.
PURE_PYTHON_D2 = not detectron2._C.__file__.endswith((".so", ".pyd")) and hasattr(
    detectron2._C, "FULL_BUILD_HINT"
)


class _Trainer(DefaultTrainer):
    def build_hooks(self):
        # The test evaluates once, explicitly, instead of also after training.
        return [h for h in super().build_hooks() if not isinstance(h, hooks.EvalHook)]

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or os.path.join(cfg.OUTPUT_DIR, "inference")
        return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)


class TestModelZooRetinaNet(unittest.TestCase):
    def test_train_eval_predict_draw(self):
        torch.manual_seed(0)
        with tempfile.TemporaryDirectory() as tmp:
            train, val = (f"d2_install_test_{split}_{os.getpid()}" for split in ("train", "val"))
            for name, split, n, seed in ((train, "train", 6, 0), (val, "val", 4, 1)):
                json_file = generate_shapes_dataset(tmp, split, n, seed, 128, max_size=64)
                register_coco_instances(name, {}, json_file, os.path.join(tmp, split))
            try:
                self._run(tmp, train, val)
            finally:
                for name in (train, val):
                    DatasetCatalog.remove(name)
                    MetadataCatalog.remove(name)

    def _run(self, tmp, train, val):
        cfg = get_cfg()
        cfg.merge_from_file(model_zoo.get_config_file("COCO-Detection/retinanet_R_50_FPN_1x.yaml"))
        cfg.MODEL.WEIGHTS = ""
        cfg.MODEL.DEVICE = "cpu"
        cfg.MODEL.RESNETS.DEPTH = 18
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
        cfg.MODEL.RETINANET.NUM_CLASSES = len(SHAPE_CLASSES)
        # Randomly initialised scores sit near the 0.01 prior: keep them, so COCOeval gets boxes.
        cfg.MODEL.RETINANET.SCORE_THRESH_TEST = 0.0
        cfg.TEST.DETECTIONS_PER_IMAGE = 20
        cfg.INPUT.MIN_SIZE_TRAIN = (128,)
        cfg.INPUT.MAX_SIZE_TRAIN = 128
        cfg.INPUT.MIN_SIZE_TEST = 128
        cfg.INPUT.MAX_SIZE_TEST = 128
        cfg.DATASETS.TRAIN = (train,)
        cfg.DATASETS.TEST = (val,)
        cfg.DATALOADER.NUM_WORKERS = 0
        cfg.SOLVER.IMS_PER_BATCH = 2
        cfg.SOLVER.BASE_LR = 0.001
        cfg.SOLVER.MAX_ITER = 2
        cfg.SOLVER.STEPS = ()
        cfg.SOLVER.WARMUP_ITERS = 0
        cfg.SOLVER.CHECKPOINT_PERIOD = 100
        cfg.OUTPUT_DIR = os.path.join(tmp, "output")
        cfg.SEED = 0
        os.makedirs(cfg.OUTPUT_DIR)

        trainer = _Trainer(cfg)
        trainer.resume_or_load(resume=False)
        trainer.train()
        self.assertEqual(trainer.iter, 2)
        final = os.path.join(cfg.OUTPUT_DIR, "model_final.pth")
        self.assertTrue(os.path.isfile(final))
        metrics_file = os.path.join(cfg.OUTPUT_DIR, "metrics.json")
        with open(metrics_file) as f:
            metrics = [json.loads(line) for line in f if line.strip()]
        self.assertEqual(max(m["iteration"] for m in metrics), 1)  # iterations 0 and 1
        self.assertIn("loss_cls", metrics[-1])

        results = _Trainer.test(cfg, trainer.model)
        self.assertIn("bbox", results)
        ap = results["bbox"]["AP"]
        self.assertTrue(0.0 <= ap <= 100.0, ap)  # a number: COCOeval ran on real detections

        cfg.MODEL.WEIGHTS = final
        predictor = DefaultPredictor(cfg)
        image = cv2.imread(os.path.join(tmp, "val", "000001.jpg"))
        self.assertEqual(image.shape, (128, 128, 3))
        instances = predictor(image)["instances"].to("cpu")
        self.assertIsInstance(instances, Instances)
        self.assertTrue(instances.has("pred_boxes"))
        self.assertEqual(instances.image_size, (128, 128))
        self.assertGreater(len(instances), 0)

        vis = Visualizer(image[:, :, ::-1], MetadataCatalog.get(val), scale=1.0)
        drawn = vis.draw_instance_predictions(instances[:5]).get_image()
        self.assertIsInstance(drawn, np.ndarray)
        self.assertEqual(drawn.shape, (128, 128, 3))
        self.assertEqual(drawn.dtype, np.uint8)


@unittest.skipUnless(PURE_PYTHON_D2, "Detectron2 here is a full build with its C++ ops")
class TestCppOpsUnavailable(unittest.TestCase):
    def assert_clear(self, cm):
        msg = str(cm.exception)
        self.assertIn("C++ op", msg)
        self.assertIn("not available", msg)
        self.assertIn("full build", msg)
        self.assertRegex(msg, "from source|from its GitHub repository")
        self.assertIn("tools/setup_env.sh", msg)

    def test_nms_rotated(self):
        with self.assertRaises(RuntimeError) as cm:
            nms_rotated(torch.rand(3, 5), torch.rand(3), 0.5)
        self.assert_clear(cm)
        self.assertIn("nms_rotated", str(cm.exception))

    def test_pairwise_iou_rotated(self):
        boxes = RotatedBoxes(torch.tensor([[5.0, 5.0, 4.0, 2.0, 30.0], [6.0, 5.0, 3.0, 3.0, 0.0]]))
        with self.assertRaises(RuntimeError) as cm:
            pairwise_iou_rotated(boxes, boxes)
        self.assert_clear(cm)
        self.assertIn("box_iou_rotated", str(cm.exception))
