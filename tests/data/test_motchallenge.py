"""centernet_d2.data.motchallenge and tools/convert_mot.py: MOTChallenge folders -> COCO-video."""

import argparse
import json
import os
import tempfile
import unittest
from collections import Counter

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode

from centernet_d2.data import convert_mot, mot_to_coco_video, register_coco_video_dataset
from centernet_d2.evaluation import MOTEvaluator
from tests.common import MOT_ROWS, load_tool, pred_instances, run_tool_in_process, write_mot_folder

LENGTHS = {"MOT-A": 5, "MOT-B": 4}


class TestConvertMOT(unittest.TestCase):
    def setUp(self):
        self._tmp = tempfile.TemporaryDirectory()
        self.root = os.path.join(self._tmp.name, "train")
        write_mot_folder(self.root, LENGTHS)

    def tearDown(self):
        self._tmp.cleanup()

    def test_full(self):
        coco = mot_to_coco_video(self.root)
        self.assertEqual(coco["categories"], [{"id": 1, "name": "pedestrian"}])
        self.assertEqual(
            coco["videos"],
            [{"id": 1, "file_name": "MOT-A", "frame_rate": 30},
             {"id": 2, "file_name": "MOT-B", "frame_rate": 30}],
        )  # fmt: skip
        images = coco["images"]
        self.assertEqual([i["id"] for i in images], list(range(1, 10)))
        self.assertEqual(images[5]["file_name"], "MOT-B/img1/000001.jpg")
        self.assertEqual(
            [(i["video_id"], i["frame_id"], i["prev_image_id"], i["next_image_id"])
             for i in images],
            [(1, 1, -1, 2), (1, 2, 1, 3), (1, 3, 2, 4), (1, 4, 3, 5), (1, 5, 4, -1),
             (2, 1, -1, 7), (2, 2, 6, 8), (2, 3, 7, 9), (2, 4, 8, -1)],
        )  # fmt: skip
        self.assertEqual((images[0]["height"], images[0]["width"]), (48, 64))
        # pedestrians with conf 1: ids 1 and 2 in each of the 9 frames
        annos = coco["annotations"]
        self.assertEqual(Counter(a["track_id"] for a in annos), {1: 9, 2: 9})
        self.assertEqual({a["iscrowd"] for a in annos}, {0})
        frame_of = {i["id"]: i["frame_id"] for i in images}
        for a in annos:
            box = dict((r[0], r[1]) for r in MOT_ROWS)[a["track_id"]](frame_of[a["image_id"]])
            self.assertEqual(a["bbox"], box)  # as gt.txt has it
            self.assertEqual(a["area"], box[2] * box[3])

    def test_options(self):
        coco = mot_to_coco_video(
            self.root, classes=(1, 3), ignore_classes=(7, 8), sequences=["MOT-B"]
        )
        self.assertEqual([v["file_name"] for v in coco["videos"]], ["MOT-B"])
        self.assertEqual(
            coco["categories"], [{"id": 1, "name": "pedestrian"}, {"id": 2, "name": "car"}]
        )
        got = Counter((a["track_id"], a["category_id"], a["iscrowd"]) for a in coco["annotations"])
        # id 2 (20 % visible) stays, as TrackEval counts it; id 4 (static person) and id 6 (a
        # distractor of conf 0, which TrackEval still uses) are crowd boxes; id 5 is a car;
        # id 3 (a pedestrian of conf 0) is not ground truth
        self.assertEqual(
            got, {(1, 1, 0): 4, (2, 1, 0): 4, (4, 1, 1): 4, (5, 2, 0): 4, (6, 1, 1): 4}
        )
        visibility = {a["track_id"]: a["visibility"] for a in coco["annotations"]}
        self.assertEqual(visibility[2], 0.2)

    def test_halves(self):
        # CenterTrack's cut of n frames: 1 .. n // 2 + 1 and the rest; A: 1-3 | 4-5, B: 1-3 | 4
        full = mot_to_coco_video(self.root)
        train, val = (mot_to_coco_video(self.root, half=h) for h in ("train", "val"))
        frames = {
            name: [(i["video_id"], i["file_name"][-10:-4], i["frame_id"]) for i in c["images"]]
            for name, c in (("train", train), ("val", val))
        }
        self.assertEqual(
            frames["train"],
            [(1, "000001", 1), (1, "000002", 2), (1, "000003", 3),
             (2, "000001", 1), (2, "000002", 2), (2, "000003", 3)],
        )  # fmt: skip
        self.assertEqual(frames["val"], [(1, "000004", 1), (1, "000005", 2), (2, "000004", 1)])
        links = [(i["prev_image_id"], i["next_image_id"]) for i in val["images"]]
        self.assertEqual(links, [(-1, 2), (1, -1), (-1, -1)])  # no link across the cut

        # the two halves hold the full set's boxes, each in its image
        def boxes(coco):
            name = {i["id"]: i["file_name"] for i in coco["images"]}
            return sorted(
                (name[a["image_id"]], a["track_id"], a["bbox"]) for a in coco["annotations"]
            )

        self.assertEqual(sorted(boxes(train) + boxes(val)), boxes(full))
        self.assertEqual(len(val["annotations"]), 2 * 3)

    def test_registered_round_trip(self):
        path = os.path.join(self._tmp.name, "annotations", "val_half.json")
        convert_mot(self.root, path, half="val")
        name = "mot_round_trip_test"
        register_coco_video_dataset(name, path, self.root)
        try:
            dicts = DatasetCatalog.get(name)
            self.assertEqual(MetadataCatalog.get(name).video_names, {1: "MOT-A", 2: "MOT-B"})
        finally:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        d = dicts[1]  # MOT-A frame 5
        self.assertEqual(d["file_name"], os.path.join(self.root, "MOT-A", "img1", "000005.jpg"))
        self.assertTrue(os.path.isfile(d["file_name"]))
        self.assertEqual((d["video_id"], d["frame_id"]), (1, 2))
        got = {
            a["track_id"]: BoxMode.convert(a["bbox"], a["bbox_mode"], BoxMode.XYXY_ABS)
            for a in d["annotations"]
        }
        # id 1 in frame 5: x = 2 + 15, y = 4, w = 10.5, h = 12
        self.assertEqual(got[1], [17.0, 4.0, 27.5, 16.0])

    def test_evaluator_scores_what_the_loader_read(self):
        # converted as the docs say for MOT17, tracks on every MOT_ROWS box of every frame with
        # the rows' ids: the pedestrians (conf 1, class 1, whatever their visibility) are the
        # ground truth, all found; boxes on the static person (7) and the conf-0 distractor (8)
        # are ignored, the car (3) is a false positive
        path = os.path.join(self._tmp.name, "annotations", "train.json")
        convert_mot(self.root, path, ignore_classes=(2, 7, 8, 12))
        name = "mot_eval_test"
        register_coco_video_dataset(name, path, self.root)
        try:
            evaluator = MOTEvaluator(name)
            evaluator.reset()
            for d in DatasetCatalog.get(name):
                ids = [row[0] for row in MOT_ROWS if row[0] != 3]  # 3: conf 0 pedestrian
                boxes = [
                    BoxMode.convert(row[1](d["frame_id"]), BoxMode.XYWH_ABS, BoxMode.XYXY_ABS)
                    for row in MOT_ROWS
                    if row[0] != 3
                ]
                tracks = pred_instances(boxes, [0] * len(ids), size=(48, 64), track_ids=ids)
                evaluator.process([{"image_id": d["image_id"]}], [{"instances": tracks}])
            tracking = evaluator.evaluate()["tracking"]
        finally:
            DatasetCatalog.remove(name)
            MetadataCatalog.remove(name)
        frames = sum(LENGTHS.values())
        pedestrians = sum(1 for _, _, conf, cls, _ in MOT_ROWS if conf != 0 and cls == 1)
        self.assertEqual(
            {k: tracking[k] for k in ("GT", "FN", "FP", "IDSW")},
            {"GT": pedestrians * frames, "FN": 0, "FP": frames, "IDSW": 0},
        )

    def test_errors(self):
        with self.assertRaisesRegex(ValueError, "half"):
            mot_to_coco_video(self.root, half="test")
        with self.assertRaisesRegex(ValueError, r"\[1\] are in both"):
            mot_to_coco_video(self.root, ignore_classes=(1,))
        with self.assertRaisesRegex(FileNotFoundError, "'MOT-C'"):
            mot_to_coco_video(self.root, sequences=["MOT-C"])
        with self.assertRaisesRegex(FileNotFoundError, "seqinfo.ini"):
            mot_to_coco_video(self._tmp.name)
        os.remove(os.path.join(self.root, "MOT-B", "img1", "000003.jpg"))
        with self.assertRaisesRegex(FileNotFoundError, "MOT-B/img1/000003.jpg"):
            mot_to_coco_video(self.root)
        gt = os.path.join(self.root, "MOT-A", "gt", "gt.txt")
        with open(gt, "a") as f:
            f.write("6,1,1,1,5,5,1,1,1.0\n")  # frame 6 of 5
        with self.assertRaisesRegex(ValueError, "gt.txt, line 31: frame 6 is not in 1..5"):
            mot_to_coco_video(self.root, sequences=["MOT-A"])
        with open(gt, "w") as f:
            f.write("1,1,1,1,5,5\n")
        with self.assertRaisesRegex(ValueError, "6 columns"):
            mot_to_coco_video(self.root, sequences=["MOT-A"])
        info = os.path.join(self.root, "MOT-A", "seqinfo.ini")
        with open(info) as f:
            text = f.read()
        with open(info, "w") as f:
            f.write(text.replace("seqLength=5\n", ""))
        with self.assertRaisesRegex(ValueError, "no 'seqLength'"):
            mot_to_coco_video(self.root, sequences=["MOT-A"])

    def test_test_split_without_gt(self):
        os.remove(os.path.join(self.root, "MOT-A", "gt", "gt.txt"))
        coco = mot_to_coco_video(self.root, sequences=["MOT-A"])
        self.assertEqual((len(coco["images"]), len(coco["annotations"])), (5, 0))


class TestConvertMOTTool(unittest.TestCase):
    def test_main(self):
        tool = load_tool("convert_mot")
        with tempfile.TemporaryDirectory() as tmp:
            root = os.path.join(tmp, "train")
            write_mot_folder(root, LENGTHS)
            out = os.path.join(tmp, "out", "val.json")
            args = tool.get_parser().parse_args(
                [root, out, "--half", "val", "--ignore-classes", "7", "--sequences", "MOT-A"]
            )
            self.assertIsInstance(args, argparse.Namespace)
            tool.main(args)
            with open(out) as f:
                coco = json.load(f)
        self.assertEqual(len(coco["images"]), 2)
        self.assertEqual(Counter(a["iscrowd"] for a in coco["annotations"]), {0: 4, 1: 2})

    def test_user_error(self):
        with tempfile.TemporaryDirectory() as tmp:
            code, stderr = run_tool_in_process(
                "convert_mot", [os.path.join(tmp, "nothing"), "out.json"]
            )
        self.assertEqual(code, 2, stderr)
        self.assertIn("error: MOT folder", stderr)
        self.assertIn("nothing not found", stderr)

    def test_visibility_is_not_a_conversion_option(self):
        # a val json filtered by visibility would not be TrackEval's ground truth
        tool = load_tool("convert_mot")
        with tempfile.TemporaryDirectory() as tmp:
            args = tool.get_parser().parse_args(
                [tmp, os.path.join(tmp, "val.json"), "--min-visibility", "0.25"]
            )
            with self.assertRaisesRegex(ValueError, "DATALOADER.MIN_VISIBILITY 0.25"):
                tool.main(args)
            self.assertFalse(os.path.exists(os.path.join(tmp, "val.json")))


class TestTrainingVisibility(unittest.TestCase):
    def test_only_training_drops_hidden_objects(self):
        from centernet_d2.data.video import drop_hidden_objects

        dicts = [
            {"image_id": 1, "annotations": [
                {"track_id": 1, "visibility": 1.0}, {"track_id": 2, "visibility": 0.2},
                {"track_id": 4, "visibility": 0.1, "iscrowd": 1}, {"track_id": 7},
            ]}
        ]  # fmt: skip
        kept = drop_hidden_objects(dicts, 0.25)
        self.assertEqual([a["track_id"] for a in kept[0]["annotations"]], [1, 4, 7])
        self.assertEqual(len(dicts[0]["annotations"]), 4)  # the given dicts unchanged
        self.assertIs(drop_hidden_objects(dicts, 0.0), dicts)

    def test_trainer_applies_it_to_the_training_set(self):
        from centernet_d2.engine.trainer import Trainer
        from tests.common import TRACK_CONFIG, model_cfg

        with tempfile.TemporaryDirectory() as tmp:
            root = os.path.join(tmp, "train")
            write_mot_folder(root, {"MOT-A": 3})
            convert_mot(root, os.path.join(tmp, "train.json"), ignore_classes=(7, 8))
            register_coco_video_dataset("mot_vis_train", os.path.join(tmp, "train.json"), root)
            try:
                for visibility, ids in (("0.0", {1, 2, 4, 6}), ("0.25", {1, 4, 6})):
                    cfg = model_cfg(
                        TRACK_CONFIG,
                        "DATASETS.TRAIN", '("mot_vis_train",)',
                        "MODEL.CENTERNET.NUM_CLASSES", "1",
                        "DATALOADER.MIN_VISIBILITY", visibility,
                    )  # fmt: skip
                    dicts = Trainer.build_train_dataset(cfg)
                    got = {a["track_id"] for d in dicts for a in d["annotations"]}
                    self.assertEqual(got, ids)
            finally:
                DatasetCatalog.remove("mot_vis_train")
                MetadataCatalog.remove("mot_vis_train")
