"""centernet_d2.tracking.inference: CenterTrackWithTracker over scripted frames, with a real
CenterTrack whose network outputs are scripted and with a stub model."""

import unittest
from unittest import mock

import torch
from detectron2.modeling import build_model
from torch import nn

from centernet_d2.tracking import CenterTrackWithTracker, TrackerSettings
from tests.common import TRACK_CONFIG, model_cfg, pred_instances, square


def scripted_predictions(t: int):
    """The head's outputs on a 64 x 64 input (16 x 16 cells of 4 px) at frame t: object A
    (class 1) at (8 + 8 t, 20) px moving 8 px right per frame (displacement (-2, 0) cells), and
    from frame 1 object B (class 3) standing at (40, 44); both 12 x 12 px."""
    heatmap = torch.full((1, 5, 16, 16), -10.0)
    displacement = torch.zeros(1, 2, 16, 16)
    heatmap[0, 1, 5, 2 + 2 * t] = 5.0
    displacement[0, 0, 5, 2 + 2 * t] = -2.0
    if t >= 1:
        heatmap[0, 3, 11, 10] = 4.0  # below A: A comes first
    return {
        "heatmap": heatmap,
        "size": torch.full((1, 2, 16, 16), 3.0),
        "offset": torch.zeros(1, 2, 16, 16),
        "displacement": displacement,
    }


class TestScriptedSequence(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        torch.manual_seed(0)
        cls.model = build_model(model_cfg(TRACK_CONFIG)).eval()

    def run_frames(self, match_by):
        cfg = model_cfg(TRACK_CONFIG, "TEST.TRACKING.MATCH_BY", match_by)
        wrapper = CenterTrackWithTracker(cfg, self.model)
        seen, outputs = [], []

        def network(images, prev_images, prev_heatmaps):
            seen.append((prev_images.clone(), prev_heatmaps.clone()))
            return scripted_predictions(len(seen) - 1)

        images = [torch.full((3, 64, 64), 10.0 * t) for t in range(3)]
        with mock.patch.object(self.model, "run_network", side_effect=network):
            with torch.no_grad():
                for t, image in enumerate(images):
                    inputs = {"image": image, "height": 128, "width": 128, "video_id": 7}
                    outputs += wrapper([dict(inputs, frame_id=t + 1)])
        return outputs, seen, images

    def test_ids_kept_with_displacements(self):
        outputs, seen, images = self.run_frames("displacement")
        ids = [out["instances"].pred_track_ids.tolist() for out in outputs]
        self.assertEqual(ids, [[1], [1, 2], [1, 2]])
        # the outputs are in the frame's size (twice the input): A at (2 (8 + 8 t), 40)
        tracks = outputs[2]["instances"]
        self.assertEqual(tracks.image_size, (128, 128))
        self.assertEqual(tracks.pred_boxes.tensor[0].tolist(), [36.0, 28.0, 60.0, 52.0])
        self.assertEqual(tracks.pred_displacements[0].tolist(), [-16.0, 0.0])
        self.assertEqual(len(outputs[2]["detections"]), 2)
        # the model saw the previous frame, and the previous frame's tracks drawn at their
        # centres in its input's pixels: none at frame 0, A at (8, 20) at frame 1
        self.assertEqual(seen[0][1].abs().sum().item(), 0.0)
        self.assertEqual(seen[1][1][0, 0, 20, 8].item(), 1.0)
        self.assertEqual(seen[2][1][0, 0, 20, 16].item(), 1.0)
        self.assertEqual(seen[2][1][0, 0, 44, 40].item(), 1.0)
        normalised = (images[0] - self.model.pixel_mean) / self.model.pixel_std
        torch.testing.assert_close(seen[1][0][0], normalised)

    def test_iou_association_loses_the_fast_object(self):
        # A moves 8 px per frame, its box is 12 px: IoU 48 / 240 = 0.2 < MIN_IOU 0.3
        outputs, _, _ = self.run_frames("iou")
        ids = [out["instances"].pred_track_ids.tolist() for out in outputs]
        self.assertEqual(ids, [[1], [2, 3], [4, 3]])


class StubModel(nn.Module):
    """Returns, per call, one detection at the next scripted box; records its inputs."""

    def __init__(self, boxes):
        super().__init__()
        self.boxes, self.inputs = list(boxes), []

    def forward(self, batched_inputs):
        (x,) = batched_inputs
        self.inputs.append(x)
        inst = pred_instances([self.boxes.pop(0)], [0], size=(x["height"], x["width"]))
        inst.pred_displacements = torch.zeros(1, 2)
        return [{"instances": inst}]


class TestVideos(unittest.TestCase):
    def frame(self, video, frame_id):
        return {"image": torch.zeros(3, 32, 32), "height": 64, "width": 64, "video_id": video,
                "frame_id": frame_id}  # fmt: skip

    def test_new_video_new_ids(self):
        stub = StubModel([square(20, 20)] * 6)
        wrapper = CenterTrackWithTracker(stub, tracker_settings=TrackerSettings())
        frames = [self.frame(1, 1), self.frame(1, 2), self.frame(2, 1), self.frame(2, 2)]
        frames += [self.frame(2, 1), self.frame(2, 2)]  # the frame number goes back: new video
        ids = [out["instances"].pred_track_ids.tolist() for out in wrapper(frames)]
        self.assertEqual(ids, [[1], [1], [1], [1], [1], [1]])
        firsts = [i for i, x in enumerate(stub.inputs) if "prev_image" not in x]
        self.assertEqual(firsts, [0, 2, 4])
        # the previous boxes in the input's pixels (half the frame's): the square at (10, 10)
        self.assertEqual(stub.inputs[1]["prev_boxes"].tolist(), [[5.0, 5.0, 15.0, 15.0]])

    def test_still_images_alone(self):
        stub = StubModel([square(20, 20)] * 2)
        wrapper = CenterTrackWithTracker(stub, tracker_settings=TrackerSettings())
        image = {"image": torch.zeros(3, 32, 32), "height": 64, "width": 64}
        outputs = wrapper([image, dict(image)])
        self.assertFalse(outputs[1]["instances"].has("pred_track_ids"))
        self.assertNotIn("detections", outputs[1])
        self.assertTrue(all("prev_image" not in x for x in stub.inputs))

    def test_prev_heatmap_score(self):
        stub = StubModel([square(20, 20), square(20, 20)])
        wrapper = CenterTrackWithTracker(
            stub, tracker_settings=TrackerSettings(), prev_heatmap_score=0.95
        )
        wrapper([self.frame(1, 1), self.frame(1, 2)])  # scores 0.9: not drawn
        self.assertEqual(tuple(stub.inputs[1]["prev_boxes"].shape), (0, 4))


if __name__ == "__main__":
    unittest.main()
