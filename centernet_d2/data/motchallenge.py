"""MOTChallenge folders (MOT16, MOT17, MOT20) -> CenterTrack's COCO-video json (see :mod:`.video`):
:func:`mot_to_coco_video`, :func:`convert_mot`; ``tools/convert_mot.py`` is the command line.

A MOTChallenge split folder holds one folder per sequence::

    <seq>/seqinfo.ini          # [Sequence] imDir, seqLength, imWidth, imHeight, imExt, frameRate
    <seq>/img1/000001.jpg ...  # frames 1 .. seqLength
    <seq>/gt/gt.txt            # frame,id,x,y,w,h,conf,class,visibility per line

Rows of ``classes`` become objects (category ``k + 1`` for ``classes[k]``; default pedestrians)
unless their ``conf`` is 0 (not ground truth); rows of ``ignore_classes`` become crowd annotations
(``iscrowd`` 1, the first category) whatever their ``conf``, which evaluation ignores, as
TrackEval does with MOTChallenge's distractors (classes 2, 7, 8 and 12); other classes are
dropped. Every object is kept whatever its visibility, which each annotation records
(``visibility``): evaluation counts them all, as TrackEval; training leaves out the less visible
ones by ``DATALOADER.MIN_VISIBILITY`` (CenterTrack: 0.25).
Boxes are kept as the file has them (XYWH, its x, y unshifted, as CenterTrack's converter).
``half`` splits each sequence as CenterTrack's ``train_half`` / ``val_half``: frames
``1 .. n // 2 + 1`` and ``n // 2 + 2 .. n`` of ``n``, renumbered from 1 in ``frame_id``, with no
``prev_image_id`` / ``next_image_id`` links across the cut. A sequence without ``gt/gt.txt`` (a
test split) gives images without annotations.
"""

import configparser
import json
import os
from typing import Dict, List, Optional, Sequence

import numpy as np

__all__ = ["HALVES", "MOT_CLASSES", "convert_mot", "mot_to_coco_video", "read_seqinfo"]

# MOTChallenge's class ids (MOT16/17 paper, table 5; 13 is MOT20's crowd)
MOT_CLASSES = {
    1: "pedestrian",
    2: "person_on_vehicle",
    3: "car",
    4: "bicycle",
    5: "motorbike",
    6: "non_motorized_vehicle",
    7: "static_person",
    8: "distractor",
    9: "occluder",
    10: "occluder_on_the_ground",
    11: "occluder_full",
    12: "reflection",
    13: "crowd",
}
HALVES = ("train", "val")
_SEQINFO_KEYS = ("imDir", "seqLength", "imWidth", "imHeight", "imExt")
_GT_COLUMNS = 9  # frame, id, x, y, w, h, conf, class, visibility


def read_seqinfo(seq_dir: str) -> Dict[str, object]:
    """``<seq_dir>/seqinfo.ini``'s ``[Sequence]`` section: ``imDir``, ``imExt`` (str),
    ``seqLength``, ``imWidth``, ``imHeight`` (int), ``frameRate`` (int, 0 when absent)."""
    path = os.path.join(seq_dir, "seqinfo.ini")
    if not os.path.isfile(path):
        raise FileNotFoundError(f"MOT sequence info {path} not found")
    parser = configparser.ConfigParser()
    parser.optionxform = str  # keep the keys' case
    parser.read(path)
    if "Sequence" not in parser:
        raise ValueError(f"{path} has no [Sequence] section")
    info = dict(parser["Sequence"])
    for key in _SEQINFO_KEYS:
        if key not in info:
            raise ValueError(f"{path} has no {key!r} in [Sequence]")
    out: Dict[str, object] = {"imDir": info["imDir"], "imExt": info["imExt"]}
    for key in ("seqLength", "imWidth", "imHeight", "frameRate"):
        try:
            out[key] = int(info.get(key, 0))
        except ValueError:
            raise ValueError(f"{path}: {key} must be an integer, got {info[key]!r}") from None
    return out


def _read_gt(path: str, num_frames: int) -> np.ndarray:
    """gt.txt -> (R, 9) float64; ``ValueError`` naming the file for another layout."""
    try:
        rows = np.loadtxt(path, delimiter=",", ndmin=2, dtype=np.float64)
    except ValueError as e:
        raise ValueError(f"{path}: not MOT ground truth (frame,id,x,y,w,h,conf,class,vis): {e}")
    if rows.size == 0:
        return np.zeros((0, _GT_COLUMNS))
    if rows.shape[1] < _GT_COLUMNS:
        raise ValueError(
            f"{path} has {rows.shape[1]} columns; MOT16/17/20 ground truth has {_GT_COLUMNS}: "
            "frame,id,x,y,w,h,conf,class,visibility"
        )
    frames = rows[:, 0]
    bad = np.flatnonzero((frames < 1) | (frames > num_frames) | (frames != np.round(frames)))
    if len(bad):
        raise ValueError(
            f"{path}, line {bad[0] + 1}: frame {rows[bad[0], 0]:g} is not in 1..{num_frames} "
            "(seqLength of seqinfo.ini)"
        )
    return rows[:, :_GT_COLUMNS]


def _sequences(mot_root: str, sequences: Optional[Sequence[str]]) -> List[str]:
    if not os.path.isdir(mot_root):
        raise FileNotFoundError(f"MOT folder {mot_root} not found")
    found = sorted(
        d for d in os.listdir(mot_root) if os.path.isfile(os.path.join(mot_root, d, "seqinfo.ini"))
    )
    if sequences is None:
        if not found:
            raise FileNotFoundError(f"no sequence folder (<seq>/seqinfo.ini) in {mot_root}")
        return found
    missing = [s for s in sequences if s not in found]
    if missing:
        raise FileNotFoundError(
            f"sequence {missing[0]!r} (no {missing[0]}/seqinfo.ini) not in {mot_root}; "
            f"sequences there: {found}"
        )
    return list(sequences)


def mot_to_coco_video(
    mot_root: str,
    *,
    half: Optional[str] = None,
    classes: Sequence[int] = (1,),
    ignore_classes: Sequence[int] = (),
    sequences: Optional[Sequence[str]] = None,
) -> dict:
    """
    The COCO-video json of a MOTChallenge split folder (see the module docstring).

    Args:
        mot_root: the split folder (e.g. ``MOT17/train``); image ``file_name`` are relative to it.
        half: None (whole sequences) or one of :data:`HALVES`.
        classes: MOT class ids that become objects, category ``k + 1`` for ``classes[k]``.
        ignore_classes: MOT class ids that become crowd annotations.
        sequences: the sequence folders to convert, in this order (MOT17: the ``-FRCNN`` ones,
            as CenterTrack); default all, sorted.

    Returns:
        The json as a dict: ``videos`` (id, ``file_name`` = sequence, ``frame_rate``),
        ``images``, ``annotations`` (with ``track_id`` = the MOT id, ``visibility``),
        ``categories``.
    """
    if half is not None and half not in HALVES:
        raise ValueError(f"half must be None or one of {HALVES}, got {half!r}")
    classes, ignore_classes = [int(c) for c in classes], [int(c) for c in ignore_classes]
    if not classes:
        raise ValueError("classes must name at least one MOT class id")
    both = sorted(set(classes) & set(ignore_classes))
    if both:
        raise ValueError(f"MOT classes {both} are in both classes and ignore_classes")
    category_of = {c: k + 1 for k, c in enumerate(classes)}
    out = {
        "info": {"description": f"MOTChallenge {mot_root}" + (f", {half} half" if half else "")},
        "videos": [],
        "images": [],
        "annotations": [],
        "categories": [
            {"id": k, "name": MOT_CLASSES.get(c, f"class_{c}")} for c, k in category_of.items()
        ],
    }
    for video_id, seq in enumerate(_sequences(mot_root, sequences), start=1):
        seq_dir = os.path.join(mot_root, seq)
        info = read_seqinfo(seq_dir)
        n = info["seqLength"]
        first, last = {None: (1, n), "train": (1, n // 2 + 1), "val": (n // 2 + 2, n)}[half]
        image_dir = os.path.join(seq_dir, info["imDir"])
        on_disk = set(os.listdir(image_dir)) if os.path.isdir(image_dir) else set()
        out["videos"].append({"id": video_id, "file_name": seq, "frame_rate": info["frameRate"]})
        image_id_of = {}  # MOT frame -> image id
        for frame in range(first, last + 1):
            name = f"{frame:06d}{info['imExt']}"
            if name not in on_disk:
                raise FileNotFoundError(f"MOT frame {os.path.join(image_dir, name)} not found")
            image_id = len(out["images"]) + 1
            image_id_of[frame] = image_id
            out["images"].append(
                {
                    "id": image_id,
                    "file_name": f"{seq}/{info['imDir']}/{name}",
                    "height": info["imHeight"],
                    "width": info["imWidth"],
                    "video_id": video_id,
                    "frame_id": frame - first + 1,
                    "prev_image_id": image_id - 1 if frame > first else -1,
                    "next_image_id": image_id + 1 if frame < last else -1,
                }
            )
        gt_file = os.path.join(seq_dir, "gt", "gt.txt")
        if not os.path.isfile(gt_file):
            continue
        for row in _read_gt(gt_file, n):
            frame, track_id, x, y, w, h, conf, cls, visibility = row.tolist()
            cls = int(cls)
            if int(frame) not in image_id_of:
                continue
            if cls not in ignore_classes and (cls not in category_of or conf == 0):
                continue
            out["annotations"].append(
                {
                    "id": len(out["annotations"]) + 1,
                    "image_id": image_id_of[int(frame)],
                    "category_id": category_of.get(cls, 1),
                    "track_id": int(track_id),
                    "bbox": [x, y, w, h],
                    "area": w * h,
                    "iscrowd": int(cls in ignore_classes),
                    "visibility": visibility,
                }
            )
    return out


def convert_mot(mot_root: str, json_file: str, **kwargs) -> dict:
    """:func:`mot_to_coco_video` (same keyword arguments), written to ``json_file`` (folders
    made as needed). Returns the json as a dict."""
    coco = mot_to_coco_video(mot_root, **kwargs)
    os.makedirs(os.path.dirname(os.path.abspath(json_file)), exist_ok=True)
    with open(json_file, "w") as f:
        json.dump(coco, f)
    return coco
