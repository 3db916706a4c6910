"""Pascal-VOC folders as real sets lay them out (centernet_d2.data.voc), through the library and
tools/train_net.py: upper-case image endings, a stray label, a test split lacking a class."""

import math
import os
import shutil
import tempfile
import unittest

from detectron2.data import DatasetCatalog, MetadataCatalog

from centernet_d2.data import (
    UnknownLabelsError,
    check_image_files,
    load_voc_folder,
    register_voc_dataset,
    voc_class_names,
)
from tests.common import CONFIG, TINY, run_main, run_tool_process, write_helmet_voc


class TestVOCFolder(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.voc = write_helmet_voc(os.path.join(cls.tmp.name, "helmet"))
        cls.dir = cls.voc["dir"]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_classes_come_from_every_split_sorted(self):
        # the stray "dog" is in trainval only, "person" is missing from test
        self.assertEqual(voc_class_names(self.dir), ["dog", "hat", "person"])
        names = register_voc_dataset("voc_test_only_hat", self.dir, "test")
        self.assertEqual(names, ["dog", "hat", "person"])
        dicts = DatasetCatalog.get("voc_test_only_hat")
        # every test object is a hat: id 1 in the folder's class list, not 0
        self.assertEqual({a["category_id"] for d in dicts for a in d["annotations"]}, {1})

    def test_images_found_whatever_their_ending(self):
        dicts = load_voc_folder(self.dir, "trainval", ["dog", "hat", "person"])
        by_id = {d["image_id"]: d for d in dicts}
        self.assertTrue(by_id["000003"]["file_name"].endswith("000003.JPG"))  # from <filename>
        self.assertTrue(by_id["000004"]["file_name"].endswith("000004.jpeg"))  # no <filename>
        self.assertEqual(check_image_files(dicts), dicts)  # nothing reported missing

    def test_only_a_truly_missing_image_is_reported(self):
        with tempfile.TemporaryDirectory() as tmp:
            folder = os.path.join(tmp, "v")
            shutil.copytree(self.dir, folder)
            os.remove(os.path.join(folder, "JPEGImages", "000007.JPG"))
            dicts = load_voc_folder(folder, "trainval", ["dog", "hat", "person"])
            with self.assertRaises(FileNotFoundError) as e:
                check_image_files(dicts)
            message = str(e.exception)
            self.assertIn("000007.JPG: not found", message)  # the name the XML gives
            self.assertIn("1 image files", message)

    def test_boxes_and_difficult_follow_detectron2(self):
        dicts = load_voc_folder(self.dir, "trainval", ["dog", "hat", "person"])
        d = next(d for d in dicts if d["image_id"] == "000002")
        name, (x0, y0, x1, y1), difficult = self.voc["boxes"]["000002"][0]
        a = d["annotations"][0]
        # written as 1-based (x0 + 1, y0 + 1, x1, y1); Detectron2 reads (xmin - 1, ymin - 1, ...)
        self.assertEqual(a["bbox"], [x0, y0, x1, y1])
        self.assertEqual(difficult, 1)
        self.assertEqual(a["difficult"], 1)  # kept for training, as Detectron2 keeps them
        self.assertEqual((d["height"], d["width"]), (128, 160))

    def test_stray_label_named_with_its_file(self):
        with self.assertRaises(UnknownLabelsError) as e:
            register_voc_dataset("voc_stray", self.dir, "trainval", ["hat", "person"])
        self.assertEqual(e.exception.pairs, [(self.voc["stray"], "dog")])
        self.assertIn(f"{self.voc['stray']}: dog", str(e.exception))

    def test_ignore_unknown_drops_the_objects_with_a_warning(self):
        with self.assertLogs("centernet_d2.data.voc", "WARNING") as logs:
            register_voc_dataset("voc_ignore", self.dir, "trainval", ["hat", "person"], True)
        self.assertIn("000005.xml: dog", "\n".join(logs.output))
        dicts = DatasetCatalog.get("voc_ignore")
        n = sum(len(v) for k, v in self.voc["boxes"].items() if k in self.voc["ids"]["trainval"])
        self.assertEqual(sum(len(d["annotations"]) for d in dicts), n - 1)
        self.assertEqual(MetadataCatalog.get("voc_ignore").thing_classes, ["hat", "person"])


class TestVOCTraining(unittest.TestCase):
    """The issue's user story through tools/train_net.py."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.voc = write_helmet_voc(os.path.join(cls.tmp.name, "helmet"))
        cls.opts = TINY + ["SOLVER.MAX_ITER", "3", "MODEL.CENTERNET.NUM_CLASSES", "2"]

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def _argv(self, out, *flags):
        d = self.voc["dir"]
        return (
            ["--config-file", CONFIG, "--voc-dataset", "helmet_train", d, "trainval"]
            + ["--voc-dataset", "helmet_test", d, "test", *flags]
            + self.opts
            + ["DATASETS.TRAIN", "('helmet_train',)", "DATASETS.TEST", "('helmet_test',)"]
            + ["OUTPUT_DIR", out]
        )

    def test_stray_label_stops_with_one_line(self):
        with tempfile.TemporaryDirectory() as out:
            proc = run_tool_process("train_net", *self._argv(out, "--voc-classes", "hat,person"))
        self.assertEqual(proc.returncode, 2, proc.stderr[-2000:])
        self.assertNotIn("Traceback", proc.stderr)
        errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
        self.assertEqual(len(errors), 1, proc.stderr[-2000:])
        self.assertIn("--voc-dataset helmet_train", errors[0])
        self.assertIn(f"{self.voc['stray']}: dog", proc.stderr)
        self.assertIn("--voc-ignore-unknown", proc.stderr)

    def test_without_classes_the_count_error_lists_the_rare_label(self):
        with tempfile.TemporaryDirectory() as out:
            with self.assertRaisesRegex(ValueError, r"dog \(1 object\).*--voc-classes"):
                run_main(self._argv(out))

    def test_ignore_unknown_trains_and_evaluates(self):
        with tempfile.TemporaryDirectory() as out:
            results = run_main(
                self._argv(out, "--voc-classes", "hat,person", "--voc-ignore-unknown")
            )
            self.assertTrue(os.path.isfile(os.path.join(out, "model_final.pth")))
        self.assertIn("AP50", results["bbox"])  # Detectron2's Pascal VOC evaluator

    def test_fixed_label_trains_and_evaluates(self):
        with tempfile.TemporaryDirectory() as tmp:
            fixed = write_helmet_voc(os.path.join(tmp, "fixed"), stray_label=False)
            argv = self._argv(os.path.join(tmp, "out"))
            argv = [fixed["dir"] if a == self.voc["dir"] else a for a in argv]
            results = run_main(argv)
            self.assertEqual(MetadataCatalog.get("helmet_test").thing_classes, ["hat", "person"])
            with open(os.path.join(tmp, "out", "config.yaml")) as f:
                self.assertIn("- hat\n    - person", f.read())  # the run names its classes
        # the test split has no person: AP is averaged over the classes present, not NaN
        self.assertTrue(math.isfinite(results["bbox"]["AP"]), results)
        self.assertIn("AP50-hat", results["bbox"])
        self.assertNotIn("AP50-person", results["bbox"])


if __name__ == "__main__":
    unittest.main()
