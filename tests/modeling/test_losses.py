import math
import unittest

import numpy as np
import torch

from centernet_d2.modeling.losses import (
    gather_at_peaks,
    heatmap_focal_loss,
    l1_at_peaks,
    weighted_giou_loss,
)


def _focal_reference(logits, target, alpha, beta, positive=None, balance=-1.0):
    positive = (target == 1) if positive is None else positive
    pos_factor, neg_factor = (balance, 1 - balance) if balance >= 0 else (1.0, 1.0)
    total = 0.0
    for x, y, is_pos in zip(
        logits.double().flatten().tolist(),
        target.double().flatten().tolist(),
        positive.flatten().tolist(),
    ):
        p = 1 / (1 + math.exp(-x))
        if is_pos:
            total += -pos_factor * (1 - p) ** alpha * math.log(p)
        # the negative term of a positive is 0 when y == 1, as in CenterNet2
        total += -neg_factor * (1 - y) ** beta * p**alpha * math.log(1 - p)
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

    def test_given_positives_and_balance(self):
        # the multi-level targets: a peak (y = 1) that is not a positive is ignored
        g = torch.Generator().manual_seed(1)
        logits = torch.randn(2, 3, 4, 5, generator=g) * 3
        target = torch.rand(2, 3, 4, 5, generator=g) ** 3
        target[0, 1, 2, 3] = target[1, 2, 1, 4] = target[0, 0, 0, 0] = 1.0
        positive = torch.zeros_like(target, dtype=torch.bool)
        positive[0, 1, 2, 3] = positive[1, 2, 1, 4] = True
        for balance in (-1.0, 0.25):
            loss = heatmap_focal_loss(logits, target, 2.0, 4.0, positive, balance)
            ref = _focal_reference(logits, target, 2.0, 4.0, positive, balance)
            self.assertAlmostEqual(loss.item(), ref, delta=1e-5 * abs(ref))
        # hand computed: logit 0, a positive and a non-positive peak, balance 0.25:
        # 0.25 (1/2)^2 log 2 from the positive, nothing from the other peak
        loss = heatmap_focal_loss(
            torch.zeros(1, 1, 1, 2), torch.ones(1, 1, 1, 2), 2.0, 4.0,
            torch.tensor([[[[True, False]]]]), 0.25,
        )  # fmt: skip
        self.assertAlmostEqual(loss.item(), 0.25 * 0.25 * math.log(2), places=6)

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


def _giou_reference(pred, target, weight):
    """Float64 sum of weight * (1 - GIoU) by the formula, boxes (-l, -t, r, b) around 0."""
    total = 0.0
    for p, t, w in zip(pred.tolist(), target.tolist(), weight.tolist()):
        if w <= 0:
            continue
        (l1, t1, r1, b1), (l2, t2, r2, b2) = p, t
        inter = max(0.0, min(r1, r2) + min(l1, l2)) * max(0.0, min(b1, b2) + min(t1, t2))
        union = (l1 + r1) * (t1 + b1) + (l2 + r2) * (t2 + b2) - inter
        enclosing = (max(r1, r2) + max(l1, l2)) * (max(b1, b2) + max(t1, t2))
        giou = inter / union - (enclosing - union) / enclosing
        total += w * (1 - giou)
    return total


class TestWeightedGIoU(unittest.TestCase):
    def test_hand_computed(self):
        pred = torch.zeros(1, 4, 1, 3)
        target = torch.zeros(1, 4, 1, 3)
        pred[0, :, 0, 0], target[0, :, 0, 0] = 1.0, 2.0  # a 2x2 box in a 4x4 box: GIoU = 1 / 4
        pred[0, :, 0, 1] = target[0, :, 0, 1] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # equal: 0
        # disjoint 1x1 boxes side by side: IoU 0, enclosing 2x1, union 2: GIoU 0
        pred[0, :, 0, 2] = torch.tensor([0.0, 0.0, 1.0, 1.0])
        target[0, :, 0, 2] = torch.tensor([-1.0, 0.0, 2.0, 1.0])
        weight = torch.tensor([[[2.0, 5.0, 3.0]]])
        loss = weighted_giou_loss(pred, target, weight)
        self.assertAlmostEqual(loss.item(), 2.0 * 0.75 + 0.0 + 3.0 * 1.0, places=5)

    def test_against_reference(self):
        g = torch.Generator().manual_seed(0)
        pred = torch.rand(2, 4, 5, 6, generator=g) * 6
        target = torch.rand(2, 4, 5, 6, generator=g) * 6 + 0.1
        target[:, 0] -= 1.0  # some cell centres outside their box: l < 0, l + r > 0 still
        weight = torch.rand(2, 5, 6, generator=g) * (torch.rand(2, 5, 6, generator=g) > 0.4)
        loss = weighted_giou_loss(pred.requires_grad_(), target, weight)
        flat = lambda x: x.detach().double().permute(0, 2, 3, 1).reshape(-1, 4)  # noqa: E731
        ref = _giou_reference(flat(pred), flat(target), weight.double().flatten())
        self.assertAlmostEqual(loss.item(), ref, delta=1e-5 * ref)
        loss.backward()
        # cells of weight 0 get no gradient
        self.assertEqual(pred.grad.permute(0, 2, 3, 1)[weight == 0].abs().sum().item(), 0.0)

    def test_no_positive_cells(self):
        pred = torch.rand(1, 4, 3, 3, requires_grad=True)
        loss = weighted_giou_loss(pred, torch.zeros(1, 4, 3, 3), torch.zeros(1, 3, 3))
        self.assertEqual(loss.item(), 0.0)
        loss.backward()  # still part of the graph
        self.assertEqual(pred.grad.abs().sum().item(), 0.0)


if __name__ == "__main__":
    unittest.main()
