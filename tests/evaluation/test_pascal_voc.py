"""PascalVOCEvaluator: Detectron2's VOC AP, averaged over the classes present in the split."""

import os
import tempfile
import unittest

from detectron2.data import DatasetCatalog, MetadataCatalog

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


class TestMessyFolder(unittest.TestCase):
    """A folder the loader accepts is scored as the loader read it: class names with spaces
    around them, blank lines and a second column in the split file, flags written "0.0"."""

    def test_evaluator_reads_what_the_loader_accepted(self):
        with tempfile.TemporaryDirectory() as tmp:
            voc = write_helmet_voc(os.path.join(tmp, "helmet"), stray_label=False)
            ids = voc["ids"]["trainval"]
            for fileid in ids:
                path = os.path.join(voc["dir"], "Annotations", fileid + ".xml")
                text = open(path).read()
                text = text.replace("<name>hat</name>", "<name> hat\n</name>")
                text = text.replace("<truncated>0</truncated>", "<truncated>0.0</truncated>")
                text = text.replace("<difficult>0</difficult>", "<difficult>0.0</difficult>")
                text = text.replace("<difficult>1</difficult>", "<difficult> 1 </difficult>")
                with open(path, "w") as f:
                    f.write(text)
            with open(os.path.join(voc["dir"], "ImageSets", "Main", "trainval.txt"), "w") as f:
                f.write(
                    "\n".join(f"{i}  1" for i in ids[:6]) + "\n\n" + "\n".join(ids[6:]) + "\n\n"
                )
            register_voc_dataset("voc_messy", voc["dir"], "trainval")
            try:
                dicts = load_voc_folder(voc["dir"], "trainval", ["hat", "person"])
                self.assertEqual(len(dicts), 12)
                names = {a["category_id"] for d in dicts for a in d["annotations"]}
                self.assertEqual(names, {0, 1})  # " hat" is hat
                self.assertEqual(sum(a["difficult"] for d in dicts for a in d["annotations"]), 1)
                evaluator = PascalVOCEvaluator("voc_messy")
                evaluator.reset()
                evaluator.process(*_outputs(dicts))
                bbox = evaluator.evaluate()["bbox"]
            finally:
                DatasetCatalog.remove("voc_messy")
                MetadataCatalog.remove("voc_messy")
        # every object the loader read detected exactly: both classes at AP 100
        self.assertAlmostEqual(bbox["AP50-hat"], 100.0, places=4)
        self.assertAlmostEqual(bbox["AP50-person"], 100.0, places=4)
        self.assertAlmostEqual(bbox["AP"], 100.0, places=4)

    def test_flag_that_is_not_a_number(self):
        with tempfile.TemporaryDirectory() as tmp:
            voc = write_helmet_voc(os.path.join(tmp, "helmet"), stray_label=False)
            path = os.path.join(voc["dir"], "Annotations", "000013.xml")
            text = (
                open(path)
                .read()
                .replace("<truncated>0</truncated>", "<truncated>no</truncated>", 1)
            )
            with open(path, "w") as f:
                f.write(text)
            with self.assertRaisesRegex(ValueError, "000013.xml: <truncated> is 'no'"):
                load_voc_folder(voc["dir"], "test", ["hat", "person"])


if __name__ == "__main__":
    unittest.main()
