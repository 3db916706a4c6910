"""PascalVOCEvaluator: Detectron2's VOC AP, averaged over the classes present in the split."""

import os
import tempfile
import unittest

from centernet_d2.data import load_voc_folder, register_voc_dataset
from centernet_d2.evaluation import PascalVOCEvaluator
from tests.common import evaluator_inputs, write_helmet_voc


def _outputs(dicts, shift=0.0):
    """Each ground-truth box as a detection of score 1 (boxes moved right by ``shift`` px)."""
    detections = [
        [([x0 + shift, y0, x1 + shift, y1], 1.0, a["category_id"]) for a in d["annotations"]
         for x0, y0, x1, y1 in [a["bbox"]]]
        for d in dicts
    ]  # fmt: skip
    return evaluator_inputs(dicts, detections)


class TestPascalVOCEvaluator(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.voc = write_helmet_voc(os.path.join(cls.tmp.name, "helmet"), stray_label=False)
        register_voc_dataset("voc_eval_test", cls.voc["dir"], "test")  # hats only

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def _evaluate(self, shift):
        evaluator = PascalVOCEvaluator("voc_eval_test")
        evaluator.reset()
        dicts = load_voc_folder(self.voc["dir"], "test", ["hat", "person"])
        evaluator.process(*_outputs(dicts, shift))
        return evaluator.evaluate()["bbox"]

    def test_perfect_detections_score_100_over_the_present_class(self):
        bbox = self._evaluate(0.0)
        # person has no object in the split: left out of the mean, which is hat's AP alone
        self.assertAlmostEqual(bbox["AP50"], 100.0, places=4)
        self.assertAlmostEqual(bbox["AP"], 100.0, places=4)
        self.assertNotIn("AP50-person", bbox)

    def test_shifted_detections_lose_the_high_iou_thresholds(self):
        # boxes are at least 12 px wide: a 4 px shift keeps IoU >= 8/16 = 0.5 at worst, but
        # drops below 0.95 for every box, so AP50 stays 100 and AP is lower
        bbox = self._evaluate(4.0)
        self.assertAlmostEqual(bbox["AP50"], 100.0, places=4)
        self.assertLess(bbox["AP"], 100.0)


if __name__ == "__main__":
    unittest.main()
