"""Pascal-VOC-layout folders (``Annotations/*.xml``, ``JPEGImages/``, ``ImageSets/Main/*.txt``),
read the way real sets such as the Safety Helmet Wearing Dataset are laid out.

Differences from Detectron2's ``load_voc_instances``, which assumes the VOC challenge's own files:

- an image is found from its XML's ``<filename>``, else from the file id with any of
  :data:`VOC_IMAGE_EXTENSIONS` (``000003.JPG`` is found); a truly missing image keeps the name it
  should have and is reported by :func:`~.checks.check_image_files` under ``DATALOADER.BAD_IMAGES``;
- the class list of a folder is the same for all its splits: read from the annotations of every
  split file, sorted, unless given;
- a label outside the given classes stops registration with every (file, label) pair listed, or,
  with ``ignore_unknown``, its objects are dropped with one warning.

Like Detectron2's loader, boxes are 1-based inclusive pixel corners turned into ``XYXY_ABS``
(``xmin - 1``, ``ymin - 1``, ``xmax``, ``ymax``) and ``difficult`` objects are kept for training;
Detectron2's ``PascalVOCDetectionEvaluator`` reads the XML files itself and ignores them in AP.
"""

import copy
import glob
import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.structures import BoxMode
from PIL import Image

from .image_io import oriented_size

__all__ = [
    "VOC_IMAGE_EXTENSIONS",
    "VOCObject",
    "VOCRecord",
    "read_voc_annotation",
    "voc_split_ids",
    "voc_class_names",
    "load_voc_folder",
    "register_voc_dataset",
    "UnknownLabelsError",
]

logger = logging.getLogger(__name__)

# image file endings tried, in order, when the XML gives no <filename> or it does not exist
VOC_IMAGE_EXTENSIONS = (".jpg", ".JPG", ".jpeg", ".JPEG", ".png", ".PNG")
# what Detectron2's VOC loader and Pascal VOC evaluator read from each <object>
VOC_OBJECT_FIELDS = ("name", "pose", "truncated", "difficult", "bndbox")
VOC_BOX_FIELDS = ("xmin", "ymin", "xmax", "ymax")
# the evaluation year of Detectron2's evaluator: 2012 is VOC2010+'s area-under-curve AP
VOC_EVAL_YEAR = 2012
NUM_LISTED = 10  # (file, label) pairs named in an error or warning


@dataclass(frozen=True)
class VOCObject:
    name: str
    box: Tuple[float, float, float, float]  # XYXY_ABS, Detectron2's convention (see module doc)
    difficult: bool


@dataclass(frozen=True)
class VOCRecord:
    """One annotation file: ``file_name`` is the image path (existing, or the expected one)."""

    fileid: str
    annotation: str
    file_name: str
    width: Optional[int]  # from <size>; None where absent or 0
    height: Optional[int]
    objects: Tuple[VOCObject, ...]


class UnknownLabelsError(ValueError):
    """Labels outside the given classes; ``pairs`` lists (annotation file, label)."""

    def __init__(self, message: str, pairs: Sequence[Tuple[str, str]]):
        super().__init__(message)
        self.pairs = list(pairs)


def _flag(path: str, field: str, text: Optional[str]) -> bool:
    """A VOC 0/1 field (``difficult``, ``truncated``) as written in practice: "1", " 1 ", "1.0";
    missing or empty is 0. ``ValueError`` naming the file for a non-number."""
    text = (text or "0").strip() or "0"
    try:
        return float(text) != 0
    except ValueError:
        raise ValueError(f"VOC annotation {path}: <{field}> is {text!r}, not 0 or 1") from None


def _positive_int(text: Optional[str]) -> Optional[int]:
    try:
        value = int(float(text))
    except (TypeError, ValueError):
        return None
    return value if value > 0 else None


def read_voc_annotation(path: str, fileid: str, image_dir: str, images: frozenset) -> VOCRecord:
    """Parse one XML file, checking every field Detectron2's loader and evaluator read.

    Args:
        images: the file names in ``image_dir`` (one listing for the whole folder).
    Raises:
        ValueError: naming ``path``, for an unreadable file, a missing field or a box that is not
            in integer pixels (Detectron2's evaluator reads them with ``int()``).
    """
    try:
        tree = ET.parse(path)
    except (OSError, ET.ParseError) as e:
        raise ValueError(f"cannot read VOC annotation {path}: {e}") from e
    objects = []
    for obj in tree.findall("object"):
        missing = [f for f in VOC_OBJECT_FIELDS if obj.find(f) is None]
        box = obj.find("bndbox")
        if box is not None:
            missing += [f"bndbox/{f}" for f in VOC_BOX_FIELDS if box.find(f) is None]
        if missing:
            raise ValueError(f"VOC annotation {path}: an <object> lacks {missing}")
        coords = [(box.findtext(f) or "").strip() for f in VOC_BOX_FIELDS]
        if not all(c.lstrip("-").isdigit() for c in coords):
            raise ValueError(
                f"VOC annotation {path}: box {coords} is not in integer pixels, which "
                "Detectron2's Pascal VOC evaluator expects; round the coordinates"
            )
        x0, y0, x1, y1 = (float(c) for c in coords)
        difficult = _flag(path, "difficult", obj.findtext("difficult"))
        _flag(path, "truncated", obj.findtext("truncated"))  # checked: the evaluator reads it
        name = (obj.findtext("name") or "").strip()
        objects.append(VOCObject(name, (x0 - 1, y0 - 1, x1, y1), difficult))
    filename = (tree.findtext("filename") or "").strip()
    candidates = ([filename] if filename else []) + [fileid + e for e in VOC_IMAGE_EXTENSIONS]
    found = next((c for c in candidates if c in images), candidates[0])
    return VOCRecord(
        fileid=fileid,
        annotation=path,
        file_name=os.path.join(image_dir, found),
        width=_positive_int(tree.findtext("size/width")),
        height=_positive_int(tree.findtext("size/height")),
        objects=tuple(objects),
    )


def voc_split_ids(dirname: str, split: str) -> List[str]:
    """The file ids of ``ImageSets/Main/<split>.txt`` (first column of each line)."""
    path = os.path.join(dirname, "ImageSets", "Main", split + ".txt")
    if not os.path.isfile(path):
        found = sorted(
            os.path.splitext(os.path.basename(p))[0]
            for p in glob.glob(os.path.join(dirname, "ImageSets", "Main", "*.txt"))
        )
        raise FileNotFoundError(f"VOC split file {path} not found; splits there: {found}")
    with open(path) as f:
        return [line.split()[0] for line in f if line.strip()]


def _split_names(dirname: str) -> List[str]:
    pattern = os.path.join(dirname, "ImageSets", "Main", "*.txt")
    return sorted(os.path.splitext(os.path.basename(p))[0] for p in glob.glob(pattern))


def _read_folder(dirname: str, fileids: Sequence[str]) -> Dict[str, VOCRecord]:
    """{file id: record} for ``fileids`` (each parsed once)."""
    for sub in ("Annotations", "JPEGImages"):
        if not os.path.isdir(os.path.join(dirname, sub)):
            raise FileNotFoundError(
                f"VOC folder {dirname} has no {sub}/ (expected Annotations/, JPEGImages/, "
                "ImageSets/Main/)"
            )
    image_dir = os.path.join(dirname, "JPEGImages")
    images = frozenset(os.listdir(image_dir))
    records = {}
    for fileid in dict.fromkeys(fileids):
        path = os.path.join(dirname, "Annotations", fileid + ".xml")
        records[fileid] = read_voc_annotation(path, fileid, image_dir, images)
    return records


def voc_class_names(dirname: str) -> List[str]:
    """Sorted object names in the annotations of every split file of the folder, so that all
    its splits share one class list (a test split lacking a class keeps the training ids)."""
    fileids = [i for split in _split_names(dirname) for i in voc_split_ids(dirname, split)]
    names = {o.name for r in _read_folder(dirname, fileids).values() for o in r.objects}
    if not names:
        raise ValueError(f"no <object> in the annotations of VOC folder {dirname}")
    return sorted(names)


def _listing(pairs: Sequence[Tuple[str, str]]) -> str:
    lines = [f"  {path}: {label}" for path, label in pairs[:NUM_LISTED]]
    if len(pairs) > NUM_LISTED:
        lines.append(f"  ... and {len(pairs) - NUM_LISTED} more")
    return "\n".join(lines)


def _image_size(record: VOCRecord) -> Tuple[int, int]:
    """(height, width) from the XML, else from the image header (0, 0 if it cannot be read:
    the image check reports the file)."""
    if record.width and record.height:
        return record.height, record.width
    try:
        with Image.open(record.file_name) as image:
            width, height = oriented_size(image)
    except (OSError, SyntaxError, ValueError):
        return 0, 0
    return height, width


def load_voc_folder(
    dirname: str,
    split: str,
    class_names: Sequence[str],
    ignore_unknown: bool = False,
    records: Optional[Dict[str, VOCRecord]] = None,
) -> List[dict]:
    """Detectron2 dataset dicts of one split (see the module docstring for the conventions).

    Args:
        class_names: the classes in training order; ``category_id`` is the index in it.
        ignore_unknown: drop objects whose label is not in ``class_names``, with one warning
            listing them; False: raise :class:`UnknownLabelsError` listing them.
        records: already parsed annotations of the split (from :func:`register_voc_dataset`).
    Returns:
        Dicts with ``file_name``, ``image_id`` (the file id), ``height``, ``width`` and
        ``annotations`` (``category_id``, ``bbox`` XYXY_ABS, ``bbox_mode``, ``difficult``).
    """
    ids = voc_split_ids(dirname, split)
    records = records if records is not None else _read_folder(dirname, ids)
    index = {name: i for i, name in enumerate(class_names)}
    unknown = [(records[i].annotation, o.name) for i in ids for o in records[i].objects]
    unknown = [(path, name) for path, name in unknown if name not in index]
    if unknown and not ignore_unknown:
        raise UnknownLabelsError(
            f"VOC folder {dirname} split {split!r}: {len(unknown)} object(s) with labels outside "
            f"the classes {list(class_names)}:\n{_listing(unknown)}\nFix these labels, add them to "
            "the class names, or drop these objects (ignore_unknown).",
            unknown,
        )
    if unknown:
        logger.warning(
            f"VOC folder {dirname} split {split!r}: dropping {len(unknown)} objects whose labels "
            f"are outside the classes {list(class_names)}:\n{_listing(unknown)}"
        )
    dicts = []
    for fileid in ids:
        record = records[fileid]
        height, width = _image_size(record)
        annotations = [
            {
                "category_id": index[o.name],
                "bbox": list(o.box),
                "bbox_mode": BoxMode.XYXY_ABS,
                "difficult": int(o.difficult),
            }
            for o in record.objects
            if o.name in index
        ]
        dicts.append(
            {
                "file_name": record.file_name,
                "image_id": fileid,
                "height": height,
                "width": width,
                "annotations": annotations,
            }
        )
    return dicts


def register_voc_dataset(
    name: str,
    dirname: str,
    split: str,
    class_names: Optional[Sequence[str]] = None,
    ignore_unknown: bool = False,
) -> List[str]:
    """Register one split of a Pascal-VOC-layout folder, evaluated by Detectron2's
    ``PascalVOCDetectionEvaluator``. Every annotation of the split is read and checked now, so
    mistakes stop registration (not training); a name registered before is replaced.

    Args:
        class_names: the classes in training order; default: :func:`voc_class_names` (the
            labels of all the folder's splits, sorted).
        ignore_unknown: see :func:`load_voc_folder`.
    Returns:
        The class names.
    """
    if not os.path.isdir(dirname):
        raise FileNotFoundError(f"VOC folder {dirname} not found")
    ids = voc_split_ids(dirname, split)
    records = _read_folder(dirname, ids)
    class_names = list(class_names) if class_names else voc_class_names(dirname)
    dicts = load_voc_folder(dirname, split, class_names, ignore_unknown, records)
    if name in DatasetCatalog.list():
        DatasetCatalog.remove(name)
        MetadataCatalog.remove(name)
    DatasetCatalog.register(name, lambda: copy.deepcopy(dicts))
    MetadataCatalog.get(name).set(
        thing_classes=class_names,
        dirname=dirname,
        year=VOC_EVAL_YEAR,
        split=split,
        evaluator_type="pascal_voc",
    )
    return class_names
