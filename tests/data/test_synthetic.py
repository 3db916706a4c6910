"""centernet_d2.data.synthetic (a split on disk) and centernet_d2.data.builtin (registration)."""

import json
import os
import tempfile
import unittest
from unittest import mock

from detectron2.data import DatasetCatalog, MetadataCatalog

import centernet_d2.data  # noqa: F401  (registers the built-in datasets)
from centernet_d2.data import (
    SHAPE_CLASSES,
    generate_shapes_dataset,
    register_all_shapes,
    shapes_dataset_paths,
)
from centernet_d2.data.builtin import BUILTIN_SHAPES_SPLITS, shapes_keypoint_layout
from centernet_d2.data.shapes_render import GENERATOR_VERSION, SHAPE_KEYPOINTS
from centernet_d2.data.synthetic import ShapesSpec, generate_shapes_split


def _files(root):
    """{relative path: (bytes, mtime_ns)} of every file under root."""
    out = {}
    for dirpath, _, names in os.walk(root):
        for n in names:
            p = os.path.join(dirpath, n)
            with open(p, "rb") as f:
                out[os.path.relpath(p, root)] = (f.read(), os.stat(p).st_mtime_ns)
    return out


class TestShapesGenerator(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def test_same_seed_same_bytes(self):
        ra, rb = os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b")
        a = generate_shapes_dataset(ra, "train", 3, seed=5, image_size=96, max_size=64)
        b = generate_shapes_dataset(rb, "train", 3, seed=5, image_size=96, max_size=64)
        fa, fb = _files(ra), _files(rb)
        self.assertEqual(sorted(fa), sorted(fb))
        self.assertIn(os.path.join("annotations", "train.json"), fa)
        self.assertEqual(len([p for p in fa if p.endswith(".jpg")]), 3)
        for path in fa:
            if not path.endswith(".lock"):
                self.assertEqual(fa[path][0], fb[path][0], path)
        with open(a) as f, open(b) as g:
            self.assertEqual(json.load(f), json.load(g))

    def test_other_seed_other_data(self):
        a = generate_shapes_dataset(self.tmp, "s1", 2, seed=1, image_size=96, max_size=64)
        b = generate_shapes_dataset(self.tmp, "s2", 2, seed=2, image_size=96, max_size=64)
        with open(a) as f, open(b) as g:
            ja, jb = json.load(f), json.load(g)
        self.assertNotEqual(ja["annotations"], jb["annotations"])
        for name in ("000001.jpg", "000002.jpg"):
            with open(os.path.join(self.tmp, "s1", name), "rb") as f:
                with open(os.path.join(self.tmp, "s2", name), "rb") as g:
                    self.assertNotEqual(f.read(), g.read())

    def test_content_constraints(self):
        n, size = 40, 128
        path = generate_shapes_dataset(self.tmp, "val", n, seed=0, image_size=size, max_size=96)
        with open(path) as f:
            coco = json.load(f)
        cats = coco["categories"]
        self.assertGreaterEqual(len(cats), 3)
        self.assertEqual([c["id"] for c in cats], list(range(1, len(cats) + 1)))
        self.assertEqual([c["name"] for c in cats], list(SHAPE_CLASSES))
        self.assertEqual([c["keypoints"] for c in cats], [list(k) for k in SHAPE_KEYPOINTS])
        self.assertEqual(cats[0]["skeleton"], [])  # circle
        self.assertEqual(cats[4]["skeleton"], [[1, 3], [2, 4]])  # cross: the two bars
        self.assertEqual(len(coco["images"]), n)
        per_image = {im["id"]: 0 for im in coco["images"]}
        for im in coco["images"]:
            self.assertEqual((im["height"], im["width"]), (size, size))
            self.assertTrue(os.path.isfile(os.path.join(self.tmp, "val", im["file_name"])))
        for a in coco["annotations"]:
            per_image[a["image_id"]] += 1
            x, y, w, h = a["bbox"]
            self.assertGreaterEqual(max(w, h), 8)
            self.assertLessEqual(max(w, h), 96)
            self.assertGreaterEqual(min(x, y), 0)
            self.assertLessEqual(x + w, size)
            self.assertLessEqual(y + h, size)
            self.assertEqual(a["iscrowd"], 0)
            self.assertGreater(a["area"], 0)
            self.assertLessEqual(a["area"], w * h)
            # keypoints in COCO's convention: continuous position - 0.5, within the box
            kp = a["keypoints"]
            self.assertEqual(len(kp), 3 * len(SHAPE_KEYPOINTS[a["category_id"] - 1]))
            self.assertEqual(a["num_keypoints"], sum(v > 0 for v in kp[2::3]))
            for kx, ky, v in zip(kp[0::3], kp[1::3], kp[2::3]):
                self.assertIn(v, (1, 2))  # shapes lie inside the image
                self.assertTrue(x <= kx + 0.5 <= x + w and y <= ky + 0.5 <= y + h, a)
        self.assertTrue(all(1 <= k <= 8 for k in per_image.values()), per_image)
        # all classes occur, and the task is not one object per image
        self.assertEqual({a["category_id"] for a in coco["annotations"]}, {c["id"] for c in cats})
        self.assertGreater(len(coco["annotations"]), 2 * n)
        ids = [a["id"] for a in coco["annotations"]]
        self.assertEqual(len(set(ids)), len(ids))

    def test_spec_recorded_and_same_as_arguments(self):
        ra, rb = os.path.join(self.tmp, "a"), os.path.join(self.tmp, "b")
        spec = ShapesSpec(2, seed=4, image_size=(64, 80), max_size=40, image_format="png")
        path = generate_shapes_split(ra, "s", spec)
        with open(path) as f:
            record = json.load(f)["info"]["generator"]
        # the keys in this order (the json's bytes depend on it); a split recorded without a key
        # (size_distribution, added later) is generated again, to the same images
        expected = {
            "version": GENERATOR_VERSION,
            "num_images": 2,
            "seed": 4,
            "image_size": [64, 80],
            "min_objects": 1,
            "max_objects": 8,
            "min_size": 8.0,
            "max_size": 40.0,
            "max_occlusion": 0.6,
            "image_format": "png",
            "size_distribution": "uniform",
        }
        self.assertEqual(list(record.items()), list(expected.items()))
        # the argument form writes the same bytes
        generate_shapes_dataset(rb, "s", 2, 4, (64, 80), max_size=40, image_format="png")
        fa, fb = _files(ra), _files(rb)
        self.assertEqual(sorted(fa), sorted(fb))
        for p in fa:
            if not p.endswith(".lock"):
                self.assertEqual(fa[p][0], fb[p][0], p)

    def test_second_call_rewrites_nothing(self):
        path = generate_shapes_dataset(self.tmp, "train", 3, seed=0, image_size=64, max_size=48)
        before = _files(self.tmp)
        self.assertEqual(
            generate_shapes_dataset(self.tmp, "train", 3, seed=0, image_size=64, max_size=48), path
        )
        self.assertEqual(_files(self.tmp), before)
        # other parameters replace the split
        generate_shapes_dataset(self.tmp, "train", 2, seed=0, image_size=64, max_size=48)
        with open(path) as f:
            self.assertEqual(len(json.load(f)["images"]), 2)
        images = sorted(os.listdir(os.path.join(self.tmp, "train")))
        self.assertEqual(images, ["000001.jpg", "000002.jpg"])
        # no temporary files left behind
        left = sorted(p for p in os.listdir(self.tmp) if not p.endswith(".lock"))
        self.assertEqual(left, ["annotations", "train"])

    def test_png_and_bad_arguments(self):
        generate_shapes_dataset(
            self.tmp, "p", 1, seed=0, image_size=64, max_size=48, image_format="png"
        )
        with open(os.path.join(self.tmp, "p", "000001.png"), "rb") as f:
            self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        with self.assertRaisesRegex(ValueError, "image_format"):
            generate_shapes_dataset(self.tmp, "q", 1, seed=0, image_format="bmp")
        with self.assertRaisesRegex(ValueError, "max_size"):
            generate_shapes_dataset(self.tmp, "q", 1, seed=0, image_size=64)  # max_size 96 > 64
        with self.assertRaisesRegex(ValueError, "split"):
            generate_shapes_split(self.tmp, "../q", ShapesSpec(1, 0))
        with self.assertRaisesRegex(TypeError, "spec"):
            generate_shapes_split(self.tmp, "q", {"num_images": 1, "seed": 0})


class TestBuiltinShapes(unittest.TestCase):
    def test_registered(self):
        names = DatasetCatalog.list()
        for name in ("shapes_train", "shapes_val"):
            self.assertIn(name, names)
            meta = MetadataCatalog.get(name)
            self.assertEqual(meta.thing_classes, list(SHAPE_CLASSES))
            self.assertEqual(meta.evaluator_type, "coco")
            self.assertTrue(meta.json_file.endswith(".json"))
            self.assertTrue(meta.image_root)
            # keypoint metadata from registration on, without generating the data
            self.assertEqual(len(meta.keypoint_names), 16)
            self.assertEqual(meta.class_keypoints, shapes_keypoint_layout().class_keypoints)

    def test_lazy_generation(self):
        name = "shapes_test_lazy_generation"
        with tempfile.TemporaryDirectory() as tmp:
            register_all_shapes(tmp, {name: ("tiny", ShapesSpec(num_images=2, seed=3))})
            try:
                self.assertEqual(os.listdir(tmp), [])  # registering writes nothing
                with mock.patch.object(tempfile, "tempdir", tmp):  # the union json's cache
                    dicts = DatasetCatalog.get(name)
                json_file, image_root = shapes_dataset_paths(tmp, "tiny")
                self.assertEqual(MetadataCatalog.get(name).json_file, json_file)
                self.assertTrue(os.path.isfile(json_file))
                self.assertEqual(len(dicts), 2)
                for d in dicts:
                    self.assertTrue(d["file_name"].startswith(image_root))
                    self.assertTrue(os.path.isfile(d["file_name"]))
                    for a in d["annotations"]:  # contiguous ids after load_coco_json
                        self.assertIn(a["category_id"], range(len(SHAPE_CLASSES)))
                        self.assertEqual(len(a["keypoints"]), 3 * 16)  # the union layout
                meta = MetadataCatalog.get(name)
                self.assertTrue(meta.keypoint_json_file.startswith(tmp))
                self.assertTrue(os.path.isfile(meta.keypoint_json_file))
                self.assertEqual(centernet_d2.data.ensure_builtin_generated(name), json_file)
            finally:
                DatasetCatalog.remove(name)
                MetadataCatalog.remove(name)

    def test_builtin_specs(self):
        self.assertEqual(BUILTIN_SHAPES_SPLITS["shapes_train"], ("train", ShapesSpec(2000, 0)))
        self.assertEqual(BUILTIN_SHAPES_SPLITS["shapes_val"], ("val", ShapesSpec(200, 1)))

    def test_register_bad_splits(self):
        with tempfile.TemporaryDirectory() as tmp:
            with self.assertRaisesRegex(TypeError, "shapes_test_bad"):
                register_all_shapes(tmp, {"shapes_test_bad": {"split": "x", "num_images": 1}})
        self.assertNotIn("shapes_test_bad", DatasetCatalog.list())

    def test_ensure_unknown_name(self):
        with self.assertRaisesRegex(KeyError, "coco_2017_val"):
            centernet_d2.data.ensure_builtin_generated("coco_2017_val")
