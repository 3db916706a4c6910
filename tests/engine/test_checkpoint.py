"""Checkpoints survive crashes, never run code on load, and refuse another model's weights;
bad config keys and non-finite losses stop with clear errors."""

import os
import pickle
import tempfile
import unittest
from unittest import mock

import torch
from detectron2.modeling import build_model
from detectron2.utils.events import get_event_storage

from centernet_d2.data import generate_shapes_dataset, register_coco_dataset
from centernet_d2.engine import Trainer
from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.modeling import CenterNet
from tests.common import CONFIG

MARKER = os.path.join(tempfile.gettempdir(), f"centernet_d2_code_ran_{os.getpid()}")


class _RunsCode:
    def __reduce__(self):  # unpickling this would create MARKER
        return (open, (MARKER, "w"))


class TestSafeCheckpointer(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.TemporaryDirectory()
        self.model = build_model(setup_cfg(CONFIG))
        self.ckpt = SafeCheckpointer(self.model, save_dir=self.tmp.name)

    def tearDown(self):
        self.tmp.cleanup()

    def test_a_crash_while_saving_keeps_the_last_good_checkpoint(self):
        self.ckpt.save("model_0000009", iteration=9)
        path = os.path.join(self.tmp.name, "model_0000009.pth")
        before = open(path, "rb").read()

        def dies_half_way(data, f):
            f.write(b"partial")
            raise KeyboardInterrupt  # the process is stopped in the middle of torch.save

        with mock.patch.object(torch, "save", dies_half_way):
            with self.assertRaises(KeyboardInterrupt):
                self.ckpt.save("model_0000009", iteration=19)
        self.assertEqual(open(path, "rb").read(), before)
        self.assertEqual(os.listdir(self.tmp.name).count("last_checkpoint"), 1)
        self.assertEqual(
            sorted(os.listdir(self.tmp.name)), ["last_checkpoint", "model_0000009.pth"]
        )
        self.assertEqual(self.ckpt.get_checkpoint_file(), path)
        self.assertEqual(self.ckpt.resume_or_load("", resume=True)["iteration"], 9)

    def test_loading_never_runs_code_from_the_file(self):
        path = os.path.join(self.tmp.name, "evil.pth")
        with open(path, "wb") as f:
            pickle.dump({"model": {}, "payload": _RunsCode()}, f)
        with self.assertRaisesRegex(ValueError, "evil.pth"):
            self.ckpt.load(path)
        self.assertFalse(os.path.exists(MARKER))

    def test_a_checkpoint_of_another_model_is_refused(self):
        path = os.path.join(self.tmp.name, "retinanet.pth")
        torch.save({"model": {"head.cls_score.weight": torch.zeros(3)}}, path)
        with self.assertRaisesRegex(ValueError, r"retinanet.pth.*another model"):
            self.ckpt.load(path)

    def test_a_backbone_only_checkpoint_loads(self):
        state = {k: v for k, v in self.model.state_dict().items() if k.startswith("backbone.")}
        path = os.path.join(self.tmp.name, "backbone.pth")
        torch.save({"model": state}, path)
        self.ckpt.load(path)  # the head is missing, which is normal for pretrained backbones


class TestConfigKeys(unittest.TestCase):
    def test_unknown_key_in_a_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write(f'_BASE_: "{CONFIG}"\nMODEL:\n  CENTERNET:\n    HEAD_CHANELS: 8\n')
        try:
            with self.assertRaisesRegex(KeyError, f"{os.path.basename(f.name)}.*HEAD_CHANELS"):
                setup_cfg(f.name)
        finally:
            os.remove(f.name)

    def test_unknown_key_on_the_command_line(self):
        with self.assertRaisesRegex(KeyError, "command-line.*MODEL.CENTERNET.TOPK"):
            setup_cfg(CONFIG, ["MODEL.CENTERNET.TOPK", "5"])


class TestNonFiniteLoss(unittest.TestCase):
    def test_stops_with_iteration_and_losses_keeping_the_last_checkpoint(self):
        with tempfile.TemporaryDirectory() as out:
            json_file = generate_shapes_dataset(out, "t", 4, 0, image_size=64, max_size=48)
            register_coco_dataset("nan_tiny", json_file, os.path.join(out, "t"))
            opts = ["OUTPUT_DIR", out, "DATASETS.TRAIN", "('nan_tiny',)", "DATASETS.TEST", "()"]
            opts += ["SOLVER.IMS_PER_BATCH", "2", "INPUT.CENTERNET.TRAIN_SIZE", "(64, 64)"]
            opts += ["DATALOADER.NUM_WORKERS", "0", "SOLVER.CHECKPOINT_PERIOD", "2"]
            opts += ["SOLVER.MAX_ITER", "10"]
            trainer = Trainer(setup_cfg(CONFIG, opts))
            trainer.resume_or_load(resume=False)
            model_losses = CenterNet.losses

            def nan_from_iteration_3(self, *args):
                losses = model_losses(self, *args)
                if get_event_storage().iter >= 3:
                    losses["loss_size"] = losses["loss_size"] * float("nan")
                return losses

            with mock.patch.object(CenterNet, "losses", nan_from_iteration_3):
                with self.assertRaisesRegex(FloatingPointError, r"iteration=3[\s\S]*loss_size"):
                    trainer.train()
            # the checkpoint of iteration 1 (period 2) is the last one, whole and loadable
            ckpt = SafeCheckpointer(build_model(trainer.cfg), save_dir=out)
            self.assertTrue(ckpt.get_checkpoint_file().endswith("model_0000001.pth"))
            self.assertEqual(ckpt.resume_or_load("", resume=True)["iteration"], 1)
