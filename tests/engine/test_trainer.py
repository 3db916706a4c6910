"""centernet_d2.engine.trainer: optimisers, CPU autocast training."""

import os
import tempfile
import unittest

import numpy as np
import torch
from detectron2.utils.events import EventStorage

from centernet_d2.data import (
    generate_shapes_dataset,
    register_coco_dataset,
)
from centernet_d2.engine import Trainer
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.engine.train_loop import CPUAutocastTrainer
from centernet_d2.layers import ModulatedDeformConv2d
from centernet_d2.modeling.fusion import StemFusion
from tests.common import CONFIG


class TestOptimizer(unittest.TestCase):
    def test_choices(self):
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
        expected = {"SGD": torch.optim.SGD, "ADAM": torch.optim.Adam, "ADAMW": torch.optim.AdamW}
        for name, cls in expected.items():
            cfg = setup_cfg(CONFIG, ["SOLVER.OPTIMIZER", name, "SOLVER.BASE_LR", "0.01"])
            opt = Trainer.build_optimizer(cfg, model)
            self.assertIsInstance(opt, cls)
            self.assertEqual(opt.param_groups[0]["lr"], 0.01)

    def test_gradient_clipping(self):
        model = torch.nn.Linear(2, 1, bias=False)
        opts = ["SOLVER.OPTIMIZER", "SGD", "SOLVER.BASE_LR", "1.0", "SOLVER.MOMENTUM", "0.0"]
        opts += ["SOLVER.WEIGHT_DECAY", "0.0", "SOLVER.WEIGHT_DECAY_NORM", "0.0"]
        opts += ["SOLVER.CLIP_GRADIENTS.ENABLED", "True", "SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "norm"]
        opts += ["SOLVER.CLIP_GRADIENTS.CLIP_VALUE", "0.5"]
        opt = Trainer.build_optimizer(setup_cfg(CONFIG, opts), model)
        with torch.no_grad():
            model.weight.zero_()
        model.weight.grad = torch.tensor([[3.0, 4.0]])  # norm 5 -> clipped to 0.5
        opt.step()
        np.testing.assert_allclose(model.weight.detach().numpy(), [[-0.3, -0.4]], atol=1e-6)

    def test_deformable_offsets_get_a_tenth_of_the_lr(self):
        # DCNv2: the offset / mask conv trains at 0.1x the LR (SOLVER.DEFORM_OFFSET_LR_FACTOR)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), ModulatedDeformConv2d(4, 4, 3))
        offsets = {id(p) for p in model[1].conv_offset_mask.parameters()}
        opts = [
            "SOLVER.OPTIMIZER",
            "ADAMW",
            "SOLVER.BASE_LR",
            "0.01",
            "SOLVER.BIAS_LR_FACTOR",
            "1.0",
        ]
        for factor, expected in (("0.1", 0.001), ("1.0", 0.01)):
            cfg = setup_cfg(CONFIG, opts + ["SOLVER.DEFORM_OFFSET_LR_FACTOR", factor])
            opt = Trainer.build_optimizer(cfg, model)
            lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
            self.assertEqual(len(lr), len(list(model.parameters())))
            for p in model.parameters():
                self.assertAlmostEqual(lr[id(p)], expected if id(p) in offsets else 0.01)
            # Detectron2's LR schedulers scale each group from its initial LR: the factor stays
            scheduler = Trainer.build_lr_scheduler(cfg, opt)
            for _ in range(3):
                opt.step()
                scheduler.step()
            ratios = {round(g["lr"] / g["initial_lr"], 9) for g in opt.param_groups}
            self.assertEqual(len(ratios), 1)

    def test_fusion_gains_lr_factor(self):
        # SOLVER.FUSION_GAIN_LR_FACTOR scales the LR of StemFusion's gains alone
        fusion = StemFusion(channels=4, stride=2, kernel_size=3, zero_init=True)
        model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 1), fusion)
        opts = ["SOLVER.OPTIMIZER", "ADAMW", "SOLVER.BASE_LR", "0.01"]
        opts += ["SOLVER.BIAS_LR_FACTOR", "1.0"]
        for factor, expected in (("10.0", 0.1), ("1.0", 0.01)):
            cfg = setup_cfg(CONFIG, opts + ["SOLVER.FUSION_GAIN_LR_FACTOR", factor])
            opt = Trainer.build_optimizer(cfg, model)
            lr = {id(p): g["lr"] for g in opt.param_groups for p in g["params"]}
            self.assertEqual(len(lr), len(list(model.parameters())))
            for p in model.parameters():
                self.assertAlmostEqual(lr[id(p)], expected if p is fusion.gains else 0.01)
        for key in ("SOLVER.FUSION_GAIN_LR_FACTOR", "SOLVER.DEFORM_OFFSET_LR_FACTOR"):
            with self.assertRaisesRegex(ValueError, f"{key} must be >= 0"):
                Trainer.build_optimizer(setup_cfg(CONFIG, opts + [key, "-1.0"]), model)

    def test_unknown_optimizer(self):
        cfg = setup_cfg(CONFIG, ["SOLVER.OPTIMIZER", "LION"])
        with self.assertRaisesRegex(ValueError, "SOLVER.OPTIMIZER"):
            Trainer.build_optimizer(cfg, torch.nn.Linear(1, 1))


class TestAmpOnCpu(unittest.TestCase):
    def test_bfloat16_autocast_step(self):
        with tempfile.TemporaryDirectory() as out:
            opts = ["SOLVER.AMP.ENABLED", "True", "OUTPUT_DIR", out, "MODEL.DEVICE", "cpu"]
            opts += ["SOLVER.IMS_PER_BATCH", "2", "INPUT.CENTERNET.TRAIN_SIZE", "(64, 64)"]
            opts += ["DATALOADER.NUM_WORKERS", "0", "MODEL.CENTERNET.CHANNELS_LAST", "True"]
            opts += ["DATASETS.TRAIN", "('amp_tiny',)", "DATASETS.TEST", "()"]
            json_file = generate_shapes_dataset(
                out, "tiny", num_images=2, seed=0, image_size=64, max_size=48
            )
            register_coco_dataset("amp_tiny", json_file, os.path.join(out, "tiny"))
            trainer = Trainer(setup_cfg(CONFIG, opts))
            self.assertIsInstance(trainer._trainer, CPUAutocastTrainer)
            dtypes = []
            trainer.model.head.register_forward_hook(
                lambda m, i, o: dtypes.append(o["heatmap"].dtype)
            )
            before = [p.detach().clone() for p in trainer.model.head.parameters()]
            trainer.iter = trainer.start_iter = 0
            trainer._trainer.iter = 0
            with EventStorage(0) as trainer.storage:
                trainer.run_step()
            self.assertEqual(dtypes, [torch.bfloat16])
            after = list(trainer.model.head.parameters())
            self.assertTrue(all(p.dtype == torch.float32 for p in after))  # weights stay fp32
            self.assertTrue(any(not torch.equal(a, b) for a, b in zip(after, before)))


if __name__ == "__main__":
    unittest.main()
