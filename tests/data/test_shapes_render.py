"""centernet_d2.data.shapes_render: one image from a spec, in memory."""

import unittest

import numpy as np

from centernet_d2.data.builtin import BUILTIN_SHAPES_SPLITS
from centernet_d2.data.shapes_render import (
    SHAPE_CLASSES,
    SHAPE_KEYPOINTS,
    render_shapes,
    render_shapes_image,
)
from centernet_d2.data.shapes_spec import ShapesSpec


class TestShapesRender(unittest.TestCase):
    def test_occlusion_limit(self):
        rng = np.random.default_rng(0)
        for _ in range(10):
            img, objects = render_shapes_image(rng, (80, 112), max_size=64, max_occlusion=0.6)
            self.assertEqual(img.shape, (80, 112, 3))
            self.assertEqual(img.dtype, np.uint8)
            for obj in objects:
                self.assertGreaterEqual(obj["visible"], 0.4)

    def test_image_of_a_split(self):
        spec = ShapesSpec(num_images=3, seed=4, image_size=(72, 96), max_size=48)
        img, objects = render_shapes(spec, 2)
        # image i of a split is the image drawn from default_rng([seed, i]) ...
        ref_img, ref_objects = render_shapes_image(
            np.random.default_rng([4, 2]), (72, 96), max_size=48
        )
        np.testing.assert_array_equal(img, ref_img)
        self.assertEqual(objects, ref_objects)
        # ... whatever the number of images
        np.testing.assert_array_equal(
            render_shapes(ShapesSpec(9, 4, (72, 96), max_size=48), 2)[0], img
        )
        self.assertEqual(img.shape, (72, 96, 3))
        for obj in objects:
            x, y, w, h = obj["bbox"]
            self.assertTrue(8 <= max(w, h) <= 48, obj)
            self.assertTrue(0 <= x and 0 <= y and x + w <= 96 and y + h <= 72, obj)
            self.assertIn(obj["category_id"], range(1, len(SHAPE_CLASSES) + 1))
            # x, y, v per keypoint of the class, in the box (continuous pixels)
            kp = obj["keypoints"]
            self.assertEqual(len(kp), 3 * len(SHAPE_KEYPOINTS[obj["category_id"] - 1]))
            for kx, ky in zip(kp[0::3], kp[1::3]):
                self.assertTrue(x <= kx <= x + w and y <= ky <= y + h, obj)

    def test_bad_arguments(self):
        with self.assertRaisesRegex(ValueError, "index"):
            render_shapes(ShapesSpec(2, 0), 2)
        with self.assertRaisesRegex(ValueError, "max_occlusion"):
            render_shapes_image(np.random.default_rng(0), max_occlusion=1.5)
        with self.assertRaisesRegex(TypeError, "colour"):
            render_shapes_image(np.random.default_rng(0), colour=3)


class TestWideScale(unittest.TestCase):
    def test_log_uniform_sizes_span_the_range(self):
        spec = BUILTIN_SHAPES_SPLITS["shapes_wide_train"][1]
        self.assertEqual((spec.image_size, spec.min_size, spec.max_size), ((512, 512), 4.0, 256.0))
        self.assertEqual((spec.min_objects, spec.max_objects), (1, 60))
        sides, counts = [], []
        for i in range(12):
            _, annos = render_shapes(spec, i)
            counts.append(len(annos))
            sides += [max(a["bbox"][2:]) for a in annos]
        sides = np.array(sides)
        self.assertTrue(((sides >= 4) & (sides <= 256)).all())
        # log-uniform over [4, 256]: half below the geometric mean 32 (occlusion drops some
        # large objects, so a little more), a sixth below 8 px
        self.assertGreater((sides < 32).mean(), 0.45)
        self.assertGreater((sides < 8).mean(), 0.1)
        self.assertGreater(sides.max(), 128)
        self.assertGreater(max(counts), 40)  # dense images

    def test_uniform_is_the_default_and_others_are_refused(self):
        self.assertEqual(ShapesSpec(1, 0).size_distribution, "uniform")
        with self.assertRaisesRegex(ValueError, "size_distribution must be one of"):
            ShapesSpec(1, 0, size_distribution="normal")
