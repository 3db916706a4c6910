"""Keypoints of COCO-format datasets in a *union layout*, for a model that predicts J keypoints
per object whatever its class.

Two kinds of COCO keypoint json are read:

* **shared**: every category that has keypoints lists the same ``keypoints`` names (COCO's
  ``person_keypoints*.json``). The J names are those names, unchanged, and every such class owns
  all J of them.
* **per class** (TF Object Detection API style): each category lists its own ``keypoints`` names
  and each annotation has ``3 *`` its category's count of values. The union's names are
  ``f"{category_name}_{keypoint_name}"``, category after category in contiguous class order, and a
  class owns the slice of its own keypoints. Annotations are remapped to ``3 * J`` values, zeros
  (COCO's "not labelled") outside their class's slice.

Categories without ``keypoints`` (or with ``[]``) own no keypoint; their annotations get ``3 * J``
zeros, so that every annotation of a keypoint dataset has the same length, as Detectron2's
``annotations_to_instances`` needs.

Left/right pairs for Detectron2's ``keypoint_flip_map`` follow one rule: two keypoints of the same
category are a pair when swapping the words "left" and "right" in one's name gives the other's
(``left_eye`` / ``right_eye``, ``upper_left`` / ``upper_right``). A "word" is delimited by
non-letters or a following capital (``left_eye``, ``leftEye``; not ``bright``). Keypoints without a
partner, such as ``nose`` or ``top``, map to themselves under a flip.

Shape shorthand: K classes, J keypoints of the union layout.
"""

import dataclasses
import hashlib
import json
import logging
import os
import re
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets import load_coco_json
from detectron2.utils.colormap import colormap
from detectron2.utils.file_io import PathManager

from .synthetic import write_json_atomically

__all__ = [
    "KeypointLayout",
    "keypoint_layout",
    "keypoint_flip_pairs",
    "to_union_keypoints",
    "union_coco_json",
    "load_coco_keypoint_json",
    "keypoint_cache_dir",
    "keypoint_metadata",
]

logger = logging.getLogger(__name__)

# Bump when union_coco_json writes something else, so that cached union jsons are remade.
UNION_JSON_VERSION = 1
CACHE_FOLDER = "centernet_d2_keypoints"  # under tempfile.gettempdir()

Color = Tuple[int, int, int]

_LEFT_RIGHT = re.compile(r"(?<![A-Za-z])(left|right|Left|Right|LEFT|RIGHT)(?![a-z])")
_SWAP = {"left": "right", "right": "left", "Left": "Right", "Right": "Left"}
_SWAP.update({"LEFT": "RIGHT", "RIGHT": "LEFT"})


@dataclasses.dataclass(frozen=True)
class KeypointLayout:
    """
    Where each class's keypoints sit among the J keypoints that a model predicts per object.

    Attributes:
        names: the J keypoint names (Detectron2's metadata ``keypoint_names``).
        class_keypoints: per contiguous class id (K lists), the indices into ``names`` of its
            keypoints, in its category's order; ``[]`` for a class without keypoints.
        flip_map: ``(name_a, name_b)`` left/right pairs (metadata ``keypoint_flip_map``; see the
            module docstring for the rule); ``[]`` when there is none.
        connection_rules: ``(name_a, name_b, (r, g, b))``, 0-255, one per edge of the
            categories' COCO ``skeleton`` (metadata ``keypoint_connection_rules``, which
            Detectron2's ``Visualizer`` draws); one colour per class.
        shared: True when every category with keypoints lists the same names (then ``names``
            are those names and annotations keep their keypoints as they are).
        class_names: the K class names, in contiguous id order (for messages).
    """

    names: List[str]
    class_keypoints: List[List[int]]
    flip_map: List[Tuple[str, str]]
    connection_rules: List[Tuple[str, str, Color]]
    shared: bool
    class_names: List[str]

    @property
    def num_keypoints(self) -> int:
        """J."""
        return len(self.names)

    def as_metadata(self) -> Dict[str, Any]:
        """The ``MetadataCatalog`` attributes that describe this layout: ``keypoint_names``,
        ``keypoint_flip_map``, ``keypoint_connection_rules``, ``class_keypoints``."""
        return {
            "keypoint_names": list(self.names),
            "keypoint_flip_map": list(self.flip_map),
            "keypoint_connection_rules": list(self.connection_rules),
            "class_keypoints": [list(k) for k in self.class_keypoints],
        }


def _swap_left_right(name: str) -> str:
    return _LEFT_RIGHT.sub(lambda m: _SWAP[m.group(0)], name)


def keypoint_flip_pairs(names: Sequence[str]) -> List[Tuple[str, str]]:
    """
    The left/right pairs among ``names`` (one category's keypoints): ``(a, b)`` with ``b`` the
    name that swapping the words "left" and "right" in ``a`` gives, ``a`` before ``b`` in
    ``names``. E.g. ``["nose", "left_eye", "right_eye"]`` -> ``[("left_eye", "right_eye")]``.
    """
    index = {n: i for i, n in enumerate(names)}
    pairs = []
    for i, a in enumerate(names):
        b = _swap_left_right(a)
        if b != a and index.get(b, -1) > i:
            pairs.append((a, b))
    return pairs


def _category_keypoints(cat: Mapping[str, Any], where: str) -> List[str]:
    """The ``keypoints`` names of a COCO category ([] when absent), checked."""
    names = cat.get("keypoints") or []
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) for n in names):
        raise ValueError(
            f"{where}: category {cat.get('name')!r} has 'keypoints' {names!r}; it must be a list "
            "of names"
        )
    if len(set(names)) != len(names):
        raise ValueError(
            f"{where}: category {cat.get('name')!r} lists a keypoint name twice: {list(names)}"
        )
    return list(names)


def _category_skeleton(cat: Mapping[str, Any], num: int, where: str) -> List[Tuple[int, int]]:
    """The ``skeleton`` of a COCO category as 0-based index pairs, checked against its ``num``
    keypoints."""
    skeleton = cat.get("skeleton") or []
    pairs = []
    for edge in skeleton:
        ok = isinstance(edge, (list, tuple)) and len(edge) == 2
        ok = ok and all(isinstance(i, int) and 1 <= i <= num for i in edge)
        if not ok:
            raise ValueError(
                f"{where}: category {cat.get('name')!r} has a skeleton edge {edge!r}; edges are "
                f"pairs of 1-based indices into its {num} keypoints"
            )
        pairs.append((edge[0] - 1, edge[1] - 1))
    return pairs


def _ordered_categories(
    categories: Sequence[Mapping[str, Any]], id_map: Optional[Mapping[int, int]], where: str
) -> List[Mapping[str, Any]]:
    """Categories in contiguous class order; ``id_map`` default: sorted ids, as
    ``load_coco_json``."""
    ids = [c.get("id") for c in categories]
    if len(set(ids)) != len(ids):
        raise ValueError(f"{where}: category ids are not unique: {ids}")
    if id_map is None:
        id_map = {cid: k for k, cid in enumerate(sorted(ids))}
    if sorted(id_map.get(cid, -1) for cid in ids) != list(range(len(ids))):
        raise ValueError(
            f"{where}: thing_dataset_id_to_contiguous_id {dict(id_map)} does not map the "
            f"category ids {ids} onto 0..{len(ids) - 1}"
        )
    return sorted(categories, key=lambda c: id_map[c["id"]])


def keypoint_layout(
    categories: Sequence[Mapping[str, Any]],
    thing_dataset_id_to_contiguous_id: Optional[Mapping[int, int]] = None,
    source: str = "categories",
) -> KeypointLayout:
    """
    The union layout of the keypoints of COCO ``categories`` (see the module docstring).

    Args:
        categories: COCO category dicts (``id``, ``name``, optional ``keypoints`` and
            ``skeleton``).
        thing_dataset_id_to_contiguous_id: category id -> contiguous class id (0..K-1); default
            the ids in sorted order, as Detectron2's ``load_coco_json`` sets it.
        source: what the categories come from (a json file), for error messages.

    Returns:
        The layout; J = 0 (no names) when no category has keypoints.
    """
    cats = _ordered_categories(categories, thing_dataset_id_to_contiguous_id, source)
    kp_names = [_category_keypoints(c, source) for c in cats]
    skeletons = [_category_skeleton(c, len(n), source) for c, n in zip(cats, kp_names)]
    owned = [n for n in kp_names if n]
    shared = all(n == owned[0] for n in owned)
    palette = colormap(rgb=True, maximum=255)

    names: List[str] = list(owned[0]) if shared and owned else []
    class_keypoints: List[List[int]] = []
    flip_map: List[Tuple[str, str]] = []
    rules: List[Tuple[str, str, Color]] = []
    edges = set()  # frozensets of two names: a skeleton edge listed by several classes counts once
    for k, (cat, own, skeleton) in enumerate(zip(cats, kp_names, skeletons)):
        if shared:
            union = list(own)
            class_keypoints.append(list(range(len(own))))
        else:
            union = [f"{cat['name']}_{n}" for n in own]
            class_keypoints.append(list(range(len(names), len(names) + len(own))))
            names += union
            flip_map += [
                (f"{cat['name']}_{a}", f"{cat['name']}_{b}") for a, b in keypoint_flip_pairs(own)
            ]
        color = tuple(int(c) for c in palette[k % len(palette)])
        for a, b in skeleton:
            if frozenset((union[a], union[b])) not in edges:
                edges.add(frozenset((union[a], union[b])))
                rules.append((union[a], union[b], color))
    if shared:
        flip_map = keypoint_flip_pairs(names)
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise ValueError(
            f"{source}: the union keypoint names category_keypoint repeat {dup}; rename a "
            "category or a keypoint"
        )
    return KeypointLayout(
        names=names,
        class_keypoints=class_keypoints,
        flip_map=flip_map,
        connection_rules=rules,
        shared=shared,
        class_names=[c["name"] for c in cats],
    )


def _union_keypoints(
    keypoints: Optional[Sequence[float]], cls: int, layout: KeypointLayout, where: str
) -> List[float]:
    """One annotation's keypoints (3 per keypoint of its class ``cls``, or none) -> 3 * J."""
    if not 0 <= cls < len(layout.class_keypoints):
        raise ValueError(
            f"{where}: an annotation has class {cls}, not one of the {len(layout.class_names)} "
            "categories"
        )
    own = layout.class_keypoints[cls]
    out = [0.0] * (3 * layout.num_keypoints)
    if not keypoints:  # unlabelled, or a class without keypoints
        return out
    if len(keypoints) != 3 * len(own):
        raise ValueError(
            f"{where}: an annotation of category {layout.class_names[cls]!r} has "
            f"{len(keypoints)} keypoint values; its category has {len(own)} keypoints, so "
            f"{3 * len(own)} values (x, y, v each) are expected"
        )
    for i, j in enumerate(own):
        out[3 * j : 3 * j + 3] = keypoints[3 * i : 3 * i + 3]
    return out


def to_union_keypoints(
    dataset_dicts: Sequence[Dict[str, Any]],
    layout: KeypointLayout,
    category_to_class: Optional[Mapping[int, int]] = None,
    dataset_name: Optional[str] = None,
) -> List[Dict[str, Any]]:
    """
    Detectron2 dataset dicts with every annotation's ``keypoints`` in the union layout: 3 * J
    values, the class's own keypoints at its ``layout.class_keypoints`` slots, zeros elsewhere;
    3 * J zeros for an annotation without keypoints (no key, or ``[]``). Values are copied as
    they are (dicts from ``load_coco_json`` already have its +0.5 on x and y).

    Args:
        dataset_dicts: list of dataset dicts (``file_name``, ``annotations``); not modified.
        layout: from :func:`keypoint_layout`.
        category_to_class: an annotation's ``category_id`` -> contiguous class id; default the
            identity (dicts of ``load_coco_json`` with a dataset name).
        dataset_name: named in error messages.

    Returns:
        New dataset dicts (the records and annotations are copies).

    Raises:
        ValueError: an annotation whose keypoint count is not its category's, naming the
            dataset, the image file and the category.
    """
    out = []
    for record in dataset_dicts:
        where = f"image {record.get('file_name')}"
        if dataset_name:
            where = f"dataset {dataset_name!r}, {where}"
        annos = []
        for anno in record.get("annotations", []):
            cid = anno["category_id"]
            cls = cid if category_to_class is None else category_to_class.get(cid, -1)
            kps = _union_keypoints(anno.get("keypoints"), cls, layout, where)
            annos.append({**anno, "keypoints": kps})
        out.append({**record, "annotations": annos})
    return out


def union_coco_json(
    coco: Mapping[str, Any],
    layout: KeypointLayout,
    thing_dataset_id_to_contiguous_id: Optional[Mapping[int, int]] = None,
    source: str = "json",
) -> Dict[str, Any]:
    """
    A COCO json dict in the union layout, for COCO's keypoint AP (which needs one keypoint count
    for every annotation): same images; annotations with 3 * J ``keypoints`` (COCO's own
    convention, as in ``coco``) and their ``num_keypoints``, other fields (``area``, ...) as they
    were; every category lists the J union names and its own ``skeleton`` as union indices.

    Args:
        coco: the original json, as ``json.load`` gives it; not modified.
        layout: :func:`keypoint_layout` of ``coco["categories"]``.
        thing_dataset_id_to_contiguous_id: as given to :func:`keypoint_layout`.
        source: the json file, for error messages.
    """
    cats = coco["categories"]
    id_map = thing_dataset_id_to_contiguous_id
    if id_map is None:
        id_map = {cid: k for k, cid in enumerate(sorted(c["id"] for c in cats))}
    categories = []
    for cat in cats:
        own = layout.class_keypoints[id_map[cat["id"]]]
        skeleton = _category_skeleton(cat, len(own), source)
        categories.append(
            {
                **cat,
                "keypoints": list(layout.names),
                "skeleton": [[own[a] + 1, own[b] + 1] for a, b in skeleton],
            }
        )
    annotations = []
    for anno in coco.get("annotations", []):
        where = f"{source}, annotation id {anno.get('id')} (image id {anno.get('image_id')})"
        cls = id_map.get(anno.get("category_id"), -1)
        kps = _union_keypoints(anno.get("keypoints"), cls, layout, where)
        annotations.append(
            {**anno, "keypoints": kps, "num_keypoints": sum(v > 0 for v in kps[2::3])}
        )
    return {**coco, "annotations": annotations, "categories": categories}


def keypoint_cache_dir() -> str:
    """Where union jsons are cached: ``tempfile.gettempdir()/centernet_d2_keypoints``."""
    return os.path.join(tempfile.gettempdir(), CACHE_FOLDER)


def _union_json_path(json_file: str) -> str:
    """The cache file of ``json_file``'s union json, named from a sha1 of its absolute path,
    size and modification time (a changed json gets a new file)."""
    path = os.path.abspath(json_file)
    st = os.stat(path)
    key = f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0{UNION_JSON_VERSION}"
    digest = hashlib.sha1(key.encode("utf-8")).hexdigest()
    stem = os.path.splitext(os.path.basename(path))[0]
    return os.path.join(keypoint_cache_dir(), f"{stem}-{digest}.json")


def _mentions_keypoints(json_file: str, chunk: int = 1 << 24) -> bool:
    """Whether the file contains the key ``"keypoints"``; a byte scan, far cheaper than
    parsing, so that a json without keypoints is parsed only once (by ``load_coco_json``)."""
    token = b'"keypoints"'
    tail = b""
    with open(json_file, "rb") as f:
        while True:
            block = f.read(chunk)
            if not block:
                return False
            if token in tail + block:
                return True
            tail = block[-(len(token) - 1) :]


def load_coco_keypoint_json(
    json_file: str, image_root: str, dataset_name: Optional[str] = None
) -> List[Dict[str, Any]]:
    """
    Detectron2's ``load_coco_json``, with the keypoints in the union layout when the json's
    categories have keypoints (a json without keypoints loads exactly as ``load_coco_json``).

    With keypoints and a ``dataset_name``, also sets on ``MetadataCatalog.get(dataset_name)``
    the :meth:`KeypointLayout.as_metadata` attributes (``keypoint_names``,
    ``keypoint_flip_map``, ``keypoint_connection_rules``, ``class_keypoints``) and
    ``keypoint_json_file``: the json to evaluate keypoints against. That is ``json_file`` itself
    when its annotations all have the J keypoints already (COCO's person keypoints); otherwise
    (per-class keypoints, or annotations without keypoints) a union-layout version of it
    (:func:`union_coco_json`), written once to :func:`keypoint_cache_dir` and reused while
    ``json_file`` is unchanged.

    Args:
        json_file, image_root, dataset_name: as ``load_coco_json``.

    Returns:
        list[dict]: Detectron2 dataset dicts; with keypoints, every annotation has 3 * J.
    """
    local = PathManager.get_local_path(json_file)
    if not _mentions_keypoints(local):
        return load_coco_json(json_file, image_root, dataset_name)
    with open(local) as f:
        coco = json.load(f)
    layout = keypoint_layout(coco.get("categories", []), source=json_file)
    if layout.num_keypoints == 0:
        del coco
        return load_coco_json(json_file, image_root, dataset_name)

    # load_coco_json with a dataset name maps the category ids to the same contiguous ids as
    # keypoint_layout (sorted ids); without one it keeps the json's ids
    id_map = {cid: k for k, cid in enumerate(sorted(c["id"] for c in coco["categories"]))}
    keypoint_json_file = json_file
    rewrite = any(
        len(a.get("keypoints") or []) != 3 * layout.num_keypoints
        for a in coco.get("annotations", [])
    )
    if (rewrite or not layout.shared) and dataset_name:
        keypoint_json_file = _union_json_path(local)
        if not os.path.isfile(keypoint_json_file):
            union = union_coco_json(coco, layout, id_map, source=json_file)
            os.makedirs(os.path.dirname(keypoint_json_file), exist_ok=True)
            write_json_atomically(union, keypoint_json_file)
            logger.info(f"Wrote the union keypoints of {json_file} to {keypoint_json_file}")
            del union
    del coco  # before load_coco_json parses the file again

    dicts = load_coco_json(json_file, image_root, dataset_name)
    dicts = to_union_keypoints(dicts, layout, None if dataset_name else id_map, dataset_name)
    if dataset_name:
        MetadataCatalog.get(dataset_name).set(
            **layout.as_metadata(), keypoint_json_file=keypoint_json_file
        )
    return dicts


def keypoint_metadata(dataset_name: str):
    """The metadata of a registered dataset with its keypoint attributes (``keypoint_names``,
    ...), which the keypoint loaders set when the data is loaded: loaded here if not yet. A
    dataset without keypoints has no ``keypoint_names``."""
    meta = MetadataCatalog.get(dataset_name)
    if not meta.get("keypoint_names"):
        DatasetCatalog.get(dataset_name)
    return meta
