"""CenterNet learns: it overfits two images on the CPU."""

import os
import unittest

import torch
from detectron2.config import get_cfg
from detectron2.modeling import build_model
from detectron2.structures import Boxes, Instances, pairwise_iou
from detectron2.utils.events import EventStorage

from centernet_d2 import add_centernet_config

CONFIG = os.path.join(
    os.path.dirname(__file__), "..", "..", "configs", "CPU", "centernet_R_18_deconv_shapes.yaml"
)
# (x0, y0, x1, y1, class) per image, input pixels
OBJECTS = [
    [(10, 14, 50, 40, 0), (60, 60, 118, 100, 1), (20, 70, 44, 118, 2)],
    [(30, 8, 100, 50, 2), (8, 60, 40, 92, 0), (70, 66, 110, 122, 1)],
]
COLORS = torch.tensor([[230.0, 40, 40], [40, 200, 60], [50, 60, 220]])


def make_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    batch = []
    for objects in OBJECTS:
        image = torch.rand(3, 128, 128, generator=g) * 60 + 100  # grey noise
        for x0, y0, x1, y1, c in objects:
            image[:, y0:y1, x0:x1] = COLORS[c][:, None, None]
        inst = Instances((128, 128))
        inst.gt_boxes = Boxes(torch.tensor([o[:4] for o in objects], dtype=torch.float32))
        inst.gt_classes = torch.tensor([o[4] for o in objects])
        batch.append({"image": image, "instances": inst})
    return batch


class TestOverfit(unittest.TestCase):
    def test_two_images_three_boxes(self):
        torch.manual_seed(0)
        cfg = get_cfg()
        add_centernet_config(cfg)
        cfg.merge_from_file(CONFIG)
        cfg.MODEL.DEVICE = "cpu"
        cfg.MODEL.CENTERNET.NUM_CLASSES = 3
        # GroupNorm: with one fixed batch of two images, BatchNorm's running statistics (what
        # eval mode uses) are a poor stand-in for the batch statistics the model was fit with.
        cfg.MODEL.RESNETS.NORM = "GN"
        cfg.MODEL.CENTERNET.DECONV.NORM = "GN"
        model = build_model(cfg)
        optimizer = torch.optim.Adam(model.parameters(), lr=2e-3)
        schedule = torch.optim.lr_scheduler.MultiStepLR(optimizer, [200, 260])
        batch = make_batch()
        model.train()
        with EventStorage():
            for it in range(300):
                losses = model(batch)
                optimizer.zero_grad()
                sum(losses.values()).backward()
                optimizer.step()
                schedule.step()
        model.eval()
        with torch.no_grad():
            outputs = model([{"image": x["image"]} for x in batch])
        for x, out in zip(batch, outputs):
            gt, pred = x["instances"], out["instances"]
            pred = pred[pred.scores > 0.3]
            self.assertEqual(len(pred), len(gt), f"{pred} after {it + 1} iterations")
            iou = pairwise_iou(gt.gt_boxes, pred.pred_boxes)  # (gt, pred)
            best = iou.argmax(dim=1)
            self.assertEqual(sorted(best.tolist()), list(range(len(gt))))
            self.assertTrue((iou.max(dim=1).values > 0.9).all(), iou)
            self.assertEqual(pred.pred_classes[best].tolist(), gt.gt_classes.tolist())
