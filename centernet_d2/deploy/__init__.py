"""Running exported models without Detectron2 or the training code: :class:`ExportedModel` runs
a file written by ``tools/export_model.py`` with its runtime (onnxruntime, OpenVINO or PyTorch);
:class:`DeployPredictor` gives a detector's detections of an image in its pixels,
:class:`DeployTracker` a CenterTrack's tracks of a video's frames."""

from .predictor import DeployPredictor
from .runtime import METADATA_KEY, RUNTIMES, ExportedModel
from .tracking import DeployTracker

__all__ = ["METADATA_KEY", "RUNTIMES", "DeployPredictor", "DeployTracker", "ExportedModel"]
