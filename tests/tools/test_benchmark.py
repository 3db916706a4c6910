"""tools/benchmark.py end to end on tiny sizes, and the timing helper of ``benchmarks/``."""

import json
import os
import tempfile
import unittest

import torch

from benchmarks.timing import PhaseTimer, Stats, measure_phases
from tests.common import ROOT, load_tool

# a ResNet config: the peers are built with its depth
CONFIG = os.path.join(ROOT, "configs", "COCO-Detection", "centernet_R_18_deconv_140e.yaml")


class TestStats(unittest.TestCase):
    def test_median_and_percentiles_in_ms(self):
        s = Stats.of([0.001, 0.002, 0.003, 0.004, 0.005])
        self.assertAlmostEqual(s.median, 3.0)
        # numpy's linear interpolation: rank 0.1 * 4 = 0.4 -> 1 + 0.4 * (2 - 1)
        self.assertAlmostEqual(s.p10, 1.4)
        self.assertAlmostEqual(s.p90, 4.6)
        self.assertEqual(s.n, 5)

    def test_phases_warm_up_and_sum_to_total(self):
        calls = []

        def run(timer: PhaseTimer):
            calls.append(1)
            timer.lap("a")
            timer.lap("b")

        phases = measure_phases(run, "cpu", warmup=2, repeats=3)
        self.assertEqual(len(calls), 5)
        self.assertEqual(set(phases), {"a", "b", "total"})
        self.assertEqual(phases["total"].n, 3)
        with self.assertRaises(ValueError):
            measure_phases(run, "cpu", warmup=0, repeats=0)


class TestBenchmarkTool(unittest.TestCase):
    def test_tiny_run_writes_json_and_png(self):
        torch.manual_seed(0)
        tool = load_tool("benchmark")
        with tempfile.TemporaryDirectory() as out:
            args = ["--config-file", CONFIG, "--output", out, "--size", "64"]
            args += ["--batch-sizes", "1", "--sizes", "64,96", "--object-counts", "1,3"]
            args += [
                "--objects",
                "2",
                "--repeats",
                "1",
                "--warmup",
                "0",
                "--channels-last",
                "config",
            ]
            args += ["MODEL.RESNETS.DEPTH", "18"]  # trailing KEY VALUE overrides reach the cfg
            tool.main(tool.get_parser().parse_args(args))
            with open(os.path.join(out, "benchmark.json")) as f:
                report = json.load(f)
            with open(os.path.join(out, "benchmark.png"), "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
        self.assertEqual(set(report), {"meta", "models", "ratios", "targets"})
        self.assertEqual(set(report["models"]), {"centernet", "retinanet", "fcos"})
        self.assertEqual(report["meta"]["size"], 64)
        for m in report["models"].values():
            self.assertEqual(
                set(m),
                {
                    "params",
                    "gflops",
                    "inference",
                    "activation_mb",
                    "train",
                    "latency_vs_size",
                    "targets_vs_objects",
                    "memory_format",
                },
            )
            self.assertEqual(
                set(m["inference"]["1"]),
                {"preprocess", "network", "decode", "total", "images_per_s"},
            )
            self.assertEqual(
                set(m["train"]), {"data", "targets", "forward_backward", "optimizer", "total"}
            )
            self.assertEqual(set(m["latency_vs_size"]), {"64", "96"})
            self.assertEqual(set(m["targets_vs_objects"]), {"1", "3"})
            self.assertGreater(m["gflops"], 0)
            self.assertGreater(m["activation_mb"], 0)
            self.assertGreater(m["train"]["total"]["median"], 0)
        # "--channels-last config": CenterNet as its config says (channels-last in
        # Base-CenterNet.yaml), the peers in Detectron2's NCHW; the default puts all in one format
        self.assertEqual(tool.get_parser().parse_args([]).channels_last, "on")
        formats = {n: m["memory_format"] for n, m in report["models"].items()}
        self.assertEqual(
            formats, {"centernet": "channels-last", "retinanet": "NCHW", "fcos": "NCHW"}
        )
        self.assertEqual(report["meta"]["channels_last"], "config")
        self.assertIn("latency_vs_retinanet_b1", report["ratios"])
        self.assertIn("train_vs_fcos", report["ratios"])
        self.assertTrue(all(isinstance(t["met"], bool) for t in report["targets"]))
        # every limit of the tool is checked, each once with one inference batch size
        self.assertEqual(len(report["targets"]), len(tool.LIMITS))


if __name__ == "__main__":
    unittest.main()
