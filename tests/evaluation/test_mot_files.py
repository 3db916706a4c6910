"""centernet_d2.evaluation.mot_files: MOTChallenge result files written, read back, refused."""

import os
import tempfile
import unittest

import numpy as np

from centernet_d2.evaluation import read_mot_results, write_mot_results


def tracks(ids, boxes, scores, classes):
    return {
        "pred_ids": np.array(ids),
        "pred_boxes": np.array(boxes, np.float64).reshape(-1, 4),
        "scores": np.array(scores),
        "pred_classes": np.array(classes),
    }


FRAMES = [
    (1, tracks([1, 2], [[10.5, 20.25, 30.0, 60.0], [0, 0, 5, 5]], [0.9, 0.45], [2, 0])),
    (2, tracks([], [], [], [])),
    (3, tracks([2], [[1.125, 2.5, 7.75, 9.0]], [0.3], [0])),
]


class TestMOTResultFiles(unittest.TestCase):
    def test_written_then_read_back_equal(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = write_mot_results(os.path.join(tmp, "a", "seq.txt"), FRAMES, num_classes=3)
            with open(path) as f:
                lines = f.read().splitlines()
            back = read_mot_results(path)
        # MOTChallenge's layout: frame, id, left, top, width, height, score, class, -1, -1
        self.assertEqual(lines[0], "1,1,10.5000,20.2500,19.5000,39.7500,0.9000,3,-1,-1")
        self.assertEqual(len(lines), 3)
        self.assertEqual(sorted(back), [1, 3])  # a frame without tracks has no line
        for frame, expected in FRAMES:
            if frame == 2:
                continue
            for key in ("pred_ids", "pred_classes"):
                self.assertEqual(back[frame][key].tolist(), expected[key].tolist(), key)
            np.testing.assert_allclose(back[frame]["pred_boxes"], expected["pred_boxes"])
            np.testing.assert_allclose(back[frame]["scores"], expected["scores"])

    def test_one_class_writes_minus_one(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = write_mot_results(os.path.join(tmp, "seq.txt"), FRAMES[:1], num_classes=1)
            with open(path) as f:
                self.assertTrue(f.readline().strip().endswith(",0.9000,-1,-1,-1"))
            self.assertEqual(read_mot_results(path)[1]["pred_classes"].tolist(), [-1, -1])
            # seven columns (some trackers write no more) read too
            with open(path, "w") as f:
                f.write("4, 7, 1, 2, 3, 4, 0.5\n")
            back = read_mot_results(path)[4]
        self.assertEqual(back["pred_ids"].tolist(), [7])
        self.assertEqual(back["pred_boxes"].tolist(), [[1.0, 2.0, 4.0, 6.0]])

    def test_errors_name_the_file_and_line(self):
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "seq.txt")
            with open(path, "w") as f:
                f.write("1,1,0,0,4,4,0.9,-1,-1,-1\n1,2,zero,0,4,4\n")
            with self.assertRaisesRegex(ValueError, r"seq\.txt, line 2: expected frame,id"):
                read_mot_results(path)
            with self.assertRaisesRegex(FileNotFoundError, "missing.txt"):
                read_mot_results(os.path.join(tmp, "missing.txt"))


if __name__ == "__main__":
    unittest.main()
