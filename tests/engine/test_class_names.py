"""Class names travel with a run: the config (MODEL.CENTERNET.CLASS_NAMES), the checkpoints, the
predictors' metadata and the export metadata, without the dataset being registered again."""

import contextlib
import io
import os
import tempfile
import unittest

import torch
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.engine import DefaultPredictor
from detectron2.modeling import build_model

from centernet_d2.data import register_coco_dataset
from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.engine.defaults import fill_class_names, prepare_datasets, setup_cfg
from centernet_d2.engine.predictor import CenterNetPredictor
from centernet_d2.export import ExportedModel
from tests.common import CONFIG, load_tool, tiny_cfg

NAMES = ["hat", "person"]


def _two_class_opts(*extra):
    return ["MODEL.CENTERNET.NUM_CLASSES", "2", "DATASETS.TRAIN", "()", *extra]


class TestClassNames(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        cfg = tiny_cfg(*_two_class_opts("MODEL.CENTERNET.CLASS_NAMES", str(NAMES)))
        cls.model = build_model(cfg)
        cls.weights = os.path.join(cls.tmp.name, "model_final.pth")
        SafeCheckpointer(cls.model, save_dir=cls.tmp.name).save("model_final")
        # the run's config.yaml, as default_setup writes it, naming a test set nobody registers
        cfg.defrost()
        cfg.DATASETS.TEST = ("helmets_val_unregistered",)
        cls.config_yaml = os.path.join(cls.tmp.name, "config.yaml")
        with open(cls.config_yaml, "w") as f:
            f.write(cfg.dump())

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_checkpoint_holds_the_names(self):
        self.assertEqual(self.model.class_names, NAMES)
        checkpoint = torch.load(self.weights, weights_only=True)
        self.assertEqual(checkpoint["class_names"], NAMES)

    def test_a_model_without_names_takes_the_checkpoint_s(self):
        model = build_model(tiny_cfg(*_two_class_opts()))
        self.assertEqual(model.class_names, [])
        SafeCheckpointer(model).load(self.weights)
        self.assertEqual(model.class_names, NAMES)
        named = build_model(tiny_cfg(*_two_class_opts("MODEL.CENTERNET.CLASS_NAMES", "['a','b']")))
        SafeCheckpointer(named).load(self.weights)
        self.assertEqual(named.class_names, ["a", "b"])  # the config's names win

    def test_detectron2_default_predictor_from_the_run_config(self):
        cfg = setup_cfg(self.config_yaml, ["MODEL.WEIGHTS", self.weights])
        self.assertNotIn("helmets_val_unregistered", DatasetCatalog.list())
        self.assertEqual(DefaultPredictor(cfg).metadata.thing_classes, NAMES)

    def test_centernet_predictor_from_the_checkpoint_alone(self):
        cfg = tiny_cfg(*_two_class_opts("DATASETS.TEST", "()", "MODEL.WEIGHTS", self.weights))
        predictor = CenterNetPredictor(cfg)
        self.assertEqual(predictor.metadata.thing_classes, NAMES)

    def test_export_metadata(self):
        tool = load_tool("export_model")
        with tempfile.TemporaryDirectory() as out:
            argv = ["--config-file", CONFIG, "--format", "torchscript", "--output", out]
            argv += ["MODEL.WEIGHTS", self.weights, "MODEL.DEVICE", "cpu"]
            # a random model's scores tie below its top few: the parity check compares those
            argv += _two_class_opts("DATASETS.TEST", "()", "INPUT.MIN_SIZE_TEST", "64")
            argv += ["TEST.DETECTIONS_PER_IMAGE", "5"]
            with contextlib.redirect_stdout(io.StringIO()):
                path, _ = tool.main(tool.get_parser().parse_args(argv))
            metadata = ExportedModel(path).metadata
        self.assertEqual(metadata["class_names"], NAMES)


class TestClassNamesFromDatasets(unittest.TestCase):
    def test_filled_from_the_training_set_and_checked_against_the_test_set(self):
        from centernet_d2.data import generate_shapes_dataset

        with tempfile.TemporaryDirectory() as root:
            json_file = generate_shapes_dataset(root, "s", num_images=2, seed=1, image_size=128)
            register_coco_dataset("names_train", json_file, os.path.join(root, "s"))
            cfg = tiny_cfg("DATASETS.TRAIN", "('names_train',)", "DATASETS.TEST", "()")
            self.assertEqual(
                fill_class_names(cfg), ["circle", "triangle", "rectangle", "star", "cross"]
            )
            prepare_datasets(cfg)  # names and count agree
            cfg.MODEL.CENTERNET.CLASS_NAMES = ["circle", "cross", "rectangle", "star", "triangle"]
            with self.assertRaisesRegex(ValueError, "class ids would not line up"):
                prepare_datasets(cfg)
        MetadataCatalog.remove("names_train")
        DatasetCatalog.remove("names_train")


if __name__ == "__main__":
    unittest.main()
