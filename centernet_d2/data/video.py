"""Video datasets in CenterTrack's COCO-video json: :func:`load_coco_video_json`,
:func:`register_coco_video_dataset`.

The format is COCO's with a top-level ``"videos"`` list (``{"id", "file_name"}``), per image
``"video_id"`` and ``"frame_id"`` (1, 2, ... in the video's order) and, optionally,
``"prev_image_id"`` / ``"next_image_id"`` (-1 at the ends; derived from the frame order when
absent), and per annotation ``"track_id"``, the object's identity, unique within its video. The
dataset dicts are Detectron2's (``load_coco_json``) with those image fields added and
``track_id`` in each annotation.

CenterTrack's MOT jsons give ignored persons ``category_id`` -1, which is no category;
``tools/convert_mot.py`` writes them as crowd annotations (``iscrowd`` 1) instead.
"""

import json
import os
from collections import Counter, defaultdict
from typing import Callable, Dict, List, Optional, Sequence

import torch
from detectron2.data import MetadataCatalog, build_detection_test_loader
from detectron2.data.datasets import load_coco_json
from detectron2.utils import comm
from torch.utils.data import Sampler

from .register import register_json_dataset

__all__ = [
    "VIDEO_IMAGE_KEYS",
    "VideoInferenceSampler",
    "build_video_test_loader",
    "drop_hidden_objects",
    "load_coco_video_json",
    "register_coco_video_dataset",
    "sort_video_frames",
]

# per image, in the dataset dicts
VIDEO_IMAGE_KEYS = ("video_id", "frame_id", "prev_image_id", "next_image_id")


def _check_video_json(json_file: str, coco: dict) -> Dict[int, dict]:
    """``ValueError`` naming the file, the key and the item when ``coco`` is no COCO-video json.
    Returns the image fields of :data:`VIDEO_IMAGE_KEYS` by image id."""
    where = f"COCO-video json {json_file}"
    for key in ("videos", "images", "annotations", "categories"):
        if not isinstance(coco.get(key), list):
            raise ValueError(f"{where} has no {key!r} list (a video dataset needs one)")
    video_ids = {v.get("id") for v in coco["videos"]}
    frames = defaultdict(list)  # video id -> [(frame id, image id)]
    for image in coco["images"]:
        for key in ("id", "video_id", "frame_id"):
            if key not in image:
                raise ValueError(
                    f"{where}: image {image.get('id', image.get('file_name'))!r} has no {key!r}"
                )
        if image["video_id"] not in video_ids:
            raise ValueError(
                f"{where}: image {image['id']} has video_id {image['video_id']!r}, which is not "
                "in 'videos'"
            )
        frames[image["video_id"]].append((image["frame_id"], image["id"]))
    fields = {}
    for video_id, video_frames in frames.items():
        video_frames.sort()
        for (f0, i0), (f1, i1) in zip(video_frames, video_frames[1:]):
            if f0 == f1:
                raise ValueError(
                    f"{where}: images {i0} and {i1} are both frame {f0} of video {video_id}"
                )
        ids = [i for _, i in video_frames]
        for k, (frame_id, image_id) in enumerate(video_frames):
            fields[image_id] = {
                "video_id": video_id,
                "frame_id": frame_id,
                "prev_image_id": ids[k - 1] if k > 0 else -1,
                "next_image_id": ids[k + 1] if k + 1 < len(ids) else -1,
            }
    for image in coco["images"]:  # the json's own links win
        for key in ("prev_image_id", "next_image_id"):
            if key in image:
                fields[image["id"]][key] = image[key]
    category_ids = {c["id"] for c in coco["categories"]}
    for anno in coco["annotations"]:
        if "track_id" not in anno:
            raise ValueError(f"{where}: annotation {anno.get('id')!r} has no 'track_id'")
        if anno.get("category_id") not in category_ids:
            raise ValueError(
                f"{where}: annotation {anno.get('id')!r} has category_id "
                f"{anno.get('category_id')!r}, which is not in 'categories' "
                f"{sorted(category_ids)} (CenterTrack's MOT jsons mark ignored persons so; "
                "convert the MOT folders with tools/convert_mot.py)"
            )
    return fields


def drop_hidden_objects(dicts: List[dict], min_visibility: float) -> List[dict]:
    """The dataset dicts with the objects whose annotation has a ``visibility`` below
    ``min_visibility`` left out (crowd annotations and those without a visibility kept); for
    training sets only (CenterTrack trains on MOT objects at least 0.25 visible; evaluation
    counts them all). New dicts, the given ones unchanged."""
    if min_visibility <= 0:
        return dicts
    kept = []
    for d in dicts:
        annotations = [
            a
            for a in d.get("annotations", [])
            if a.get("iscrowd", 0) or a.get("visibility", 1.0) >= min_visibility
        ]
        kept.append(dict(d, annotations=annotations))
    return kept


def load_coco_video_json(
    json_file: str, image_root: str, dataset_name: Optional[str] = None
) -> List[dict]:
    """
    Load a COCO-video json as Detectron2 dataset dicts.

    Args:
        json_file: the json (see the module docstring); checked first, ``ValueError`` naming the
            file, the key and the image or annotation that lacks it.
        image_root: the images' ``file_name`` are relative to it.
        dataset_name: as for ``load_coco_json``: sets the metadata's ``thing_classes`` and id
            mapping, and ``video_names`` (video id -> the video's ``file_name`` or ``name``).

    Returns:
        ``load_coco_json``'s dicts with :data:`VIDEO_IMAGE_KEYS` and ``track_id`` (and
        ``visibility`` where the json has it) per annotation,
        in the json's image order.
    """
    if not os.path.isfile(json_file):
        raise FileNotFoundError(f"COCO-video json {json_file} not found")
    with open(json_file) as f:
        coco = json.load(f)
    fields = _check_video_json(json_file, coco)
    dicts = load_coco_json(
        json_file, image_root, dataset_name, extra_annotation_keys=["track_id", "visibility"]
    )
    for d in dicts:
        d.update(fields[d["image_id"]])
    if dataset_name is not None:
        names = {v["id"]: str(v.get("file_name", v.get("name", v["id"]))) for v in coco["videos"]}
        MetadataCatalog.get(dataset_name).set(video_names=names)
    return dicts


def register_coco_video_dataset(name: str, json_file: str, image_root: str) -> None:
    """
    Register a COCO-video json as dataset ``name`` (loaded by :func:`load_coco_video_json` when
    first asked for), evaluated by tracking metrics (``evaluator_type`` "mot"). Both paths must
    exist; a name registered before is replaced.
    """
    register_json_dataset(
        name, json_file, image_root, load_coco_video_json, "mot", "COCO-video json"
    )


def sort_video_frames(dicts: List[dict]) -> List[dict]:
    """The frames of ``dicts`` (with "video_id" and "frame_id") ordered by video, then frame:
    the order a tracker needs them in. The videos keep their order of first appearance."""
    first = {}
    for d in dicts:
        first.setdefault(d["video_id"], len(first))
    return sorted(dicts, key=lambda d: (first[d["video_id"]], d["frame_id"]))


class VideoInferenceSampler(Sampler):
    """Detectron2's ``InferenceSampler`` for videos: each process gets whole videos (the one with
    the fewest frames so far takes the next video), their frames in order, so that a tracker on
    each process sees every video from its first frame.

    Args:
        video_ids: per dataset index, its video (frames of a video consecutive, in order; see
            :func:`sort_video_frames`).
    """

    def __init__(self, video_ids: Sequence):
        self._size = len(video_ids)
        rank, world_size = comm.get_rank(), comm.get_world_size()
        frames = Counter(video_ids)
        load, owner = [0] * world_size, {}
        for video in dict.fromkeys(video_ids):
            owner[video] = min(range(world_size), key=lambda r: load[r])
            load[owner[video]] += frames[video]
        self._local_indices = [i for i, v in enumerate(video_ids) if owner[v] == rank]

    def __iter__(self):
        yield from self._local_indices

    def __len__(self):
        return len(self._local_indices)


def build_video_test_loader(
    dicts: List[dict], mapper: Callable[[dict], dict], num_workers: int = 0
) -> torch.utils.data.DataLoader:
    """Detectron2's test loader (batch 1) over the frames of video dataset dicts in the order of
    :func:`sort_video_frames`, split across processes by :class:`VideoInferenceSampler`."""
    dicts = sort_video_frames(dicts)
    sampler = VideoInferenceSampler([d["video_id"] for d in dicts])
    return build_detection_test_loader(
        dicts, mapper=mapper, sampler=sampler, num_workers=num_workers
    )
