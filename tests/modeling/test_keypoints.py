"""Keypoints of CenterNet: targets, loss, decoding, flip merging, the model and export."""

import math
import os
import tempfile
import unittest
from unittest import mock

import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model
from detectron2.structures import Keypoints
from detectron2.utils.events import EventStorage

from centernet_d2.export import ExportAdapter, export_and_check
from centernet_d2.modeling import CenterNetWithTTA
from centernet_d2.modeling.keypoints import (
    KeypointSettings,
    class_keypoint_mask,
    decode_keypoints,
    keypoint_offset_loss,
    keypoint_targets,
)
from centernet_d2.modeling.tta import merge_flipped
from tests.common import CONFIG, MULTILEVEL_CONFIG, gt_instances, model_cfg
from tests.tiny_backbone import tiny_backbone_opts

# one object, box (8, 8)-(40, 40) px, centre cell (6, 6) at stride 4 on a 16 x 16 grid
BOX = [8.0, 8.0, 40.0, 40.0]
KEYPOINTS = [[10.5, 12.25, 2.0], [30.0, 30.0, 1.0], [0.0, 0.0, 0.0]]


def _instances(boxes, classes, keypoints, size=(64, 64)):
    inst = gt_instances(boxes, classes, size)
    inst.gt_keypoints = Keypoints(
        torch.tensor(keypoints, dtype=torch.float32).view(len(boxes), -1, 3)
    )
    return inst


class TestKeypointTargets(unittest.TestCase):
    def test_hand_computed(self):
        empty = gt_instances([], [], (64, 64))  # no objects: no gt_keypoints needed
        t = keypoint_targets(
            [_instances([BOX], [1], [KEYPOINTS]), empty], [(64, 64), (64, 64)], 2, (2, 3, 16, 16), 4
        )
        # keypoint / 4 - centre cell (6, 6): (2.625 - 6, 3.0625 - 6) and (7.5 - 6, 7.5 - 6)
        expected = torch.tensor([[[-3.375, -2.9375], [1.5, 1.5], [0.0, 0.0]]])
        torch.testing.assert_close(t.offset, expected)
        self.assertEqual(t.labelled.tolist(), [[True, True, False]])  # v = 1 counts, v = 0 not
        self.assertEqual(t.index.tolist(), [3 * 16 + 2, 7 * 16 + 7])  # cells (2, 3) and (7, 7)
        torch.testing.assert_close(t.subcell, torch.tensor([[0.625, 0.0625], [0.5, 0.5]]))
        # the paper code's radius of an 8 x 8 cell box at 0.7: case 3, (-22.4 + sqrt(716.8)) / 2
        # = 2.186 -> 2, sigma 5 / 6
        radius = (-22.4 + math.sqrt(716.8)) / 2
        self.assertEqual(int(radius), 2)
        sigma = 5 / 6
        h = t.heatmap
        self.assertEqual(h[0, 0, 3, 2].item(), 1.0)
        self.assertAlmostEqual(h[0, 0, 3, 3].item(), math.exp(-1 / (2 * sigma**2)), places=6)
        self.assertAlmostEqual(h[0, 0, 5, 4].item(), math.exp(-8 / (2 * sigma**2)), places=6)
        self.assertEqual(h[0, 0, 3, 5].item(), 0.0)  # 3 cells away: beyond the radius
        self.assertEqual(h[0, 1, 7, 7].item(), 1.0)
        self.assertEqual(h[0, 2].sum().item(), 0.0)  # unlabelled
        self.assertEqual(h[1].sum().item(), 0.0)  # the empty image

    def test_outside_image_and_dropped_boxes(self):
        boxes = [BOX, [70.0, 0.0, 90.0, 10.0], [40.0, 40.0, 60.0, 60.0]]  # the 2nd: no area left
        kps = [KEYPOINTS, [[75.0, 5.0, 2.0]] * 3, [[64.5, 50.0, 2.0], [50.0, 50.0, 2.0], [1, 1, 0]]]
        t = keypoint_targets([_instances(boxes, [0, 1, 0], kps)], [(64, 64)], 2, (1, 3, 16, 16), 4)
        self.assertEqual(t.offset.shape, (2, 3, 2))  # the objects that build_targets keeps
        self.assertEqual(t.labelled.tolist(), [[True, True, False], [False, True, False]])
        # centre of (40, 40)-(60, 60) is cell (12, 12): (12.5 - 12, 12.5 - 12)
        torch.testing.assert_close(t.offset[1, 1], torch.tensor([0.5, 0.5]))

    def test_errors(self):
        no_keypoints = gt_instances([BOX], [0], (64, 64))
        with self.assertRaisesRegex(ValueError, "KEYPOINT_ON"):
            keypoint_targets([no_keypoints], [(64, 64)], 2, (1, 3, 16, 16), 4)
        with self.assertRaisesRegex(ValueError, "NUM_KEYPOINTS is 4"):
            keypoint_targets(
                [_instances([BOX], [0], [KEYPOINTS])], [(64, 64)], 2, (1, 4, 16, 16), 4
            )


class TestKeypointLoss(unittest.TestCase):
    def test_hand_computed(self):
        t = keypoint_targets(
            [_instances([BOX], [1], [KEYPOINTS])], [(64, 64)], 2, (1, 3, 16, 16), 4
        )
        pred = torch.zeros(1, 6, 16, 16)
        # mean |error| of x and y per labelled keypoint: (3.375 + 2.9375) / 2 + (1.5 + 1.5) / 2
        index = torch.tensor([6 * 16 + 6])
        loss = keypoint_offset_loss(pred, index, t.offset, t.labelled)
        self.assertAlmostEqual(loss.item(), 3.15625 + 1.5, places=5)
        pred[0, 0, 6, 6], pred[0, 3, 6, 6] = -3.375, 2.5  # x of keypoint 0, y of keypoint 1
        pred[0, 4:, 6, 6] = 100.0  # keypoint 2 is unlabelled: no loss
        loss = keypoint_offset_loss(pred, index, t.offset, t.labelled)
        self.assertAlmostEqual(loss.item(), 2.9375 / 2 + (1.5 + 1.0) / 2, places=5)


def _planted(J=2):
    """One detection at cell (6, 6) of a 16 x 16 grid (stride 4) with box (8, 8)-(40, 40)."""
    heat = torch.full((1, J, 16, 16), -10.0)
    offsets = torch.zeros(1, 2 * J, 16, 16)
    offsets[0, 0:2, 6, 6] = torch.tensor([-3.0, -3.0])  # keypoint 0 regressed at cell (3, 3)
    offsets[0, 2:4, 6, 6] = torch.tensor([1.0, 1.0])  # keypoint 1 at (7, 7)
    sub = torch.zeros(1, 2, 16, 16)
    heat[0, 0, 3, 4] = 2.0  # keypoint 0 peaks: (4, 3) probability 0.88 ...
    sub[0, :, 3, 4] = torch.tensor([0.5, 0.25])  # ... at (4.5, 3.25) cells = (18, 13) px
    heat[0, 0, 2, 2] = 0.0  # ... and (2, 2), probability 0.5, at (10, 10) px
    sub[0, :, 2, 2] = torch.tensor([0.5, 0.5])
    heat[0, 0, 10, 10] = -2.5  # a third, nearer than nothing but below the threshold 0.1
    heat[0, 1, 7, 11] = 3.0  # keypoint 1's only peak: x = 44 px, outside the box
    predictions = {"keypoints": offsets, "keypoint_heatmap": heat, "keypoint_offset": sub}
    positions = torch.tensor([[6 * 16 + 6]])
    boxes = torch.tensor([[BOX]])
    return predictions, positions, boxes


class TestDecodeKeypoints(unittest.TestCase):
    def test_snapping(self):
        predictions, positions, boxes = _planted()
        kps = decode_keypoints(
            predictions, positions, boxes, torch.tensor([[0]]), 4, KeypointSettings(2)
        )
        self.assertEqual(kps.shape, (1, 1, 2, 3))
        # keypoint 0 regressed at (12, 12) px: the nearest usable peak is (10, 10) (distance^2
        # 8, against 37 for (18, 13)), with its probability
        torch.testing.assert_close(kps[0, 0, 0], torch.tensor([10.0, 10.0, 0.5]))
        # keypoint 1 regressed at (28, 28) px; its peak lies outside the box: not snapped, the
        # score is the heatmap's at its cell (7, 7)
        torch.testing.assert_close(
            kps[0, 0, 1], torch.tensor([28.0, 28.0, torch.sigmoid(torch.tensor(-10.0)).item()])
        )

    def test_snapping_limits_of_the_papers_code(self):
        predictions, positions, boxes = _planted()
        heat = predictions["keypoint_heatmap"]
        heat[0, 0, 2, 2] = -10.0  # keypoint 0's peaks: (18, 13) px alone, 6.1 px away
        settings = KeypointSettings(2)
        kps = decode_keypoints(predictions, positions, boxes, torch.tensor([[0]]), 4, settings)
        torch.testing.assert_close(kps[0, 0, 0, :2], torch.tensor([18.0, 13.0]))
        # 0.3 times the box's 32 px is 9.6 px: a peak 11.3 px away is not snapped to
        heat[0, 0, 3, 4], heat[0, 0, 5, 5] = -10.0, 2.0  # (22, 22) px: sqrt(200) from (12, 12)
        kps = decode_keypoints(predictions, positions, boxes, torch.tensor([[0]]), 4, settings)
        torch.testing.assert_close(kps[0, 0, 0, :2], torch.tensor([12.0, 12.0]))
        # the nearest peak decides, even outside the box: keypoint 1 regressed at (38, 28) px
        # has its peak (44, 28) px outside the box 6 px away and one inside, (32, 34) px, 8.5
        predictions["keypoints"][0, 2:4, 6, 6] = torch.tensor([3.5, 1.0])
        heat[0, 1, 8, 8] = 2.0
        predictions["keypoint_offset"][0, :, 8, 8] = torch.tensor([0.0, 0.5])
        kps = decode_keypoints(predictions, positions, boxes, torch.tensor([[0]]), 4, settings)
        torch.testing.assert_close(kps[0, 0, 1, :2], torch.tensor([38.0, 28.0]))
        heat[0, 1, 7, 11] = -10.0  # without the one outside, the one inside is snapped to
        kps = decode_keypoints(predictions, positions, boxes, torch.tensor([[0]]), 4, settings)
        torch.testing.assert_close(kps[0, 0, 1, :2], torch.tensor([32.0, 34.0]))

    def test_threshold_and_regressed_only(self):
        predictions, positions, boxes = _planted()
        predictions["keypoint_heatmap"][0, 0, 2, 2] = -2.3  # probability 0.091 < 0.1
        settings = KeypointSettings(2)
        kps = decode_keypoints(predictions, positions, boxes, torch.tensor([[0]]), 4, settings)
        torch.testing.assert_close(kps[0, 0, 0, :2], torch.tensor([18.0, 13.0]))
        low = KeypointSettings(2, snap_thresh=0.05)
        kps = decode_keypoints(predictions, positions, boxes, torch.tensor([[0]]), 4, low)
        torch.testing.assert_close(kps[0, 0, 0, :2], torch.tensor([10.0, 10.0]))
        off = KeypointSettings(2, snap=False)
        kps = decode_keypoints(predictions, positions, boxes, torch.tensor([[0]]), 4, off)
        torch.testing.assert_close(kps[0, 0, :, :2], torch.tensor([[12.0, 12.0], [28.0, 28.0]]))

    def test_class_sets(self):
        predictions, positions, boxes = _planted()
        mask = class_keypoint_mask([[1], [0, 1], []], 3, 2)
        self.assertEqual(mask.tolist(), [[False, True], [True, True], [False, False]])
        settings = KeypointSettings(2, class_keypoints=((1,), (0, 1), ()))
        for cls, scored in ((0, [False, True]), (1, [True, True]), (2, [False, False])):
            kps = decode_keypoints(
                predictions, positions, boxes, torch.tensor([[cls]]), 4, settings, mask
            )
            self.assertEqual((kps[0, 0, :, 2] > 0).tolist(), scored)
        with self.assertRaisesRegex(ValueError, "CLASS_KEYPOINTS has 2 entries for 3"):
            class_keypoint_mask([[1], [0]], 3, 2)
        with self.assertRaisesRegex(ValueError, r"outside \[0, 2\)"):
            KeypointSettings(2, class_keypoints=((2,),))

    def test_traceable(self):
        predictions, positions, boxes = _planted()
        settings = KeypointSettings(2)

        def run(offsets, heat, sub):
            p = {"keypoints": offsets, "keypoint_heatmap": heat, "keypoint_offset": sub}
            return decode_keypoints(p, positions, boxes, torch.tensor([[0]]), 4, settings)

        args = (
            predictions["keypoints"],
            predictions["keypoint_heatmap"],
            predictions["keypoint_offset"],
        )
        traced = torch.jit.trace(run, args)
        torch.testing.assert_close(traced(*args), run(*args))


class TestFlipMerge(unittest.TestCase):
    def test_mirror_of_a_perfect_model(self):
        """The outputs a perfect model gives on the mirror image, built from geometry (x -> W - x
        in cells, left and right keypoints swapped), merge back into the image's outputs."""
        W, H = 8, 4
        image_kps = torch.tensor([[1.3, 0.6], [3.8, 2.2]])  # keypoints 0 (left), 1 (right), cells
        centre = torch.tensor([2, 1])
        mirror_kps = torch.stack([W - image_kps[:, 0], image_kps[:, 1]], dim=1)[[1, 0]]
        mirror_centre = torch.tensor([W - 1 - 2, 1])

        def outputs(kps, cell):
            out = {
                "heatmap": torch.full((1, 1, H, W), -5.0),
                "size": torch.zeros(1, 2, H, W),
                "offset": torch.zeros(1, 2, H, W),
                "keypoints": torch.zeros(1, 4, H, W),
                "keypoint_heatmap": torch.full((1, 2, H, W), -5.0),
                "keypoint_offset": torch.zeros(1, 2, H, W),
            }
            out["heatmap"][0, 0, cell[1], cell[0]] = 3.0
            out["keypoints"][0, :, cell[1], cell[0]] = (kps - cell).flatten()
            for j, (x, y) in enumerate(kps.floor().long().tolist()):
                out["keypoint_heatmap"][0, j, y, x] = 3.0
            return out

        image, mirror = outputs(image_kps, centre), outputs(mirror_kps, mirror_centre)
        merged = merge_flipped(image, mirror, "size_offset", keypoint_flip_indices=[1, 0])
        at = (0, slice(None), centre[1], centre[0])  # the object's cell (elsewhere: no target)
        torch.testing.assert_close(merged["keypoints"][at], image["keypoints"][at])
        torch.testing.assert_close(merged["keypoint_heatmap"], image["keypoint_heatmap"])
        # without the swap the mirror's keypoints land on the other keypoint types
        unswapped = merge_flipped(image, mirror, "size_offset")
        self.assertFalse(torch.allclose(unswapped["keypoint_heatmap"], image["keypoint_heatmap"]))


def _keypoint_cfg(*opts, config_file=CONFIG):
    return model_cfg(
        config_file,
        "MODEL.KEYPOINT_ON", "True",
        "MODEL.CENTERNET.NUM_CLASSES", "2",
        "MODEL.CENTERNET.NUM_KEYPOINTS", "3",
        "MODEL.CENTERNET.CLASS_KEYPOINTS", "[[0, 1], [2]]",
        *opts,
    )  # fmt: skip


def _inputs(with_objects=True):
    g = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, 64, 64), generator=g).float()
    if with_objects:
        kps = [[[10, 10, 2], [30, 30, 2], [0, 0, 0]], [[0, 0, 0], [0, 0, 0], [50, 30, 1]]]
        inst = _instances([[4, 6, 40, 40], [30, 20, 60, 46]], [0, 1], kps)
    else:
        inst = gt_instances([], [], (64, 64))
    return [{"image": image, "instances": inst, "height": 64, "width": 64}]


class TestKeypointModel(unittest.TestCase):
    def test_train_step(self):
        torch.manual_seed(0)
        model = build_model(_keypoint_cfg()).train()
        with EventStorage():
            losses = model(_inputs())
        names = {"loss_keypoints", "loss_keypoint_heatmap", "loss_keypoint_offset"}
        self.assertTrue(names <= set(losses))
        self.assertTrue(all(torch.isfinite(v) and v > 0 for v in losses.values()))
        sum(losses.values()).backward()
        for branch in ("keypoints", "keypoint_heatmap", "keypoint_offset"):
            grad = model.head.branches[branch][-1].weight.grad
            self.assertGreater(grad.abs().sum().item(), 0, branch)
        with EventStorage():  # no objects: keypoint losses 0, still in the graph
            losses = model(_inputs(with_objects=False) * 2)
        self.assertEqual(losses["loss_keypoints"].item(), 0.0)
        self.assertEqual(losses["loss_keypoint_offset"].item(), 0.0)
        sum(losses.values()).backward()

    def test_train_step_losses_by_hand(self):
        # one object, BOX (centre cell (6, 6), 8 x 8 cells) of class 0 with KEYPOINTS (two
        # labelled); scripted outputs: all heatmap logits -30 (no loss) but 0 (p = 1/2) at the
        # centre and at the two keypoints' cells; every regression 0 but the offset 0.25
        cfg = _keypoint_cfg()
        model = build_model(cfg).train()
        heatmap = torch.full((1, 2, 16, 16), -30.0)
        heatmap[0, 0, 6, 6] = 0.0
        keypoint_heatmap = torch.full((1, 3, 16, 16), -30.0)
        keypoint_heatmap[0, 0, 3, 2] = keypoint_heatmap[0, 1, 7, 7] = 0.0
        predictions = {
            "heatmap": heatmap,
            "size": torch.zeros(1, 2, 16, 16),
            "offset": torch.full((1, 2, 16, 16), 0.25),
            "keypoints": torch.zeros(1, 6, 16, 16),
            "keypoint_heatmap": keypoint_heatmap,
            "keypoint_offset": torch.zeros(1, 2, 16, 16),
        }
        inputs = [
            {"image": torch.zeros(3, 64, 64), "instances": _instances([BOX], [0], [KEYPOINTS])}
        ]
        with EventStorage(), mock.patch.object(model, "run_network", return_value=predictions):
            losses = model(inputs)
        c = cfg.MODEL.CENTERNET
        focal = 0.5**c.FOCAL_ALPHA * math.log(2)  # -(1 - p)^alpha log p at p = 1/2
        expected = {  # per object (1) or per labelled keypoint (2)
            "loss_heatmap": c.HEATMAP_WEIGHT * focal,
            "loss_size": c.SIZE_WEIGHT * 8.0,  # |0 - 8| cells
            "loss_offset": c.OFFSET_WEIGHT * 0.25,  # the centre (24, 24) px is cell 6.0
            # |0 - (keypoint / 4 - 6)|: (3.375 + 2.9375) / 2 + (1.5 + 1.5) / 2
            "loss_keypoints": c.KEYPOINT_WEIGHT * (3.15625 + 1.5) / 2,
            "loss_keypoint_heatmap": c.KEYPOINT_HEATMAP_WEIGHT * 2 * focal / 2,
            # sub-cell (0.625, 0.0625) and (0.5, 0.5)
            "loss_keypoint_offset": c.KEYPOINT_OFFSET_WEIGHT * (0.34375 + 0.5) / 2,
        }
        self.assertEqual(set(losses), set(expected))
        for name, value in expected.items():
            self.assertAlmostEqual(losses[name].item(), value, places=5, msg=name)

    def test_inference_scaled_like_boxes(self):
        torch.manual_seed(0)
        model = build_model(_keypoint_cfg("MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0")).eval()
        image = _inputs()[0]["image"]
        with torch.no_grad():
            (same,) = model([{"image": image}])
            (half,) = model([{"image": image, "height": 32, "width": 48}])
        kps, scaled = same["instances"].pred_keypoints, half["instances"].pred_keypoints
        self.assertEqual(kps.shape, (len(same["instances"]), 3, 3))
        torch.testing.assert_close(scaled[..., 0], kps[..., 0] * 48 / 64)
        torch.testing.assert_close(scaled[..., 1], kps[..., 1] * 32 / 64)
        # class 0 has keypoints 0 and 1, class 1 keypoint 2 alone
        classes = same["instances"].pred_classes
        self.assertTrue((kps[classes == 0][:, 2, 2] == 0).all())
        self.assertTrue((kps[classes == 1][:, :2, 2] == 0).all())

    def test_flip_test_of_a_mirror_consistent_network(self):
        # scripted outputs on a 16 x 16 grid: an object of class 0 at the centre of cell (6, 6),
        # 8 x 8 cells, keypoint 0 (left) at (3.3, 4.6) and 1 (right) at (9.2, 8.4) cells; on the
        # mirror image what geometry gives (x -> 16 - x, left and right swapped): the flip test
        # finds the image's keypoints with their scores, swapping by the flip map
        def outputs(kps, cell):
            out = {
                "heatmap": torch.full((1, 2, 16, 16), -10.0),
                "size": torch.zeros(1, 2, 16, 16),
                "offset": torch.full((1, 2, 16, 16), 0.5),
                "keypoints": torch.zeros(1, 6, 16, 16),
                "keypoint_heatmap": torch.full((1, 3, 16, 16), -10.0),
                "keypoint_offset": torch.zeros(1, 2, 16, 16),
            }
            x, y = cell
            out["heatmap"][0, 0, y, x] = 3.0
            out["size"][0, :, y, x] = 8.0
            out["keypoints"][0, :4, y, x] = (kps - torch.tensor(cell)).flatten()
            for j, (kx, ky) in enumerate(kps.tolist()):
                out["keypoint_heatmap"][0, j, int(ky), int(kx)] = 3.0
                out["keypoint_offset"][0, :, int(ky), int(kx)] = torch.tensor([kx % 1, ky % 1])
            return out

        kps = torch.tensor([[3.3, 4.6], [9.2, 8.4]])
        image = outputs(kps, (6, 6))
        mirror = outputs(torch.stack([16 - kps[:, 0], kps[:, 1]], dim=1)[[1, 0]], (9, 6))
        both = {k: torch.cat([image[k], mirror[k]]) for k in image}

        batches = []

        def network(x):
            batches.append(len(x))
            return both if len(x) == 2 else image

        def keypoints(flip_indices):
            cfg = _keypoint_cfg(
                "MODEL.CENTERNET.SCORE_THRESH_TEST", "0.5",
                "MODEL.CENTERNET.KEYPOINT_FLIP_INDICES", str(flip_indices),
                "TEST.AUG.ENABLED", "True", "TEST.AUG.MIN_SIZES", "()",
            )  # fmt: skip
            model = build_model(cfg).eval()
            inputs = [{"image": torch.zeros(3, 64, 64), "height": 64, "width": 64}]
            with torch.no_grad(), mock.patch.object(model, "run_network", side_effect=network):
                (plain,) = model(inputs)
                (flipped,) = CenterNetWithTTA(cfg, model)(inputs)
            return plain["instances"], flipped["instances"]

        plain, flipped = keypoints([1, 0, 2])
        self.assertEqual(batches, [1, 2])  # the wrapper ran the image and its mirror
        score = torch.sigmoid(torch.tensor(3.0)).item()
        expected = torch.tensor([[13.2, 18.4, score], [36.8, 33.6, score], [0.0, 0.0, 0.0]])
        for result in (plain, flipped):
            self.assertEqual(len(result), 1)
            torch.testing.assert_close(
                result.pred_boxes.tensor[0], torch.tensor([10.0, 10, 42, 42])
            )
            torch.testing.assert_close(
                result.pred_keypoints[0, :2], expected[:2], atol=1e-4, rtol=0
            )
            # class 0 has no keypoint 2
            self.assertEqual(result.pred_keypoints[0, 2, 2].item(), 0.0)
        # a wrong flip map averages the left keypoint with the right one
        _, unswapped = keypoints([0, 1, 2])
        self.assertLess(unswapped.pred_keypoints[0, 0, 2].item(), 0.6)

    def test_checkpoint_carries_the_class_sets(self):
        trained = build_model(_keypoint_cfg())
        plain = build_model(_keypoint_cfg("MODEL.CENTERNET.CLASS_KEYPOINTS", "[]"))
        self.assertTrue(plain.keypoint_class_mask.all())  # empty: every class, every keypoint
        with tempfile.TemporaryDirectory() as out:
            DetectionCheckpointer(trained, save_dir=out).save("model")
            DetectionCheckpointer(plain).load(os.path.join(out, "model.pth"))
        self.assertEqual(
            plain.keypoint_class_mask.tolist(), [[True, True, False], [False, False, True]]
        )

    def test_config_errors(self):
        with self.assertRaisesRegex(ValueError, "single-level"):
            build_model(
                model_cfg(
                    MULTILEVEL_CONFIG,
                    "MODEL.KEYPOINT_ON",
                    "True",
                    "MODEL.CENTERNET.NUM_CLASSES",
                    "2",
                    "MODEL.CENTERNET.NUM_KEYPOINTS",
                    "17",
                )
            )
        with self.assertRaisesRegex(ValueError, "CLASS_KEYPOINTS has 1 entries for 2"):
            build_model(_keypoint_cfg("MODEL.CENTERNET.CLASS_KEYPOINTS", "[[0]]"))
        with self.assertRaisesRegex(ValueError, "NUM_KEYPOINTS must be positive.*dataset"):
            build_model(_keypoint_cfg("MODEL.CENTERNET.NUM_KEYPOINTS", "0"))

    def test_export_parity(self):
        torch.manual_seed(0)
        # few detections: a random network's flat heatmap has ties among its lower peaks, which
        # the traced (dense) and eager (row) top-k may order differently
        cfg = _keypoint_cfg(
            "MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0", "TEST.DETECTIONS_PER_IMAGE", "10",
            *tiny_backbone_opts(),  # a small graph to export
        )  # fmt: skip
        model = build_model(cfg).eval()
        image = _inputs()[0]["image"]
        with torch.no_grad():
            boxes, scores, classes, kps = ExportAdapter(model)(image[None])
            (result,) = model([{"image": image, "height": 64, "width": 64}])
        kept = result["instances"]  # Detectron2 drops empty boxes: compare those kept
        nonempty = ((boxes[0, :, 2:] - boxes[0, :, :2]) > 0).all(dim=1)
        torch.testing.assert_close(kps[0][nonempty], kept.pred_keypoints)
        with tempfile.TemporaryDirectory() as out:
            for fmt in ("pt2",):
                _, diffs = export_and_check(model, (image[None],), out, fmt, dynamic_size=False)
                self.assertLessEqual(diffs["boxes"], 1e-3, fmt)
                self.assertLessEqual(diffs["keypoints"], 1e-3, fmt)
                self.assertEqual(diffs["classes"], 0, fmt)


if __name__ == "__main__":
    unittest.main()
