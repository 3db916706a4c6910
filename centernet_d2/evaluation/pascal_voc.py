"""``PascalVOCEvaluator``: Detectron2's Pascal VOC evaluator, averaged over the classes present.

Detectron2's ``PascalVOCDetectionEvaluator`` averages the AP of every class of the dataset's
metadata; a class without any object in the evaluated split (a test split holding only ``hat``
of a hat/person set) counts as AP 0 (or NaN, 0 / 0, once it has a detection), which halves or
voids the mean. This one averages over the
classes with objects in the split, as COCO's evaluation does, and logs the AP50 of each class.

It reads the folder as the loader does (:func:`~centernet_d2.data.voc.read_voc_annotation`,
:func:`~centernet_d2.data.voc.voc_split_ids`): class names with spaces around them, split files
with blank lines or a second column, ``difficult`` / ``truncated`` written "0.0" are the loader's
objects, not an error or a lost class in Detectron2's ``voc_eval``, which then scores a copy of
the split written in its own format.
"""

import os
import tempfile
import xml.etree.ElementTree as ET
from collections import OrderedDict, defaultdict
from typing import Dict

import numpy as np
from detectron2.data import MetadataCatalog
from detectron2.evaluation import PascalVOCDetectionEvaluator
from detectron2.evaluation.pascal_voc_evaluation import voc_eval
from detectron2.utils import comm
from tabulate import tabulate

from ..data.voc import VOCRecord, read_voc_annotation, voc_split_ids

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
        records = self._records()
        present = {o.name for r in records.values() for o in r.objects if not o.difficult}
        aps = {}  # class name -> {iou: AP}
        with tempfile.TemporaryDirectory(prefix="pascal_voc_eval_") as dirname:
            annotations, image_set = _write_split(records, dirname)
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
                            annotations,
                            image_set,
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

    def _records(self) -> Dict[str, VOCRecord]:
        """The split's annotations as the loader reads them, by file id."""
        meta = MetadataCatalog.get(self._dataset_name)
        annotations = os.path.join(meta.dirname, "Annotations")
        return {
            i: read_voc_annotation(os.path.join(annotations, i + ".xml"), i, "", frozenset())
            for i in voc_split_ids(meta.dirname, meta.split)
        }


def _write_split(records: Dict[str, VOCRecord], dirname: str):
    """The records as ``voc_eval`` reads a split: one XML per file id (names, 0/1 flags and
    1-based integer boxes) and an image set file of the ids. Returns (XML template, image set
    file)."""
    os.makedirs(os.path.join(dirname, "Annotations"))
    for fileid, record in records.items():
        root = ET.Element("annotation")
        for o in record.objects:
            obj = ET.SubElement(root, "object")
            ET.SubElement(obj, "name").text = o.name
            ET.SubElement(obj, "pose").text = "Unspecified"
            ET.SubElement(obj, "truncated").text = "0"
            ET.SubElement(obj, "difficult").text = str(int(o.difficult))
            box = ET.SubElement(obj, "bndbox")
            x0, y0, x1, y1 = o.box  # the loader's 0-based box: VOC's xmin - 1, ymin - 1
            for key, value in zip(("xmin", "ymin", "xmax", "ymax"), (x0 + 1, y0 + 1, x1, y1)):
                ET.SubElement(box, key).text = str(int(round(value)))
        ET.ElementTree(root).write(os.path.join(dirname, "Annotations", fileid + ".xml"))
    image_set = os.path.join(dirname, "image_set.txt")
    with open(image_set, "w") as f:
        f.write("\n".join(records) + "\n")
    return os.path.join(dirname, "Annotations", "{}.xml"), image_set
