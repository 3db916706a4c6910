"""centernet_d2.data.frame_pairs: CenterTrack's training pairs (video frames and still images
with a shifted, scaled copy) and the disturbances of the previous-frame boxes."""

import os
import tempfile
import unittest
from unittest import mock

import cv2
import numpy as np
import torch
from detectron2.data import transforms as T
from detectron2.structures import Boxes, Instances
from PIL import Image

from centernet_d2.data import frame_pairs
from centernet_d2.data.frame_pairs import (
    CenterTrackDatasetMapper,
    PairSettings,
    disturb_prev_boxes,
    link_prev_boxes,
    static_pair_transform,
)
from centernet_d2.data.video import load_coco_video_json
from tests.common import TRACK_CONFIG, coco_video_json, model_cfg, write_coco_video

# no augmentation: the image's own size, scale 1, no flip, no colour jitter
IDENTITY = [
    "INPUT.CENTERNET.SCALE_RANGE", "(1.0, 1.0)",
    "INPUT.RANDOM_FLIP", "none",
    "INPUT.CENTERNET.COLOR_JITTER", "0.0",
]  # fmt: skip
NO_DISTURBANCE = [
    "INPUT.CENTERTRACK.PREV_HEATMAP_JITTER", "0.0",
    "INPUT.CENTERTRACK.PREV_HEATMAP_DROP", "0.0",
    "INPUT.CENTERTRACK.PREV_HEATMAP_FALSE_POSITIVE", "0.0",
]  # fmt: skip


def square_image(path, size, box):
    """A dark grey image of ``size`` (h, w) with a white rectangle filling ``box`` (XYXY)."""
    image = np.full((*size, 3), 40, np.uint8)
    x0, y0, x1, y1 = box
    image[y0:y1, x0:x1] = 255
    cv2.imwrite(path, image)


def bright_box(image_chw):
    """XYXY bounds of the pixels brighter than mid-grey of a (3, H, W) image."""
    ys, xs = np.nonzero(image_chw.numpy().mean(0) > 148)
    return [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]


class TestStaticPairTransform(unittest.TestCase):
    def test_draws_as_documented(self):
        np.random.seed(3)
        draws = np.random.randn(3)
        np.random.seed(3)
        t = static_pair_transform(60, 80, shift=0.05, scale=0.05)
        dx, dy = np.clip(draws[:2] * 0.05, -0.1, 0.1) * 80  # of the longer side
        f = np.clip(draws[2] * 0.05 + 1, 0.95, 1.05)
        cx, cy = 40 + dx, 30 + dy
        np.testing.assert_allclose(
            t.src_rect, [cx - 40 * f, cy - 30 * f, cx + 40 * f, cy + 30 * f], rtol=1e-6
        )
        # a box moves by -(dx, dy) about the centre and scales by 1 / f
        box = np.array([[20.0, 10.0, 40.0, 30.0]])
        expected = (box - [cx, cy, cx, cy]) / f + [40, 30, 40, 30]
        np.testing.assert_allclose(t.apply_box(box), expected, rtol=1e-5)

    def test_image_moves_as_boxes(self):
        image = np.full((64, 96, 3), 40, np.uint8)
        image[20:36, 30:50] = 255
        t = T.ExtentTransform((6.0, -4.0, 102.0, 60.0), (64, 96), interp=Image.BILINEAR)
        (box,) = t.apply_box(np.array([[30.0, 20.0, 50.0, 36.0]]))
        np.testing.assert_allclose(box, [24, 24, 44, 40])  # moved by (-6, +4)
        moved = torch.from_numpy(t.apply_image(image).transpose(2, 0, 1).copy())
        self.assertEqual(bright_box(moved), [24, 24, 44, 40])


class TestDisturbances(unittest.TestCase):
    def test_none(self):
        boxes = np.array([[0, 0, 10, 20], [5, 5, 9, 9]], np.float32)
        np.testing.assert_array_equal(disturb_prev_boxes(boxes, 0.0, 0.0, 0.0), boxes)
        self.assertEqual(disturb_prev_boxes(boxes, 0.05, 1.0, 1.0).shape, (0, 4))
        self.assertEqual(disturb_prev_boxes(np.zeros((0, 4)), 0.05, 0.4, 0.1).shape, (0, 4))

    def test_statistics(self):
        np.random.seed(0)
        boxes = np.tile(np.array([[10, 20, 50, 100]], np.float32), (4000, 1))  # 40 x 80 px
        out = disturb_prev_boxes(boxes, jitter=0.05, drop=0.4, false_positive=0.1)
        kept = 4000 - int(round(4000 * 0.4))
        # about 60 % kept, and a false positive for about 10 % of those
        self.assertAlmostEqual(len(out) / 4000, 0.6 * 1.1, delta=0.03)
        centres = (out[:, :2] + out[:, 2:]) / 2 - [30, 60]
        main = centres[: int(len(out) / 1.1)]
        np.testing.assert_allclose(main.std(0), [0.05 * 40, 0.05 * 80], rtol=0.1)
        np.testing.assert_allclose(out[:, 2:] - out[:, :2], np.tile([[40, 80]], (len(out), 1)))
        self.assertGreater(kept, 0)


class TestLink(unittest.TestCase):
    def test_by_track_id(self):
        now = Instances((50, 50), gt_boxes=Boxes(torch.tensor([[0.0, 0, 5, 5], [10, 10, 20, 20]])))
        now.gt_track_ids = torch.tensor([7, 3])
        prev = Instances((50, 50), gt_boxes=Boxes(torch.tensor([[11.0, 9, 21, 19]])))
        prev.gt_track_ids = torch.tensor([3])
        self.assertEqual(
            link_prev_boxes(now, prev).tensor.tolist(), [[0, 0, 0, 0], [11, 9, 21, 19]]
        )
        empty = Instances((50, 50), gt_boxes=Boxes(torch.zeros(0, 4)))
        empty.gt_track_ids = torch.zeros(0, dtype=torch.long)
        self.assertEqual(link_prev_boxes(now, empty).tensor.tolist(), [[0, 0, 0, 0]] * 2)

    def test_settings_checked(self):
        with self.assertRaisesRegex(ValueError, "MAX_FRAME_DIST"):
            PairSettings(max_frame_dist=0)
        with self.assertRaisesRegex(ValueError, "PREV_HEATMAP_DROP"):
            PairSettings(drop=1.5)


class TestPairAugmentation(unittest.TestCase):
    """Full augmentation (scale, crop, flip, colour jitter): geometry shared by the two frames,
    colours drawn per frame, nothing of the current frame in the previous one."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.files = {}
        for name, value in (("white", 255), ("black", 0)):
            cls.files[name] = os.path.join(cls.tmp.name, name + ".png")
            cv2.imwrite(cls.files[name], np.full((64, 96, 3), value, np.uint8))
        for name in ("now", "before"):
            cls.files[name] = os.path.join(cls.tmp.name, name + ".png")
            square_image(cls.files[name], (64, 96), (30, 20, 50, 36))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def pair(self, now, before, seed, jitter="0.4", scale="(0.6, 1.3)"):
        frames = [
            {"file_name": self.files[f], "height": 64, "width": 96, "image_id": i,
             "video_id": 1, "frame_id": i, "annotations": []}
            for i, f in enumerate((before, now))
        ]  # fmt: skip
        cfg = model_cfg(
            TRACK_CONFIG,
            "INPUT.CENTERNET.TRAIN_SIZE", "(64, 96)",
            "INPUT.CENTERNET.SCALE_RANGE", scale,
            "INPUT.RANDOM_FLIP", "horizontal",
            "INPUT.CENTERNET.COLOR_JITTER", jitter,
        )  # fmt: skip
        mapper = CenterTrackDatasetMapper(cfg, True, frames=frames)
        np.random.seed(seed)
        with mock.patch.object(mapper, "prev_frame", return_value=frames[0]):
            return mapper(dict(frames[1]))

    def test_previous_image_depends_only_on_the_previous_file(self):
        # a black previous frame stays black whatever the white current frame's jitter: blending
        # with the current frame's mean or grey image would brighten it (scales above 1: cropped,
        # never padded with grey)
        for seed in range(12):
            out = self.pair("white", "black", seed, scale="(1.1, 1.3)")
            self.assertEqual(int(out["prev_image"].max()), 0, f"seed {seed}")
            self.assertGreater(int(out["image"].max()), 0)

    def test_geometry_shared_colours_per_frame(self):
        differ = 0
        for seed in range(12):
            out = self.pair("now", "before", seed, jitter="0.2")
            # the same scale, crop and flip: the square is at the same place in both (give or
            # take the blurred edge pixel that jitter lifts above the threshold)
            np.testing.assert_allclose(
                bright_box(out["image"]), bright_box(out["prev_image"]), atol=1
            )
            differ += int(not torch.equal(out["image"], out["prev_image"]))
        self.assertGreater(differ, 6)  # each frame's own colour jitter


class TestMapper(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cls.still = os.path.join(cls.tmp.name, "still.png")
        square_image(cls.still, (64, 96), (30, 20, 50, 36))
        coco = coco_video_json(num_videos=1, num_frames=6, size=(64, 96))
        json_file = write_coco_video(cls.tmp.name, coco)
        cls.frames = load_coco_video_json(json_file, cls.tmp.name)

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def mapper(self, *opts, frames=()):
        cfg = model_cfg(TRACK_CONFIG, "INPUT.CENTERNET.TRAIN_SIZE", "(64, 96)", *IDENTITY, *opts)
        return CenterTrackDatasetMapper(cfg, True, frames=frames)

    def test_still_image_pair_moves_as_its_transform(self):
        shift = T.ExtentTransform((6.0, -4.0, 102.0, 60.0), (64, 96), interp=Image.BILINEAR)
        d = {
            "file_name": self.still, "height": 64, "width": 96, "image_id": 1,
            "annotations": [{"bbox": [30, 20, 20, 16], "bbox_mode": 1, "category_id": 2}],
        }  # fmt: skip
        mapper = self.mapper(*NO_DISTURBANCE)
        with mock.patch.object(frame_pairs, "static_pair_transform", return_value=shift):
            out = mapper(d)
        inst = out["instances"]
        self.assertEqual(inst.gt_boxes.tensor.tolist(), [[30, 20, 50, 36]])
        self.assertEqual(inst.gt_classes.tolist(), [2])
        self.assertEqual(inst.gt_track_ids.tolist(), [0])  # its position in a still image
        self.assertEqual(bright_box(out["image"]), [30, 20, 50, 36])
        # the previous frame: the image moved by (-6, +4) as the transform says, and the box too
        self.assertEqual(inst.gt_prev_boxes.tensor.tolist(), [[24, 24, 44, 40]])
        self.assertEqual(bright_box(out["prev_image"]), [24, 24, 44, 40])
        self.assertEqual(out["prev_boxes"].tolist(), [[24, 24, 44, 40]])

    def test_video_pairs(self):
        mapper = self.mapper(*NO_DISTURBANCE, frames=self.frames)
        distances = set()
        for seed in range(40):
            np.random.seed(seed)
            d = self.frames[2]  # frame 3
            prev = mapper.prev_frame(d)
            distances.add(prev["frame_id"] - d["frame_id"])
        self.assertEqual(distances, {-2, -1, 0, 1, 2})  # |distance| < MAX_FRAME_DIST 3
        checked = 0
        for seed in range(20):
            np.random.seed(seed)
            out = mapper(self.frames[3])  # frame 4: the car at x = 8, 2 px per frame
            inst = out["instances"]
            self.assertEqual(inst.gt_track_ids.tolist(), [11, 12])
            self.assertEqual(out["prev_image"].shape, out["image"].shape)
            np.random.seed(seed)  # the same draw of the previous frame, made first
            t = mapper.prev_frame(self.frames[3])["frame_id"]
            if t == 4:  # the frame itself: a still-image pair (shifted, scaled)
                continue
            checked += 1
            car = [2.0 * t, 4, 2.0 * t + 10, 16]
            self.assertEqual(inst.gt_prev_boxes.tensor[0].tolist(), car)
            self.assertEqual(inst.gt_prev_boxes.tensor[1].tolist(), [30, 20, 38, 36])
        self.assertGreater(checked, 10)

    def test_test_time_is_the_detector_mapper(self):
        cfg = model_cfg(TRACK_CONFIG, "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "96")
        out = CenterTrackDatasetMapper(cfg, False)(dict(self.frames[0]))
        self.assertEqual(set(out) & {"prev_image", "prev_boxes", "instances"}, set())
        self.assertEqual(out["video_id"], 1)


if __name__ == "__main__":
    unittest.main()
