"""centernet_d2.tracking.tracker: greedy matching and the online tracker."""

import unittest

import numpy as np

from centernet_d2.tracking import Tracker, TrackerSettings, greedy_assignment, track_instances
from tests.common import pred_instances, square


def crossing(t: int):
    """Frame t of two squares of class 0 crossing at 12 px per frame, both at y = 50: A from
    x = 10 to the right, B from x = 100 to the left; they pass each other between frames 3 (A at
    46, B at 64) and 4 (A at 58, B at 52). Returns (boxes [A, B], displacements)."""
    ax, bx = 10 + 12 * t, 100 - 12 * t
    return [square(ax, 50), square(bx, 50)], [[-12, 0], [12, 0]]


def ids(out):
    return out.pred_track_ids.tolist()


class TestGreedyAssignment(unittest.TestCase):
    def test_rows_in_order(self):
        t = np.array
        # CenterTrack's order: row 0 takes its nearest column 0 (1.0) although row 1 is nearer
        # to it (0.5); row 1 is left column 1 (3.0)
        pairs = greedy_assignment(t([[1.0, 2.0], [0.5, 3.0]]), np.ones((2, 2), bool))
        self.assertEqual(pairs.tolist(), [[0, 0], [1, 1]])
        # a row whose columns are all taken stays unmatched; ties: the first column
        pairs = greedy_assignment(
            t([[1.0, 1.0], [0.5, 3.0], [2.0, 2.0]]), t([[1, 1], [1, 0], [1, 0]], bool)
        )
        self.assertEqual(pairs.tolist(), [[0, 0]])

    def test_invalid_pairs_and_empty(self):
        t = np.array
        valid = t([[False, True], [False, False]])
        pairs = greedy_assignment(t([[0.0, 5.0], [1.0, 1.0]]), valid)
        self.assertEqual(pairs.tolist(), [[0, 1]])
        self.assertEqual(
            tuple(greedy_assignment(np.zeros((3, 0)), np.ones((3, 0), bool)).shape), (0, 2)
        )
        self.assertEqual(
            tuple(greedy_assignment(np.zeros((0, 2)), np.ones((0, 2), bool)).shape), (0, 2)
        )

    def test_input_untouched(self):
        cost = np.array([[1.0, 2.0]])
        greedy_assignment(cost, np.ones((1, 2), bool))
        self.assertEqual(cost.tolist(), [[1.0, 2.0]])


class TestTracker(unittest.TestCase):
    def test_crossing_keeps_ids_with_displacements(self):
        tracker = Tracker()
        boxes, disp = crossing(0)
        self.assertEqual(
            ids(track_instances(tracker, pred_instances(boxes, [0, 0], displacements=disp))), [1, 2]
        )
        for t in range(1, 8):
            boxes, disp = crossing(t)
            out = track_instances(tracker, pred_instances(boxes, [0, 0], displacements=disp))
            self.assertEqual(ids(out), [1, 2], f"frame {t}")

    def test_crossing_without_displacements_switches(self):
        # In frame 4 each detection is 6 px from the other object's track and 12 px from its
        # own: both identities switch. With displacements each is looked for where it was.
        tracker = Tracker()
        seen = []
        for t in range(6):
            boxes, _ = crossing(t)
            seen.append(ids(track_instances(tracker, pred_instances(boxes, [0, 0]))))
        self.assertEqual(seen, [[1, 2]] * 4 + [[2, 1]] * 2)

    def test_distance_limited_by_box_size(self):
        # a 20 px square moving 21 px: farther than sqrt(area) = 20, a new track; 19 px: same
        for step, expected in ((19, [1]), (21, [2])):
            tracker = Tracker()
            track_instances(tracker, pred_instances([square(30, 30)], [0]))
            self.assertEqual(
                ids(track_instances(tracker, pred_instances([square(30 + step, 30)], [0]))),
                expected,
            )
        # the smaller box limits: a 4 px detection 5 px from a 20 px track's centre
        tracker = Tracker()
        track_instances(tracker, pred_instances([square(30, 30)], [0]))
        self.assertEqual(
            ids(track_instances(tracker, pred_instances([square(35, 30, side=4)], [0]))), [2]
        )

    def test_higher_score_first(self):
        # two detections near one track: the higher-scored one (listed second, farther) takes it
        tracker = Tracker()
        track_instances(tracker, pred_instances([square(50, 50)], [0]))
        out = track_instances(
            tracker, pred_instances([square(52, 50), square(56, 50)], [0, 0], [0.5, 0.9])
        )
        self.assertEqual(ids(out), [2, 1])

    def test_class_aware(self):
        tracker = Tracker()
        track_instances(tracker, pred_instances([square(30, 30), square(80, 80)], [0, 1]))
        # same places, classes swapped at the first: it starts a track; the second is matched
        out = track_instances(tracker, pred_instances([square(30, 30), square(80, 80)], [1, 1]))
        self.assertEqual(ids(out), [3, 2])

    def test_max_age(self):
        # the object moves 10 px per frame and is missed in frames 2 and 3; in frame 4 its
        # displacement (-10, 0) points where its lost track has moved at its velocity
        def run(max_age):
            tracker, seen = Tracker(max_age=max_age), []
            for t in range(5):
                if t in (2, 3):
                    out = track_instances(tracker, pred_instances([], []))
                    self.assertEqual(len(out), 0)  # a lost track is not output
                else:
                    out = track_instances(
                        tracker,
                        pred_instances([square(20 + 10 * t, 50)], [0], displacements=[[-10, 0]]),
                    )
                seen.append(ids(out))
            return seen, tracker

        seen, tracker = run(max_age=2)
        self.assertEqual(seen, [[1], [1], [], [], [1]])
        self.assertEqual(tracker.num_tracks, 1)
        seen, tracker = run(max_age=1)  # ends after 2 missed frames: a new id
        self.assertEqual(seen, [[1], [1], [], [], [2]])
        seen, _ = run(max_age=0)
        self.assertEqual(seen[-1], [2])
        tracker = Tracker(max_age=1)
        track_instances(tracker, pred_instances([square(20, 50)], [0]))
        track_instances(tracker, pred_instances([], []))
        self.assertEqual(tracker.num_tracks, 1)
        self.assertEqual(len(tracker.active_tracks()["track_ids"]), 0)  # lost: not active
        track_instances(tracker, pred_instances([], []))
        self.assertEqual(tracker.num_tracks, 0)

    def test_second_stage_continues_tracks_never_starts_them(self):
        # frame 0: two objects tracked; frame 1: both partly hidden, scoring 0.2 (below
        # score_thresh 0.3, above low_score_thresh 0.1), and a third weak detection elsewhere
        def run(second_stage):
            tracker = Tracker(second_stage=second_stage, low_score_thresh=0.1)
            track_instances(tracker, pred_instances([square(30, 30), square(80, 30)], [0, 0]))
            weak = [square(33, 30), square(83, 30), square(60, 100)]
            seen = [ids(track_instances(tracker, pred_instances(weak, [0] * 3, [0.2] * 3)))]
            seen.append(ids(track_instances(tracker, pred_instances([square(36, 30)], [0]))))
            return seen

        # on: the weak detections of the two objects keep their ids, the third starts nothing;
        # the track continued at 0.2 is there in the next frame
        self.assertEqual(run(True), [[1, 2], [1]])
        # off (CenterTrack): the weak detections are dropped, the tracks end (max_age 0)
        self.assertEqual(run(False), [[], [3]])

    def test_second_stage_after_the_first(self):
        # a strong detection takes the track first though a weak one is nearer; a weak detection
        # below low_score_thresh is never linked
        tracker = Tracker(second_stage=True, low_score_thresh=0.1)
        track_instances(tracker, pred_instances([square(50, 50), square(120, 50)], [0, 0]))
        out = track_instances(
            tracker,
            pred_instances(
                [square(50, 50), square(54, 50), square(120, 50)], [0] * 3, [0.2, 0.9, 0.05]
            ),
        )
        self.assertEqual(ids(out), [1])
        self.assertEqual(out.scores.tolist(), [0.8999999761581421])
        # the second stage skips lost tracks (ByteTrack): track 1 lost for a frame, then weak
        tracker = Tracker(second_stage=True, low_score_thresh=0.1, max_age=2)
        track_instances(tracker, pred_instances([square(50, 50)], [0]))
        track_instances(tracker, pred_instances([], []))
        self.assertEqual(
            ids(track_instances(tracker, pred_instances([square(50, 50)], [0], [0.2]))), []
        )
        self.assertEqual(ids(track_instances(tracker, pred_instances([square(50, 50)], [0]))), [1])

    def test_second_stage_by_iou_of_the_displaced_box(self):
        # a weak detection 8 px from the track (IoU 12 x 20 / (800 - 240) = 0.43 < 0.5): not
        # linked, though the first stage's centre rule would take it; with its displacement
        # (-8, 0) its box moves onto the track's: linked
        def run(displacement):
            tracker = Tracker(second_stage=True, low_score_thresh=0.1)
            track_instances(tracker, pred_instances([square(50, 50)], [0]))
            weak = pred_instances([square(58, 50)], [0], [0.2], displacements=[displacement])
            return ids(track_instances(tracker, weak))

        self.assertEqual(run([0, 0]), [])
        self.assertEqual(run([-8, 0]), [1])
        self.assertEqual(Tracker(second_iou=0.3).settings.second_iou, 0.3)
        with self.assertRaisesRegex(ValueError, "second_iou"):
            Tracker(second_iou=1.5)

    def test_motion_through_occlusion(self):
        # a 20 px square moving 12 px per frame is hidden for frames 2-4; when it reappears its
        # predicted displacement is 0 (the previous frame did not show it): only the lost
        # track's motion at its velocity brings it within reach (48 px from where it was hidden)
        def run(max_age):
            tracker, seen = Tracker(max_age=max_age), []
            for t in range(7):
                visible = t not in (2, 3, 4)
                boxes = [square(20 + 12 * t, 50)] if visible else []
                disp = [[-12, 0]] if visible and t != 5 else [[0, 0]] if visible else None
                out = track_instances(
                    tracker, pred_instances(boxes, [0] * len(boxes), displacements=disp)
                )
                seen.append(ids(out))
            return seen

        self.assertEqual(run(max_age=3), [[1], [1], [], [], [], [1], [1]])
        self.assertEqual(run(max_age=0), [[1], [1], [], [], [], [2], [2]])

    def test_thresholds(self):
        tracker = Tracker(score_thresh=0.2, new_track_score=0.5)
        # 0.1: dropped; 0.3: unmatched and below new_track_score: not output; 0.6: new track
        out = track_instances(
            tracker,
            pred_instances(
                [square(20, 20), square(60, 20), square(100, 20)], [0] * 3, [0.1, 0.3, 0.6]
            ),
        )
        self.assertEqual(ids(out), [1])
        self.assertEqual(out.pred_boxes.tensor.tolist(), [square(100, 20)])
        # a matched detection only needs score_thresh
        out = track_instances(tracker, pred_instances([square(100, 20)], [0], [0.3]))
        self.assertEqual(ids(out), [1])
        self.assertAlmostEqual(out.scores.item(), 0.3, places=6)

    def test_iou_mode(self):
        tracker = Tracker(match_by="iou", min_iou=0.5)
        track_instances(tracker, pred_instances([square(30, 30), square(80, 80)], [0, 0]))
        # shifted by 5 px: IoU 15 * 20 / (2 * 400 - 300) = 0.6 -> kept; by 10 px: 1/3 -> new;
        # a displacement is not used
        out = track_instances(
            tracker,
            pred_instances(
                [square(35, 30), square(90, 80)], [0, 0], displacements=[[-5, 0], [-10, 0]]
            ),
        )
        self.assertEqual(ids(out), [1, 3])

    def test_reset_and_active_tracks(self):
        tracker = Tracker()
        self.assertIsNone(tracker.active_tracks())
        track_instances(
            tracker,
            pred_instances([square(30, 30), square(80, 80)], [2, 1], [0.9, 0.4], size=(100, 120)),
        )
        prev = tracker.active_tracks(min_score=0.5)
        self.assertEqual(prev["boxes"].tolist(), [square(30, 30)])
        self.assertEqual(prev["classes"].tolist(), [2])
        self.assertEqual(prev["track_ids"].tolist(), [1])
        self.assertEqual(len(tracker.active_tracks()["track_ids"]), 2)
        tracker.reset()
        self.assertIsNone(tracker.active_tracks())
        self.assertEqual(ids(track_instances(tracker, pred_instances([square(80, 80)], [1]))), [1])

    def test_settings(self):
        s = TrackerSettings(match_by="iou", max_age=3)
        self.assertEqual(Tracker.from_settings(s).settings, s)
        with self.assertRaisesRegex(ValueError, "match_by"):
            Tracker(match_by="hungarian")
        with self.assertRaisesRegex(ValueError, "max_age"):
            Tracker(max_age=-1)
        with self.assertRaisesRegex(ValueError, "new_track_score"):
            Tracker(score_thresh=0.5, new_track_score=0.4)
        with self.assertRaisesRegex(ValueError, "low_score_thresh"):
            Tracker(second_stage=True, low_score_thresh=0.3)
        Tracker(second_stage=False, low_score_thresh=0.3)  # unused when off
