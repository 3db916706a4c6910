"""centernet_d2.data.video: registering CenterTrack's COCO-video json, and its flag."""

import argparse
import copy
import os
import tempfile
import unittest

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from centernet_d2.data import load_coco_video_json, register_coco_video_dataset
from centernet_d2.data.flags import add_dataset_flags, register_dataset_flags
from tests.common import coco_video_json, write_coco_video

NAME = "coco_video_test"


class TestCocoVideo(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        if NAME in DatasetCatalog.list():
            DatasetCatalog.remove(NAME)
            MetadataCatalog.remove(NAME)
        self._tmp.cleanup()

    def test_register(self):
        path = write_coco_video(self.tmp, coco_video_json(num_videos=2, num_frames=3))
        register_coco_video_dataset(NAME, path, self.tmp)
        meta = MetadataCatalog.get(NAME)
        self.assertEqual((meta.evaluator_type, meta.json_file), ("mot", path))
        dicts = DatasetCatalog.get(NAME)
        self.assertEqual(len(dicts), 6)
        self.assertEqual(meta.thing_classes, ["car", "person"])
        self.assertEqual(meta.video_names, {1: "vid1", 2: "vid2"})
        d = dicts[4]  # video 2, frame 2
        self.assertEqual(d["file_name"], os.path.join(self.tmp, "vid2", "2.jpg"))
        self.assertTrue(os.path.isfile(d["file_name"]))
        self.assertEqual(
            [d[k] for k in ("image_id", "video_id", "frame_id", "prev_image_id", "next_image_id")],
            [5, 2, 2, 4, 6],
        )
        self.assertEqual((dicts[3]["prev_image_id"], dicts[5]["next_image_id"]), (-1, -1))
        car, person = d["annotations"]
        self.assertEqual((car["track_id"], person["track_id"]), (21, 22))
        self.assertEqual((car["category_id"], person["category_id"]), (0, 1))  # contiguous
        self.assertEqual(car["bbox"], [4, 4, 10, 12])  # 2 px per frame, frame 2
        self.assertEqual(car["bbox_mode"], BoxMode.XYWH_ABS)

    def test_links_derived_from_frame_order(self):
        coco = coco_video_json(num_videos=1, num_frames=3)
        for image in coco["images"]:
            del image["prev_image_id"], image["next_image_id"]
        coco["images"].reverse()  # not in frame order in the file
        dicts = load_coco_video_json(write_coco_video(self.tmp, coco), self.tmp)
        links = {d["frame_id"]: (d["prev_image_id"], d["next_image_id"]) for d in dicts}
        self.assertEqual(links, {1: (-1, 2), 2: (1, 3), 3: (2, -1)})

    def test_errors(self):
        good = coco_video_json(num_videos=2, num_frames=2)

        def check(edit, *patterns):
            coco = copy.deepcopy(good)
            edit(coco)
            path = write_coco_video(self.tmp, coco, "bad.json")
            for pattern in (path,) + patterns:
                with self.assertRaisesRegex(ValueError, pattern):
                    load_coco_video_json(path, self.tmp)

        check(lambda c: c.pop("videos"), "'videos'")
        check(lambda c: c["images"][1].pop("frame_id"), "image 2 has no 'frame_id'")
        check(lambda c: c["images"][0].pop("video_id"), "image 1 has no 'video_id'")
        check(lambda c: c["images"][0].update(video_id=7), "video_id 7, which is not in 'videos'")
        check(lambda c: c["images"][1].update(frame_id=1), "images 1 and 2 are both frame 1")
        check(lambda c: c["annotations"][3].pop("track_id"), "annotation 4 has no 'track_id'")
        check(lambda c: c["annotations"][0].update(category_id=-1), "category_id -1", "convert_mot")
        missing = os.path.join(self.tmp, "missing.json")
        with self.assertRaisesRegex(FileNotFoundError, "missing.json"):
            register_coco_video_dataset(NAME, missing, self.tmp)
        path = write_coco_video(self.tmp, good)
        with self.assertRaisesRegex(FileNotFoundError, "nowhere"):
            register_coco_video_dataset(NAME, path, os.path.join(self.tmp, "nowhere"))

    def test_flag(self):
        path = write_coco_video(self.tmp, coco_video_json())
        parser = add_dataset_flags(argparse.ArgumentParser())
        args = parser.parse_args(["--coco-video-dataset", NAME, path, self.tmp])
        register_dataset_flags(args)
        self.assertEqual(len(DatasetCatalog.get(NAME)), 6)
        bad = parser.parse_args(["--coco-video-dataset", NAME, path + ".x", self.tmp])
        with self.assertRaisesRegex(FileNotFoundError, f"--coco-video-dataset {NAME}: "):
            register_dataset_flags(bad)
