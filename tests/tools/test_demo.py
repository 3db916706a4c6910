"""tools/demo.py, the predictor and the README's predictor snippet."""

import os
import re
import shutil
import tempfile
import unittest

import cv2
import numpy as np
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.modeling import build_model

from centernet_d2.data import generate_shapes_dataset
from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.engine.predictor import CenterNetPredictor
from tests.common import CONFIG, ROOT, load_tool


class TestDemo(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory()
        root = cls.tmp.name
        generate_shapes_dataset(root, "imgs", num_images=3, seed=3, image_size=128)
        cls.images = os.path.join(root, "imgs")
        torch.manual_seed(0)
        cfg = setup_cfg(CONFIG)
        cls.weights = os.path.join(root, "model.pth")
        model = build_model(cfg)
        # untrained sizes are ~0 and Detectron2's postprocessing drops empty boxes: 8-cell boxes
        torch.nn.init.constant_(model.head.branches["size"][-1].bias, 8.0)
        DetectionCheckpointer(model, save_dir=root).save("model")

    @classmethod
    def tearDownClass(cls):
        cls.tmp.cleanup()

    def test_folder_gives_one_picture_per_image_with_boxes_and_heatmaps(self):
        demo = load_tool("demo")
        out = os.path.join(self.tmp.name, "out")
        opts = ["MODEL.WEIGHTS", self.weights, "TEST.DETECTIONS_PER_IMAGE", "2"]
        args = ["--config-file", CONFIG, "--input", self.images, "--output", out]
        args += ["--show-heatmap", "--confidence-threshold", "0", "--opts"] + opts
        demo.main(demo.get_parser().parse_args(args))
        inputs = sorted(os.listdir(self.images))
        self.assertEqual(len(inputs), 3)
        self.assertEqual(
            sorted(os.listdir(out)),
            sorted([f[:-4] + ".jpg" for f in inputs] + [f[:-4] + "_heatmap.jpg" for f in inputs]),
        )
        # boxes are drawn where the model detects objects: the picture changes along each
        # predicted box edge and stays as it was far from every box
        cfg = setup_cfg(CONFIG, opts + ["MODEL.CENTERNET.SCORE_THRESH_TEST", "0.0"])
        predictor = CenterNetPredictor(cfg)
        image = cv2.imread(os.path.join(self.images, inputs[0]))
        drawn = cv2.imread(os.path.join(out, inputs[0][:-4] + ".jpg"))
        self.assertEqual(drawn.shape, image.shape)
        boxes = predictor(image)["instances"].pred_boxes.tensor  # BGR, as read
        self.assertEqual(len(boxes), 2)
        diff = np.abs(drawn.astype(int) - image.astype(int)).sum(axis=2)  # (H, W)
        covered = np.zeros(diff.shape, bool)
        for x0, y0, x1, y1 in boxes.round().int().tolist():
            edge = diff[max(y0, 0) : y1 + 1, max(x0, 0) : x0 + 2]  # left edge
            self.assertGreater(edge.mean(), 40, (x0, y0, x1, y1))
            covered[max(y0 - 12, 0) : y1 + 12, max(x0 - 12, 0) : x1 + 12] = True
        if (~covered).any():  # JPEG noise only (labels may reach past the margin: median)
            self.assertLess(np.median(diff[~covered]), 15)
        heatmap = cv2.imread(os.path.join(out, inputs[0][:-4] + "_heatmap.jpg"))
        self.assertEqual(heatmap.shape, image.shape)
        self.assertGreater(np.abs(heatmap.astype(int) - image.astype(int)).mean(), 5)

    def test_video(self):
        demo = load_tool("demo")
        video = os.path.join(self.tmp.name, "clip.mp4")
        writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"mp4v"), 5, (128, 128))
        for name in sorted(os.listdir(self.images)):
            writer.write(cv2.imread(os.path.join(self.images, name)))
        writer.release()
        out = os.path.join(self.tmp.name, "video_out")
        args = ["--config-file", CONFIG, "--video-input", video, "--output", out]
        args += ["--confidence-threshold", "0", "--opts", "MODEL.WEIGHTS", self.weights]
        demo.main(demo.get_parser().parse_args(args))
        result = cv2.VideoCapture(os.path.join(out, "clip.mp4"))
        frames = 0
        while result.read()[0]:
            frames += 1
        self.assertEqual(frames, 3)

    def test_missing_input_is_named(self):
        demo = load_tool("demo")
        args = ["--config-file", CONFIG, "--input", "no/such/*.jpg", "--output", self.tmp.name]
        with self.assertRaisesRegex(FileNotFoundError, "no/such"):
            demo.main(demo.get_parser().parse_args(args))

    def test_readme_predictor_snippet_runs_as_written(self):
        readme = open(os.path.join(ROOT, "README.md")).read()
        snippet = re.search(r"<!-- predictor-snippet -->\s*```python\n(.*?)```", readme, re.S)
        self.assertIsNotNone(snippet, "README.md lost its predictor snippet")
        code = snippet.group(1)
        # lay out the files the snippet names, relative to the repository root
        with tempfile.TemporaryDirectory() as work:
            shutil.copytree(os.path.join(ROOT, "configs"), os.path.join(work, "configs"))
            weights = re.search(r'"(output/[^"]+\.pth)"', code).group(1)
            image = re.search(r'"(datasets/[^"]+\.jpg)"', code).group(1)
            os.makedirs(os.path.dirname(os.path.join(work, weights)))
            os.makedirs(os.path.dirname(os.path.join(work, image)))
            config = re.search(r'"(configs/[^"]+\.yaml)"', code).group(1)
            model = build_model(setup_cfg(os.path.join(ROOT, config)))
            DetectionCheckpointer(
                model, save_dir=os.path.dirname(os.path.join(work, weights))
            ).save(os.path.splitext(os.path.basename(weights))[0])
            first = sorted(os.listdir(self.images))[0]
            shutil.copy(os.path.join(self.images, first), os.path.join(work, image))
            cwd = os.getcwd()
            os.chdir(work)
            try:
                scope = {}
                exec(compile(code, "README.md", "exec"), scope)
            finally:
                os.chdir(cwd)
        self.assertIn("instances", scope["outputs"])


KEYPOINT_CONFIG = os.path.join(
    ROOT, "configs", "CPU", "centernet_keypoints_MobileNetV3_small_FPN_shapes.yaml"
)


class TestDemoKeypoints(unittest.TestCase):
    def test_keypoints_and_skeleton_are_drawn(self):
        """A keypoint model (untrained, its keypoints set 3 cells from each centre, every
        keypoint heatmap probability 0.27): the demo's picture has Detectron2's keypoint dots
        and skeleton lines at the predicted keypoints, inside the boxes, away from their edges."""
        demo = load_tool("demo")
        with tempfile.TemporaryDirectory() as root:
            generate_shapes_dataset(root, "imgs", num_images=1, seed=4, image_size=128)
            torch.manual_seed(0)
            cfg = setup_cfg(KEYPOINT_CONFIG)
            model = build_model(cfg)
            branches = model.head.branches
            torch.nn.init.constant_(branches["size"][-1].bias, 8.0)
            for name in ("keypoints", "keypoint_heatmap"):
                torch.nn.init.zeros_(branches[name][-1].weight)
            torch.nn.init.constant_(branches["keypoint_heatmap"][-1].bias, -1.0)
            with torch.no_grad():  # x, y of keypoint j: (+-3, +-3) cells from the centre
                offsets = torch.tensor([[3.0, 3.0], [-3.0, 3.0], [3.0, -3.0], [-3.0, -3.0]])
                branches["keypoints"][-1].bias.copy_(offsets.repeat(4, 1).flatten())
            DetectionCheckpointer(model, save_dir=root).save("model")
            opts = ["MODEL.WEIGHTS", os.path.join(root, "model.pth")]
            opts += ["TEST.DETECTIONS_PER_IMAGE", "3", "MODEL.CENTERNET.CLASS_KEYPOINTS", "[]"]
            out = os.path.join(root, "out")
            images = os.path.join(root, "imgs")
            args = ["--config-file", KEYPOINT_CONFIG, "--input", images, "--output", out]
            demo.main(
                demo.get_parser().parse_args(
                    args + ["--confidence-threshold", "0", "--opts"] + opts
                )
            )
            (name,) = os.listdir(images)
            drawn = cv2.imread(os.path.join(out, name[:-4] + ".jpg")).astype(int)
            image = cv2.imread(os.path.join(images, name))
            predictor = CenterNetPredictor(setup_cfg(KEYPOINT_CONFIG, opts))
            instances = predictor(image)["instances"]
        keypoints = instances.pred_keypoints
        self.assertEqual(keypoints.shape[1:], (16, 3))
        shown = keypoints[keypoints[..., 2] > 0.05][:, :2].round().long().tolist()
        self.assertGreater(len(shown), 0)
        diff = np.abs(drawn - image.astype(int)).sum(axis=2)
        changed = [diff[y, x] for x, y in shown if 0 <= x < 128 and 0 <= y < 128]
        self.assertGreater(np.median(changed), 100)
