import math
import unittest

import numpy as np
import torch

from centernet_d2.modeling.losses import gather_at_peaks, heatmap_focal_loss, l1_at_peaks


def _focal_reference(logits, target, alpha, beta):
    total = 0.0
    for x, y in zip(logits.double().flatten().tolist(), target.double().flatten().tolist()):
        p = 1 / (1 + math.exp(-x))
        if y == 1:
            total += -((1 - p) ** alpha) * math.log(p)
        else:
            total += -((1 - y) ** beta) * p**alpha * math.log(1 - p)
    return total


class TestFocalLoss(unittest.TestCase):
    def test_against_reference(self):
        g = torch.Generator().manual_seed(0)
        logits = torch.randn(2, 3, 5, 7, generator=g) * 3
        target = torch.rand(2, 3, 5, 7, generator=g) ** 3
        target[0, 1, 2, 3] = target[1, 2, 4, 6] = 1.0
        for alpha, beta in [(2.0, 4.0), (1.0, 2.0)]:
            loss = heatmap_focal_loss(logits, target, alpha, beta)
            ref = _focal_reference(logits, target, alpha, beta)
            self.assertAlmostEqual(loss.item(), ref, delta=1e-5 * abs(ref))

    def test_hand_computed(self):
        # one positive at logit 0 (p = 1/2): (1/2)^2 log 2; one negative with y = 1/2 at logit 0:
        # (1/2)^4 (1/2)^2 log 2
        loss = heatmap_focal_loss(torch.zeros(1, 1, 1, 2), torch.tensor([[[[1.0, 0.5]]]]))
        self.assertAlmostEqual(loss.item(), math.log(2) * (0.25 + 1 / 64), places=6)

    def test_finite_at_extreme_logits(self):
        logits = torch.tensor([[[[100.0, -100.0, 100.0, -100.0]]]], requires_grad=True)
        target = torch.tensor([[[[1.0, 1.0, 0.0, 0.3]]]])
        loss = heatmap_focal_loss(logits, target)
        loss.backward()
        self.assertTrue(torch.isfinite(loss))
        self.assertTrue(torch.isfinite(logits.grad).all())
        # positive at -100: (1 - 0)^2 * 100; negative (y=0) at +100: 1 * 1 * 100
        self.assertAlmostEqual(loss.item(), 200.0, places=3)

    def test_input_unchanged(self):
        logits = torch.randn(1, 2, 3, 3)
        before = logits.clone()
        heatmap_focal_loss(logits, torch.zeros(1, 2, 3, 3))
        self.assertTrue(torch.equal(logits, before))


class TestL1(unittest.TestCase):
    def test_gather_and_l1(self):
        pred = torch.arange(2 * 2 * 3 * 4, dtype=torch.float32).view(2, 2, 3, 4)
        index = torch.tensor([0, 5, 12 + 11])  # img 0 (0,0); img 0 (y=1,x=1); img 1 (y=2,x=3)
        np.testing.assert_array_equal(
            gather_at_peaks(pred, index).numpy(), [[0, 12], [5, 17], [35, 47]]
        )
        target = torch.tensor([[1.0, 12.0], [5.0, 20.0], [35.0, 47.0]])
        # per object mean over its two values: 0.5, 1.5, 0 -> sum 2
        self.assertAlmostEqual(l1_at_peaks(pred, index, target).item(), 2.0)

    def test_no_objects(self):
        loss = l1_at_peaks(
            torch.randn(1, 2, 3, 3), torch.zeros(0, dtype=torch.long), torch.zeros(0, 2)
        )
        self.assertEqual(loss.item(), 0.0)
