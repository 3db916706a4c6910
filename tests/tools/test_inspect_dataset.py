"""tools/inspect_dataset.py on a user's VOC folder: the table, the box-size picture and the
training samples."""

import os
import tempfile
import unittest

import cv2

from tests.common import CONFIG, TINY, load_tool, write_helmet_voc


class TestInspectDataset(unittest.TestCase):
    def test_table_histogram_and_samples(self):
        tool = load_tool("inspect_dataset")
        with tempfile.TemporaryDirectory() as tmp:
            voc = write_helmet_voc(os.path.join(tmp, "helmet"))
            out = os.path.join(tmp, "out")
            argv = ["--config-file", CONFIG, "--voc-dataset", "insp", voc["dir"], "trainval"]
            argv += ["--voc-classes", "hat,person", "--voc-ignore-unknown", "--num", "5"]
            argv += ["--output", out, "DATASETS.TRAIN", "('insp',)"] + TINY
            stats = tool.main(tool.get_parser().parse_args(argv))
            # counts from the generator's own list of objects
            objects = [o for i in voc["ids"]["trainval"] for o in voc["boxes"][i]]
            for k, name in enumerate(["hat", "person"]):
                self.assertEqual(stats.objects_per_class[k], sum(o[0] == name for o in objects))
            table = open(os.path.join(out, "statistics.md")).read()
            self.assertIn("| hat ", table)
            self.assertIn("shorter side < 4 px", table)
            self.assertIn("total (0 images without objects)", table)
            histogram = cv2.imread(os.path.join(out, "box_sizes.png"))
            self.assertEqual(histogram.shape[2], 3)
            samples = sorted(os.listdir(os.path.join(out, "samples")))
            self.assertEqual(samples, [f"{n:03d}.jpg" for n in range(5)])
            sample = cv2.imread(os.path.join(out, "samples", "000.jpg"))
            self.assertEqual(sample.shape[:2], (128, 128))  # INPUT.CENTERNET.TRAIN_SIZE
            grid = cv2.imread(os.path.join(out, "samples.jpg"))
            self.assertEqual(grid.shape[:2], (2 * (128 + 4), 4 * (128 + 4)))


if __name__ == "__main__":
    unittest.main()
