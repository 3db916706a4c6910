"""tools/train_peer.py: Detectron2's RetinaNet trained at a CenterNet config's budget, on the
CPU; the derived config checked against hand-computed values."""

import json
import math
import os
import tempfile
import unittest

from detectron2.config import get_cfg

from benchmarks.peer_training import peer_training_cfg
from tests.common import (
    CONFIG,
    R18_CONFIG,
    TINY,
    load_tool,
    run_tool_in_process,
    tiny_cfg,
    write_boxes_coco,
)

train_peer = load_tool("train_peer")


def metrics_records(output_dir):
    with open(os.path.join(output_dir, "metrics.json")) as f:
        return [json.loads(line) for line in f if line.strip()]


class TestTinyPeerRun(unittest.TestCase):
    """6 iterations on 64 px images, evaluated every 3; canvas 96 x 64 (h, w) with the config's
    SCALE_RANGE (0.75, 1.25)."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        json_file = write_boxes_coco(cls.tmp.name)
        cls.out = os.path.join(cls.tmp.name, "out")
        argv = ["--config-file", CONFIG, "--coco-dataset", "peer_boxes", json_file]
        argv += [os.path.join(cls.tmp.name, "images")] + TINY
        argv += ["MODEL.CENTERNET.NUM_CLASSES", "1", "DATASETS.TRAIN", "('peer_boxes',)"]
        argv += ["DATASETS.TEST", "('peer_boxes',)", "INPUT.CENTERNET.TRAIN_SIZE", "(96, 64)"]
        argv += ["INPUT.MIN_SIZE_TEST", "64", "INPUT.MAX_SIZE_TEST", "64"]
        argv += ["SOLVER.MAX_ITER", "6", "TEST.EVAL_PERIOD", "3", "OUTPUT_DIR", cls.out]
        cls.results = train_peer.main(train_peer.argument_parser().parse_args(argv))
        cls.cfg = get_cfg()
        cls.cfg.merge_from_file(os.path.join(cls.out, "config.yaml"))

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_budget_of_the_centernet_config(self):
        s = self.cfg.SOLVER
        self.assertEqual((s.IMS_PER_BATCH, s.MAX_ITER, s.WARMUP_ITERS), (4, 6, 5))
        self.assertEqual(list(s.STEPS), [])
        self.assertEqual(self.cfg.TEST.EVAL_PERIOD, 3)
        self.assertEqual(self.cfg.SEED, 1)
        self.assertEqual(list(self.cfg.DATASETS.TEST), ["peer_boxes"])

    def test_detectron2_lr_scaled_to_the_batch(self):
        # Detectron2's 0.01 for 16 images, at 4 images: 0.01 * 4 / 16
        self.assertAlmostEqual(self.cfg.SOLVER.BASE_LR, 0.0025)
        self.assertEqual(self.cfg.SOLVER.WARMUP_FACTOR, 0.001)
        # iteration 5 is past the 5 warmup iterations
        lr = [r["lr"] for r in metrics_records(self.out) if r["iteration"] == 5]
        self.assertAlmostEqual(lr[0], 0.0025)

    def test_train_sizes_cover_the_canvas_scales(self):
        # short side 64 * (0.75, 1.25) = (48, 80); long side cap 96 * 1.25 = 120
        self.assertEqual(list(self.cfg.INPUT.MIN_SIZE_TRAIN), [48, 80])
        self.assertEqual(self.cfg.INPUT.MIN_SIZE_TRAIN_SAMPLING, "range")
        self.assertEqual(self.cfg.INPUT.MAX_SIZE_TRAIN, 120)
        self.assertEqual((self.cfg.INPUT.MIN_SIZE_TEST, self.cfg.INPUT.MAX_SIZE_TEST), (64, 64))

    def test_resnet18_from_scratch_with_stride_sized_anchors(self):
        m = self.cfg.MODEL
        self.assertEqual((m.RESNETS.DEPTH, m.RESNETS.RES2_OUT_CHANNELS), (18, 64))
        self.assertEqual((m.RESNETS.NORM, m.BACKBONE.FREEZE_AT, m.WEIGHTS), ("BN", 0, ""))
        self.assertEqual(m.RETINANET.NUM_CLASSES, 1)
        # Detectron2's 32 * 2^(k/3) px at P3 and 512 * 2^(k/3) at P7, times 1/4
        sizes = m.ANCHOR_GENERATOR.SIZES
        for got, want in zip(sizes[0] + sizes[4], [8, 8 * 2 ** (1 / 3), 8 * 2 ** (2 / 3), 128]):
            self.assertAlmostEqual(got, want, places=6)

    def test_ap_by_iteration_in_metrics(self):
        # EvalHook: after iteration 2 (the 3rd) and after training (recorded at MAX_ITER)
        ap = {r["iteration"]: r["bbox/AP"] for r in metrics_records(self.out) if "bbox/AP" in r}
        self.assertEqual(sorted(ap), [2, 6])
        # a 6-iteration RetinaNet scores nothing above its 0.05 threshold: AP is NaN then
        self.assertTrue(all(math.isnan(v) or 0 <= v <= 100 for v in ap.values()), ap)
        self.assertIn("AP", self.results["bbox"])
        self.assertTrue(os.path.isfile(os.path.join(self.out, "model_final.pth")))


class TestPeerConfig(unittest.TestCase):
    def test_anchor_scale_and_depth(self):
        cfg = tiny_cfg()
        peer = peer_training_cfg(cfg, depth=34, anchor_scale=1.0)
        self.assertAlmostEqual(peer.MODEL.ANCHOR_GENERATOR.SIZES[0][0], 32.0)  # Detectron2's
        self.assertEqual((peer.MODEL.RESNETS.DEPTH, peer.MODEL.RESNETS.RES2_OUT_CHANNELS), (34, 64))
        self.assertEqual(cfg.MODEL.RESNETS.DEPTH, 18)  # the CenterNet config is not changed
        with self.assertRaisesRegex(ValueError, "anchor scale must be a positive number"):
            peer_training_cfg(cfg, anchor_scale=0.0)

    def test_norm(self):
        # a ResNet CenterNet keeps its norm, but not a frozen one (from random weights)
        for norm, want in (("GN", "GN"), ("FrozenBN", "BN")):
            cfg = tiny_cfg("MODEL.RESNETS.NORM", norm, config_file=R18_CONFIG)
            self.assertEqual(peer_training_cfg(cfg).MODEL.RESNETS.NORM, want)
        # a MobileNet CenterNet: BN, whatever its (unused) ResNet norm
        cfg = tiny_cfg("MODEL.RESNETS.NORM", "GN")
        self.assertEqual(peer_training_cfg(cfg).MODEL.RESNETS.NORM, "BN")


class TestUserError(unittest.TestCase):
    def test_missing_config_file(self):
        code, stderr = run_tool_in_process(
            train_peer, ["--config-file", "nope.yaml"], train_peer.argument_parser
        )
        self.assertEqual(code, 2, stderr[-2000:])
        errors = [line for line in stderr.splitlines() if line.startswith("error:")]
        self.assertEqual(errors, ["error: config file nope.yaml not found"], stderr[-2000:])
