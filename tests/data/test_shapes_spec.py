"""centernet_d2.data.shapes_spec: defaults, normalised values, errors that name the field."""

import dataclasses
import unittest

import numpy as np

from centernet_d2.data.shapes_spec import ShapesSpec


class TestShapesSpec(unittest.TestCase):
    def test_defaults_and_normalisation(self):
        spec = ShapesSpec(num_images=3, seed=1)
        self.assertEqual(spec.image_size, (256, 256))
        self.assertEqual((spec.min_objects, spec.max_objects), (1, 8))
        self.assertEqual((spec.min_size, spec.max_size, spec.max_occlusion), (8.0, 96.0, 0.6))
        self.assertEqual(spec.image_format, "jpg")
        # S and (S, S), int and float sizes, numpy scalars: the same spec, with Python types
        other = ShapesSpec(np.int64(3), 1, (256, 256), min_size=8, max_size=np.float32(96))
        self.assertEqual(other, spec)
        self.assertIs(type(other.num_images), int)
        self.assertIs(type(other.min_size), float)
        self.assertEqual(ShapesSpec(1, 0, [80, 112], max_size=64).image_size, (80, 112))

    def test_frozen(self):
        spec = ShapesSpec(1, 0)
        with self.assertRaises(dataclasses.FrozenInstanceError):
            spec.seed = 2
        self.assertEqual(dataclasses.replace(spec, seed=2).seed, 2)

    def test_errors_name_the_field(self):
        bad = [
            ({"num_images": 0}, "num_images must be >= 1"),
            ({"num_images": 2.0}, "num_images must be an int"),
            ({"seed": -1}, "seed must be >= 0"),
            ({"image_size": (64, 64, 3)}, "image_size must be"),
            ({"image_size": "256"}, "image_size must be"),
            ({"image_size": 0}, "image_size must be"),
            ({"min_objects": 3, "max_objects": 2}, "min_objects <= max_objects"),
            ({"max_objects": True}, "max_objects must be an int"),
            ({"image_size": 64}, "max_size"),  # default max_size 96 > 64
            ({"min_size": 50, "max_size": 50}, "min_size"),
            ({"min_size": "8"}, "min_size must be a number"),
            ({"max_occlusion": 1.0}, "max_occlusion"),
            ({"image_format": "bmp"}, "image_format"),
        ]
        for kwargs, message in bad:
            with self.subTest(**kwargs):
                with self.assertRaisesRegex(ValueError, message):
                    ShapesSpec(**{"num_images": 1, "seed": 0, **kwargs})
