"""centernet_d2.utils.visualize (and engine.defaults.save_results): result files and pictures."""

import json
import os
import tempfile
import unittest

import numpy as np
import torch

from centernet_d2.engine.defaults import save_results
from centernet_d2.utils import heatmap_overlay, plot_training_curves


class TestResultsAndPictures(unittest.TestCase):
    def test_save_results(self):
        results = {"bbox": {"AP": 51.234, "AP50": 80.0}}
        with tempfile.TemporaryDirectory() as out:
            path = save_results(results, out)
            text = open(path).read()
            self.assertIn("| AP | AP50 |", text)
            self.assertIn("| 51.23 | 80.00 |", text)
            self.assertEqual(json.load(open(os.path.join(out, "eval_results.json"))), results)

    def test_training_curves_png(self):
        with tempfile.TemporaryDirectory() as out:
            metrics = os.path.join(out, "metrics.json")
            with open(metrics, "w") as f:
                for it in range(0, 100, 10):
                    f.write(json.dumps({"iteration": it, "loss_heatmap": 5.0 / (it + 1)}) + "\n")
                f.write(json.dumps({"iteration": 99, "bbox/AP": 30.0, "bbox/AP50": 50.0}) + "\n")
            png = plot_training_curves(metrics, os.path.join(out, "curves.png"))
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")

    def test_heatmap_overlay(self):
        image = np.full((30, 40, 3), 100, np.uint8)
        heatmap = torch.zeros(2, 8, 12)  # a stride-4 grid of a (32, 48) padded input
        heatmap[1, 2, 3] = 1.0  # input pixels y 8..11, x 12..15
        out = heatmap_overlay(image, heatmap, stride=4)
        self.assertEqual(out.shape, image.shape)
        hot = np.abs(out[9, 13].astype(int) - 100).sum()
        cold = np.abs(out[25, 35].astype(int) - 100).sum()
        self.assertGreater(hot, 3 * cold)


if __name__ == "__main__":
    unittest.main()
