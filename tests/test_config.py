"""centernet_d2.config: defaults agree with the base YAML; keys training would ignore stop it."""

import os
import re
import tempfile
import unittest

import yaml
from detectron2.config import get_cfg

from centernet_d2.config import IGNORED_TRAINING_KEYS, add_centernet_config, check_training_keys
from tests.common import CONFIG_DIR, MULTILEVEL_CONFIG, R18_CONFIG, ROOT, model_cfg


def _leaves(node, prefix=""):
    for key, value in node.items():
        if isinstance(value, dict):
            yield from _leaves(value, f"{prefix}{key}.")
        else:
            yield prefix + key, value


def _get(cfg, key):
    for part in key.split("."):
        cfg = cfg[part]
    return cfg


class TestDefaults(unittest.TestCase):
    def test_code_defaults_agree_with_the_base_yaml(self):
        with open(os.path.join(CONFIG_DIR, "Base-CenterNet.yaml")) as f:
            base = yaml.safe_load(f)
        ours = add_centernet_config(get_cfg())
        detectron2_keys = set(k for k, _ in _leaves(get_cfg()))
        checked = 0
        for key, value in _leaves(base):
            if key in detectron2_keys or key == "_BASE_":
                continue  # Detectron2's keys: the YAML chooses CenterNet's values for them
            default = _get(ours, key)
            self.assertEqual(list(default) if isinstance(default, tuple) else default, value, key)
            checked += 1
        self.assertGreaterEqual(checked, 4)  # IN_FEATURES, HEAD_CHANNELS, ..., CHANNELS_LAST

    def test_setup_py_asks_for_the_torch_the_code_needs(self):
        # scatter_reduce (targets) and weights_only loading (checkpoints) need torch 1.13
        with open(os.path.join(ROOT, "setup.py")) as f:
            setup = f.read()
        (floor,) = re.findall(r'"torch>=([0-9.]+)"', setup)
        self.assertGreaterEqual(tuple(int(v) for v in floor.split(".")), (1, 13))


class TestIgnoredTrainingKeys(unittest.TestCase):
    def test_defaults_pass(self):
        check_training_keys(model_cfg(R18_CONFIG))

    def test_each_key_names_its_replacement(self):
        values = {
            "INPUT.MIN_SIZE_TRAIN": "(640,)",
            "INPUT.MAX_SIZE_TRAIN": "1000",
            "INPUT.MIN_SIZE_TRAIN_SAMPLING": "range",
            "INPUT.CROP.ENABLED": "True",
            "INPUT.CROP.TYPE": "absolute",
            "INPUT.CROP.SIZE": "[0.5, 0.5]",
            "DATALOADER.ASPECT_RATIO_GROUPING": "False",
        }
        self.assertEqual(set(values), set(IGNORED_TRAINING_KEYS))
        for key, value in values.items():
            with self.subTest(key=key):
                cfg = model_cfg(R18_CONFIG, key, value)
                with self.assertRaisesRegex(ValueError, f"{re.escape(key)} is .*INPUT.CENTERNET"):
                    check_training_keys(cfg)


class TestRenamedKeys(unittest.TestCase):
    def test_old_deconv_keys_name_the_new_ones(self):
        # a config of before the move (a training run's config.yaml): the node read at its new
        # place with a warning naming the file; a key on the command line: an error naming it
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "old.yaml")
            with open(path, "w") as f:
                f.write(
                    f'_BASE_: "{R18_CONFIG}"\nMODEL:\n  CENTERNET:\n    DECONV:\n'
                    "      CHANNELS: [64]\n      NORM: GN\n"
                )
            with self.assertLogs("centernet_d2.config", "WARNING") as logs:
                cfg = model_cfg(path)
        self.assertEqual(cfg.MODEL.DECONV.CHANNELS, [64])
        self.assertEqual(cfg.MODEL.DECONV.NORM, "GN")
        self.assertEqual(
            cfg.MODEL.DECONV.KERNEL_SIZE, model_cfg(R18_CONFIG).MODEL.DECONV.KERNEL_SIZE
        )
        self.assertIn("old.yaml", logs.output[0])
        self.assertIn("MODEL.CENTERNET.DECONV -> MODEL.DECONV", logs.output[0])
        with self.assertRaisesRegex(
            ValueError, "command-line override: .* renamed to MODEL.DECONV.NORM"
        ):
            model_cfg(R18_CONFIG, "MODEL.CENTERNET.DECONV.NORM", "GN")
        self.assertEqual(model_cfg(R18_CONFIG, "MODEL.DECONV.NORM", "GN").MODEL.DECONV.NORM, "GN")

    def test_size_ranges_without_upper_bound(self):
        cfg = model_cfg(MULTILEVEL_CONFIG)
        self.assertEqual(cfg.MODEL.CENTERNET.SIZE_RANGES[-1], [512, float("inf")])
        self.assertIn("- .inf", cfg.dump())  # and back in a run's config.yaml


if __name__ == "__main__":
    unittest.main()
