"""Bad input in users' datasets: missing, corrupt and truncated image files, images of another
size than annotated, images that fail in the augmentation, unusual image modes, tiny images and
images of extreme aspect ratio, images without objects and bad boxes. Tiny COCO-format datasets are
written to a temp folder; training runs two iterations of the CPU config on 64x64 inputs."""

import io
import itertools
import json
import logging
import math
import os
import tempfile
import unittest
from unittest import mock

import numpy as np
import torch
from detectron2.data import detection_utils
from detectron2.data import transforms as T
from detectron2.structures import BoxMode
from detectron2.utils.events import EventStorage
from PIL import Image

from centernet_d2.data import (
    CenterNetDatasetMapper,
    UnreadableImageError,
    check_annotations,
    check_image_files,
    read_image,
    register_coco_dataset,
)
from centernet_d2.data.mapper import MAX_BAD_IMAGES_IN_A_ROW
from centernet_d2.engine import Trainer
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.engine.predictor import CenterNetPredictor
from tests import common
from tests.common import CONFIG

TINY = common.TINY + [
    "MODEL.CENTERNET.NUM_CLASSES", "1", "SOLVER.IMS_PER_BATCH", "2", "SOLVER.MAX_ITER", "2",
    "SOLVER.WARMUP_ITERS", "1", "INPUT.CENTERNET.TRAIN_SIZE", "(64, 64)",
    "INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64", "DATASETS.TEST", "()",
]  # fmt: skip
CHECKS_LOG = "centernet_d2.data.checks"
MAPPER_LOG = "centernet_d2.data.mapper"
_names = itertools.count()


def rgb_image(size=32, seed=0):
    return Image.fromarray(
        np.random.RandomState(seed).randint(0, 256, (size, size, 3), dtype=np.uint8)
    )


def truncated_jpeg():
    buf = io.BytesIO()
    rgb_image().save(buf, "JPEG")
    return buf.getvalue()[: len(buf.getvalue()) // 2]


def broken_png():
    """A PNG whose header and end are fine but whose pixel data is garbled: found only when it is
    decoded in full."""
    buf = io.BytesIO()
    rgb_image().save(buf, "PNG")
    data = bytearray(buf.getvalue())
    start = data.find(b"IDAT") + 8
    data[start : start + 32] = bytes(b ^ 0xFF for b in data[start : start + 32])
    return bytes(data)


def box(x, y, w, h):
    return {
        "bbox": [x, y, w, h],
        "bbox_mode": BoxMode.XYWH_ABS,  # as COCO's loader sets it
        "category_id": 1,
        "iscrowd": 0,
        "area": abs(w * h),
    }


class DatasetCase(unittest.TestCase):
    """A temp folder, tiny COCO-format datasets in it and cfgs / trainers on them."""

    @classmethod
    def setUpClass(cls):
        # 64x64 inputs gain nothing from threads, and on a shared CPU waiting threads cost seconds
        cls._threads = torch.get_num_threads()
        torch.set_num_threads(1)

    @classmethod
    def tearDownClass(cls):
        torch.set_num_threads(cls._threads)

    def setUp(self):
        torch.manual_seed(0)
        self._tmp = tempfile.TemporaryDirectory()
        self.tmp = self._tmp.name

    def tearDown(self):
        self._tmp.cleanup()

    def path(self, file_name):
        return os.path.join(self.tmp, "images", file_name)

    def write(self, file_name, image):
        """Write a PIL image, or raw bytes, as images/<file_name>."""
        os.makedirs(os.path.join(self.tmp, "images"), exist_ok=True)
        if isinstance(image, bytes):
            with open(self.path(file_name), "wb") as f:
                f.write(image)
        else:
            image.save(self.path(file_name))

    def register(self, images):
        """Register a COCO-format dataset of ``{file_name: (width, height, [annotation])}`` (files
        written with :meth:`write`, or missing); returns its unique name."""
        name = f"bad_input_{next(_names)}"
        coco = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "thing"}]}
        for image_id, (file_name, (w, h, annos)) in enumerate(images.items(), 1):
            coco["images"].append({"id": image_id, "file_name": file_name, "width": w, "height": h})
            for a in annos:
                coco["annotations"].append(
                    dict(a, id=len(coco["annotations"]) + 1, image_id=image_id)
                )
        json_file = os.path.join(self.tmp, name + ".json")
        with open(json_file, "w") as f:
            json.dump(coco, f)
        os.makedirs(os.path.join(self.tmp, "images"), exist_ok=True)
        register_coco_dataset(name, json_file, os.path.join(self.tmp, "images"))
        return name

    def good_images(self, n=3, size=32):
        """n good RGB images with one object each, as ``register`` takes them."""
        out = {}
        for i in range(n):
            self.write(f"good{i}.png", rgb_image(size, seed=i))
            out[f"good{i}.png"] = (size, size, [box(4, 4, 16, 12)])
        return out

    def cfg(self, train_name, *opts):
        opts = TINY + ["DATASETS.TRAIN", f"('{train_name}',)", "OUTPUT_DIR", self.tmp] + list(opts)
        return setup_cfg(CONFIG, opts)

    def assert_trains(self, cfg):
        trainer = Trainer(cfg)
        trainer.train()
        self.assertEqual(trainer.iter, cfg.SOLVER.MAX_ITER)  # Detectron2's "finished"
        self.assertTrue(math.isfinite(trainer.storage.history("total_loss").latest()))
        return trainer


class TestImageFiles(DatasetCase):
    def test_missing_file_stop_raises_before_training(self):
        name = self.register(dict(self.good_images(), **{"gone.jpg": (32, 32, [box(1, 1, 9, 9)])}))
        with self.assertRaisesRegex(FileNotFoundError, r"(?s)1 image files.*gone\.jpg: not found"):
            Trainer(self.cfg(name))  # builds the loader: before the first iteration
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "metrics.json")))

    def test_missing_file_skip_trains_and_warns(self):
        name = self.register(dict(self.good_images(), **{"gone.jpg": (32, 32, [box(1, 1, 9, 9)])}))
        cfg = self.cfg(name, "DATALOADER.BAD_IMAGES", "skip")
        with self.assertLogs(CHECKS_LOG, logging.WARNING) as logs:
            dicts = Trainer.build_train_dataset(cfg)
        self.assertIn("gone.jpg", "\n".join(logs.output))
        kept = sorted(os.path.basename(d["file_name"]) for d in dicts)
        self.assertEqual(kept, ["good0.png", "good1.png", "good2.png"])
        self.assert_trains(cfg)

    def test_corrupt_file_stop_raises_naming_it(self):
        self.write("junk.jpg", b"this is not an image")
        name = self.register(dict(self.good_images(), **{"junk.jpg": (32, 32, [box(1, 1, 9, 9)])}))
        with self.assertRaisesRegex(ValueError, r"junk\.jpg: cannot be read.*\n.*BAD_IMAGES skip"):
            Trainer(self.cfg(name))

    def test_truncated_file_found_before_training(self):
        self.write("cut.jpg", truncated_jpeg())
        name = self.register(dict(self.good_images(), **{"cut.jpg": (32, 32, [box(1, 1, 9, 9)])}))
        with self.assertRaisesRegex(ValueError, r"cut\.jpg: cannot be read .*[Tt]runcated"):
            Trainer(self.cfg(name))
        cfg = self.cfg(name, "DATALOADER.BAD_IMAGES", "skip")
        with self.assertLogs(CHECKS_LOG, logging.WARNING) as logs:
            self.assertEqual(len(Trainer.build_train_dataset(cfg)), 3)
        self.assertIn("cut.jpg", "\n".join(logs.output))

    def test_file_that_fails_to_decode_skip_replaces_it(self):
        # header and end marker intact: only decoding finds it, while training
        self.write("garbled.png", broken_png())
        images = {"garbled.png": (32, 32, [box(1, 1, 9, 9)])}
        name = self.register(dict(self.good_images(1), **images))
        cfg = self.cfg(name, "DATALOADER.BAD_IMAGES", "skip")
        self.assertEqual(len(Trainer.build_train_dataset(cfg)), 2)  # passed the fast check
        with self.assertLogs(MAPPER_LOG, logging.WARNING) as logs:
            self.assert_trains(cfg)  # 4 images of 2: the garbled one is drawn and replaced
        self.assertIn("garbled.png", "\n".join(logs.output))

    def test_file_that_fails_to_decode_in_the_mapper(self):
        self.write("garbled.png", broken_png())
        name = self.register({"garbled.png": (32, 32, [box(1, 1, 9, 9)])})
        cfg = self.cfg(name)
        d = {"file_name": self.path("garbled.png"), "height": 32, "width": 32, "annotations": []}
        with self.assertRaisesRegex(UnreadableImageError, r"garbled\.png.*BAD_IMAGES skip"):
            CenterNetDatasetMapper(cfg, True)(d)
        with self.assertLogs(MAPPER_LOG, logging.WARNING) as logs:
            skip = CenterNetDatasetMapper(cfg, True, bad_images="skip")
            self.assertIsNone(skip(d))
        self.assertIn("garbled.png", logs.output[0])
        with self.assertRaisesRegex(RuntimeError, f"{MAX_BAD_IMAGES_IN_A_ROW} training images"):
            for _ in range(MAX_BAD_IMAGES_IN_A_ROW):
                skip(d)  # no endless search for a readable image

    def test_test_loader_raises_naming_the_file(self):
        self.write("garbled.png", broken_png())
        name = self.register(dict(self.good_images(1), **{"garbled.png": (32, 32, [])}))
        loader = Trainer.build_test_loader(self.cfg(name, "DATALOADER.BAD_IMAGES", "skip"), name)
        with self.assertRaisesRegex(UnreadableImageError, r"garbled\.png.*never skipped"):
            list(loader)

    def test_bad_images_value_is_checked(self):
        with self.assertRaisesRegex(ValueError, r"BAD_IMAGES must be one of \('stop', 'skip'\)"):
            check_image_files([], "ignore")
        name = self.register(self.good_images(1))
        with self.assertRaisesRegex(ValueError, r"BAD_IMAGES .* got 'ignore'"):
            CenterNetDatasetMapper(self.cfg(name, "DATALOADER.BAD_IMAGES", "ignore"), True)


class TestImageSize(DatasetCase):
    """Files whose size differs from the ``width`` / ``height`` of their annotation."""

    def test_size_mismatch_stop_raises_before_training(self):
        self.write("wrong.png", rgb_image(32))
        images = {"wrong.png": (40, 24, [box(1, 1, 9, 9)])}  # the file is 32x32
        name = self.register(dict(self.good_images(), **images))
        with self.assertRaisesRegex(
            ValueError, r"wrong\.png: is 32x32 pixels .*annotation says 40x24\n.*BAD_IMAGES skip"
        ):
            Trainer(self.cfg(name))  # builds the loader: before the first iteration
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "metrics.json")))

    def test_size_mismatch_skip_warns_and_trains(self):
        self.write("wrong.png", rgb_image(32))
        images = {"wrong.png": (40, 24, [box(1, 1, 9, 9)])}
        name = self.register(dict(self.good_images(), **images))
        cfg = self.cfg(name, "DATALOADER.BAD_IMAGES", "skip")
        with self.assertLogs(CHECKS_LOG, logging.WARNING) as logs:
            dicts = Trainer.build_train_dataset(cfg)
        self.assertRegex("\n".join(logs.output), r"wrong\.png: is 32x32 .* says 40x24")
        self.assertEqual(len(dicts), 3)
        self.assert_trains(cfg)

    def test_size_is_compared_after_exif_orientation(self):
        # stored 40 wide, 24 high; orientation 6 turns it: Detectron2 sees 24 wide, 40 high
        exif = Image.Exif()
        exif[0x0112] = 6
        os.makedirs(os.path.join(self.tmp, "images"))
        rgb_image(40).crop((0, 0, 40, 24)).save(self.path("turned.jpg"), exif=exif)
        d = {"file_name": self.path("turned.jpg"), "width": 24, "height": 40}
        self.assertEqual(check_image_files([d]), [d])
        self.assertEqual(read_image(d["file_name"]).shape, (40, 24, 3))
        with self.assertRaisesRegex(ValueError, r"turned\.jpg: is 24x40 pixels .* says 40x24"):
            check_image_files([dict(d, width=40, height=24)])

    def test_size_mismatch_in_the_mapper(self):
        # a dict that did not go through check_image_files: Detectron2's SizeMismatchError
        self.write("wrong.png", rgb_image(32))
        name = self.register(self.good_images(1))
        cfg = self.cfg(name)
        d = {"file_name": self.path("wrong.png"), "width": 40, "height": 24, "annotations": []}
        error = detection_utils.SizeMismatchError
        with self.assertRaisesRegex(error, r"wrong\.png.*\(32, 32\).*BAD_IMAGES skip"):
            CenterNetDatasetMapper(cfg, True)(d)
        with self.assertRaisesRegex(error, r"wrong\.png.*never skipped"):
            CenterNetDatasetMapper(cfg, False)(d)
        with self.assertLogs(MAPPER_LOG, logging.WARNING) as logs:
            self.assertIsNone(CenterNetDatasetMapper(cfg, True, bad_images="skip")(d))
        self.assertRegex(logs.output[0], r"wrong\.png failed to load \(SizeMismatchError: ")

    def test_transform_failure_skip_skips_the_image(self):
        self.write("odd.png", rgb_image(40))  # the only 40x40 image: its resize fails
        name = self.register(dict(self.good_images(1), **{"odd.png": (40, 40, [box(1, 1, 9, 9)])}))
        resize = T.ResizeTransform.apply_image

        def failing_resize(transform, img, interp=None):
            if img.shape[:2] == (40, 40):
                raise RuntimeError("resize failed")
            return resize(transform, img, interp)

        cfg = self.cfg(name, "DATALOADER.BAD_IMAGES", "skip")
        odd = [d for d in Trainer.build_train_dataset(cfg) if d["file_name"].endswith("odd.png")]
        with mock.patch.object(T.ResizeTransform, "apply_image", failing_resize):
            with self.assertRaisesRegex(RuntimeError, r"odd\.png.*resize failed.*BAD_IMAGES skip"):
                CenterNetDatasetMapper(self.cfg(name), True)(odd[0])
            with self.assertRaisesRegex(RuntimeError, r"odd\.png.*resize failed.*never skipped"):
                CenterNetDatasetMapper(cfg, False)(odd[0])
            with self.assertLogs(MAPPER_LOG, logging.WARNING) as logs:
                self.assert_trains(cfg)  # 4 images of 2: odd.png is drawn and replaced
        warnings = [line for line in logs.output if "odd.png" in line]
        self.assertEqual(len(warnings), 1)  # once per file
        self.assertIn("RuntimeError: resize failed", warnings[0])


class TestImageModes(DatasetCase):
    def test_grayscale(self):
        self.write("grey.png", Image.fromarray(np.array([[0, 100], [200, 255]], np.uint8), "L"))
        for fmt in ("RGB", "BGR"):
            image = read_image(self.path("grey.png"), fmt)
            self.assertEqual((image.shape, image.dtype), ((2, 2, 3), np.uint8))
            for c in range(3):
                np.testing.assert_array_equal(image[:, :, c], [[0, 100], [200, 255]])

    def test_rgba_drops_alpha(self):
        pixels = np.array([[[10, 20, 30, 0], [40, 50, 60, 255]]], np.uint8)
        self.write("rgba.png", Image.fromarray(pixels, "RGBA"))
        np.testing.assert_array_equal(
            read_image(self.path("rgba.png"), "RGB"), [[[10, 20, 30], [40, 50, 60]]]
        )
        np.testing.assert_array_equal(
            read_image(self.path("rgba.png"), "BGR"), [[[30, 20, 10], [60, 50, 40]]]
        )

    def test_palette(self):
        image = Image.fromarray(np.array([[0, 1], [1, 0]], np.uint8), "P")
        image.putpalette([255, 0, 0, 0, 0, 255] + [0] * (256 * 3 - 6))
        self.write("palette.png", image)
        red, blue = [255, 0, 0], [0, 0, 255]
        np.testing.assert_array_equal(
            read_image(self.path("palette.png")), [[red, blue], [blue, red]]
        )

    def test_16_bit_is_scaled_not_clipped(self):
        values = np.array([[65535, 32896], [257, 0]], np.uint16)
        self.write("deep.png", Image.fromarray(values))  # PNG "I;16"
        self.write("deep.tif", Image.fromarray(values.astype(np.int32), "I"))  # TIFF "I"
        self.assertEqual(Image.open(self.path("deep.png")).mode, "I;16")
        # Detectron2's reader clips: 32896 and 257 become 255
        self.assertEqual(detection_utils.read_image(self.path("deep.png"), "RGB")[0, 1, 0], 255)
        for file_name in ("deep.png", "deep.tif"):
            image = read_image(self.path(file_name), "BGR")
            self.assertEqual((image.shape, image.dtype), ((2, 2, 3), np.uint8))
            # 65535 / 257 = 255, 32896 / 257 = 128, 257 / 257 = 1
            for c in range(3):
                np.testing.assert_array_equal(image[:, :, c], [[255, 128], [1, 0]])

    def test_exif_orientation_is_applied(self):
        image = Image.fromarray(np.array([[0, 50, 100], [150, 200, 250]], np.uint8), "L")
        exif = Image.Exif()
        exif[0x0112] = 6  # stored rotated: display turned 90 degrees clockwise
        image.save(os.path.join(self.tmp, "turned.png"), exif=exif)
        out = read_image(os.path.join(self.tmp, "turned.png"))[:, :, 0]
        np.testing.assert_array_equal(out, [[150, 0], [200, 50], [250, 100]])

    def test_every_mode_trains(self):
        self.write("grey.png", rgb_image(seed=1).convert("L"))
        self.write("rgba.png", rgb_image(seed=2).convert("RGBA"))
        self.write("palette.png", rgb_image(seed=3).convert("P"))
        self.write("deep.png", Image.fromarray(np.full((32, 32), 40000, np.uint16)))
        files = ("grey.png", "rgba.png", "palette.png", "deep.png")
        name = self.register({f: (32, 32, [box(4, 4, 16, 12)]) for f in files})
        cfg = self.cfg(name)
        mapper = CenterNetDatasetMapper(cfg, True)
        for d in Trainer.build_train_dataset(cfg):
            image = mapper(d)["image"]
            self.assertEqual((image.shape, image.dtype), ((3, 64, 64), torch.uint8))
        self.assert_trains(cfg)


class TestTinyAndEmptyImages(DatasetCase):
    def test_image_smaller_than_the_stride(self):
        for i in range(2):
            self.write(f"tiny{i}.png", rgb_image(3, seed=i))
        name = self.register({f"tiny{i}.png": (3, 3, [box(0, 0, 2, 2)]) for i in range(2)})
        # no test-time resize: the 3x3 image itself goes into the model
        cfg = self.cfg(name, "INPUT.MIN_SIZE_TEST", "0")
        trainer = self.assert_trains(cfg)
        model = trainer.model.eval()
        d = Trainer.build_train_dataset(cfg)[0]
        inputs = CenterNetDatasetMapper(cfg, False)(d)
        self.assertEqual(tuple(inputs["image"].shape), (3, 3, 3))
        with torch.no_grad():
            out = model([inputs])[0]["instances"]
        self.assertEqual(out.image_size, (3, 3))
        self.assertTrue(torch.isfinite(out.scores).all())
        predictor = CenterNetPredictor(self.cfg(name))  # resizes to 64 and back
        self.assertEqual(predictor(d["file_name"])["instances"].image_size, (3, 3))

    def test_image_without_objects(self):
        images = self.good_images(1)
        self.write("empty.png", rgb_image(seed=9))
        name = self.register(dict(images, **{"empty.png": (32, 32, [])}))
        # Detectron2's default (DATALOADER.FILTER_EMPTY_ANNOTATIONS True) drops it from training
        self.assertEqual(len(Trainer.build_train_dataset(self.cfg(name))), 1)
        cfg = self.cfg(
            name, "DATALOADER.FILTER_EMPTY_ANNOTATIONS", "False", "DATASETS.TEST", f"('{name}',)"
        )
        dicts = Trainer.build_train_dataset(cfg)
        self.assertEqual(len(dicts), 2)
        trainer = self.assert_trains(cfg)
        mapper = CenterNetDatasetMapper(cfg, True)
        empty = mapper([d for d in dicts if not d["annotations"]][0])
        self.assertEqual(len(empty["instances"]), 0)
        with EventStorage():
            losses = trainer.model.train()([empty, empty])
        self.assertTrue(all(torch.isfinite(v) for v in losses.values()))
        results = Trainer.test(cfg, trainer.model.eval())
        self.assertIn("AP", results["bbox"])

    def test_extreme_aspect_ratio_trains_and_infers(self):
        # resized to 64 on the long side, the short side would round to 0 pixels
        self.write("wide.png", rgb_image(1000).crop((0, 0, 1000, 1)))
        self.write("tall.png", rgb_image(1000).crop((0, 0, 1, 1000)))
        images = {
            "wide.png": (1000, 1, [box(100, 0, 300, 1)]),
            "tall.png": (1, 1000, [box(0, 100, 1, 300)]),
        }
        cfg = self.cfg(self.register(images))
        trainer = self.assert_trains(cfg)
        model = trainer.model.eval()
        dicts = sorted(Trainer.build_train_dataset(cfg), key=lambda d: d["file_name"])
        self.assertEqual([(d["height"], d["width"]) for d in dicts], [(1000, 1), (1, 1000)])
        train_mapper = CenterNetDatasetMapper(cfg, True)
        test_mapper = CenterNetDatasetMapper(cfg, False)
        predictor = CenterNetPredictor(cfg)
        for d, resized in zip(dicts, [(64, 1), (1, 64)]):
            size = (d["height"], d["width"])
            self.assertEqual(tuple(train_mapper(d)["image"].shape), (3, 64, 64))
            inputs = test_mapper(d)
            self.assertEqual(tuple(inputs["image"].shape[1:]), resized)
            with torch.no_grad():
                out = model([inputs])[0]["instances"]
            self.assertEqual(out.image_size, size)
            self.assertTrue(torch.isfinite(out.scores).all())
            predictions, _, input_size = predictor.predict_with_heatmap(d["file_name"])
            self.assertEqual(predictions["instances"].image_size, size)
            self.assertEqual(input_size, resized)


class TestBoxes(DatasetCase):
    """check_annotations on dataset dicts: a 20 x 10 (width x height) image."""

    def check(self, *boxes, mode=BoxMode.XYWH_ABS):
        annos = [{"bbox": list(b), "bbox_mode": mode, "category_id": 0} for b in boxes]
        d = {"file_name": "img7.jpg", "width": 20, "height": 10, "annotations": annos}
        with self.assertLogs(CHECKS_LOG, logging.WARNING) as logs:
            out = check_annotations([d])
        self.assertEqual(len(d["annotations"]), len(boxes))  # the input is not modified
        return out[0]["annotations"], logs.output

    def test_zero_size_box_is_dropped(self):
        annos, logs = self.check([2, 2, 5, 5], [5, 5, 0, 4], mode=BoxMode.XYWH_ABS)
        self.assertEqual([a["bbox"] for a in annos], [[2, 2, 5, 5]])
        self.assertEqual(len(logs), 1)
        self.assertRegex(logs[0], r"1 boxes with zero width or height .*\n.*img7\.jpg annotation 1")

    def test_negative_size_box_is_dropped(self):
        annos, logs = self.check([8, 2, 5, 5], [2, 2, 6, 6], mode=BoxMode.XYXY_ABS)
        self.assertEqual([a["bbox"] for a in annos], [[2, 2, 6, 6]])
        self.assertRegex(logs[0], r"1 boxes with negative width or height .*\n.*annotation 0")

    def test_box_outside_the_image_is_dropped(self):
        annos, logs = self.check([25, 2, 3, 3], [-9, 2, 9, 5], [1, 1, 2, 2])  # right, left of it
        self.assertEqual([a["bbox"] for a in annos], [[1, 1, 2, 2]])
        self.assertRegex(logs[0], r"2 boxes entirely outside .*\n.*annotation 0\n.*annotation 1")

    def test_box_partly_outside_is_clipped(self):
        # XYWH (-4, 2, 10, 20) is XYXY (-4, 2, 6, 22); clipped to (0, 2, 6, 10) = XYWH (0, 2, 6, 8)
        annos, logs = self.check([-4, 2, 10, 20])
        self.assertEqual(annos[0]["bbox"], [0, 2, 6, 8])
        self.assertRegex(logs[0], r"1 boxes partly outside their image \(clipped")
        annos, _ = self.check([15, -1, 25, 4], mode=BoxMode.XYXY_ABS)
        self.assertEqual(annos[0]["bbox"], [15, 0, 20, 4])

    def test_one_warning_per_kind(self):
        dicts = [
            {"file_name": f"f{i}.jpg", "width": 20, "height": 10, "annotations": [a]}
            for i, a in enumerate([box(1, 1, 0, 3)] * 12 + [box(-1, 1, 3, 3)])
        ]
        with self.assertLogs(CHECKS_LOG, logging.WARNING) as logs:
            out = check_annotations(dicts)
        self.assertEqual([len(d["annotations"]) for d in out], [0] * 12 + [1])
        self.assertEqual(len(logs.output), 2)
        self.assertRegex(logs.output[0], r"(?s)12 boxes with zero .*f0\.jpg.*and 2 more")

    def test_non_finite_box_names_the_file(self):
        d = {"file_name": "img7.jpg", "width": 20, "height": 10}
        for bad in (float("nan"), float("inf")):
            d["annotations"] = [box(1, 1, 3, 3), box(1, bad, 3, 3)]
            with self.assertRaisesRegex(ValueError, r"img7\.jpg annotation 1: .*non-finite"):
                check_annotations([d])

    def test_trainer_checks_the_boxes(self):
        self.write("a.png", rgb_image())
        self.write("b.png", rgb_image(seed=1))
        name = self.register(
            {
                "a.png": (32, 32, [box(40, 1, 5, 5), box(1, 1, 0, 5)]),
                "b.png": (32, 32, [box(20, 20, 30, 5)]),
            }
        )
        with self.assertLogs(CHECKS_LOG, logging.WARNING) as logs:
            dicts = Trainer.build_train_dataset(self.cfg(name))
        self.assertEqual(len(logs.output), 3)  # zero size, outside, clipped
        # a.png's boxes are outside and empty: no objects left, the image is filtered
        self.assertEqual([os.path.basename(d["file_name"]) for d in dicts], ["b.png"])
        self.assertEqual(dicts[0]["annotations"][0]["bbox"], [20, 20, 12, 5])


class TestPredictor(DatasetCase):
    def test_predictor_reads_files_and_names_bad_ones(self):
        self.write("deep.png", Image.fromarray(np.full((8, 8), 65535, np.uint16)))
        self.write("junk.jpg", b"not an image")
        predictor = CenterNetPredictor(setup_cfg(CONFIG, TINY))
        self.assertEqual(predictor(self.path("deep.png"))["instances"].image_size, (8, 8))
        np.testing.assert_array_equal(predictor.as_image(self.path("deep.png")), 255)
        with self.assertRaisesRegex(FileNotFoundError, "gone.png"):
            predictor(self.path("gone.png"))
        with self.assertRaisesRegex(UnreadableImageError, r"junk\.jpg"):
            predictor(self.path("junk.jpg"))
        with self.assertRaisesRegex(ValueError, r"\(H, W, 3\).*got \(8, 8\)"):
            predictor(np.zeros((8, 8), np.uint8))
