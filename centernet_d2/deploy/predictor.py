"""Image in, detections out, from an exported file alone: :class:`DeployPredictor`."""

from typing import Dict, Optional

import cv2
import numpy as np

from .runtime import ExportedModel

__all__ = ["DeployPredictor"]


class DeployPredictor:
    """Detections of one image by an exported detector (``tools/export_model.py``), as
    Detectron2's ``DefaultPredictor`` gives them, with neither Detectron2 nor the training code:

        predictor = DeployPredictor("output/export/model.onnx")
        result = predictor(cv2.imread("image.jpg"))  # boxes, scores, classes [, keypoints]

    The image is resized as the model's test-time resize (its short side to ``INPUT.MIN_SIZE_TEST``,
    the long side at most ``INPUT.MAX_SIZE_TEST``, bilinear, aspect kept) and padded to the size
    divisibility with the pixel mean (what Detectron2's zero padding of normalised images is) when
    the export takes any size; resized to the export's size otherwise. Outputs are in the pixels
    of the image given.
    """

    input_names = ("images",)  # what the exported file must take

    def __init__(
        self,
        path: str,
        runtime: Optional[str] = None,
        threads: int = 0,
        score_thresh: Optional[float] = None,
    ):
        """
        Args:
            path, runtime, threads: of :class:`ExportedModel`.
            score_thresh: detections scoring at least this are returned (default: the config's
                MODEL.CENTERNET.SCORE_THRESH_TEST stored in the file).
        """
        self.model = ExportedModel(path, runtime, threads)
        if tuple(self.model.input_names) != self.input_names:
            other = "DeployTracker" if len(self.model.input_names) > 1 else "DeployPredictor"
            raise ValueError(
                f"{path} takes {self.model.input_names}, not {self.input_names}: run it with "
                f"centernet_d2.deploy.{other}"
            )
        meta = self.model.metadata
        self.metadata = meta
        self.score_thresh = meta["score_thresh"] if score_thresh is None else score_thresh
        self.class_names = meta.get("class_names")

    def preprocess(self, image: np.ndarray):
        """(1, 3, H, W) float32 input of a (h, w, 3) uint8 BGR image (OpenCV's order), and the
        scale (x, y) from input pixels back to the image's."""
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected an (h, w, 3) BGR image, got shape {image.shape}")
        meta = self.metadata
        if meta["input_format"] == "RGB":
            image = image[:, :, ::-1]
        h, w = image.shape[:2]
        if meta.get("dynamic_size") and meta.get("min_size_test"):
            short, longest = meta["min_size_test"], meta.get("max_size_test") or 10**9
            scale = min(short / min(h, w), longest / max(h, w))
            size = (int(w * scale + 0.5), int(h * scale + 0.5))  # ResizeShortestEdge's rounding
        else:
            size = (meta["width"], meta["height"])
        resized = cv2.resize(np.ascontiguousarray(image), size, interpolation=cv2.INTER_LINEAR)
        d = max(int(meta.get("size_divisibility") or 1), 1) if meta.get("dynamic_size") else 1
        height, width = -(-size[1] // d) * d, -(-size[0] // d) * d
        x = np.empty((height, width, 3), np.float32)
        x[...] = np.asarray(meta["pixel_mean"], np.float32)  # normalised: 0
        x[: size[1], : size[0]] = resized
        return x.transpose(2, 0, 1)[None], (w / size[0], h / size[1])

    def __call__(self, image: np.ndarray) -> Dict[str, np.ndarray]:
        """Detections of an (h, w, 3) uint8 BGR image scoring at least ``score_thresh``:
        "boxes" (D, 4) XYXY, "scores" (D,), "classes" (D,) and the model's other outputs
        ("keypoints" (D, J, 3) x, y, score), in the image's pixels."""
        x, scale = self.preprocess(image)
        outputs = {k: v[0] for k, v in self.model(images=x).items()}
        keep = outputs["scores"] >= self.score_thresh
        return self.to_image_pixels({k: v[keep] for k, v in outputs.items()}, scale, image.shape)

    @staticmethod
    def to_image_pixels(result: Dict[str, np.ndarray], scale, shape) -> Dict[str, np.ndarray]:
        """``result``'s boxes, keypoints and displacements from input pixels to the pixels of
        an image of ``shape`` (h, w, 3), ``scale`` (x, y) of :meth:`preprocess`."""
        (sx, sy), (h, w) = scale, shape[:2]
        result = dict(result)
        boxes = result["boxes"] * np.array([sx, sy, sx, sy], np.float32)
        result["boxes"] = np.minimum(boxes, np.array([w, h, w, h], np.float32))
        if "keypoints" in result:
            result["keypoints"] = result["keypoints"].copy()
            result["keypoints"][..., :2] *= np.array([sx, sy], np.float32)
        if "displacements" in result:
            result["displacements"] = result["displacements"] * np.array([sx, sy], np.float32)
        return result
