"""tools/train_net.py end to end on the built-in data and on user datasets, on the CPU."""

import json
import os
import subprocess
import sys
import tempfile
import unittest
import xml.etree.ElementTree as ET

import pytest
import torch

from centernet_d2.data import generate_shapes_dataset, register_voc_dataset
from tests.common import CONFIG, ROOT, TINY, TrainedBoxesRun, run_main, write_voc_annotation


def metrics_iterations(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line).get("iteration") for line in f if line.strip()]


class TestBuiltinTraining(unittest.TestCase):
    """Train 20 iterations on shapes_train, then --eval-only and --resume."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.out = cls.tmp.name
        cls.results = run_main(["--config-file", CONFIG, "OUTPUT_DIR", cls.out] + TINY)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_checkpoint_metrics_and_results(self):
        self.assertTrue(os.path.isfile(os.path.join(self.out, "model_final.pth")))
        self.assertIn(19, metrics_iterations(self.out))
        self.assertIn("AP", self.results["bbox"])
        with open(os.path.join(self.out, "eval_results.json")) as f:
            self.assertEqual(json.load(f)["bbox"]["AP"], self.results["bbox"]["AP"])
        self.assertIn("| AP |", open(os.path.join(self.out, "eval_results.md")).read())
        log = open(os.path.join(self.out, "log.txt")).read()
        self.assertIn("eta:", log)  # Detectron2's ETA in the log

    def test_resume_continues_from_the_saved_iteration(self):
        with tempfile.TemporaryDirectory() as out:
            for name in ("model_final.pth", "last_checkpoint"):
                with open(os.path.join(self.out, name), "rb") as src:
                    with open(os.path.join(out, name), "wb") as dst:
                        dst.write(src.read())
            opts = TINY + ["OUTPUT_DIR", out, "SOLVER.MAX_ITER", "23"]
            run_main(["--config-file", CONFIG, "--resume"] + opts)
            log = open(os.path.join(out, "log.txt")).read()
            # started after the checkpoint's iteration 19
            self.assertIn("Starting training from iteration 20", log)
            self.assertIn(22, metrics_iterations(out))
            ckpt = torch.load(os.path.join(out, "model_final.pth"), weights_only=False)
            self.assertEqual(ckpt["iteration"], 22)


@pytest.mark.slow
class TestEvalOnly(unittest.TestCase):
    """Train on a set the model learns (AP > 20), then --eval-only with the final weights."""

    @classmethod
    def setUpClass(cls):
        cls.trained = TrainedBoxesRun(CONFIG, "boxes", ["MODEL.CENTERNET.NUM_CLASSES", "1"])

    @classmethod
    def tearDownClass(cls):
        cls.trained.cleanup()

    def test_the_set_is_learnt(self):
        self.assertGreater(self.trained.results["bbox"]["AP"], 20)

    def test_error_analysis_after_the_evaluation(self):
        folder = os.path.join(self.trained.out, "inference", "boxes")
        for name in ("pr_curves.png", "confusion_matrix.png", "errors.png", "analysis.md"):
            self.assertTrue(os.path.isfile(os.path.join(folder, name)), name)
        with open(os.path.join(folder, "analysis.json")) as f:
            report = json.load(f)
        # the curves' area is the AP the evaluation printed (one class)
        self.assertAlmostEqual(report["ap"][0], self.trained.results["bbox"]["AP"], places=4)
        errors = report["errors"]
        self.assertEqual(errors["objects"], 16)  # 8 images x 2 squares
        # each object is found, missed, or claimed by a localisation / class / both error
        claimed = errors["localization"] + errors["class"] + errors["both"]
        self.assertGreaterEqual(errors["true_positive"] + errors["missed"] + claimed, 16)
        self.assertLessEqual(errors["true_positive"] + errors["missed"], 16)

    def test_eval_only_gives_the_same_ap(self):
        run = self.trained
        with tempfile.TemporaryDirectory() as out:
            argv = ["--eval-only"] + run.argv + ["MODEL.WEIGHTS", run.weights, "OUTPUT_DIR", out]
            results = run_main(argv + ["TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "()"])
        for key in ("AP", "AP50", "AP75"):
            self.assertAlmostEqual(results["bbox"][key], run.results["bbox"][key], places=6)
        # and with test-time augmentation (flip), reported next to it
        self.assertGreater(results["bbox_TTA"]["AP"], 20)


def write_voc(coco_json, image_root, voc_dir, split):
    """A Pascal-VOC-layout copy of a COCO-format dataset (the layout of many small real sets)."""
    coco = json.load(open(coco_json))
    names = {c["id"]: c["name"] for c in coco["categories"]}
    os.makedirs(os.path.join(voc_dir, "JPEGImages"))
    os.makedirs(os.path.join(voc_dir, "ImageSets", "Main"))
    ids = []
    for img in coco["images"]:
        fileid = os.path.splitext(img["file_name"])[0]
        ids.append(fileid)
        os.link(
            os.path.join(image_root, img["file_name"]),
            os.path.join(voc_dir, "JPEGImages", fileid + ".jpg"),
        )
        objects = [
            (names[a["category_id"]], _xyxy(a["bbox"]), 0)
            for a in coco["annotations"]
            if a["image_id"] == img["id"]
        ]
        path = os.path.join(voc_dir, "Annotations", fileid + ".xml")
        write_voc_annotation(path, objects, (img["height"], img["width"]))
    with open(os.path.join(voc_dir, "ImageSets", "Main", split + ".txt"), "w") as f:
        f.write("\n".join(ids) + "\n")


def _xyxy(xywh):
    x, y, w, h = xywh
    return [round(x), round(y), round(x + w), round(y + h)]


class TestUserDatasets(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = cls.tmp.name
        cls.json = generate_shapes_dataset(root, "mine", num_images=12, seed=5, image_size=128)
        cls.images = os.path.join(root, "mine")
        cls.voc = os.path.join(root, "voc")
        write_voc(cls.json, cls.images, cls.voc, "trainval")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_coco_dataset_trains_and_evaluates(self):
        with tempfile.TemporaryDirectory() as out:
            results = run_main(
                ["--config-file", CONFIG, "--coco-dataset", "my_coco", self.json, self.images]
                + TINY
                + ["DATASETS.TRAIN", "('my_coco',)", "DATASETS.TEST", "('my_coco',)"]
                + ["SOLVER.MAX_ITER", "3", "OUTPUT_DIR", out]
            )
            self.assertIn("AP", results["bbox"])
            self.assertTrue(os.path.isfile(os.path.join(out, "model_final.pth")))

    def test_class_count_mismatch_stops_before_training(self):
        with tempfile.TemporaryDirectory() as out:
            with self.assertRaisesRegex(ValueError, r"NUM_CLASSES is 3 .* has 5 categories"):
                run_main(
                    ["--config-file", CONFIG, "--coco-dataset", "my_coco3", self.json, self.images]
                    + TINY
                    + ["DATASETS.TRAIN", "('my_coco3',)", "MODEL.CENTERNET.NUM_CLASSES", "3"]
                    + ["OUTPUT_DIR", out]
                )
            self.assertFalse(os.path.exists(os.path.join(out, "metrics.json")))

    def test_missing_json_is_named(self):
        with self.assertRaisesRegex(FileNotFoundError, "nothere.json"):
            run_main(["--config-file", CONFIG, "--coco-dataset", "x", "nothere.json", "."])

    def test_voc_annotation_errors_name_the_file(self):
        bad = os.path.join(self.tmp.name, "voc_bad")
        write_voc(self.json, self.images, bad, "trainval")
        first = sorted(os.listdir(os.path.join(bad, "Annotations")))[0]
        path = os.path.join(bad, "Annotations", first)
        tree = ET.parse(path)
        obj = tree.find("object")
        obj.remove(obj.find("pose"))
        tree.write(path)
        with self.assertRaisesRegex(ValueError, f"{first}.*pose"):
            register_voc_dataset("bad_voc", bad, "trainval")
        with self.assertRaisesRegex(FileNotFoundError, "ImageSets/Main/val.txt.*trainval"):
            register_voc_dataset("bad_voc", self.voc, "val")
        with self.assertRaisesRegex(ValueError, r"object\(s\) with labels outside the classes"):
            register_voc_dataset("bad_voc", self.voc, "trainval", ["circle"])

    def test_voc_dataset_trains_and_evaluates(self):
        with tempfile.TemporaryDirectory() as out:
            results = run_main(
                ["--config-file", CONFIG, "--voc-dataset", "my_voc", self.voc, "trainval"]
                + TINY
                + ["DATASETS.TRAIN", "('my_voc',)", "DATASETS.TEST", "('my_voc',)"]
                + ["SOLVER.MAX_ITER", "3", "OUTPUT_DIR", out]
            )
        self.assertIn("AP50", results["bbox"])
        from detectron2.data import MetadataCatalog

        # class names read from the XML files, sorted
        self.assertEqual(
            MetadataCatalog.get("my_voc").thing_classes,
            ["circle", "cross", "rectangle", "star", "triangle"],
        )


@pytest.mark.slow
class TestTwoProcesses(unittest.TestCase):
    def test_gloo_training(self):
        with tempfile.TemporaryDirectory() as out:
            cmd = [sys.executable, os.path.join(ROOT, "tools", "train_net.py")]
            cmd += ["--config-file", CONFIG, "--num-gpus", "2", "--dist-url", "auto"]
            cmd += TINY + ["SOLVER.MAX_ITER", "5", "DATASETS.TEST", "()", "OUTPUT_DIR", out]
            env = dict(os.environ, OMP_NUM_THREADS="1")
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
            self.assertEqual(proc.returncode, 0, proc.stderr[-3000:])
            log = open(os.path.join(out, "log.txt")).read()
            self.assertIn("World size: 2", log)
            self.assertTrue(os.path.isfile(os.path.join(out, "model_final.pth")))
            self.assertIn(4, metrics_iterations(out))
