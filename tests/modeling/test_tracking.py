"""centernet_d2.modeling.centertrack and .fusion: CenterTrack's displacement targets and loss, the previous-frame
heatmap and fusion, a training step and inference."""

import math
import unittest

import numpy as np
import torch
from detectron2.modeling import build_model
from detectron2.structures import Boxes, ImageList
from detectron2.utils.events import EventStorage

from centernet_d2.modeling import CenterTrack
from centernet_d2.modeling.centertrack import (
    amodal_box_targets,
    displacement_targets,
    render_prev_heatmap,
)
from centernet_d2.modeling.decode import decode_predictions
from centernet_d2.modeling.fusion import PrevFrameFusion, StemFusion, first_layer, first_layer_shape
from tests.common import (
    CONFIG,
    MULTILEVEL_CONFIG,
    TRACK_CONFIG,
    gt_instances,
    model_cfg,
    training_inputs,
)


def with_prev(instances, prev_boxes):
    instances.gt_prev_boxes = Boxes(torch.as_tensor(prev_boxes, dtype=torch.float32).view(-1, 4))
    return instances


def reference_displacements(objects, image_sizes, stride):
    """float64, one object at a time: clip both boxes to the image, drop a current box of no
    area; tracked if the previous box keeps an area; (previous centre - centre) / stride."""
    out, tracked = [], []
    for (h, w), boxes in zip(image_sizes, objects):
        for box, prev in boxes:
            clip = np.array([w, h, w, h], dtype=np.float64)
            b = np.minimum(np.maximum(np.array(box, dtype=np.float64), 0), clip)
            if not (b[2] > b[0] and b[3] > b[1]):
                continue
            p = (
                None
                if prev is None
                else np.minimum(np.maximum(np.array(prev, np.float64), 0), clip)
            )
            ok = p is not None and p[2] > p[0] and p[3] > p[1]
            d = ((p[:2] + p[2:]) / 2 - (b[:2] + b[2:]) / 2) / stride if ok else np.zeros(2)
            out.append(d)
            tracked.append(ok)
    return np.array(out).reshape(-1, 2), np.array(tracked, dtype=bool)


class TestDisplacementTargets(unittest.TestCase):
    def test_hand_computed(self):
        sizes = [(64, 80), (48, 64)]
        first = with_prev(
            gt_instances(
                [[10, 12, 30, 28], [40, 40, 40, 50], [50, 30, 90, 50], [5, 40, 15, 60]],
                [0, 1, 0, 2],
                sizes[0],
            ),
            [[14, 10, 30, 26], [1, 1, 5, 5], [60, 30, 100, 50], [0, 0, 0, 0]],
        )
        second = gt_instances([[8, 8, 24, 24]], [1], sizes[1])  # no gt_prev_boxes
        displacement, tracked = displacement_targets([first, second], sizes, stride=4)
        # kept: [10,12,30,28] centre (20, 20), previous (22, 18): (2, -2) / 4; [40,40,40,50]
        # has no width (dropped, as build_targets drops it); [50,30,90,50] clipped to x <= 80,
        # centre (65, 40), previous clipped [60,30,80,50], centre (70, 40): (5, 0) / 4; the
        # others are not in their previous frame
        self.assertEqual(displacement.tolist(), [[0.5, -0.5], [1.25, 0.0], [0.0, 0.0], [0.0, 0.0]])
        self.assertEqual(tracked.tolist(), [True, True, False, False])

    def test_against_float64_reference(self):
        rng = np.random.default_rng(0)
        sizes = [(48, 64), (40, 72), (32, 32)]
        objects, instances = [], []
        for h, w in sizes:
            boxes = []
            for _ in range(rng.integers(3, 10)):
                x0, y0 = rng.uniform(-10, w - 4), rng.uniform(-10, h - 4)
                box = [x0, y0, x0 + rng.uniform(-2, 30), y0 + rng.uniform(-2, 30)]
                prev = None if rng.random() < 0.3 else list(np.array(box) + rng.normal(0, 5, 4))
                boxes.append((box, prev))
            objects.append(boxes)
            inst = gt_instances([b for b, _ in boxes], [0] * len(boxes), (h, w))
            instances.append(with_prev(inst, [p or [0, 0, 0, 0] for _, p in boxes]))
        displacement, tracked = displacement_targets(instances, sizes, stride=4)
        expected, expected_tracked = reference_displacements(objects, sizes, 4)
        self.assertGreater(int(expected_tracked.sum()), 3)
        np.testing.assert_array_equal(tracked.numpy(), expected_tracked)
        np.testing.assert_allclose(displacement.double().numpy(), expected, atol=1e-5)


class TestPrevHeatmap(unittest.TestCase):
    def test_peak_and_radius(self):
        # a 20 x 20 px box: CornerNet's paper radius min(38.15, 73.47, 5.467) -> 5 px, sigma
        # 11 / 6; peak at the centre pixel (20, 20)
        hm = render_prev_heatmap(
            [torch.tensor([[10.0, 10, 30, 30]]), torch.zeros(0, 4)], (2, 1, 40, 48)
        )
        self.assertEqual(hm[0, 0, 20, 20].item(), 1.0)
        self.assertAlmostEqual(hm[0, 0, 20, 25].item(), math.exp(-25 / (2 * (11 / 6) ** 2)), 6)
        self.assertEqual(hm[0, 0, 20, 26].item(), 0.0)
        self.assertEqual(hm[1].abs().sum().item(), 0.0)

    def test_empty_and_degenerate_boxes(self):
        hm = render_prev_heatmap([torch.tensor([[5.0, 5, 5, 9]])], (1, 1, 16, 16))
        self.assertEqual(hm.abs().sum().item(), 0.0)
        self.assertEqual(render_prev_heatmap([], (1, 1, 8, 8)).shape, (1, 1, 8, 8))


class TestFirstLayer(unittest.TestCase):
    """first_layer / first_layer_shape on the backbones that StemFusion supports."""

    def test_mobilenet_fpn(self):
        backbone = build_model(model_cfg(CONFIG)).backbone
        name, layer = first_layer(backbone)
        self.assertEqual(name, "bottom_up.features.0")
        self.assertIs(layer, backbone.bottom_up.features[0])
        self.assertEqual(first_layer_shape(layer), (3, 16, 2, 3))

    def test_dla_and_resnet(self):
        from detectron2.config import get_cfg
        from detectron2.layers import ShapeSpec
        from detectron2.modeling.backbone import build_resnet_backbone

        from centernet_d2.modeling.backbone.dla import DLA

        dla = DLA(out_features=["level2"])
        self.assertEqual(first_layer(dla), ("base_layer", dla.base_layer))
        self.assertEqual(first_layer_shape(dla.base_layer), (3, 16, 1, 7))
        cfg = get_cfg()
        cfg.MODEL.RESNETS.DEPTH = 18
        cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
        resnet = build_resnet_backbone(cfg, ShapeSpec(channels=3))
        self.assertEqual(first_layer(resnet), ("stem", resnet.stem))
        bn = resnet.stem.conv1.norm
        before = bn.running_mean.clone()
        self.assertEqual(first_layer_shape(resnet.stem), (3, 64, 4, 7))
        self.assertTrue(torch.equal(bn.running_mean, before))  # probing left the stats alone

    def test_backbone_without_first_layer(self):
        with self.assertRaisesRegex(ValueError, "FUSION 'stem'.*Conv2d.*'input'"):
            first_layer(torch.nn.Conv2d(3, 8, 3))


class TestCenterTrack(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls.cfg = model_cfg(
            TRACK_CONFIG,
            "MODEL.CENTERTRACK.FUSION",
            "stem",
            "MODEL.CENTERTRACK.FUSION_ZERO_INIT",
            "True",
        )
        cls.model = build_model(cls.cfg)
        cls.plain_model = build_model(  # CenterTrack's random start
            model_cfg(
                TRACK_CONFIG,
                "MODEL.CENTERTRACK.FUSION",
                "stem",
                "MODEL.CENTERTRACK.FUSION_ZERO_INIT",
                "False",
            )
        )
        cls.input_cfg = model_cfg(TRACK_CONFIG, "MODEL.CENTERTRACK.FUSION", "input")
        cls.input_model = build_model(cls.input_cfg)

    def test_input_fusion_starts_as_identity(self):
        fusion = PrevFrameFusion()
        images, prev, hm = (
            torch.randn(2, 3, 64, 64),
            torch.randn(2, 3, 64, 64),
            torch.rand(2, 1, 64, 64),
        )
        self.assertTrue(torch.equal(fusion(images, prev, hm), images))
        model = self.input_model.eval()
        self.assertIsInstance(model.fusion, PrevFrameFusion)
        self.assert_fusion_changes_nothing(model, images, prev, hm)

    def assert_fusion_changes_nothing(self, model, images, prev, hm):
        """The network's outputs with the previous frame and heatmap equal those without."""
        with torch.no_grad():
            alone = model.run_network(images)
            fused = model.run_network(images, prev, hm)
        for name in ("heatmap", "size", "offset", "displacement"):
            torch.testing.assert_close(fused[name], alone[name], rtol=0, atol=0)

    def test_stem_fusion_starts_as_the_detector(self):
        model = self.model.eval()
        self.assertIsInstance(model.fusion, StemFusion)
        self.assertTrue(torch.equal(model.fusion.gains, torch.zeros(2, 16, 1, 1)))
        g = torch.Generator().manual_seed(2)
        images, prev = torch.randn(2, 3, 64, 64, generator=g), torch.randn(
            2, 3, 64, 64, generator=g
        )
        hm = torch.rand(2, 1, 64, 64, generator=g)
        self.assert_fusion_changes_nothing(model, images, prev, hm)

    def test_stem_fusion_adds_its_convs_to_the_first_layer(self):
        model = self.model.eval()
        fusion = model.fusion
        layer = model.backbone.bottom_up.features[0]
        g = torch.Generator().manual_seed(3)
        images, prev = torch.randn(2, 3, 64, 96, generator=g), torch.randn(
            2, 3, 64, 96, generator=g
        )
        boxes = [torch.tensor([[10.0, 8, 40, 30]]), torch.zeros(0, 4)]
        hm = render_prev_heatmap(boxes, (2, 1, 64, 96))
        seen = []
        handle = layer.register_forward_hook(lambda m, i, o: seen.append(o.clone()))  # after
        try:
            with torch.no_grad():
                fusion.gains.copy_(torch.rand(2, 16, 1, 1, generator=g) + 0.5)
                own = layer(images)  # no previous frame pending: the layer alone
                added = fusion.gains[0] * fusion.prev_image_layer(prev)
                added = added + fusion.gains[1] * fusion.prev_heatmap_layer(hm)
                seen.clear()
                fused = model.run_network(images, prev, hm)
                (at_layer,) = seen
                seen.clear()
                model.backbone(images)  # outside run_network: the detector's backbone
                (outside,) = seen
                alone = model.run_network(images)
        finally:
            handle.remove()
            with torch.no_grad():
                fusion.gains.zero_()
        self.assertEqual(added.shape, (2, 16, 32, 48))
        self.assertGreater(added.abs().sum().item(), 0)
        torch.testing.assert_close(at_layer, own + added, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(outside, own, rtol=0, atol=0)
        self.assertFalse(torch.allclose(fused["displacement"], alone["displacement"]))
        # CenterTrack's start (no gains): the sum of the two layers' outputs
        plain = StemFusion(channels=16, stride=2).eval()
        with torch.no_grad():
            expected = plain.prev_image_layer(prev) + plain.prev_heatmap_layer(hm)
            torch.testing.assert_close(plain(prev, hm), expected, rtol=0, atol=0)

    def test_detector_checkpoint_loads_into_stem_tracker(self):
        detector = build_model(model_cfg(CONFIG))
        result = self.model.load_state_dict(detector.state_dict(), strict=False)
        self.assertEqual(result.unexpected_keys, [])
        self.assertEqual(
            {k.split(".")[0] for k in result.missing_keys if not k.startswith("head.")},
            {"fusion"},
        )
        self.assertTrue(
            all(
                k.startswith("head.branches.displacement") or k.startswith("fusion.")
                for k in result.missing_keys
            ),
            result.missing_keys,
        )
        for k, v in detector.backbone.state_dict().items():
            self.assertTrue(torch.equal(self.model.backbone.state_dict()[k], v), k)

    def test_unknown_fusion_refused(self):
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERTRACK.FUSION"):
            build_model(model_cfg(TRACK_CONFIG, "MODEL.CENTERTRACK.FUSION", "early"))
        with self.assertRaisesRegex(ValueError, "PREV_IMAGE or PREV_HEATMAP"):
            StemFusion(channels=8, stride=2, prev_image=False, prev_heatmap=False)

    def test_loss_against_float64_reference(self):
        model = self.model.train()
        sizes = [(64, 64), (64, 64)]
        first = with_prev(
            gt_instances([[8, 8, 24, 20], [30, 34, 50, 60], [40, 4, 60, 20]], [0, 1, 2], sizes[0]),
            [[12, 6, 26, 20], [28, 30, 50, 58], [0, 0, 0, 0]],
        )
        second = with_prev(gt_instances([[0, 0, 16, 16]], [3], sizes[1]), [[4, 8, 20, 22]])
        g = torch.Generator().manual_seed(1)
        H = W = 16
        predictions = {
            "heatmap": torch.randn(2, 5, H, W, generator=g),
            "size": torch.rand(2, 2, H, W, generator=g) * 4,
            "offset": torch.rand(2, 2, H, W, generator=g),
            "displacement": torch.randn(2, 2, H, W, generator=g),
        }
        images = ImageList(torch.zeros(2, 3, 64, 64), sizes)
        with EventStorage():
            targets = model.build_targets(images, predictions, [first, second])
            losses = model.losses(predictions, targets)
        # reference: per tracked object, mean over x, y of |prediction at its centre cell -
        # (previous centre - centre) / 4|, summed, over the 3 tracked objects
        pred = predictions["displacement"].double()
        total = 0.0
        for n, (box, prev) in enumerate(
            [([8, 8, 24, 20], [12, 6, 26, 20]), ([30, 34, 50, 60], [28, 30, 50, 58])]
            + [([0, 0, 16, 16], [4, 8, 20, 22])]
        ):
            image = 0 if n < 2 else 1
            cx, cy = (box[0] + box[2]) / 2, (box[1] + box[3]) / 2
            target = [((prev[0] + prev[2]) / 2 - cx) / 4, ((prev[1] + prev[3]) / 2 - cy) / 4]
            at = pred[image, :, int(cy // 4), int(cx // 4)]
            total += (abs(at[0].item() - target[0]) + abs(at[1].item() - target[1])) / 2
        weight = self.cfg.MODEL.CENTERTRACK.DISPLACEMENT_WEIGHT
        self.assertAlmostEqual(losses["loss_displacement"].item(), total / 3 * weight, places=5)
        self.assertEqual(targets.num_objects, 4)

    def test_train_step_with_objects_and_empty(self):
        sizes = [(96, 112), (80, 96)]
        for model, fusion_params in (
            (self.model, lambda f: [f.gains]),  # zero-initialised: the convs' gradients are 0
            (
                self.plain_model,
                lambda f: [f.prev_image_layer[0].weight, f.prev_heatmap_layer[0].weight],
            ),
            (self.input_model, lambda f: [f.conv.weight]),
        ):
            model.train()
            for boxes in ([[[10, 12, 60, 70], [70, 5, 100, 40]], [[5, 5, 30, 30]]], [[], []]):
                name = type(model.fusion).__name__ + (
                    " gains" if getattr(model.fusion, "gains", None) is not None else ""
                )
                with self.subTest(fusion=name, objects=sum(map(len, boxes))):
                    inputs = training_inputs(sizes, boxes, 5)
                    for x in inputs:
                        x["prev_image"] = torch.roll(x["image"], 3, dims=2)
                        prev = x["instances"].gt_boxes.tensor + torch.tensor([3.0, 0, 3, 0])
                        with_prev(x["instances"], prev)
                        x["prev_boxes"] = prev[:1]
                    with EventStorage():
                        losses = model(inputs)
                    self.assertEqual(
                        set(losses),
                        {"loss_heatmap", "loss_size", "loss_offset", "loss_displacement"},
                    )
                    total = sum(losses.values())
                    self.assertTrue(torch.isfinite(total))
                    model.zero_grad()
                    total.backward()
                    branch = model.head.branches["displacement"][-1].weight.grad
                    self.assertTrue(torch.isfinite(branch).all())
                    if not any(boxes):
                        self.assertEqual(losses["loss_displacement"].item(), 0.0)
                    else:
                        self.assertGreater(branch.abs().sum().item(), 0)
                        for p in fusion_params(model.fusion):
                            self.assertGreater(p.grad.abs().sum().item(), 0)

    def test_inference_displacements_in_output_pixels(self):
        model = self.model.eval()
        out_conv = model.head.branches["displacement"][-1]
        # peaks above the score threshold, boxes of 4 cells (not dropped as empty)
        biases = {"heatmap": 2.0, "size": 4.0}
        params = [out_conv.weight, out_conv.bias]
        params += [model.head.branches[name][-1].bias for name in biases]
        saved = [p.detach().clone() for p in params]
        try:
            with torch.no_grad():
                out_conv.weight.zero_()
                out_conv.bias.copy_(torch.tensor([1.5, -0.5]))  # cells everywhere
                for name, value in biases.items():
                    model.head.branches[name][-1].bias.fill_(value)
                image = torch.randint(0, 256, (3, 64, 96)).float()
                (out,) = model([{"image": image, "height": 128, "width": 96}])
        finally:
            with torch.no_grad():
                for p, value in zip(params, saved):
                    p.copy_(value)
        inst = out["instances"]
        self.assertGreater(len(inst), 0)
        # 1.5 cells = 6 px right, -0.5 cells = 2 px up at stride 4; the output is as wide as the
        # input and twice as high
        expected = torch.tensor([[6.0, -4.0]]).expand(len(inst), 2)
        torch.testing.assert_close(inst.pred_displacements, expected)

    def test_fusion_convs_take_the_first_layers_kernel(self):
        # MobileNet's features[0] is a 3x3 conv of stride 2 and 16 channels (DLA's: 7x7)
        for layer in (self.model.fusion.prev_image_layer, self.model.fusion.prev_heatmap_layer):
            conv = layer[0]
            self.assertEqual(
                (conv.kernel_size, conv.stride, conv.padding), ((3, 3), (2, 2), (1, 1))
            )
            self.assertEqual(conv.out_channels, 16)
        fusion = StemFusion(channels=8, stride=1)
        self.assertEqual(fusion.prev_image_layer[0].kernel_size, (7, 7))  # CenterTrack's default

    def test_keypoints_refused_at_build_time(self):
        with self.assertRaisesRegex(ValueError, "CenterTrack does not track keypoints"):
            opts = ("MODEL.KEYPOINT_ON", "True", "MODEL.CENTERNET.NUM_KEYPOINTS", "17")
            build_model(model_cfg(TRACK_CONFIG, *opts))

    def test_multilevel_refused(self):
        cfg = model_cfg(MULTILEVEL_CONFIG, "MODEL.META_ARCHITECTURE", "CenterTrack")
        with self.assertRaisesRegex(ValueError, "multilevel"):
            build_model(cfg)

    def test_is_a_registered_centernet(self):
        self.assertIsInstance(self.model, CenterTrack)


class TestAmodalBoxes(unittest.TestCase):
    """CenterTrack's amodal box head (MODEL.CENTERTRACK.AMODAL_BOX, its MOT models)."""

    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls.cfg = model_cfg(TRACK_CONFIG, "MODEL.CENTERTRACK.AMODAL_BOX", "True")
        cls.model = build_model(cls.cfg)

    def test_targets_hand_computed(self):
        # a box reaching 8 px left of a 64 x 64 image: its clipped box (0, 10, 20, 30) has its
        # centre (10, 20) in cell (2, 5) of the 16 x 16 grid (stride 4), flat index 5 * 16 + 2
        inst = gt_instances([[-8, 10, 20, 30]], [0], (64, 64))
        target = amodal_box_targets([inst], [(64, 64)], 5, torch.tensor([82]), (16, 16), 4)
        # (-8 / 4 - 2, 10 / 4 - 5, 20 / 4 - 2, 30 / 4 - 5): not clipped
        self.assertEqual(target.tolist(), [[-4.0, -2.5, 3.0, 2.5]])

    def test_loss_hand_computed(self):
        model = self.model.train()
        sizes = [(64, 64), (64, 64)]
        first = with_prev(gt_instances([[-8, 10, 20, 30]], [0], sizes[0]), [[0, 10, 20, 30]])
        second = with_prev(gt_instances([[32, 32, 48, 72]], [1], sizes[1]), [[30, 30, 46, 62]])
        g = torch.Generator().manual_seed(2)
        predictions = {
            "heatmap": torch.randn(2, 5, 16, 16, generator=g),
            "size": torch.rand(2, 2, 16, 16, generator=g),
            "offset": torch.rand(2, 2, 16, 16, generator=g),
            "displacement": torch.randn(2, 2, 16, 16, generator=g),
            "amodal_box": torch.randn(2, 4, 16, 16, generator=g),
        }
        with EventStorage():
            targets = model.build_targets(
                ImageList(torch.zeros(2, 3, 64, 64), sizes), predictions, [first, second]
            )
            losses = model.losses(predictions, targets)
        # object 1: cell (2, 5) as above; object 2: clipped (32, 32, 48, 64), centre (40, 48),
        # cell (10, 12), target (8 - 10, 8 - 12, 12 - 10, 18 - 12)
        pred = predictions["amodal_box"]
        first_error = (pred[0, :, 5, 2] - torch.tensor([-4.0, -2.5, 3.0, 2.5])).abs().mean()
        second_error = (pred[1, :, 12, 10] - torch.tensor([-2.0, -4.0, 2.0, 6.0])).abs().mean()
        expected = 0.1 * (first_error + second_error) / 2  # AMODAL_BOX_WEIGHT 0.1, 2 objects
        self.assertAlmostEqual(losses["loss_amodal_box"].item(), expected.item(), places=5)

    def test_inference_boxes_from_the_amodal_branch(self):
        model = self.model.eval()
        amodal = model.head.branches["amodal_box"][-1]
        params = [amodal.weight, amodal.bias, model.head.branches["heatmap"][-1].bias]
        saved = [p.detach().clone() for p in params]
        try:
            with torch.no_grad():
                amodal.weight.zero_()
                amodal.bias.copy_(torch.tensor([-1.0, -2.0, 3.0, 1.0]))  # cells, everywhere
                model.head.branches["heatmap"][-1].bias.fill_(2.0)
                image = torch.randint(0, 256, (3, 64, 96)).float()
                images = model.preprocess_image([{"image": image}])
                predictions = model.run_network(*model.network_inputs([{"image": image}], images))
                boxes, scores, classes, _ = model.decode(predictions)
        finally:
            with torch.no_grad():
                for p, value in zip(params, saved):
                    p.copy_(value)
        # each peak's cell (x, y): (x - 1, y - 2, x + 3, y + 1) * 4, not clipped by decode
        *_, positions = decode_predictions(predictions, 4, model.test_topk, "size_offset", True)
        W = predictions["heatmap"].shape[-1]
        x, y = (positions[0] % W).float(), (positions[0] // W).float()
        expected = torch.stack([x - 1, y - 2, x + 3, y + 1], dim=1) * 4
        torch.testing.assert_close(boxes[0], expected)
        self.assertTrue(bool((boxes[0, :, 1] < 0).any()))  # boxes of the top row reach above
        # inference keeps the boxes above the threshold, clipped to the image
        results = model.inference(images, predictions)[0]
        self.assertEqual(len(results), int((scores[0] >= model.test_score_thresh).sum()))
        self.assertGreaterEqual(float(results.pred_boxes.tensor[:, 1].min()), 0.0)

    def test_flip_merge_of_a_mirror_pair(self):
        # a box at cell x with distances (l, t, r, b) is, in the mirror image, at cell W - 1 - x
        # with (1 - r, t, 1 - l, b): merging the pair gives the image's own outputs back
        g = torch.Generator().manual_seed(3)
        ltrb = torch.randn(1, 4, 3, 5, generator=g)
        l, t, r, b = ltrb.unbind(dim=1)
        mirror = torch.stack([1 - r, t, 1 - l, b], dim=1).flip(-1)
        heat = torch.randn(1, 2, 3, 5, generator=g)
        common = {"size": torch.ones(1, 2, 3, 5), "offset": torch.zeros(1, 2, 3, 5)}
        disp = {"displacement": torch.zeros(1, 2, 3, 5)}
        merged = self.model.merge_mirrored(
            dict(common, heatmap=heat, amodal_box=ltrb, **disp),
            dict(common, heatmap=heat.flip(-1), amodal_box=mirror, **disp),
        )
        torch.testing.assert_close(merged["amodal_box"], ltrb)


if __name__ == "__main__":
    unittest.main()
