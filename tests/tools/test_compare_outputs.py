"""tools/compare_outputs.py: outputs saved per config, compared; weights carried over."""

import contextlib
import io
import math
import os
import tempfile
import unittest

from tests.common import load_tool

PATTERN = "CPU/centernet_MobileNetV3_small_FPN_shapes*.yaml"  # the plain and the ltrb head


class TestCompareOutputs(unittest.TestCase):
    def test_same_seed_same_outputs_and_weights_carried_over(self):
        tool = load_tool("compare_outputs")
        with tempfile.TemporaryDirectory() as tmp, contextlib.redirect_stdout(io.StringIO()):
            a, b, c = (os.path.join(tmp, f"{x}.pt") for x in "abc")
            first = tool.save(a, PATTERN, seed=0)
            tool.save(b, PATTERN, seed=1)  # other random weights: other outputs
            tool.save(c, PATTERN, seed=1, weights_from=a)  # the first run's weights
            parser = tool.get_parser()
            same = tool.main(parser.parse_args(["compare", a, c]))
            other = tool.main(parser.parse_args(["compare", a, b]))
            with self.assertRaisesRegex(FileNotFoundError, "nope.pt not found"):
                tool.main(parser.parse_args(["compare", a, os.path.join(tmp, "nope.pt")]))
            nope = os.path.join(tmp, "nope.pt")
            with self.assertRaisesRegex(FileNotFoundError, "--weights-from .*nope.pt not found"):
                tool.main(parser.parse_args(["save", c, "--weights-from", nope]))
            with self.assertRaisesRegex(ValueError, "--configs 'CPU/none.yaml' matches no config"):
                tool.main(parser.parse_args(["save", c, "--configs", "CPU/none.yaml"]))
        self.assertEqual(len(first), 2)
        self.assertEqual({r["type"] for r in first.values()}, {"CenterNet"})
        self.assertEqual(set(same.values()), {0.0})
        self.assertTrue(all(v > 0 for v in other.values()), other)
        # a config on one side only counts as a change
        diffs = tool.differences(first, {k: v for k, v in first.items() if "ltrb" not in k})
        self.assertEqual(
            [k for k, v in diffs.items() if math.isinf(v)],
            ["CPU/centernet_MobileNetV3_small_FPN_shapes_ltrb.yaml"],
        )


if __name__ == "__main__":
    unittest.main()
