"""centernet_d2.data.keypoints: union keypoint layouts, remapping, the keypoint json loader."""

import copy
import json
import math
import os
import tempfile
import unittest
from unittest import mock

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json

import centernet_d2.data  # noqa: F401  (registers the built-in datasets)
from centernet_d2.data import (
    ShapesSpec,
    generate_shapes_split,
    keypoint_flip_pairs,
    keypoint_layout,
)
from centernet_d2.data import keypoints as keypoints_module
from centernet_d2.data import (
    load_coco_keypoint_json,
    register_coco_dataset,
    render_shapes,
    render_shapes_image,
    shapes_keypoint_layout,
    to_union_keypoints,
)
from centernet_d2.data.shapes_render import SHAPE_CLASSES, SHAPE_KEYPOINTS, shape_keypoints

# ball (id 1) has no keypoints; pen (id 2) and cup (id 3) have their own; listed out of id order
CATEGORIES = [
    {
        "id": 3,
        "name": "cup",
        "keypoints": ["top", "left_handle", "right_handle"],
        "skeleton": [[1, 2], [1, 3]],
    },
    {"id": 1, "name": "ball"},
    {"id": 2, "name": "pen", "keypoints": ["tip", "end"], "skeleton": [[1, 2]]},
]
# person-like: one category with keypoints, the standard COCO case
PERSON = [
    {
        "id": 1,
        "name": "person",
        "keypoints": ["nose", "left_eye", "right_eye", "left_ear", "right_ear"],
        "skeleton": [[2, 3], [1, 2], [1, 3], [2, 4], [3, 5]],
    },
    {"id": 2, "name": "dog", "keypoints": []},
]


def _coco(categories, annotations, num_images=1):
    images = [
        {"id": i + 1, "file_name": f"{i + 1}.jpg", "height": 40, "width": 50}
        for i in range(num_images)
    ]
    for k, a in enumerate(annotations):
        a.setdefault("id", k + 1)
        a.setdefault("image_id", 1)
        a.setdefault("bbox", [1.0, 2.0, 10.0, 12.0])
        a.setdefault("area", 100.0)
        a.setdefault("iscrowd", 0)
    return {"images": images, "annotations": annotations, "categories": categories}


def _write(path, data):
    with open(path, "w") as f:
        json.dump(data, f)
    return path


def _forget(name):
    """Unregister ``name`` from both catalogs, where it is."""
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
    if name in MetadataCatalog.list():
        MetadataCatalog.remove(name)


def _flip_indices(layout):
    """Detectron2's create_keypoint_hflip_indices, from a layout."""
    flip = dict(layout.flip_map)
    flip.update({b: a for a, b in layout.flip_map})
    return [layout.names.index(flip.get(n, n)) for n in layout.names]


def _rule_order(points):
    """The labelling rule, written out here: topmost first (ties: leftmost), then clockwise on
    the screen (y down) around the points' mean."""
    points = np.asarray(points, np.float64)
    first = min(range(len(points)), key=lambda i: (points[i, 1], points[i, 0]))
    c = points.mean(0)
    ang = [math.atan2(y - c[1], x - c[0]) for x, y in points]
    return sorted(range(len(points)), key=lambda i: (ang[i] - ang[first]) % (2 * math.pi))


class TestKeypointLayout(unittest.TestCase):
    def test_per_class(self):
        layout = keypoint_layout(CATEGORIES)
        # classes in id order: ball 0, pen 1, cup 2
        self.assertFalse(layout.shared)
        self.assertEqual(layout.class_names, ["ball", "pen", "cup"])
        self.assertEqual(
            layout.names,
            ["pen_tip", "pen_end", "cup_top", "cup_left_handle", "cup_right_handle"],
        )
        self.assertEqual(layout.num_keypoints, 5)
        self.assertEqual(layout.class_keypoints, [[], [0, 1], [2, 3, 4]])
        self.assertEqual(layout.flip_map, [("cup_left_handle", "cup_right_handle")])
        edges = [r[:2] for r in layout.connection_rules]
        self.assertEqual(
            edges,
            [
                ("pen_tip", "pen_end"),
                ("cup_top", "cup_left_handle"),
                ("cup_top", "cup_right_handle"),
            ],
        )
        colors = [r[2] for r in layout.connection_rules]
        self.assertEqual(colors[1], colors[2])  # one colour per class
        self.assertNotEqual(colors[0], colors[1])
        for c in colors:
            self.assertEqual(len(c), 3)
            self.assertTrue(all(isinstance(v, int) and 0 <= v <= 255 for v in c), c)
        meta = layout.as_metadata()
        self.assertEqual(
            sorted(meta),
            ["class_keypoints", "keypoint_connection_rules", "keypoint_flip_map", "keypoint_names"],
        )

    def test_explicit_id_map(self):
        layout = keypoint_layout(CATEGORIES, {3: 0, 1: 1, 2: 2})  # cup first
        self.assertEqual(layout.names[:3], ["cup_top", "cup_left_handle", "cup_right_handle"])
        self.assertEqual(layout.class_keypoints, [[0, 1, 2], [], [3, 4]])
        with self.assertRaisesRegex(ValueError, "0..2"):
            keypoint_layout(CATEGORIES, {3: 0, 1: 1})

    def test_shared(self):
        layout = keypoint_layout(PERSON)
        self.assertTrue(layout.shared)
        self.assertEqual(layout.names, PERSON[0]["keypoints"])  # unchanged
        self.assertEqual(layout.class_keypoints, [[0, 1, 2, 3, 4], []])
        self.assertEqual(layout.flip_map, [("left_eye", "right_eye"), ("left_ear", "right_ear")])
        self.assertEqual(
            [r[:2] for r in layout.connection_rules],
            [
                ("left_eye", "right_eye"),
                ("nose", "left_eye"),
                ("nose", "right_eye"),
                ("left_eye", "left_ear"),
                ("right_eye", "right_ear"),
            ],
        )
        # two categories with the same list: still shared, the edges listed once
        two = PERSON[:1] + [dict(PERSON[0], id=2, name="child")]
        layout = keypoint_layout(two)
        self.assertTrue(layout.shared)
        self.assertEqual(layout.class_keypoints, [[0, 1, 2, 3, 4]] * 2)
        self.assertEqual(len(layout.connection_rules), 5)

    def test_no_keypoints(self):
        layout = keypoint_layout([{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
        self.assertEqual((layout.names, layout.class_keypoints), ([], [[], []]))

    def test_flip_pairs_rule(self):
        names = ["top", "leftEye", "rightEye", "bright", "bleft", "LEFT_hand", "RIGHT_hand", "left"]
        self.assertEqual(
            keypoint_flip_pairs(names), [("leftEye", "rightEye"), ("LEFT_hand", "RIGHT_hand")]
        )
        self.assertEqual(
            keypoint_flip_pairs(["upper_right", "upper_left"]), [("upper_right", "upper_left")]
        )
        self.assertEqual(keypoint_flip_pairs(["a", "b"]), [])

    def test_bad_categories(self):
        bad = copy.deepcopy(CATEGORIES)
        bad[2]["skeleton"] = [[1, 3]]  # pen has 2 keypoints
        with self.assertRaisesRegex(ValueError, "my.json.*'pen'.*skeleton"):
            keypoint_layout(bad, source="my.json")
        bad = copy.deepcopy(CATEGORIES)
        bad[2]["keypoints"] = ["tip", "tip"]
        with self.assertRaisesRegex(ValueError, "'pen'.*twice"):
            keypoint_layout(bad)
        # "a" + "b_c" and "a_b" + "c" give the same union name
        clash = [
            {"id": 1, "name": "a", "keypoints": ["b_c"]},
            {"id": 2, "name": "a_b", "keypoints": ["c", "d"]},
        ]
        with self.assertRaisesRegex(ValueError, "a_b_c"):
            keypoint_layout(clash)


class TestToUnion(unittest.TestCase):
    def setUp(self):
        self.layout = keypoint_layout(CATEGORIES)  # ball 0, pen 1, cup 2
        self.dicts = [
            {
                "file_name": "img/1.jpg",
                "annotations": [
                    {"category_id": 2, "keypoints": [1.5, 2.5, 2, 3.5, 4.5, 1, 0.5, 0.5, 0]},
                    {"category_id": 1, "keypoints": [7.5, 8.5, 2, 9.5, 10.5, 2]},
                    {"category_id": 0},  # load_coco_json leaves out an empty list
                    {"category_id": 0, "keypoints": []},
                ],
            }
        ]

    def test_remap(self):
        before = copy.deepcopy(self.dicts)
        out = to_union_keypoints(self.dicts, self.layout)
        self.assertEqual(self.dicts, before)  # the input is not modified
        kps = [a["keypoints"] for a in out[0]["annotations"]]
        z = [0.0] * 3
        self.assertEqual(kps[0], z + z + [1.5, 2.5, 2, 3.5, 4.5, 1, 0.5, 0.5, 0])
        self.assertEqual(kps[1], [7.5, 8.5, 2, 9.5, 10.5, 2] + z + z + z)
        self.assertEqual(kps[2], [0.0] * 15)
        self.assertEqual(kps[3], [0.0] * 15)
        self.assertEqual(out[0]["file_name"], "img/1.jpg")
        # dataset category ids -> classes
        raw = copy.deepcopy(self.dicts)
        raw[0]["annotations"] = raw[0]["annotations"][:2]
        raw[0]["annotations"][0]["category_id"] = 3
        raw[0]["annotations"][1]["category_id"] = 2
        out = to_union_keypoints(raw, self.layout, {1: 0, 2: 1, 3: 2})
        self.assertEqual([a["keypoints"] for a in out[0]["annotations"]], kps[:2])

    def test_wrong_length(self):
        self.dicts[0]["annotations"][1]["keypoints"] = [1.0, 2.0, 2]  # pen has 2 keypoints
        with self.assertRaisesRegex(ValueError, r"dataset 'toys', image img/1.jpg.*'pen'.* 3 "):
            to_union_keypoints(self.dicts, self.layout, dataset_name="toys")
        self.dicts[0]["annotations"][1]["keypoints"] = [1.0, 2.0, 2, 3.0, 4.0, 2]
        self.dicts[0]["annotations"][3]["keypoints"] = [1.0, 2.0, 2]  # ball has none
        with self.assertRaisesRegex(ValueError, "'ball'"):
            to_union_keypoints(self.dicts, self.layout)

    def test_shared_pads_classes_without_keypoints(self):
        layout = keypoint_layout(PERSON)
        person = [float(v) for v in range(15)]
        dicts = [
            {
                "file_name": "a.jpg",
                "annotations": [{"category_id": 0, "keypoints": person}, {"category_id": 1}],
            }
        ]
        out = to_union_keypoints(dicts, layout)
        self.assertEqual(out[0]["annotations"][0]["keypoints"], person)
        self.assertEqual(out[0]["annotations"][1]["keypoints"], [0.0] * 15)


class TestLoadKeypointJson(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name
        # the union-json cache goes to this test's folder
        self._tempdir = mock.patch.object(tempfile, "tempdir", os.path.join(self.tmp, "cache"))
        self._tempdir.start()
        os.makedirs(tempfile.tempdir)
        self.names = []

    def tearDown(self):
        self._tempdir.stop()
        for name in self.names:
            _forget(name)
        self._tmp.cleanup()

    def _name(self, name):
        self.names.append(name)
        _forget(name)
        return name

    def _per_class_json(self):
        annos = [
            {"category_id": 3, "keypoints": [4, 5, 2, 6, 7, 1, 0, 0, 0], "num_keypoints": 2},
            {"category_id": 1, "keypoints": [], "num_keypoints": 0},
            {"category_id": 2, "keypoints": [10, 11, 2, 12, 13, 2], "area": 55.5},
        ]
        return _write(os.path.join(self.tmp, "toys.json"), _coco(CATEGORIES, annos))

    def test_per_class_json_and_cache(self):
        json_file = self._per_class_json()
        name = self._name("kp_test_toys")
        written = []
        real_write = keypoints_module.write_json_atomically
        with mock.patch.object(
            keypoints_module,
            "write_json_atomically",
            side_effect=lambda d, p: (written.append(p), real_write(d, p)),
        ):
            dicts = load_coco_keypoint_json(json_file, self.tmp, name)
            kps = [a["keypoints"] for a in dicts[0]["annotations"]]
            # cup: its 3 keypoints at 2..4, x and y + 0.5 (load_coco_json); v = 0 gets 0.5 too
            z = [0.0] * 3
            self.assertEqual(kps[0], z + z + [4.5, 5.5, 2, 6.5, 7.5, 1, 0.5, 0.5, 0])
            self.assertEqual(kps[1], [0.0] * 15)  # ball
            self.assertEqual(kps[2], [10.5, 11.5, 2, 12.5, 13.5, 2] + [0.0] * 9)  # pen
            meta = MetadataCatalog.get(name)
            self.assertEqual(meta.keypoint_names, keypoint_layout(CATEGORIES).names)
            self.assertEqual(meta.class_keypoints, [[], [0, 1], [2, 3, 4]])
            self.assertEqual(meta.keypoint_flip_map, [("cup_left_handle", "cup_right_handle")])
            self.assertEqual(len(meta.keypoint_connection_rules), 3)
            self.assertEqual(meta.thing_classes, ["ball", "pen", "cup"])
            # the union json: in the cache folder, COCO's convention (no +0.5), all 15 values
            cache = meta.keypoint_json_file
            self.assertEqual(written, [cache])
            self.assertEqual(
                os.path.dirname(cache), os.path.join(self.tmp, "cache", "centernet_d2_keypoints")
            )
            with open(cache) as f:
                union = json.load(f)
            self.assertEqual(union["images"], _coco(CATEGORIES, [])["images"])
            ua = union["annotations"]
            self.assertEqual(ua[0]["keypoints"], z + z + [4, 5, 2, 6, 7, 1, 0, 0, 0])
            self.assertEqual(ua[2]["keypoints"], [10, 11, 2, 12, 13, 2] + [0.0] * 9)
            self.assertEqual([a["num_keypoints"] for a in ua], [2, 0, 2])
            self.assertEqual([a["area"] for a in ua], [100.0, 100.0, 55.5])
            for c in union["categories"]:
                self.assertEqual(c["keypoints"], meta.keypoint_names)
            cup = [c for c in union["categories"] if c["name"] == "cup"][0]
            self.assertEqual(cup["skeleton"], [[3, 4], [3, 5]])  # union indices, 1-based
            # loaded again: the cache is reused, not written
            mtime = os.stat(cache).st_mtime_ns
            again = load_coco_keypoint_json(json_file, self.tmp, name)
            self.assertEqual(again, dicts)
            self.assertEqual(written, [cache])
            self.assertEqual(os.stat(cache).st_mtime_ns, mtime)
        # a changed json gets another cache file
        st = os.stat(json_file)
        os.utime(json_file, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        self.assertNotEqual(keypoints_module._union_json_path(json_file), cache)

    def test_wrong_length_names_file_and_category(self):
        annos = [{"category_id": 2, "keypoints": [10, 11, 2]}]  # pen: 2 keypoints
        json_file = _write(os.path.join(self.tmp, "bad.json"), _coco(CATEGORIES, annos))
        with self.assertRaisesRegex(ValueError, "bad.json.*'pen'"):
            load_coco_keypoint_json(json_file, self.tmp, self._name("kp_test_bad"))

    def test_shared_json_is_its_own_keypoint_json(self):
        annos = [{"category_id": 1, "keypoints": list(range(15))}]
        json_file = _write(os.path.join(self.tmp, "person.json"), _coco(PERSON[:1], annos))
        name = self._name("kp_test_person")
        dicts = load_coco_keypoint_json(json_file, self.tmp, name)
        expected = [v + (0.5 if i % 3 != 2 else 0) for i, v in enumerate(range(15))]
        self.assertEqual(dicts[0]["annotations"][0]["keypoints"], expected)
        meta = MetadataCatalog.get(name)
        self.assertEqual(meta.keypoint_json_file, json_file)
        self.assertEqual(meta.keypoint_names, PERSON[0]["keypoints"])
        self.assertFalse(os.path.exists(keypoints_module.keypoint_cache_dir()))

    def test_without_keypoints_as_load_coco_json(self):
        cats = [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}]
        annos = [{"category_id": 2}, {"category_id": 1}]
        json_file = _write(os.path.join(self.tmp, "plain.json"), _coco(cats, annos))
        name = self._name("kp_test_plain")
        dicts = load_coco_keypoint_json(json_file, self.tmp, name)
        self.assertEqual(dicts, load_coco_json(json_file, self.tmp, name))
        self.assertNotIn("keypoints", dicts[0]["annotations"][0])
        self.assertIsNone(MetadataCatalog.get(name).get("keypoint_names"))

    def test_register_coco_dataset(self):
        json_file = self._per_class_json()
        name = self._name("kp_test_registered")
        register_coco_dataset(name, json_file, self.tmp)
        meta = MetadataCatalog.get(name)
        self.assertEqual(
            (meta.json_file, meta.image_root, meta.evaluator_type), (json_file, self.tmp, "coco")
        )
        dicts = DatasetCatalog.get(name)
        self.assertEqual(dicts[0]["file_name"], os.path.join(self.tmp, "1.jpg"))
        self.assertEqual(
            dicts[0]["annotations"][2]["keypoints"], [10.5, 11.5, 2, 12.5, 13.5, 2] + [0.0] * 9
        )
        self.assertEqual(meta.class_keypoints, [[], [0, 1], [2, 3, 4]])
        self.assertTrue(os.path.isfile(meta.keypoint_json_file))

    def test_shapes_json_round_trip(self):
        spec = ShapesSpec(num_images=3, seed=7, image_size=96, max_size=48)
        json_file = generate_shapes_split(self.tmp, "kp", spec)
        name = self._name("kp_test_shapes")
        dicts = load_coco_keypoint_json(json_file, os.path.join(self.tmp, "kp"), name)
        layout = shapes_keypoint_layout()
        checked = 0
        for i, d in enumerate(dicts):
            _, objects = render_shapes(spec, i)
            self.assertEqual(len(objects), len(d["annotations"]))
            for obj, anno in zip(objects, d["annotations"]):
                cls = obj["category_id"] - 1
                self.assertEqual(anno["category_id"], cls)
                union = np.array(anno["keypoints"]).reshape(-1, 3)
                own = layout.class_keypoints[cls]
                # the continuous positions come back exactly (1/32 px grid), v too
                np.testing.assert_array_equal(
                    union[own].ravel(), np.array(obj["keypoints"], np.float64)
                )
                others = np.setdiff1d(np.arange(16), own)
                self.assertFalse(union[others].any())
                checked += len(own)
        self.assertGreater(checked, 10)
        meta = MetadataCatalog.get(name)
        for key, value in layout.as_metadata().items():
            self.assertEqual(meta.get(key), value, key)
        with open(meta.keypoint_json_file) as f:
            union = json.load(f)
        self.assertEqual(len(union["annotations"][0]["keypoints"]), 48)


class TestShapesKeypoints(unittest.TestCase):
    def test_layout(self):
        layout = shapes_keypoint_layout()
        self.assertEqual(layout.num_keypoints, 3 + 4 + 5 + 4)
        self.assertEqual(
            layout.class_keypoints,
            [[], [0, 1, 2], [3, 4, 5, 6], [7, 8, 9, 10, 11], [12, 13, 14, 15]],
        )
        self.assertEqual(layout.names[:3], ["triangle_top", "triangle_right", "triangle_left"])
        self.assertEqual(layout.names[-1], "cross_left")
        self.assertEqual(
            layout.flip_map,
            [
                ("triangle_right", "triangle_left"),
                ("rectangle_right", "rectangle_left"),
                ("star_upper_right", "star_upper_left"),
                ("star_lower_right", "star_lower_left"),
                ("cross_right", "cross_left"),
            ],
        )
        edges = [r[:2] for r in layout.connection_rules]
        self.assertIn(("cross_top", "cross_bottom"), edges)
        self.assertIn(("cross_right", "cross_left"), edges)
        self.assertIn(("star_upper_left", "star_top"), edges)
        self.assertEqual(len(edges), 3 + 4 + 5 + 2)

    def test_order_of_hand_made_shapes(self):
        # a tilted rectangle (y down): B is the highest, then C, D, A clockwise on the screen
        a, b, c, d = (0.0, 1.0), (2.0, 0.0), (3.0, 2.0), (1.0, 3.0)
        kp = shape_keypoints(2, np.array([a, b, c, d]))
        np.testing.assert_array_equal(kp, [b, c, d, a])
        # a triangle: the top (2, 0), then the right corner (4, 3), then the left one (0, 4)
        kp = shape_keypoints(1, np.array([(0.0, 4.0), (2.0, 0.0), (4.0, 3.0)]))
        np.testing.assert_array_equal(kp, [(2, 0), (4, 3), (0, 4)])
        # a tie for the top: the left one of the two
        kp = shape_keypoints(2, np.array([(0.0, 0.0), (2.0, 0.0), (2.0, 1.0), (0.0, 1.0)]))
        np.testing.assert_array_equal(kp, [(0, 0), (2, 0), (2, 1), (0, 1)])
        # a star with its tips at 0, 72, ... degrees: the tip at -72 deg is the highest; then
        # 0 deg (upper right), 72 (lower right), 144 (lower left), 216 (upper left)
        t = np.arange(10) * (math.pi / 5)
        r = np.where(np.arange(10) % 2 == 0, 1.0, 0.5)
        star = np.stack([r * np.cos(t), r * np.sin(t)], 1)
        np.testing.assert_allclose(shape_keypoints(3, star), star[[8, 0, 2, 4, 6]])
        # a cross of half width 0.25 turned by 90 degrees (x, y) -> (-y, x): arm ends are the
        # middles of the end edges; (0, -1) is the highest
        w = 0.25
        cross = np.array(
            [[w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1]]
            + [[-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w], [-w, -1]]
        )
        turned = np.stack([-cross[:, 1], cross[:, 0]], 1)
        np.testing.assert_allclose(
            shape_keypoints(4, turned), [(0, -1), (1, 0), (0, 1), (-1, 0)], atol=1e-12
        )
        self.assertEqual(shape_keypoints(0, np.zeros((64, 2))).shape, (0, 2))

    def _objects(self, n=6, **options):
        rng = np.random.default_rng(123)
        out = []
        for _ in range(n):
            img, objects = render_shapes_image(rng, 96, max_size=48, **options)
            out.append((img.shape[:2], objects))
        return out

    def test_rendered_keypoints_are_vertices_in_rule_order(self):
        seen = set()
        for (h, w), objects in self._objects():
            for obj in objects:
                cls = obj["category_id"] - 1
                kp = np.array(obj["keypoints"], np.float64).reshape(-1, 3)
                self.assertEqual(len(kp), len(SHAPE_KEYPOINTS[cls]))
                if cls == 0:
                    continue
                seen.add(cls)
                self.assertTrue((kp[:, 2] > 0).all())  # nothing lies outside the image
                xy = kp[:, :2]
                self.assertEqual(_rule_order(xy), list(range(len(xy))), obj)
                x, y, bw, bh = obj["bbox"]
                if SHAPE_CLASSES[cls] in ("triangle", "rectangle", "star"):
                    # corners and star tips are the polygon's extreme vertices: they span the box
                    np.testing.assert_array_equal(xy.min(0), [x, y])
                    np.testing.assert_array_equal(xy.max(0), [x + bw, y + bh])
                else:  # a cross's bars meet at the box centre (up to the 1/16 px grid)
                    centre = np.array([x + bw / 2, y + bh / 2])
                    np.testing.assert_allclose((xy[0] + xy[2]) / 2, centre, atol=1 / 16)
                    np.testing.assert_allclose((xy[1] + xy[3]) / 2, centre, atol=1 / 16)
        self.assertEqual(seen, {1, 2, 3, 4})

    def test_flip_map_matches_the_rule(self):
        layout = shapes_keypoint_layout()
        flip = _flip_indices(layout)
        checked = 0
        for (h, w), objects in self._objects():
            for obj in objects:
                own = layout.class_keypoints[obj["category_id"] - 1]
                if not own:
                    continue
                xy = np.array(obj["keypoints"], np.float64).reshape(-1, 3)[:, :2]
                top = xy[:, 1] == xy[:, 1].min()
                if top.sum() > 1:  # a tie for the top changes under a flip
                    continue
                flipped = np.stack([w - xy[:, 0], xy[:, 1]], 1)
                # Detectron2 flips the union keypoints and then permutes them by flip indices
                union = np.zeros((16, 2))
                union[own] = flipped
                permuted = union[flip][own]
                np.testing.assert_array_equal(permuted, flipped[_rule_order(flipped)])
                checked += 1
        self.assertGreater(checked, 15)

    def test_visibility_of_covered_keypoints(self):
        # a keypoint well inside a later triangle or rectangle (whose keypoints are its
        # corners, clockwise) is hidden: v = 1; one that is visible is never inside one
        covered = 0
        rng = np.random.default_rng(5)
        for _ in range(30):
            _, objects = render_shapes_image(
                rng, 80, min_objects=8, max_objects=8, max_size=64, max_occlusion=0.9
            )
            for k, obj in enumerate(objects):
                kp = np.array(obj["keypoints"], np.float64).reshape(-1, 3)
                for later in objects[k + 1 :]:
                    if later["category_id"] not in (2, 3):
                        continue
                    poly = np.array(later["keypoints"], np.float32).reshape(-1, 3)[:, :2]
                    for x, y, v in kp:
                        # distance into the polygon; > 3 px: its pixel and neighbours are in it
                        inside = _inside_distance(poly, x, y)
                        if inside > 3:
                            self.assertEqual(v, 1, (obj, later))
                            covered += 1
        self.assertGreater(covered, 0)


def _inside_distance(poly, x, y):
    """Signed distance of (x, y) into the convex polygon ``poly`` (P, 2), clockwise on the
    screen: the least distance to its edges' lines, negative outside."""
    out = []
    for (x0, y0), (x1, y1) in zip(poly, np.roll(poly, -1, 0)):
        ex, ey = x1 - x0, y1 - y0
        # y down, clockwise: the interior is on the right of each edge, cross product > 0
        out.append((ex * (y - y0) - ey * (x - x0)) / math.hypot(ex, ey))
    return min(out)
