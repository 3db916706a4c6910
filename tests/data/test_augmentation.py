"""centernet_d2.data.augmentation: CenterNet's training augmentation."""

import unittest

import numpy as np
from detectron2.data import transforms as T

from centernet_d2.data import (
    build_centernet_augmentation,
)
from centernet_d2.engine.defaults import setup_cfg
from tests.common import CONFIG


class TestAugmentation(unittest.TestCase):
    def test_fixed_size_output_with_boxes(self):
        cfg = setup_cfg(CONFIG, ["INPUT.CENTERNET.TRAIN_SIZE", "(96, 128)"])
        augs = T.AugmentationList(build_centernet_augmentation(cfg, True))
        rng = np.random.RandomState(0)
        np.random.seed(0)  # Detectron2's augmentations draw from numpy's global RNG
        for _ in range(5):
            image = rng.randint(0, 255, (200, 150, 3)).astype(np.uint8)
            boxes = np.array([[10.0, 20.0, 60.0, 90.0]])
            inp = T.AugInput(image, boxes=boxes)
            transforms = augs(inp)
            self.assertEqual(inp.image.shape[:2], (96, 128))
            # the box follows the image: scaled like it (crop, pad, flip keep sizes); it may
            # stick out of the crop (annotations are clipped later, by the mapper)
            resize = next(t for t in transforms if isinstance(t, T.ResizeTransform))
            scale_x, scale_y = resize.new_w / resize.w, resize.new_h / resize.h
            w, h = inp.boxes[0, 2] - inp.boxes[0, 0], inp.boxes[0, 3] - inp.boxes[0, 1]
            np.testing.assert_allclose([w, h], [50 * scale_x, 70 * scale_y], rtol=1e-5)

    def test_config_keys(self):
        augs = build_centernet_augmentation(setup_cfg(CONFIG), True)
        kinds = [type(a).__name__ for a in augs]
        self.assertEqual(kinds[:3], ["ResizeScale", "FixedSizeCrop", "RandomFlip"])
        self.assertIn("RandomBrightness", kinds)
        cfg = setup_cfg(
            CONFIG, ["INPUT.CENTERNET.COLOR_JITTER", "0.0", "INPUT.RANDOM_FLIP", "none"]
        )
        self.assertEqual(len(build_centernet_augmentation(cfg, True)), 2)
        with self.assertRaisesRegex(ValueError, "SCALE_RANGE"):
            build_centernet_augmentation(
                setup_cfg(CONFIG, ["INPUT.CENTERNET.SCALE_RANGE", "(1.2, 0.5)"]), True
            )
        test = build_centernet_augmentation(setup_cfg(CONFIG), False)
        self.assertIsInstance(test[0], T.ResizeShortestEdge)


if __name__ == "__main__":
    unittest.main()
