"""``PascalVOCEvaluator``: Detectron2's Pascal VOC evaluator, averaged over the classes present.

Detectron2's ``PascalVOCDetectionEvaluator`` averages the AP of every class of the dataset's
metadata; a class without any object in the evaluated split (a test split holding only ``hat``
of a hat/person set) counts as AP 0 (or NaN, 0 / 0, once it has a detection), which halves or
voids the mean. This one averages over the
classes with objects in the split, as COCO's evaluation does, and logs the AP50 of each class.
"""

import os
import tempfile
from collections import OrderedDict, defaultdict

import numpy as np
from detectron2.evaluation import PascalVOCDetectionEvaluator
from detectron2.evaluation.pascal_voc_evaluation import parse_rec, voc_eval
from detectron2.utils import comm
from detectron2.utils.file_io import PathManager
from tabulate import tabulate

__all__ = ["PascalVOCEvaluator"]

IOU_THRESHOLDS = range(50, 100, 5)  # percent, as Detectron2's evaluator


class PascalVOCEvaluator(PascalVOCDetectionEvaluator):
    """Same inputs and outputs as ``PascalVOCDetectionEvaluator`` (``{"bbox": {"AP", "AP50",
    "AP75"}}``, plus ``"AP50-<class>"`` per class), AP averaged over the classes that have
    objects in the split (not ``difficult``); the result is NaN only when no class has any."""

    def evaluate(self):
        all_predictions = comm.gather(self._predictions, dst=0)
        if not comm.is_main_process():
            return None
        predictions = defaultdict(list)
        for per_rank in all_predictions:
            for cls_id, lines in per_rank.items():
                predictions[cls_id].extend(lines)
        present = self._classes_with_objects()
        aps = {}  # class name -> {iou: AP}
        with tempfile.TemporaryDirectory(prefix="pascal_voc_eval_") as dirname:
            template = os.path.join(dirname, "{}.txt")
            for cls_id, cls_name in enumerate(self._class_names):
                if cls_name not in present:
                    continue
                with open(template.format(cls_name), "w") as f:
                    f.write("\n".join(predictions.get(cls_id, [""])))
                aps[cls_name] = {
                    thresh: 100
                    * float(
                        voc_eval(
                            template,
                            self._anno_file_template,
                            self._image_set_path,
                            cls_name,
                            ovthresh=thresh / 100.0,
                            use_07_metric=self._is_2007,
                        )[2]
                    )
                    for thresh in IOU_THRESHOLDS
                }
        if not aps:
            self._logger.warning(f"{self._dataset_name}: no class has an object; AP is NaN")
            return OrderedDict(
                bbox={"AP": float("nan"), "AP50": float("nan"), "AP75": float("nan")}
            )
        absent = [c for c in self._class_names if c not in aps]
        if absent:
            self._logger.info(
                f"{self._dataset_name}: classes without objects, left out of the mean: {absent}"
            )
        self._logger.info(
            "Per-class AP50:\n"
            + tabulate([(c, f"{a[50]:.2f}") for c, a in aps.items()], ["class", "AP50"], "pipe")
        )
        mean = {t: float(np.mean([a[t] for a in aps.values()])) for t in IOU_THRESHOLDS}
        bbox = {"AP": float(np.mean(list(mean.values()))), "AP50": mean[50], "AP75": mean[75]}
        bbox.update({f"AP50-{c}": a[50] for c, a in aps.items()})
        return OrderedDict(bbox=bbox)

    def _classes_with_objects(self):
        """Names of the classes with a non-difficult object in the split (the objects that
        Detectron2's ``voc_eval`` counts)."""
        with PathManager.open(self._image_set_path) as f:
            ids = [line.strip() for line in f if line.strip()]
        return {
            obj["name"]
            for fileid in ids
            for obj in parse_rec(self._anno_file_template.format(fileid))
            if not obj["difficult"]
        }
