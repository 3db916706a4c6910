"""Keypoints through the training mapper: a horizontal flip mirrors them and swaps the left /
right pairs of the dataset's keypoint_flip_map."""

import json
import os
import tempfile
import unittest

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data import transforms as T

from centernet_d2.data import CenterNetDatasetMapper, register_coco_dataset
from tests.common import model_cfg, write_boxes_coco

CONFIG = os.path.join(
    os.path.dirname(__file__), "..", "..", "configs", "CPU",
    "centernet_keypoints_MobileNetV3_small_FPN_shapes.yaml",
)  # fmt: skip


class TestFlipSwapsKeypoints(unittest.TestCase):
    def test_flip(self):
        with tempfile.TemporaryDirectory() as root:
            json_file = write_boxes_coco(root, num_images=1, keypoints=True)
            register_coco_dataset("kp_flip", json_file, os.path.join(root, "images"))
            try:
                cfg = model_cfg(CONFIG, "DATASETS.TRAIN", "('kp_flip',)")
                mapper = CenterNetDatasetMapper(cfg, True)
                self.assertEqual(list(mapper.keypoint_hflip_indices), [1, 0])
                (d,) = DatasetCatalog.get("kp_flip")
                for flip in (False, True):
                    mapper.augmentations = T.AugmentationList([T.RandomFlip(float(flip))])
                    out = mapper(dict(d))
                    kps = out["instances"].gt_keypoints.tensor  # (2, 2, 3): box, plain
                    classes = out["instances"].gt_classes.tolist()
                    box = kps[classes.index(0)]
                    (x0, y0, w, _), W = json.load(open(json_file))["annotations"][0]["bbox"], 64
                    if not flip:  # top_left, top_right: the square's top corners
                        expected = [[x0, y0, 2], [x0 + w, y0, 2]]
                    else:  # top_left is the mirror of top_right, and the other way round
                        expected = [[W - x0 - w, y0, 2], [W - x0, y0, 2]]
                    self.assertEqual(box.tolist(), expected, f"flip={flip}")
                    self.assertEqual(kps[classes.index(1)].abs().sum().item(), 0.0)  # plain
            finally:
                DatasetCatalog.remove("kp_flip")
                MetadataCatalog.remove("kp_flip")


if __name__ == "__main__":
    unittest.main()
