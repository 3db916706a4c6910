"""centernet_d2.data.stats: per-class counts and boxes below the stride, against hand counts."""

import unittest

from detectron2.structures import BoxMode

from centernet_d2.data import dataset_statistics, format_statistics, log_dataset_statistics


def _anno(box, cls, mode=BoxMode.XYXY_ABS, crowd=0):
    return {"bbox": box, "bbox_mode": mode, "category_id": cls, "iscrowd": crowd}


# three images of 200 x 100 (w x h); at TRAIN_SIZE (100, 100) they are scaled by
# min(100 / 100, 100 / 200) = 0.5
DICTS = [
    {"height": 100, "width": 200, "annotations": [
        _anno([0, 0, 6, 40], 0),  # 6 px wide -> 3 px at the training scale: below stride 4
        _anno([10, 10, 50, 50], 0),  # 40 px -> 20 px
        _anno([0, 0, 20, 30], 1, BoxMode.XYWH_ABS),  # 20 x 30 -> 10 x 15
    ]},
    {"height": 100, "width": 200, "annotations": [
        _anno([5, 5, 12, 9], 1),  # 7 x 4 -> 3.5 x 2: below
        _anno([0, 0, 100, 100], 1, crowd=1),  # crowd: not counted
    ]},
    {"height": 100, "width": 200, "annotations": []},
]  # fmt: skip


class TestDatasetStatistics(unittest.TestCase):
    def test_counts_by_hand(self):
        s = dataset_statistics(DICTS, ["a", "b", "c"], stride=4, train_size=(100, 100))
        self.assertEqual(s.num_images, 3)
        self.assertEqual(s.empty_images, 1)
        self.assertEqual(s.max_objects_per_image, 3)
        self.assertEqual(s.images_per_class.tolist(), [1, 2, 0])
        self.assertEqual(s.objects_per_class.tolist(), [2, 2, 0])
        self.assertEqual(s.sides.tolist(), [[3, 20], [20, 20], [10, 15], [3.5, 2]])
        self.assertEqual(s.small.tolist(), [True, False, False, True])
        self.assertAlmostEqual(s.small_share, 0.5)

    def test_own_pixels_without_train_size(self):
        s = dataset_statistics(DICTS, ["a", "b", "c"], stride=4)
        self.assertEqual(s.small.tolist(), [False, False, False, False])  # 6 px and 4 px sides

    def test_table_rows(self):
        s = dataset_statistics(DICTS, ["a", "b", "c"], stride=4, train_size=(100, 100))
        lines = format_statistics(s).splitlines()
        self.assertIn("shorter side < 4 px", lines[0])
        row = {
            line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in lines[2:]
        }
        self.assertEqual(row["a"], ["1", "2", "2.00", "50.0 %"])
        self.assertEqual(row["b"], ["2", "2", "1.00", "50.0 %"])
        self.assertEqual(row["c"], ["0", "0", "-", "-"])
        self.assertEqual(
            row["total (1 images without objects)"], ["3", "4", "1.33 (max 3)", "50.0 %"]
        )

    def test_warning_above_five_percent(self):
        s = dataset_statistics(DICTS, ["a", "b", "c"], stride=4, train_size=(100, 100))
        with self.assertLogs("centernet_d2.data.stats", "WARNING") as logs:
            log_dataset_statistics("toy", s)
        self.assertIn("50.0 % of the boxes", "\n".join(logs.output))
        big = dataset_statistics(DICTS, ["a", "b", "c"], stride=2, train_size=(100, 100))
        with self.assertLogs("centernet_d2.data.stats", "INFO") as logs:
            log_dataset_statistics("toy", big)
        self.assertFalse([r for r in logs.records if r.levelname == "WARNING"])


if __name__ == "__main__":
    unittest.main()
