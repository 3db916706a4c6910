"""Decoding, checked against an independent reference written here: CenterNet's max-pool NMS
(``F.max_pool2d(heatmap, 3, stride=1, padding=1)``, keep the cells equal to their pooled value)
followed by ``flatten(1).topk(k)``."""

import math
import unittest
import warnings
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from centernet_d2.modeling import decode as decode_module
from centernet_d2.modeling.decode import (
    MIN_LEVEL_BOX_SIDE,
    amodal_boxes_at,
    decode_boxes,
    decode_levels,
    decode_ltrb_boxes,
    decode_predictions,
    fixed_size_nms,
    to_instances,
    topk_peaks,
    values_at,
)
from centernet_d2.modeling.targets import TargetSettings, build_targets
from tests.common import gt_instances


def _sig(x):
    return 1 / (1 + math.exp(-x))


def _reference_peaks(logits):
    """(N, K * H * W): the logits of the cells equal to the max of their 3x3 window, -inf at the
    others."""
    pooled = F.max_pool2d(logits, 3, stride=1, padding=1)
    return logits.masked_fill(pooled != logits, float("-inf")).flatten(1)


def _trace(fn, inputs):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # trace's deprecation and tracer warnings
        return torch.jit.trace(fn, inputs, check_trace=False)


def _both_paths(logits, k):
    """topk_peaks of ``logits`` eager (row candidates) and traced (dense 3x3 test, as exported):
    [("eager", (scores, classes, positions)), ("traced", (...))]."""
    traced = _trace(lambda x: topk_peaks(x, k), logits)
    return [("eager", topk_peaks(logits, k)), ("traced", traced(logits))]


def _cells(result, W, n=0, count=None):
    """The set of (class, y, x) of image ``n``'s first ``count`` detections."""
    _, classes, pos = result
    c, p = classes[n, :count].tolist(), pos[n, :count].tolist()
    return {(ci, pi // W, pi % W) for ci, pi in zip(c, p)}


def _planted(N=2, K=3, H=8, W=10):
    logits = torch.full((N, K, H, W), -10.0)
    size = torch.zeros(N, 2, H, W)
    offset = torch.zeros(N, 2, H, W)
    # image 0: class 1 at (x=2, y=3), logit 2; class 0 at (x=7, y=6), logit 1
    logits[0, 1, 3, 2], size[0, :, 3, 2], offset[0, :, 3, 2] = (
        2.0,
        torch.tensor([4.0, 2.0]),
        torch.tensor([0.5, 0.25]),
    )
    logits[0, 0, 6, 7], size[0, :, 6, 7], offset[0, :, 6, 7] = (
        1.0,
        torch.tensor([1.0, 3.0]),
        torch.tensor([0.0, 0.75]),
    )
    # a weaker neighbour of the first peak is not a peak
    logits[0, 1, 3, 3] = 1.5
    # image 1: class 2 at (x=9, y=0), logit 0
    logits[1, 2, 0, 9], size[1, :, 0, 9], offset[1, :, 0, 9] = (
        0.0,
        torch.tensor([2.0, 2.0]),
        torch.tensor([0.5, 0.5]),
    )
    return logits, size, offset


class _PeaksTestCase(unittest.TestCase):
    def assert_reference_peaks(self, logits, k, result):
        """``result`` = (scores, classes, positions) is a top-``k`` of the reference peaks.

        Checked: the shapes (N, T), T = min(k, K * H * W); the logits of the chosen cells equal
        the reference's top-T values in its (descending) order, and the scores are their sigmoid
        (0 where there are fewer than T peaks); every chosen cell of finite value is a reference
        peak, and no cell is chosen twice. Hence the set of (class, y, x) chosen is the
        reference's: every peak above the T-th value is in it, the others tie with the T-th value
        exactly (checked too). Where values tie across the T-th place any of the tied peaks is
        right, and where an image has fewer than T peaks the rest are any other cells.
        """
        scores, classes, pos = result
        N, K, H, W = logits.shape
        T = min(k, K * H * W)
        peaks = _reference_peaks(logits)  # (N, K * H * W)
        ref_top = peaks.topk(T).values  # (N, T)
        for x in (scores, classes, pos):
            self.assertEqual(tuple(x.shape), (N, T))
        self.assertTrue(((classes >= 0) & (classes < K) & (pos >= 0) & (pos < H * W)).all())
        idx = classes * H * W + pos  # (N, T) flat (class, y, x)
        self.assertTrue((idx.sort(dim=1).values.diff(dim=1) > 0).all(), "a cell chosen twice")
        finite = torch.isfinite(ref_top)
        self.assertTrue(torch.equal(logits.flatten(1).gather(1, idx)[finite], ref_top[finite]))
        self.assertTrue(torch.equal(peaks.gather(1, idx)[finite], ref_top[finite]))
        torch.testing.assert_close(scores, torch.sigmoid(ref_top), rtol=1e-6, atol=0)
        for n in range(N * (T > 0)):
            kth = ref_top[n, -1]
            chosen = set(idx[n][finite[n]].tolist())
            above = set(torch.nonzero(peaks[n] > kth).flatten().tolist())
            tied = (
                set(torch.nonzero(peaks[n] == kth).flatten().tolist()) if finite[n, -1] else set()
            )
            self.assertLessEqual(above, chosen)
            self.assertLessEqual(chosen, above | tied)


class TestTopkPeaksTies(_PeaksTestCase):
    """Hand-made maps whose peaks, tied ones included, are known; eager and traced."""

    def test_plateau(self):
        # 4 x 5 of zeros, but a 2 x 2 plateau of 2 at y, x in {1, 2} and a 1 at (y=3, x=4). Each
        # plateau cell equals its window's max: four peaks. A zero is a peak where no larger cell
        # is one step away: (0, 4) and (1, 4) only (columns 0-3 touch the plateau, (2, 4) the 1).
        logits = torch.zeros(1, 1, 4, 5)
        logits[0, 0, 1:3, 1:3] = 2.0
        logits[0, 0, 3, 4] = 1.0
        plateau = {(0, 1, 1), (0, 1, 2), (0, 2, 1), (0, 2, 2)}
        for k in (3, 4, 5, 7, 8):
            for path, result in _both_paths(logits, k):
                with self.subTest(k=k, path=path):
                    self.assert_reference_peaks(logits, k, result)
                    scores = result[0][0].tolist()
                    np.testing.assert_allclose(scores[:3], [_sig(2.0)] * 3, rtol=1e-6)
                    if k == 3:  # a tie across the cut: any three of the four
                        self.assertLess(_cells(result, 5), plateau)
                        continue
                    self.assertEqual(_cells(result, 5, count=4), plateau)
                    if k >= 5:
                        self.assertEqual(_cells(result, 5, count=5) - plateau, {(0, 3, 4)})
                        self.assertAlmostEqual(scores[4], _sig(1.0), places=6)
                    if k >= 7:  # the two zero peaks, in either order
                        self.assertEqual(
                            _cells(result, 5, count=7) - _cells(result, 5, count=5),
                            {(0, 0, 4), (0, 1, 4)},
                        )
                        self.assertEqual(scores[5:7], [0.5, 0.5])
                    if k == 8:  # seven peaks only: the eighth scores 0
                        self.assertEqual(scores[7], 0.0)

    def test_equal_values_in_several_classes(self):
        # 3 classes of 3 x 3 at -5. Logit 1 at (y=1, x=1) of classes 0 and 2 and at (0, 0) of
        # class 1; 0.5 at (2, 2) of class 1. Of the -5 cells, (0, 2) and (2, 0) of class 1 are
        # peaks, no others (they touch a larger cell). Image 1 is image 0 mirrored in x.
        logits = torch.full((2, 3, 3, 3), -5.0)
        logits[0, 0, 1, 1] = logits[0, 2, 1, 1] = logits[0, 1, 0, 0] = 1.0
        logits[0, 1, 2, 2] = 0.5
        logits[1] = logits[0].flip(2)
        ones = [{(0, 1, 1), (2, 1, 1), (1, 0, 0)}, {(0, 1, 1), (2, 1, 1), (1, 0, 2)}]
        fourth = [(1, 2, 2), (1, 2, 0)]
        fifth_sixth = [{(1, 0, 2), (1, 2, 0)}, {(1, 0, 0), (1, 2, 2)}]
        for k in (2, 3, 4, 6, 7):
            for path, result in _both_paths(logits, k):
                with self.subTest(k=k, path=path):
                    self.assert_reference_peaks(logits, k, result)
                    scores = result[0]
                    for n in range(2):
                        if k == 2:  # a tie across the cut: any two of the three
                            self.assertLess(_cells(result, 3, n=n), ones[n])
                            continue
                        self.assertEqual(_cells(result, 3, n=n, count=3), ones[n])
                        np.testing.assert_allclose(scores[n, :3], [_sig(1.0)] * 3, rtol=1e-6)
                        if k >= 4:
                            fourth_found = _cells(result, 3, n=n, count=4) - ones[n]
                            self.assertEqual(fourth_found, {fourth[n]})
                            self.assertAlmostEqual(scores[n, 3].item(), _sig(0.5), places=6)
                        if k >= 6:  # the two -5 peaks of class 1, in either order
                            last = _cells(result, 3, n=n, count=6) - _cells(result, 3, n=n, count=4)
                            self.assertEqual(last, fifth_sixth[n])
                        if k == 7:
                            self.assertEqual(scores[n, 6].item(), 0.0)

    def test_k_larger_than_the_map(self):
        # 2 classes of 2 x 3 rising left to right, then down: one peak per class, at its last
        # cell (logits 5 and 11). T = min(20, 12): every cell once, the ten non-peaks score 0.
        logits = torch.arange(12.0).view(1, 2, 2, 3)
        every_cell = {(c, y, x) for c in range(2) for y in range(2) for x in range(3)}
        for path, result in _both_paths(logits, 20):
            with self.subTest(path=path):
                self.assert_reference_peaks(logits, 20, result)
                scores, classes, pos = result
                np.testing.assert_allclose(scores[0, :2], [_sig(11), _sig(5)], rtol=1e-6)
                self.assertEqual(classes[0, :2].tolist(), [1, 0])
                self.assertEqual(pos[0, :2].tolist(), [5, 5])
                self.assertEqual(scores[0, 2:].tolist(), [0.0] * 10)
                self.assertEqual(_cells(result, 3), every_cell)

    def test_no_detections(self):
        # TEST.DETECTIONS_PER_IMAGE 0: empty (N, 0) results, eager and traced
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 3, 4, 5, generator=g)
        size, offset = torch.rand(2, 2, 4, 5, generator=g), torch.rand(2, 2, 4, 5, generator=g)
        for path, result in _both_paths(logits, 0):
            with self.subTest(path=path):
                self.assertEqual([tuple(x.shape) for x in result], [(2, 0)] * 3)
                self.assertEqual(result[1].dtype, torch.long)
        traced = _trace(lambda a, b, c: decode_boxes(a, b, c, 4, 0), (logits, size, offset))
        for path, (boxes, scores, classes) in (
            ("eager", decode_boxes(logits, size, offset, 4, 0)),
            ("traced", traced(logits, size, offset)),
        ):
            with self.subTest(path=path):
                self.assertEqual(tuple(boxes.shape), (2, 0, 4))
                self.assertEqual((tuple(scores.shape), tuple(classes.shape)), ((2, 0), (2, 0)))
        results = to_instances(*decode_boxes(logits, size, offset, 4, 0), [(16, 20)] * 2, 0.0)
        self.assertEqual([len(r) for r in results], [0, 0])


class TestTopkPeaksRandom(_PeaksTestCase):
    """Random maps against the reference, eager (row candidates) and traced (dense)."""

    def test_random_maps(self):
        g = torch.Generator().manual_seed(0)
        for trial in range(120):
            N, K, H, W, k = (
                int(torch.randint(1, n, (1,), generator=g)) for n in (4, 6, 20, 20, 60)
            )
            logits = torch.randn(N, K, H, W, generator=g)
            variants = {
                "contiguous": logits,
                "channels_last": logits.contiguous(memory_format=torch.channels_last),
                "rounded": logits.round(),  # plateaus and ties across classes
            }
            for name, x in variants.items():
                paths = _both_paths(x, k) if trial % 4 == 0 else [("eager", topk_peaks(x, k))]
                for path, result in paths:
                    with self.subTest(trial=trial, shape=(N, K, H, W), k=k, map=name, path=path):
                        self.assert_reference_peaks(x, k, result)

    def test_smooth_maps_need_more_rounds(self):
        # smooth maps have few peaks: rows with large maxima are slopes next to a peak's row, so
        # the first 2k rows often hold fewer than k peaks or cannot prove the k-th; later rounds
        # (more rows) must still give the reference's peaks
        g = torch.Generator().manual_seed(1)
        calls, rounds = [0], []
        row_peaks = decode_module._row_peaks

        def counting(*args):
            calls[0] += 1
            return row_peaks(*args)

        with mock.patch.object(decode_module, "_row_peaks", counting):
            for trial in range(30):
                N, K = (int(torch.randint(1, n, (1,), generator=g)) for n in (3, 5))
                H, W = (int(torch.randint(16, 40, (1,), generator=g)) for _ in range(2))
                k = int(torch.randint(5, 30, (1,), generator=g))
                noise = torch.randn(N, K, H, W, generator=g)
                logits = F.avg_pool2d(F.avg_pool2d(noise, 9, 1, 4), 9, 1, 4)
                calls[0] = 0
                with self.subTest(trial=trial, shape=(N, K, H, W), k=k):
                    self.assert_reference_peaks(logits, k, topk_peaks(logits, k))
                rounds.append(calls[0])
        self.assertGreater(rounds.count(2), 0)  # exact after the rows above the k-th peak
        self.assertGreater(sum(r >= 3 for r in rounds), 0)  # fewer than k peaks at first

    def test_rows_beyond_the_first_candidates(self):
        # one column: rows are single cells. Peaks: 5 at y=5 and 0.5 at y=11. The 4 (= 2k) rows
        # with the largest maxima (5, 4, 4, 3) hold one peak only, so the second pass must find
        # the peak at y=11.
        col = torch.tensor([0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 0.5])
        scores, classes, pos = topk_peaks(col.view(1, 1, 12, 1), 2)
        np.testing.assert_allclose(scores[0].numpy(), [_sig(5), _sig(0.5)], rtol=1e-6)
        self.assertEqual(pos[0].tolist(), [5, 11])
        self.assertEqual(classes[0].tolist(), [0, 0])


class TestDecodeBoxes(_PeaksTestCase):
    def test_planted_peaks(self):
        logits, size, offset = _planted()
        boxes, scores, classes = decode_boxes(logits, size, offset, stride=4, k=3)
        np.testing.assert_allclose(scores[0, :2].numpy(), [_sig(2.0), _sig(1.0)], rtol=1e-6)
        self.assertEqual(classes[0, :2].tolist(), [1, 0])
        # centre (2.5, 3.25), size (4, 2) cells -> (0.5, 2.25, 4.5, 4.25) * 4
        np.testing.assert_allclose(boxes[0, 0].numpy(), [2, 9, 18, 17])
        # centre (7, 6.75), size (1, 3) -> (6.5, 5.25, 7.5, 8.25) * 4
        np.testing.assert_allclose(boxes[0, 1].numpy(), [26, 21, 30, 33])
        self.assertLess(scores[0, 2].item(), 1e-4)  # only -10 logits remain
        self.assertEqual(classes[1, 0].item(), 2)
        np.testing.assert_allclose(boxes[1, 0].numpy(), [34, -2, 42, 6])
        same = decode_predictions(
            {"heatmap": logits, "size": size, "offset": offset}, 4, 3, "size_offset"
        )
        for a, b in zip(same, (boxes, scores, classes)):
            self.assertTrue(torch.equal(a, b))

        results = to_instances(boxes, scores, classes, [(32, 40), (32, 40)], score_thresh=0.3)
        self.assertEqual(len(results[0]), 2)
        self.assertEqual(len(results[1]), 1)
        # clipped to the image
        np.testing.assert_allclose(results[1].pred_boxes.tensor[0].numpy(), [34, 0, 40, 6])
        self.assertEqual(results[1].scores[0].item(), 0.5)

    def test_low_precision_inputs(self):
        # bfloat16 keeps 8 significant bits: 201.25 and 201.5 round to 201 and 202. At x = 201
        # cells the centre must still be 201 + offset, computed in float32.
        logits = torch.full((1, 1, 2, 256), -5.0)
        size = torch.zeros(1, 2, 2, 256)
        offset = torch.zeros(1, 2, 2, 256)
        logits[0, 0, 1, 201] = 3.0
        size[0, :, 1, 201] = torch.tensor([3.0, 1.5])  # exact in bfloat16
        offset[0, :, 1, 201] = torch.tensor([0.25, 0.5])
        for dtype in (torch.float32, torch.bfloat16, torch.float16):
            with self.subTest(dtype=dtype):
                boxes, scores, classes = decode_boxes(
                    logits.to(dtype), size.to(dtype), offset.to(dtype), stride=4, k=1
                )
                self.assertEqual(boxes.dtype, torch.float32)
                # centre (201.25, 1.5), size (3, 1.5): (199.75, 0.75, 202.75, 2.25) * 4
                self.assertEqual(boxes[0, 0].tolist(), [799.0, 3.0, 811.0, 9.0])
                self.assertEqual(classes[0, 0].item(), 0)

    def test_batched_equals_single(self):
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(3, 4, 9, 11, generator=g)
        size = torch.rand(3, 2, 9, 11, generator=g) * 5
        offset = torch.rand(3, 2, 9, 11, generator=g)
        batched = decode_boxes(logits, size, offset, 4, 20)
        for i in range(3):
            single = decode_boxes(logits[i : i + 1], size[i : i + 1], offset[i : i + 1], 4, 20)
            # same peaks and classes; vectorised sigmoid may differ from scalar by one ulp
            for b, s in zip(batched, single):
                torch.testing.assert_close(b[i : i + 1], s, rtol=1e-6, atol=0)

    def test_peaks_are_local_maxima(self):
        # the definition by hand, one window at a time
        g = torch.Generator().manual_seed(1)
        logits = torch.randn(1, 2, 6, 6, generator=g)
        scores, classes, pos = topk_peaks(logits, 500)
        self.assertEqual(scores.shape, (1, 72))  # T = min(k, K*H*W)
        finite = scores > 0
        for c, p in zip(classes[finite].tolist(), pos[finite].tolist()):
            y, x = divmod(p, 6)
            window = logits[0, c, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
            self.assertEqual(logits[0, c, y, x].item(), window.max().item())

    def test_traceable(self):
        logits, size, offset = _planted()
        traced = _trace(lambda a, b, c: decode_boxes(a, b, c, 4, 5), (logits, size, offset))
        logits2 = logits.flip(3)  # a new input: the traced graph is not the trace's constants
        (tb, ts, tc), (eb, es, ec) = traced(logits2, size, offset), decode_boxes(
            logits2, size, offset, 4, 5
        )
        self.assertTrue(torch.equal(ts, es))
        # the -10 background is a plateau of tied peaks: which of them fill up the top 5 is
        # arbitrary (checked by the reference below), so boxes are compared at planted peaks
        planted = es > 1e-3
        self.assertEqual(planted.sum().item(), 3)
        self.assertTrue(torch.equal(tb[planted], eb[planted]))
        self.assertTrue(torch.equal(tc[planted], ec[planted]))
        traced_peaks = _trace(lambda x: topk_peaks(x, 5), logits)
        self.assert_reference_peaks(logits2, 5, traced_peaks(logits2))


class TestDecodeLtrb(unittest.TestCase):
    def test_planted_peaks(self):
        logits = torch.full((2, 3, 6, 8), -8.0)
        ltrb = torch.zeros(2, 4, 6, 8)
        logits[0, 2, 3, 2], ltrb[0, :, 3, 2] = 3.0, torch.tensor([1.0, 2.0, 3.0, 0.5])
        logits[1, 0, 0, 7], ltrb[1, :, 0, 7] = 1.0, torch.tensor([0.5, 0.5, 0.5, 0.5])
        boxes, scores, classes = decode_ltrb_boxes(logits, ltrb, stride=4, k=2)
        # centre (2.5, 3.5): (2.5 - 1, 3.5 - 2, 2.5 + 3, 3.5 + 0.5) * 4
        self.assertEqual(boxes[0, 0].tolist(), [6.0, 6.0, 22.0, 16.0])
        self.assertEqual(classes[0, 0].item(), 2)
        self.assertAlmostEqual(scores[0, 0].item(), 1 / (1 + math.exp(-3.0)), places=6)
        # centre (7.5, 0.5) +- 0.5: (7, 0, 8, 1) * 4
        self.assertEqual(boxes[1, 0].tolist(), [28.0, 0.0, 32.0, 4.0])
        same = decode_predictions({"heatmap": logits, "box": ltrb}, 4, 2, "ltrb")
        for a, b in zip(same, (boxes, scores, classes)):
            self.assertTrue(torch.equal(a, b))

    def test_inverse_of_targets(self):
        # a box's ltrb target at any cell of its area decodes to the box, exactly
        box = [13.0, 6.0, 45.0, 30.0]
        t = build_targets(
            [gt_instances([box], [1], (48, 64))],
            [(48, 64)],
            (1, 2, 12, 16),
            4,
            TargetSettings("ttf"),
            True,
        )
        logits = torch.full((1, 2, 12, 16), -5.0)
        ys, xs = torch.nonzero(t.box_weight[0], as_tuple=True)
        self.assertGreater(len(xs), 1)
        for y, x in zip(ys.tolist(), xs.tolist()):
            peak = logits.clone()
            peak[0, 1, y, x] = 2.0
            boxes, _, classes = decode_ltrb_boxes(peak, t.box, 4, 1)
            self.assertEqual(classes[0, 0].item(), 1)
            self.assertEqual(boxes[0, 0].tolist(), box)

    def test_no_detections(self):
        # TEST.DETECTIONS_PER_IMAGE 0: empty results, eager and traced
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 3, 6, 8, generator=g)
        ltrb = torch.rand(2, 4, 6, 8, generator=g) * 3
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # trace's deprecation and tracer warnings
            traced = torch.jit.trace(
                lambda a, b: decode_ltrb_boxes(a, b, 4, 0), (logits, ltrb), check_trace=False
            )
        for path, (boxes, scores, classes) in (
            ("eager", decode_ltrb_boxes(logits, ltrb, 4, 0)),
            ("traced", traced(logits, ltrb)),
        ):
            with self.subTest(path=path):
                self.assertEqual(tuple(boxes.shape), (2, 0, 4))
                self.assertEqual((tuple(scores.shape), tuple(classes.shape)), ((2, 0), (2, 0)))

    def test_traceable(self):
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 3, 6, 8, generator=g)
        ltrb = torch.rand(2, 4, 6, 8, generator=g) * 3
        traced = torch.jit.trace(lambda a, b: decode_ltrb_boxes(a, b, 4, 5), (logits, ltrb))
        logits2 = torch.randn(2, 3, 6, 8, generator=g)
        for x, y in zip(traced(logits2, ltrb), decode_ltrb_boxes(logits2, ltrb, 4, 5)):
            self.assertTrue(torch.equal(x, y))


class TestDecodeLevels(unittest.TestCase):
    def test_planted_candidates_and_nms(self):
        # level 0 (stride 8, 4 x 4): class 1 at (x 1, y 2), ltrb (1, 1, 2, 0.5);
        # level 1 (stride 16, 2 x 2): class 0 at (0, 0), ltrb 0.5 each side
        logits = [torch.full((1, 2, 4, 4), -9.0), torch.full((1, 2, 2, 2), -9.0)]
        ltrb = [torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 2, 2)]
        logits[0][0, 1, 2, 1], ltrb[0][0, :, 2, 1] = 2.0, torch.tensor([1.0, 1.0, 2.0, 0.5])
        logits[1][0, 0, 0, 0], ltrb[1][0, :, 0, 0] = 1.0, torch.tensor([0.5] * 4)
        boxes, scores, classes = decode_levels(logits, ltrb, [8, 16], k=1)
        # centre (1.5, 2.5) cells: (0.5, 1.5, 3.5, 3) * 8; centre (0.5, 0.5): (0, 0, 1, 1) * 16
        self.assertEqual(boxes[0].tolist(), [[4.0, 12.0, 28.0, 24.0], [0.0, 0.0, 16.0, 16.0]])
        self.assertEqual(classes[0].tolist(), [1, 0])
        torch.testing.assert_close(scores[0], torch.sigmoid(torch.tensor([2.0, 1.0])))
        # k larger than a level: every position of every class
        boxes, scores, _ = decode_levels(logits, ltrb, [8, 16], k=100)
        self.assertEqual(tuple(boxes.shape), (1, 2 * 16 + 2 * 4, 4))

        # NMS across levels: a same-class duplicate (IoU 0.64) goes, another class stays
        boxes = torch.tensor(
            [[[0.0, 0, 10, 10], [0, 0, 10, 6.4], [0, 0, 10, 10], [20, 20, 30, 30]]]
        )
        scores = torch.tensor([[0.9, 0.8, 0.7, 0.01]])
        classes = torch.tensor([[0, 0, 1, 0]])
        (r,) = to_instances(boxes, scores, classes, [(40, 40)], 0.05, nms_thresh=0.6, topk=5)
        torch.testing.assert_close(r.scores, torch.tensor([0.9, 0.7]))  # 0.01: under the threshold
        self.assertEqual(r.pred_classes.tolist(), [0, 1])
        (r,) = to_instances(boxes, scores, classes, [(40, 40)], 0.05, nms_thresh=0.7, topk=5)
        torch.testing.assert_close(r.scores, torch.tensor([0.9, 0.8, 0.7]))  # IoU 0.64 < 0.7
        (r,) = to_instances(boxes, scores, classes, [(40, 40)], 0.05, nms_thresh=0.7, topk=1)
        torch.testing.assert_close(r.scores, torch.tensor([0.9]))

    def test_boxes_of_no_size_get_centernet2s_least_side(self):
        # all-zero distances at cell (1, 0) of stride 8: a point at the cell centre (12, 4)
        logits, ltrb = [torch.full((1, 1, 2, 2), -9.0)], [torch.zeros(1, 4, 2, 2)]
        logits[0][0, 0, 0, 1] = 3.0
        ltrb[0][0, 0, 0, 1] = 1.0  # l = 1 cell: width 8 px, height 0
        boxes, _, _ = decode_levels(logits, ltrb, [8], k=1)
        torch.testing.assert_close(
            boxes[0, 0], torch.tensor([4.0, 4.0, 12.0, 4.0 + MIN_LEVEL_BOX_SIDE])
        )


class TestAmodalBoxes(unittest.TestCase):
    def test_hand_computed(self):
        # (N, 4, H, W) = (1, 4, 3, 5); position 7 is cell (x 2, y 1)
        ltrb = torch.zeros(1, 4, 3, 5)
        ltrb[0, :, 1, 2] = torch.tensor([-3.0, -0.5, 4.0, 1.5])  # signed, from the corner
        boxes = amodal_boxes_at(torch.tensor([[7, 0]]), ltrb, stride=4)
        # (2 - 3, 1 - 0.5, 2 + 4, 1 + 1.5) cells * 4: reaches left of the image
        self.assertEqual(boxes[0].tolist(), [[-4.0, 2.0, 24.0, 10.0], [0.0, 0.0, 0.0, 0.0]])
        self.assertEqual(values_at(ltrb, torch.tensor([[7]]))[0, 0].tolist(), [-3, -0.5, 4, 1.5])


if __name__ == "__main__":
    unittest.main()


class TestFixedSizeNMS(unittest.TestCase):
    """The NMS of the exported graph against :func:`to_instances`' (Detectron2's batched_nms)."""

    def _candidates(self, seed, N=3, T=300, K=4, size=100.0):
        g = torch.Generator().manual_seed(seed)
        centre = torch.rand(N, T, 2, generator=g) * size
        half = 4 + torch.rand(N, T, 2, generator=g) * 12  # crowded: many overlaps
        boxes = torch.cat([centre - half, centre + half], dim=2).clamp(0, size)
        scores = torch.rand(N, T, generator=g)
        classes = torch.randint(0, K, (N, T), generator=g)
        extra = torch.rand(N, T, 5, 3, generator=g)  # e.g. keypoints, gathered alike
        return boxes, scores, classes, extra

    def test_thresholded_outputs_equal_to_instances(self):
        for seed, thresh, kept in ((0, 0.3, 20), (1, 0.0, 50), (2, 0.9, 100)):
            with self.subTest(seed=seed, thresh=thresh, kept=kept):
                boxes, scores, classes, extra = self._candidates(seed)
                out = fixed_size_nms(boxes, scores, classes, 0.5, kept, extra)
                self.assertEqual([tuple(x.shape[:2]) for x in out], [(3, kept)] * 4)
                expected = to_instances(
                    boxes, scores, classes, [(100, 100)] * 3, thresh, 0.5, kept,
                    fields={"pred_extra": extra},
                )  # fmt: skip
                for i, r in enumerate(expected):
                    keep = out[1][i] >= thresh
                    self.assertEqual(int(keep.sum()), len(r))
                    self.assertTrue(torch.equal(out[0][i][keep], r.pred_boxes.tensor))
                    self.assertTrue(torch.equal(out[1][i][keep], r.scores))
                    self.assertTrue(torch.equal(out[2][i][keep], r.pred_classes))
                    self.assertTrue(torch.equal(out[3][i][keep], r.pred_extra))

    def test_empty_slots_score_zero(self):
        # two candidates of one class on one box: one kept, the other slots empty
        boxes = torch.tensor([[[0.0, 0, 10, 10], [0, 0, 10, 10], [50, 50, 60, 60]]])
        scores = torch.tensor([[0.9, 0.8, 0.7]])
        classes = torch.tensor([[1, 1, 2]])
        b, s, c = fixed_size_nms(boxes, scores, classes, 0.5, 3)
        torch.testing.assert_close(s, torch.tensor([[0.9, 0.7, 0.0]]))
        self.assertEqual(c[0, :2].tolist(), [1, 2])
        self.assertTrue(torch.equal(b[0, :2], boxes[0, [0, 2]]))
