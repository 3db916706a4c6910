"""YOLO-format folders (centernet_d2.data.yolo): round trip of boxes, layouts, class names, errors,
and training with COCOEvaluator through tools/train_net.py --yolo-dataset."""

import contextlib
import io
import os
import tempfile
import unittest

import numpy as np
import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import Boxes, BoxMode, Instances

from centernet_d2.data import load_yolo_dataset, register_yolo_dataset, yolo_class_names
from centernet_d2.evaluation.coco import build_coco_evaluator
from tests.common import CONFIG, TINY, random_boxes, run_main, write_yolo_folder

NAMES = ["hat", "person", "vest"]


def _images(seed=0, num=6):
    """name -> ((h, w), [(class, XYXY float box)]), images of several sizes; one without labels."""
    rng = np.random.default_rng(seed)
    images = {}
    for i in range(num):
        size = (96 + 16 * i, 160 - 8 * i)
        boxes = random_boxes(rng, 1 + i % 3, size)
        objects = [(int(rng.integers(0, len(NAMES))), [b + 0.25 for b in box]) for box in boxes]
        images[f"img{i:02d}"] = (size, objects)
    images["background"] = ((64, 64), None)  # no label file: no objects
    return images


class TestYOLOFolder(unittest.TestCase):
    def test_boxes_read_back_equal_the_boxes_written(self):
        images = _images()
        for layout in ("images/split", "split/images"):
            with tempfile.TemporaryDirectory() as root:
                write_yolo_folder(root, "train", images, NAMES, layout=layout)
                dicts = load_yolo_dataset(root, "train")
                self.assertEqual(len(dicts), len(images))
                for d in dicts:
                    name = os.path.splitext(os.path.basename(d["file_name"]))[0]
                    size, objects = images[name]
                    self.assertEqual((d["height"], d["width"]), size)
                    got = [(a["category_id"], a["bbox"]) for a in d["annotations"]]
                    self.assertEqual(len(got), len(objects or []))
                    for (c, box), (gc, gbox) in zip(objects or [], got):
                        self.assertEqual(c, gc)
                        np.testing.assert_allclose(gbox, box, atol=1e-3)  # pixels

    def test_class_names_from_data_yaml_or_classes_txt(self):
        with tempfile.TemporaryDirectory() as root:
            write_yolo_folder(root, "val", _images(num=1), NAMES)
            self.assertEqual(yolo_class_names(root), NAMES)
        with tempfile.TemporaryDirectory() as root:
            write_yolo_folder(root, "val", _images(num=1), NAMES, names_file="classes.txt")
            self.assertEqual(yolo_class_names(root), NAMES)
            os.remove(os.path.join(root, "classes.txt"))
            with self.assertRaisesRegex(FileNotFoundError, "neither data.yaml.*nor classes.txt"):
                yolo_class_names(root)

    def test_polygon_lines_give_their_bounding_box(self):
        with tempfile.TemporaryDirectory() as root:
            write_yolo_folder(root, "train", {"p": ((100, 200), [])}, NAMES)
            with open(os.path.join(root, "labels", "train", "p.txt"), "w") as f:
                f.write("2 0.1 0.2 0.5 0.1 0.3 0.9\n")  # a triangle
            (d,) = load_yolo_dataset(root, "train")
            a = d["annotations"][0]
            self.assertEqual(a["category_id"], 2)
            np.testing.assert_allclose(a["bbox"], [20, 10, 100, 90], atol=1e-6)

    def test_bad_lines_are_named_with_file_and_line(self):
        with tempfile.TemporaryDirectory() as root:
            write_yolo_folder(root, "train", {"a": ((50, 50), [(0, [1, 1, 9, 9])])}, NAMES)
            label = os.path.join(root, "labels", "train", "a.txt")
            with open(label, "a") as f:
                f.write("3 0.5 0.5 0.1 0.1\n")
            with self.assertRaisesRegex(ValueError, f"{label} line 2: class 3 is not in 0..2"):
                load_yolo_dataset(root, "train")
            with open(label, "w") as f:
                f.write("0 0.5 0.5\n")
            with self.assertRaisesRegex(ValueError, f"{label} line 1: expected 'class cx cy w h'"):
                load_yolo_dataset(root, "train")

    def test_missing_split_lists_the_layouts_tried(self):
        with tempfile.TemporaryDirectory() as root:
            write_yolo_folder(root, "train", _images(num=1), NAMES)
            with self.assertRaisesRegex(FileNotFoundError, "images/valid or .*valid/images"):
                register_yolo_dataset("yolo_missing", root, "valid")

    def test_missing_labels_folder_is_named(self):
        with tempfile.TemporaryDirectory() as root:
            write_yolo_folder(root, "train", {"a": ((50, 50), None)}, NAMES)  # no label file
            labels = os.path.join(root, "labels", "train")
            self.assertFalse(os.path.isdir(labels))
            with self.assertRaisesRegex(FileNotFoundError, f"no labels folder {labels}"):
                register_yolo_dataset("yolo_no_labels", root, "train")

    def test_warns_when_most_images_have_no_label_file(self):
        images = {f"u{i}": ((50, 50), None) for i in range(3)}
        images["l"] = ((50, 50), [(0, [1, 1, 9, 9])])
        with tempfile.TemporaryDirectory() as root:
            write_yolo_folder(root, "train", images, NAMES)
            with self.assertLogs("centernet_d2.data.yolo", "WARNING") as logs:
                dicts = load_yolo_dataset(root, "train")
        self.assertEqual(sum(len(d["annotations"]) for d in dicts), 1)
        self.assertIn("3 of 4 images have no label file", logs.output[0])

    def test_pose_lines_give_boxes_and_keypoints(self):
        with tempfile.TemporaryDirectory() as root:
            # box centre (0.5, 0.5) of 0.4 x 0.6; keypoints visible, hidden, not labelled
            _pose_folder(
                root,
                "kpt_shape: [3, 3]\nflip_idx: [0, 2, 1]",
                "1 0.5 0.5 0.4 0.6 0.5 0.3 2 0.4 0.6 1 0.0 0.0 0",
            )
            register_yolo_dataset("yolo_pose", root, "train")
            try:
                (d,) = DatasetCatalog.get("yolo_pose")
                meta = MetadataCatalog.get("yolo_pose")
                self.assertEqual(meta.keypoint_names, ["kp0", "kp1", "kp2"])
                self.assertEqual(meta.keypoint_flip_map, [("kp1", "kp2")])
            finally:
                DatasetCatalog.remove("yolo_pose")
                MetadataCatalog.remove("yolo_pose")
        (a,) = d["annotations"]
        # the box from the first 4 numbers (pixels: x * 200, y * 100), not a polygon of all
        np.testing.assert_allclose(a["bbox"], [60, 20, 140, 80], atol=1e-6)
        np.testing.assert_allclose(a["keypoints"], [100, 30, 2, 80, 60, 1, 0, 0, 0], atol=1e-6)

    def test_pose_line_of_the_wrong_length(self):
        with tempfile.TemporaryDirectory() as root:
            _pose_folder(root, "kpt_shape: [2, 2]", "1 0.5 0.5 0.4 0.6 0.5 0.3")
            with self.assertRaisesRegex(ValueError, "p.txt line 1: .* 2 keypoints of 2 values"):
                load_yolo_dataset(root, "train")


def _pose_folder(root, pose_yaml, line):
    """A YOLO pose folder of one 100 x 200 image "p" whose label file is ``line``, with
    ``pose_yaml`` (kpt_shape, flip_idx) in its data.yaml."""
    write_yolo_folder(root, "train", {"p": ((100, 200), [])}, NAMES)
    with open(os.path.join(root, "data.yaml"), "w") as f:
        f.write(f"names: [a, b, c]\n{pose_yaml}\n")
    with open(os.path.join(root, "labels", "train", "p.txt"), "w") as f:
        f.write(line + "\n")


def _perfect_outputs(dicts, with_keypoints=False):
    """(inputs, outputs) for an evaluator's process: every object the loader read, detected
    exactly with score 1 (and its labelled keypoints)."""
    inputs, outputs = [], []
    for d in dicts:
        annos = d["annotations"]
        inst = Instances((d["height"], d["width"]))
        boxes = [BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS) for a in annos]
        inst.pred_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).view(-1, 4))
        inst.scores = torch.ones(len(annos))
        inst.pred_classes = torch.tensor([a["category_id"] for a in annos], dtype=torch.long)
        if with_keypoints:
            kps = torch.tensor([a["keypoints"] for a in annos], dtype=torch.float32)
            inst.pred_keypoints = kps.view(len(annos), -1, 3)
            inst.pred_keypoints[..., 2] = 1.0
        inputs.append({"image_id": d["image_id"]})
        outputs.append({"instances": inst})
    return inputs, outputs


class TestYOLOEvaluation(unittest.TestCase):
    """COCOEvaluator scores a folder as the loader read it: blank lines, tabs, polygon lines and
    images without a label file; a pose folder's keypoints."""

    def evaluate(self, root, tasks, shift=0.0, oks_sigmas=()):
        name = "yolo_eval_test"
        register_yolo_dataset(name, root, "train")
        try:
            dicts = DatasetCatalog.get(name)
            evaluator = build_coco_evaluator(name, root, "keypoints" in tasks, oks_sigmas)
            evaluator.reset()
            inputs, outputs = _perfect_outputs(dicts, "keypoints" in tasks)
            for out in outputs:
                out["instances"].pred_boxes.tensor[:, 0::2] += shift
            evaluator.process(inputs, outputs)
            with contextlib.redirect_stdout(io.StringIO()):
                return dicts, evaluator.evaluate()
        finally:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)

    def test_boxes_and_polygons(self):
        with tempfile.TemporaryDirectory() as root:
            images = _images(num=4)
            write_yolo_folder(root, "train", images, NAMES)
            # a blank line, a tab-separated box and a polygon (a triangle) added to img01
            path = os.path.join(root, "labels", "train", "img01.txt")
            with open(path, "a") as f:
                f.write("\n2\t0.5\t0.5\t0.2\t0.2\n\n0 0.1 0.1 0.3 0.1 0.2 0.4\n")
            dicts, results = self.evaluate(root, ("bbox",))
            _, shifted = self.evaluate(root, ("bbox",), shift=6.0)
        objects = sum(len(objs or []) for _, objs in images.values())
        self.assertEqual(sum(len(d["annotations"]) for d in dicts), objects + 2)
        (h, w), _ = images["img01"]
        (d,) = [d for d in dicts if d["file_name"].endswith("img01.jpg")]
        np.testing.assert_allclose(d["annotations"][-1]["bbox"][:2], [0.1 * w, 0.1 * h], atol=1e-4)
        self.assertAlmostEqual(results["bbox"]["AP"], 100.0, places=4)
        self.assertLess(shifted["bbox"]["AP"], 90.0)

    def test_pose_keypoints(self):
        with tempfile.TemporaryDirectory() as root:
            _pose_folder(
                root,
                "kpt_shape: [3, 3]\nflip_idx: [0, 2, 1]",
                "1 0.5 0.5 0.4 0.6 0.5 0.3 2 0.4 0.6 1 0.0 0.0 0",
            )
            _, results = self.evaluate(root, ("bbox", "keypoints"), oks_sigmas=[0.067] * 3)
        self.assertAlmostEqual(results["bbox"]["AP"], 100.0, places=4)
        self.assertAlmostEqual(results["keypoints"]["AP"], 100.0, places=4)


class TestYOLOTraining(unittest.TestCase):
    def test_trains_and_evaluates_with_coco_evaluator(self):
        with tempfile.TemporaryDirectory() as root:
            write_yolo_folder(os.path.join(root, "set"), "train", _images(num=8), NAMES)
            argv = ["--config-file", CONFIG, "--yolo-dataset", "yolo_tr", f"{root}/set", "train"]
            argv += TINY + ["SOLVER.MAX_ITER", "3", "MODEL.CENTERNET.NUM_CLASSES", "3"]
            argv += ["DATASETS.TRAIN", "('yolo_tr',)", "DATASETS.TEST", "('yolo_tr',)"]
            argv += ["OUTPUT_DIR", f"{root}/out"]
            results = run_main(argv)
            self.assertTrue(os.path.isfile(f"{root}/out/inference/yolo_tr_coco_format.json"))
        self.assertIn("AP", results["bbox"])
        self.assertEqual(MetadataCatalog.get("yolo_tr").thing_classes, NAMES)
        self.assertIn("yolo_tr", DatasetCatalog.list())


if __name__ == "__main__":
    unittest.main()
