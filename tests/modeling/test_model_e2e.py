import glob
import os
import unittest

import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage

from centernet_d2 import add_centernet_config
from centernet_d2.modeling import CenterNet, CenterNetHead

CONFIG_DIR = os.path.join(os.path.dirname(__file__), "..", "..", "configs")
CONFIGS = sorted(
    p
    for p in glob.glob(os.path.join(CONFIG_DIR, "**", "*.yaml"), recursive=True)
    if not os.path.basename(p).startswith("Base-")
)


def get_config(path):
    cfg = get_cfg()
    add_centernet_config(cfg)
    cfg.merge_from_file(path)
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    return cfg


def make_inputs(sizes, boxes_per_image, num_classes, seed=0):
    """Random images of the given (h, w) with GT boxes; no boxes gives an empty-GT image."""
    g = torch.Generator().manual_seed(seed)
    inputs = []
    for (h, w), boxes in zip(sizes, boxes_per_image):
        inst = Instances((h, w))
        inst.gt_boxes = Boxes(torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4))
        inst.gt_classes = torch.randint(0, num_classes, (len(boxes),), generator=g)
        image = torch.randint(0, 256, (3, h, w), generator=g).float()
        inputs.append({"image": image, "instances": inst, "height": h, "width": w})
    return inputs


class TestEveryConfig(unittest.TestCase):
    def test_configs_found(self):
        self.assertGreaterEqual(len(CONFIGS), 8, CONFIGS)

    def test_train_step_and_inference(self):
        sizes = [(97, 131), (75, 120)]
        boxes = [[[10, 12, 60, 70], [70, 5, 120, 40]], []]  # the second image has no objects
        for path in CONFIGS:
            with self.subTest(config=os.path.relpath(path, CONFIG_DIR)):
                torch.manual_seed(0)
                cfg = get_config(path)
                model = build_model(cfg)
                self.assertIsInstance(model, CenterNet)
                model.train()
                inputs = make_inputs(sizes, boxes, cfg.MODEL.CENTERNET.NUM_CLASSES)
                with EventStorage():
                    losses = model(inputs)
                box_losses = {"size_offset": {"loss_size", "loss_offset"}, "ltrb": {"loss_box"}}
                expected = {"loss_heatmap"} | box_losses[cfg.MODEL.CENTERNET.BOX_HEAD]
                self.assertEqual(set(losses), expected)
                total = sum(losses.values())
                self.assertTrue(torch.isfinite(total))
                total.backward()
                grads = [p.grad for p in model.head.parameters() if p.requires_grad]
                self.assertTrue(all(g is not None and torch.isfinite(g).all() for g in grads))

                model.eval()
                with torch.no_grad():
                    outputs = model(
                        [{"image": x["image"], "height": 50, "width": 66} for x in inputs]
                    )
                self.assertEqual(len(outputs), 2)
                for out in outputs:
                    inst = out["instances"]
                    self.assertEqual(inst.image_size, (50, 66))
                    self.assertTrue(inst.has("pred_boxes") and inst.has("scores"))
                    self.assertTrue(inst.has("pred_classes"))
                    self.assertLessEqual(len(inst), cfg.TEST.DETECTIONS_PER_IMAGE)
                    b = inst.pred_boxes.tensor
                    self.assertTrue(((b[:, 0] >= 0) & (b[:, 2] <= 66) & (b[:, 3] <= 50)).all())


class TestEmptyBatch(unittest.TestCase):
    def test_all_images_without_objects(self):
        torch.manual_seed(0)
        cfg = get_config(os.path.join(CONFIG_DIR, "CPU", "centernet_R_18_deconv_shapes.yaml"))
        model = build_model(cfg).train()
        inputs = make_inputs([(64, 64), (70, 50)], [[], []], 5)
        with EventStorage() as storage:
            losses = model(inputs)
            self.assertEqual(storage.latest()["num_objects"][0], 0)
        self.assertEqual(losses["loss_size"].item(), 0.0)
        self.assertEqual(losses["loss_offset"].item(), 0.0)
        self.assertGreater(losses["loss_heatmap"].item(), 0.0)
        sum(losses.values()).backward()


class TestWithoutConfig(unittest.TestCase):
    def test_build_from_modules(self):
        from detectron2.layers import ShapeSpec
        from detectron2.modeling import Backbone

        class Tiny(Backbone):
            def __init__(self):
                super().__init__()
                self.conv = torch.nn.Conv2d(3, 8, 3, stride=4, padding=1)

            def forward(self, x):
                return {"p2": self.conv(x)}

            def output_shape(self):
                return {"p2": ShapeSpec(channels=8, stride=4)}

        model = CenterNet(
            backbone=Tiny(),
            head=CenterNetHead(input_shape=[ShapeSpec(channels=8, stride=4)], num_classes=3),
            head_in_features=["p2"],
            pixel_mean=[0.0, 0.0, 0.0],
            pixel_std=[1.0, 1.0, 1.0],
            loss_weights={"loss_heatmap": 1.0, "loss_size": 0.1, "loss_offset": 1.0},
        )
        self.assertEqual(model.stride, 4)
        with EventStorage():
            losses = model(make_inputs([(32, 40)], [[[4, 4, 20, 30]]], 3))
        self.assertEqual(len(losses), 3)
        # heatmap bias from the prior 0.1
        bias = model.head.branches["heatmap"][-1].bias
        self.assertAlmostEqual(torch.sigmoid(bias[0]).item(), 0.1, places=6)

    def test_bad_values(self):
        with self.assertRaisesRegex(ValueError, "IN_FEATURES"):
            CenterNetHead(input_shape=[], num_classes=3)
        cfg = get_config(os.path.join(CONFIG_DIR, "CPU", "centernet_R_18_deconv_shapes.yaml"))
        cfg.MODEL.CENTERNET.TARGET_KIND = "square"
        with self.assertRaisesRegex(ValueError, "MODEL.CENTERNET.TARGET_KIND"):
            build_model(cfg)
        cfg = get_config(os.path.join(CONFIG_DIR, "CPU", "centernet_R_18_deconv_shapes.yaml"))
        cfg.MODEL.CENTERNET.IN_FEATURES = ["p3"]
        with self.assertRaisesRegex(ValueError, "p3"):
            build_model(cfg)
