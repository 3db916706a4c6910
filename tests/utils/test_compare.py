import json
import os
import tempfile
import unittest

from centernet_d2.utils.compare import ap_curve, compare_table, iterations_to_reach
from tests.common import load_tool


def _write_metrics(folder, points):
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, "metrics.json"), "w") as f:
        for it in range(0, 40, 10):  # training records without AP are skipped
            f.write(json.dumps({"iteration": it, "total_loss": 1.0}) + "\n")
        for it, ap in points:
            f.write(json.dumps({"iteration": it, "bbox/AP": ap, "bbox/AP50": ap + 10}) + "\n")


class TestCompareRuns(unittest.TestCase):
    def test_curve_and_iterations_to_reach(self):
        with tempfile.TemporaryDirectory() as d:
            _write_metrics(d, [(39, 5.0), (19, 2.0)])
            curve = ap_curve(os.path.join(d, "metrics.json"))
        self.assertEqual(curve, [(19, 2.0), (39, 5.0)])  # sorted by iteration
        self.assertEqual(iterations_to_reach(curve, 3.0), 39)
        self.assertEqual(iterations_to_reach(curve, 2.0), 19)
        self.assertIsNone(iterations_to_reach(curve, 6.0))

    def test_no_detection_evaluations_do_not_count_for_the_best(self):
        # COCOEvaluator's AP without any detection is NaN (json NaN)
        curves = {"a": [(10, float("nan")), (20, 3.0), (30, 2.5)], "b": [(10, float("nan"))]}
        rows = compare_table(curves, "a").splitlines()
        self.assertEqual(rows[2], "| a | 30 | 2.50 | 3.00 | 20 | 0.67 |")
        self.assertEqual(rows[3], "| b | 10 | nan | nan | not reached | not reached |")

    def test_tool_writes_table_and_png(self):
        tool = load_tool("compare_runs")
        with tempfile.TemporaryDirectory() as d:
            _write_metrics(os.path.join(d, "a"), [(99, 10.0), (199, 20.0), (299, 30.0)])
            _write_metrics(os.path.join(d, "b"), [(99, 31.0), (199, 35.0), (299, 34.0)])
            png = os.path.join(d, "cmp.png")
            args = ["--run", f"a={d}/a", "--run", f"b={d}/b", "--output", png]
            table = tool.main(tool.get_parser().parse_args(args))
            with open(png, "rb") as f:
                self.assertEqual(f.read(8), b"\x89PNG\r\n\x1a\n")
            with open(os.path.join(d, "cmp.md")) as f:
                self.assertEqual(f.read().strip(), table)
        rows = {line.split(" | ")[0][2:]: line.split(" | ") for line in table.splitlines()[2:]}
        # reference a ends at 30.0 at iteration 299; b reaches it at 99: a third of 299
        self.assertEqual(rows["a"][1:5], ["299", "30.00", "30.00", "299"])
        self.assertEqual(rows["b"][1:5], ["299", "34.00", "35.00", "99"])
        self.assertEqual(rows["b"][5], f"{99 / 299:.2f} |")

    def test_no_evaluation_names_the_file(self):
        with tempfile.TemporaryDirectory() as d:
            _write_metrics(d, [])
            with self.assertRaisesRegex(ValueError, "metrics.json.*EVAL_PERIOD"):
                ap_curve(os.path.join(d, "metrics.json"))
        with self.assertRaisesRegex(ValueError, "reference run 'c'"):
            compare_table({"a": [(1, 1.0)]}, "c")
