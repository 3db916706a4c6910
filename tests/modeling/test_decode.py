import math
import unittest
from unittest import mock

import numpy as np
import torch
import torch.nn.functional as F

from centernet_d2.modeling import decode as decode_module
from centernet_d2.modeling.decode import decode_boxes, to_instances, topk_peaks


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


class TestDecode(unittest.TestCase):
    def test_planted_peaks(self):
        logits, size, offset = _planted()
        boxes, scores, classes = decode_boxes(logits, size, offset, stride=4, k=3)
        sig = lambda x: 1 / (1 + math.exp(-x))  # noqa: E731
        np.testing.assert_allclose(scores[0, :2].numpy(), [sig(2.0), sig(1.0)], rtol=1e-6)
        self.assertEqual(classes[0, :2].tolist(), [1, 0])
        # centre (2.5, 3.25), size (4, 2) cells -> (0.5, 2.25, 4.5, 4.25) * 4
        np.testing.assert_allclose(boxes[0, 0].numpy(), [2, 9, 18, 17])
        # centre (7, 6.75), size (1, 3) -> (6.5, 5.25, 7.5, 8.25) * 4
        np.testing.assert_allclose(boxes[0, 1].numpy(), [26, 21, 30, 33])
        self.assertLess(scores[0, 2].item(), 1e-4)  # only -10 logits remain
        self.assertEqual(classes[1, 0].item(), 2)
        np.testing.assert_allclose(boxes[1, 0].numpy(), [34, -2, 42, 6])

        results = to_instances(boxes, scores, classes, [(32, 40), (32, 40)], score_thresh=0.3)
        self.assertEqual(len(results[0]), 2)
        self.assertEqual(len(results[1]), 1)
        # clipped to the image
        np.testing.assert_allclose(results[1].pred_boxes.tensor[0].numpy(), [34, 0, 40, 6])
        self.assertEqual(results[1].scores[0].item(), 0.5)

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
        g = torch.Generator().manual_seed(1)
        logits = torch.randn(1, 2, 6, 6, generator=g)
        scores, classes, pos = topk_peaks(logits, 500)
        finite = torch.isfinite(torch.logit(scores))
        for s, c, p in zip(scores[0][finite[0]], classes[0][finite[0]], pos[0][finite[0]]):
            y, x = divmod(p.item(), 6)
            window = logits[0, c, max(0, y - 1) : y + 2, max(0, x - 1) : x + 2]
            self.assertEqual(logits[0, c, y, x].item(), window.max().item())
        self.assertEqual(scores.shape, (1, 72))  # T = min(k, K*H*W)

    def test_traceable(self):
        logits, size, offset = _planted()
        traced = torch.jit.trace(
            lambda a, b, c: decode_boxes(a, b, c, 4, 5), (logits, size, offset)
        )
        logits2 = logits.flip(3)
        (tb, ts, tc), (eb, es, ec) = traced(logits2, size, offset), decode_boxes(
            logits2, size, offset, 4, 5
        )
        self.assertTrue(torch.equal(ts, es))
        # the -10 background is a plateau of tied peaks: which of them fill up the top 5 is
        # arbitrary, so boxes and classes are compared at the planted peaks only
        planted = es > 1e-3
        self.assertEqual(planted.sum().item(), 3)
        self.assertTrue(torch.equal(tb[planted], eb[planted]))
        self.assertTrue(torch.equal(tc[planted], ec[planted]))


class TestPeaksByRows(unittest.TestCase):
    """The eager top-K (3x3 test on candidate rows only) against the dense 3x3 test."""

    @staticmethod
    def _dense(logits, k):
        N, K, H, W = logits.shape
        return decode_module._dense_peaks(logits).flatten(1).topk(min(k, K * H * W))

    def _check(self, logits, k, same_indices=True):
        top, idx = decode_module._topk_peaks_by_rows(logits, k)
        ref_top, ref_idx = self._dense(logits, k)
        self.assertTrue(torch.equal(top, ref_top))
        finite = torch.isfinite(ref_top)  # -inf: fewer peaks than k, any position
        if same_indices:
            self.assertTrue(torch.equal(idx[finite], ref_idx[finite]))

    def test_equals_dense_test(self):
        g = torch.Generator().manual_seed(0)
        for trial in range(120):
            N, K, H, W, k = (
                int(torch.randint(1, n, (1,), generator=g)) for n in (4, 6, 20, 20, 60)
            )
            logits = torch.randn(N, K, H, W, generator=g)
            with self.subTest(trial=trial, shape=(N, K, H, W), k=k):
                self._check(logits, k)
                self._check(logits.contiguous(memory_format=torch.channels_last), k)
                self._check(logits.round(), k, same_indices=False)  # plateaus: tied values

    def test_smooth_maps_need_more_rounds(self):
        # smooth maps have few peaks: rows with large maxima are slopes next to a peak's row, so
        # the first 2k rows often hold fewer than k peaks or cannot prove the k-th; later rounds
        # (more rows) must still give the dense result
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
                    top, idx = decode_module._topk_peaks_by_rows(logits, k)
                    ref_top, _ = self._dense(logits, k)
                    self.assertTrue(torch.equal(top, ref_top))
                    finite = torch.isfinite(top)  # where values tie, any of the tied positions
                    found = logits.flatten(1).gather(1, idx)[finite]
                    self.assertTrue(torch.equal(found, top[finite]))
                rounds.append(calls[0])
        self.assertGreater(rounds.count(2), 0)  # exact after the rows above the k-th peak
        self.assertGreater(sum(r >= 3 for r in rounds), 0)  # fewer than k peaks at first

    def test_rows_beyond_the_first_candidates(self):
        # one column: rows are single cells. Peaks: 5 at y=5 and 0.5 at y=11. The 4 (= 2k) rows
        # with the largest maxima (5, 4, 4, 3) hold one peak only, so the second pass must find
        # the peak at y=11.
        col = torch.tensor([0, 1, 2, 3, 4, 5, 4, 3, 2, 1, 0, 0.5])
        scores, classes, pos = topk_peaks(col.view(1, 1, 12, 1), 2)
        np.testing.assert_allclose(
            scores[0].numpy(), [1 / (1 + math.exp(-5)), 1 / (1 + math.exp(-0.5))], rtol=1e-6
        )
        self.assertEqual(pos[0].tolist(), [5, 11])
        self.assertEqual(classes[0].tolist(), [0, 0])
