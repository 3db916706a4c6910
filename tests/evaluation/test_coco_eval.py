"""COCOEvaluator's fast path (Detectron2's compiled COCOeval, or faster-coco-eval's in the
pure-Python install) gives pycocotools' numbers: crowd boxes, empty images, classes with
objects but no detections and detections of classes without objects."""

import tempfile
import unittest

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.evaluation import COCOEvaluator
from detectron2.evaluation.coco_evaluation import _evaluate_predictions_on_coco
from detectron2.structures import BoxMode
from pycocotools.coco import COCO

from tests.common import evaluator_inputs

NAME = "fast_eval_generated"
CLASSES = ["a", "b", "c", "d"]  # "c": objects, never detected; "d": detected, no objects


def generated_set(seed=0, num_images=60):
    """(dataset dicts, per image (boxes, scores, classes) detections)."""
    rng = np.random.default_rng(seed)
    dicts, detections = [], []
    for i in range(num_images):
        annos, det = [], []
        for _ in range(0 if i % 7 == 0 else rng.integers(1, 6)):  # every 7th image empty
            x, y = rng.uniform(0, 140, 2)
            w, h = rng.uniform(4, 60, 2)
            cls = int(rng.integers(0, 3))
            crowd = int(rng.random() < 0.1)
            annos.append(
                {"bbox": [x, y, w, h], "bbox_mode": BoxMode.XYWH_ABS, "category_id": cls,
                 "iscrowd": crowd}
            )  # fmt: skip
            if cls != 2 and rng.random() < 0.8:  # class "c" is never detected
                jitter = rng.normal(0, 3, 4)
                det.append(([x + jitter[0], y + jitter[1], x + w + jitter[2], y + h + jitter[3]],
                            float(rng.random()), cls))  # fmt: skip
        for _ in range(rng.integers(0, 3)):  # false positives, some of class "d"
            x, y = rng.uniform(0, 150, 2)
            det.append(([x, y, x + 20, y + 20], float(rng.random()), int(rng.choice([0, 1, 3]))))
        dicts.append(
            {"file_name": f"{i}.jpg", "image_id": i, "height": 200, "width": 200,
             "annotations": annos}
        )  # fmt: skip
        detections.append(det)
    return dicts, detections


class TestFastCOCOEval(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dicts, cls.detections = generated_set()
        if NAME in DatasetCatalog.list():
            DatasetCatalog.remove(NAME)
            MetadataCatalog.remove(NAME)
        DatasetCatalog.register(NAME, lambda: cls.dicts)
        MetadataCatalog.get(NAME).set(thing_classes=CLASSES)
        cls.tmp = tempfile.TemporaryDirectory()

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_the_set_has_what_the_comparison_needs(self):
        annos = [a for d in self.dicts for a in d["annotations"]]
        self.assertTrue(any(a["iscrowd"] for a in annos))
        self.assertTrue(any(not d["annotations"] for d in self.dicts))
        self.assertIn(2, {a["category_id"] for a in annos})
        self.assertNotIn(2, {c for det in self.detections for _, _, c in det})
        self.assertIn(3, {c for det in self.detections for _, _, c in det})

    def test_coco_evaluator_fast_equals_official(self):
        results = {}
        for fast in (True, False):
            evaluator = COCOEvaluator(NAME, output_dir=self.tmp.name, use_fast_impl=fast)
            evaluator.reset()
            evaluator.process(*evaluator_inputs(self.dicts, self.detections))
            results[fast] = evaluator.evaluate()["bbox"]
        self.assertEqual(set(results[True]), set(results[False]))
        for key, official in results[False].items():
            if np.isnan(official):  # a class without objects
                self.assertTrue(np.isnan(results[True][key]), key)
            else:  # percent: 1e-4 of AP is 1e-2 percent
                self.assertAlmostEqual(results[True][key], official, delta=1e-2, msg=key)
        self.assertGreater(results[False]["AP50"], 10)  # a set where AP means something

    def test_cocoeval_stats_and_precision_arrays(self):
        evaluator = COCOEvaluator(NAME, output_dir=self.tmp.name)
        evaluator.reset()
        evaluator.process(*evaluator_inputs(self.dicts, self.detections))
        results = [p for x in evaluator._predictions for p in x["instances"]]
        gt = COCO(MetadataCatalog.get(NAME).json_file)
        for r in results:  # contiguous ids -> the json's category ids, as the evaluator does
            r["category_id"] = r["category_id"] + 1
        evals = [_evaluate_predictions_on_coco(gt, results, "bbox", use_fast_impl=f) for f in
                 (True, False)]  # fmt: skip
        np.testing.assert_allclose(evals[0].stats[:12], evals[1].stats[:12], atol=1e-4)
        np.testing.assert_allclose(
            evals[0].eval["precision"], evals[1].eval["precision"], atol=1e-4
        )


if __name__ == "__main__":
    unittest.main()
