"""centernet_d2.data.synthetic_video (the shapes video set) and its built-in registration."""

import itertools
import json
import os
import tempfile
import unittest
from collections import defaultdict

import numpy as np
from detectron2.data import DatasetCatalog, MetadataCatalog

import centernet_d2.data  # noqa: F401  (registers the built-in datasets)
from centernet_d2.data import (
    BUILTIN_SHAPES_VIDEO_SPLITS,
    SHAPE_CLASSES,
    ShapesVideoSpec,
    ensure_builtin_generated,
    generate_shapes_video_split,
    register_all_shapes_video,
    render_shapes_video,
    shapes_dataset_paths,
)

SPEC = ShapesVideoSpec(num_videos=8, seed=11)  # the built-in val split


def _iou(a, b):
    """IoU of two XYWH boxes."""
    w = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    h = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    inter = max(w, 0) * max(h, 0)
    return inter / (a[2] * a[3] + b[2] * b[3] - inter)


class TestShapesVideo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls._tmp = tempfile.TemporaryDirectory()
        cls.root = cls._tmp.name
        cls.json_file = generate_shapes_video_split(cls.root, "val", SPEC)
        with open(cls.json_file) as f:
            cls.coco = json.load(f)
        images = {i["id"]: i for i in cls.coco["images"]}
        # track id -> {frame id: annotation}; track id -> video id
        cls.tracks, cls.video_of = defaultdict(dict), {}
        for a in cls.coco["annotations"]:
            image = images[a["image_id"]]
            cls.tracks[a["track_id"]][image["frame_id"]] = a
            cls.video_of.setdefault(a["track_id"], image["video_id"])
            assert cls.video_of[a["track_id"]] == image["video_id"]  # a track stays in its video

    @classmethod
    def tearDownClass(cls):
        cls._tmp.cleanup()

    def inside(self, box, margin=0.0):
        h, w = SPEC.image_size
        x, y, bw, bh = box
        return x > margin and y > margin and x + bw < w - margin and y + bh < h - margin

    def test_layout(self):
        coco, n = self.coco, SPEC.num_frames
        self.assertEqual([v["id"] for v in coco["videos"]], list(range(1, 9)))
        self.assertEqual(len(coco["images"]), 8 * n)
        self.assertEqual([c["name"] for c in coco["categories"]], list(SHAPE_CLASSES))
        for k, image in enumerate(coco["images"]):
            self.assertEqual((image["video_id"], image["frame_id"]), (k // n + 1, k % n + 1))
            self.assertEqual(image["prev_image_id"], -1 if k % n == 0 else image["id"] - 1)
            self.assertEqual(image["next_image_id"], -1 if k % n == n - 1 else image["id"] + 1)
            self.assertEqual((image["height"], image["width"]), (128, 128))
        path = os.path.join(self.root, "val", coco["images"][-1]["file_name"])
        self.assertEqual(coco["images"][-1]["file_name"], f"0008/{n:06d}.jpg")
        self.assertTrue(os.path.isfile(path))

    def test_tracks_keep_class_and_visibility_limit(self):
        self.assertGreaterEqual(len(self.tracks), 8)
        for track in self.tracks.values():
            self.assertEqual(len({a["category_id"] for a in track.values()}), 1)
        visibility = [a["visibility"] for a in self.coco["annotations"]]
        self.assertGreaterEqual(min(visibility), SPEC.min_visibility)

    def test_boxes_move_at_constant_velocity(self):
        # where a box is whole in the image its centre follows a line in time, off by the
        # jitter only (0.3 px standard deviation: 1.5 px is 5 of them)
        fitted = 0
        for track in self.tracks.values():
            frames = [f for f, a in sorted(track.items()) if self.inside(a["bbox"])]
            if len(frames) < 5:
                continue
            boxes = np.array([track[f]["bbox"] for f in frames])
            centres = boxes[:, :2] + boxes[:, 2:] / 2
            # the same size, but for the vertices' 1/16 px grid
            np.testing.assert_allclose(
                boxes[:, 2:], boxes[:1, 2:].repeat(len(frames), 0), atol=1 / 8
            )
            coeffs = np.polyfit(frames, centres, 1)  # (2, 2): velocity, offset
            residual = centres - (np.array(frames)[:, None] * coeffs[0] + coeffs[1])
            self.assertLess(np.abs(residual).max(), 1.5)
            self.assertLess(np.linalg.norm(coeffs[0]), SPEC.max_speed + 0.2)
            fitted += 1
        self.assertGreaterEqual(fitted, len(self.tracks) // 2)

    def test_objects_enter_and_leave(self):
        n = SPEC.num_frames
        entering = [
            t for t in self.tracks.values() if min(t) > 1 and not self.inside(t[min(t)]["bbox"], 1)
        ]
        leaving = [
            t for t in self.tracks.values() if max(t) < n and not self.inside(t[max(t)]["bbox"], 1)
        ]
        self.assertGreater(len(entering), 0)
        self.assertGreater(len(leaving), 0)

    def test_objects_cross(self):
        # two tracks of a video overlap and pass each other: the sign of their centres'
        # difference along x or y changes
        crossings = 0
        for a, b in itertools.combinations(self.tracks, 2):
            if self.video_of[a] != self.video_of[b]:
                continue
            both = sorted(set(self.tracks[a]) & set(self.tracks[b]))
            boxes = [(self.tracks[a][f]["bbox"], self.tracks[b][f]["bbox"]) for f in both]
            diff = np.array(
                [
                    [p[0] + p[2] / 2 - q[0] - q[2] / 2, p[1] + p[3] / 2 - q[1] - q[3] / 2]
                    for p, q in boxes
                ]
            ).reshape(-1, 2)
            swapped = ((diff > 0).any(0) & (diff < 0).any(0)).any()
            overlap = any(_iou(p, q) > 0.1 for p, q in boxes)
            crossings += int(swapped and overlap)
        self.assertGreater(crossings, 0)
        hidden = [
            a for a in self.coco["annotations"] if a["visibility"] < 0.9 and self.inside(a["bbox"])
        ]
        self.assertGreater(len(hidden), 0)  # hidden by another object, not by the image's edge

    def test_deterministic(self):
        spec = ShapesVideoSpec(num_videos=3, seed=11, num_frames=4)
        frames, objects = render_shapes_video(spec, 2)
        frames2, objects2 = render_shapes_video(
            ShapesVideoSpec(num_videos=5, seed=11, num_frames=4), 2
        )
        self.assertEqual(objects, objects2)  # does not depend on num_videos
        for a, b in zip(frames, frames2):
            np.testing.assert_array_equal(a, b)
        _, other = render_shapes_video(ShapesVideoSpec(num_videos=3, seed=12, num_frames=4), 2)
        self.assertNotEqual(objects, other)
        mtime = os.stat(self.json_file).st_mtime_ns
        self.assertEqual(generate_shapes_video_split(self.root, "val", SPEC), self.json_file)
        self.assertEqual(os.stat(self.json_file).st_mtime_ns, mtime)  # kept, not rewritten

    def test_spec_errors(self):
        for kwargs, field in (
            ({"num_frames": 1}, "num_frames"),
            ({"min_objects": 3, "max_objects": 2}, "min_objects"),
            ({"max_size": 80.0}, "max_size"),
            ({"min_visibility": 0.0}, "min_visibility"),
            ({"max_speed": 0.5}, "max_speed"),
            ({"image_format": "gif"}, "image_format"),
            ({"seed": 1.5}, "seed"),
        ):
            with self.assertRaisesRegex(ValueError, field):
                ShapesVideoSpec(num_videos=1, **{"seed": 0, **kwargs})
        with self.assertRaisesRegex(ValueError, "index"):
            render_shapes_video(SPEC, 8)


class TestCrowd(unittest.TestCase):
    """The crowd's fields: look-alike colours and pillars that hide what passes behind."""

    def test_occluders_hide_objects_and_colours_are_shared(self):
        base = dict(num_videos=1, seed=3, num_frames=12, image_size=96, min_objects=12)
        base.update(max_objects=12, min_size=8.0, max_size=16.0, max_speed=4.0)
        frames, objects = render_shapes_video(ShapesVideoSpec(**base), 0)
        crowd = ShapesVideoSpec(**base, num_colors=2, num_occluders=1)
        frames2, objects2 = render_shapes_video(crowd, 0)
        # the pillar: a rectangle of one colour in every frame, the same place
        diff = np.abs(frames2[0].astype(int) - frames2[-1].astype(int)).sum(2)
        self.assertGreater(int((diff == 0).sum()), 0)
        # fewer annotations: objects behind the pillar drop out while hidden
        count = lambda objs: sum(len(f) for f in objs)  # noqa: E731
        self.assertLess(count(objects2), count(objects))
        # the objects' colours: at most 2 distinct (median colour inside each object's box
        # centre's pixel of the first frame where it is fully visible)
        colours = set()
        for frame, objs in zip(frames2, objects2):
            for o in objs:
                if o["visibility"] == 1.0:
                    x, y, w, h = o["bbox"]
                    patch = frame[
                        int(y + h / 2) - 1 : int(y + h / 2) + 2,
                        int(x + w / 2) - 1 : int(x + w / 2) + 2,
                    ]
                    colours.add(tuple(int(c) // 32 for c in np.median(patch.reshape(-1, 3), 0)))
        self.assertLessEqual(len(colours), 4)  # 2 colours, noise may cross a bin edge
        self.assertGreaterEqual(len(colours), 2)

    def test_defaults_leave_older_splits_as_they_were(self):
        # the generator record of a spec without the crowd fields has none of them, so that
        # splits written before they existed are not remade
        from centernet_d2.data.synthetic_video import _generator_record

        self.assertNotIn("num_colors", _generator_record(SPEC))
        self.assertEqual(
            _generator_record(ShapesVideoSpec(num_videos=1, seed=0, num_colors=3))["num_colors"], 3
        )
        with self.assertRaisesRegex(ValueError, "num_colors"):
            ShapesVideoSpec(num_videos=1, seed=0, num_colors=-1)


class TestBuiltinShapesVideo(unittest.TestCase):
    def test_registered(self):
        for name in ("shapes_video_train", "shapes_video_val", "shapes_video_crowd_val"):
            self.assertIn(name, DatasetCatalog.list())
            meta = MetadataCatalog.get(name)
            self.assertEqual(meta.thing_classes, list(SHAPE_CLASSES))
            self.assertEqual(meta.evaluator_type, "mot")
        self.assertEqual(BUILTIN_SHAPES_VIDEO_SPLITS["shapes_video_val"], ("val", SPEC))
        self.assertEqual(BUILTIN_SHAPES_VIDEO_SPLITS["shapes_video_train"][1].num_videos, 300)

    def test_lazy_generation(self):
        name = "shapes_video_test_lazy"
        spec = ShapesVideoSpec(num_videos=2, seed=0, num_frames=3)
        with tempfile.TemporaryDirectory() as tmp:
            register_all_shapes_video(tmp, {name: ("tiny", spec)})
            try:
                self.assertEqual(os.listdir(tmp), [])  # registering writes nothing
                dicts = DatasetCatalog.get(name)
                json_file, image_root = shapes_dataset_paths(tmp, "tiny")
                self.assertEqual(ensure_builtin_generated(name), json_file)
                self.assertEqual(len(dicts), 6)
                self.assertEqual(
                    [(d["video_id"], d["frame_id"]) for d in dicts[:4]],
                    [(1, 1), (1, 2), (1, 3), (2, 1)],
                )
                self.assertEqual(MetadataCatalog.get(name).video_names, {1: "0001", 2: "0002"})
                for d in dicts:
                    self.assertTrue(os.path.isfile(d["file_name"]))
                    for a in d["annotations"]:
                        self.assertIn(a["category_id"], range(len(SHAPE_CLASSES)))
                        self.assertIn("track_id", a)
            finally:
                DatasetCatalog.remove(name)
                MetadataCatalog.remove(name)
        with self.assertRaisesRegex(TypeError, "ShapesVideoSpec"):
            register_all_shapes_video("unused", {"shapes_video_test_bad": ("x", {"seed": 0})})
