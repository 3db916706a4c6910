"""Config set-up shared by the tools: a CenterNet cfg from a YAML file and overrides."""

import difflib
import glob
import json
import logging
import os
import re
from typing import Iterator, List, Mapping, Sequence

import torch
import yaml
from detectron2.config import CfgNode, get_cfg
from detectron2.data import DatasetCatalog, MetadataCatalog
from detectron2.data.datasets.builtin_meta import COCO_PERSON_KEYPOINT_NAMES
from detectron2.data.detection_utils import create_keypoint_hflip_indices
from detectron2.utils.logger import log_first_n

from ..config import add_centernet_config, merge_config_file
from ..data.builtin import (
    BUILTIN_SHAPES_SPLITS,
    BUILTIN_SHAPES_VIDEO_SPLITS,
    ensure_builtin_generated,
)
from ..data.keypoints import keypoint_metadata
from ..data.register import check_num_classes, check_registered, dataset_classes
from ..data.stats import dataset_statistics, log_dataset_statistics
from ..utils.cli import ConfigKeyError

# OKS sigma of each keypoint of a set without its own (TEST.KEYPOINT_OKS_SIGMAS empty): the mean
# of COCO's 17 person sigmas (0.025 for eyes to 0.107 for hips)
DEFAULT_OKS_SIGMA = 0.067

__all__ = [
    "setup_cfg",
    "output_stride",
    "fill_class_names",
    "fill_keypoint_settings",
    "prepare_datasets",
    "save_results",
]

logger = logging.getLogger(__name__)


def _config_keys(cfg: CfgNode, prefix: str = "") -> Iterator[str]:
    for key, value in cfg.items():
        if isinstance(value, CfgNode):
            yield from _config_keys(value, f"{prefix}{key}.")
        else:
            yield prefix + key


_TYPE_MISMATCH = re.compile(
    r"Type mismatch \((.*) vs\. (.*)\) with values \((.*) vs\. (.*)\) for config key: (\S+)"
)


def _merge_error(cfg: CfgNode, error: Exception, source: str) -> Exception:
    """yacs's errors of a merge as errors naming the source: an unknown key (with the closest
    valid key), a value of the wrong type, an odd-length override list."""
    message = str(error.args[0]) if error.args else str(error)
    if "Non-existent" in message:  # "Non-existent (config) key: X"
        key = message.rsplit(":", 1)[-1].strip()
        close = difflib.get_close_matches(key, list(_config_keys(cfg)), n=1, cutoff=0.6)
        fix = f"did you mean {close[0]}?" if close else "config.py lists CenterNet's keys"
        return ConfigKeyError(f"{source}: unknown config key {key}; {fix}")
    mismatch = _TYPE_MISMATCH.search(message)
    if mismatch:
        expected, _, default, value, key = mismatch.groups()
        expected = re.sub(r"<class '(\w+)'>", r"\1", expected)
        return ValueError(
            f"{source}: {key} must be of {expected} like its default {default}, got {value!r}"
        )
    return ValueError(f"{source}: {message}")


def setup_cfg(config_file: str, opts: Sequence[str] = ()) -> CfgNode:
    """``get_cfg()`` + :func:`add_centernet_config` + the YAML file + ``KEY VALUE`` overrides.

    ``MODEL.DEVICE`` falls back to "cpu" when it names CUDA and no GPU is present, so the same
    configs run on laptops and GPU servers. Mistakes raise an error naming the file (or the
    command line): ``FileNotFoundError`` for a missing file or ``_BASE_``, :class:`ConfigKeyError`
    for an unknown key with the closest valid key, ``ValueError`` for invalid YAML or a value of
    the wrong type. The datasets of ``DATASETS.TEST`` that are not registered get
    ``MODEL.CENTERNET.CLASS_NAMES`` as their metadata's ``thing_classes``, so that
    ``DefaultPredictor(cfg).metadata`` names the classes of a trained run's config.
    """
    if not os.path.isfile(config_file):
        folder = os.path.dirname(config_file) or "."
        close = difflib.get_close_matches(
            config_file, glob.glob(os.path.join(folder, "*.yaml")), n=1, cutoff=0.7
        )
        fix = f"; did you mean {close[0]}?" if close else ""
        raise FileNotFoundError(f"config file {config_file} not found{fix}")
    cfg = add_centernet_config(get_cfg())
    try:
        merge_config_file(cfg, config_file)
    except FileNotFoundError as e:  # a _BASE_ file
        raise FileNotFoundError(f"{config_file}: file {e.filename or e} not found") from e
    except yaml.YAMLError as e:
        raise ValueError(f"config file {config_file} is not valid YAML: {e}") from e
    except (KeyError, AssertionError, ValueError) as e:
        raise _merge_error(cfg, e, config_file) from e
    flags = [str(k) for k in list(opts)[::2] if str(k).startswith("--")]
    if flags:
        raise ValueError(
            f"command line: {flags[0]} comes after the KEY VALUE config overrides, which take "
            "everything after the first of them: put the options (--...) before the overrides"
        )
    try:
        cfg.merge_from_list(list(opts))
    except (KeyError, AssertionError, ValueError) as e:
        raise _merge_error(cfg, e, "command-line override") from e
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.info("CUDA is not available: MODEL.DEVICE set to cpu")
        cfg.MODEL.DEVICE = "cpu"
    names = list(cfg.MODEL.CENTERNET.CLASS_NAMES)
    for name in cfg.DATASETS.TEST if names else ():
        if name not in DatasetCatalog.list() and not MetadataCatalog.get(name).get("thing_classes"):
            MetadataCatalog.get(name).set(thing_classes=names)
    return cfg


def output_stride(cfg: CfgNode) -> int:
    """The stride of the feature the head runs on, input pixels: from its name ``p<log2
    stride>``, else from the backbone's ``output_shape()``."""
    feature = cfg.MODEL.CENTERNET.IN_FEATURES[0]
    match = re.fullmatch(r"p(\d+)", feature)
    if match:
        return 2 ** int(match.group(1))
    from detectron2.modeling import build_backbone

    return build_backbone(cfg).output_shape()[feature].stride


def fill_class_names(cfg: CfgNode, training: bool = True) -> List[str]:
    """Set ``MODEL.CENTERNET.CLASS_NAMES`` (if empty) to the classes of the first dataset of
    ``DATASETS.TRAIN`` (training) or ``DATASETS.TEST``, so that the run's ``config.yaml`` and
    checkpoints carry them; ``cfg`` must not be frozen. Returns the names."""
    c = cfg.MODEL.CENTERNET
    if not c.CLASS_NAMES:
        key = "DATASETS.TRAIN" if training else "DATASETS.TEST"
        names = list(cfg.DATASETS.TRAIN if training else cfg.DATASETS.TEST)
        check_registered(names[:1], key)
        c.CLASS_NAMES = dataset_classes(names[0]) if names else []
    return list(c.CLASS_NAMES)


def fill_keypoint_settings(cfg: CfgNode, training: bool = True) -> None:
    """With ``MODEL.KEYPOINT_ON``: the keypoint layout of the first dataset of ``DATASETS.TRAIN``
    (training) or ``DATASETS.TEST``, as the class names are taken: ``NUM_KEYPOINTS``,
    ``CLASS_KEYPOINTS``, ``KEYPOINT_FLIP_INDICES`` and, for a set other than COCO's person
    keypoints, ``TEST.KEYPOINT_OKS_SIGMAS`` (:data:`DEFAULT_OKS_SIGMA` each, with a warning),
    where empty (0 for ``NUM_KEYPOINTS``), so that the run's ``config.yaml`` carries them. A
    training set whose layout differs from the config's replaces it, with one warning naming
    both (a config made for another set, such as the shapes keypoint config); for testing a
    difference is an error (the model was built for other keypoints). ``cfg`` must not be
    frozen. ``ValueError`` when the dataset has no keypoints."""
    names = list(cfg.DATASETS.TRAIN if training else cfg.DATASETS.TEST)
    if not cfg.MODEL.KEYPOINT_ON or not names:
        return
    key = "DATASETS.TRAIN" if training else "DATASETS.TEST"
    check_registered(names[:1], key)
    meta = keypoint_metadata(names[0])
    keypoint_names = meta.get("keypoint_names")
    if not keypoint_names:
        raise ValueError(
            f"MODEL.KEYPOINT_ON is set, but dataset {names[0]!r} ({key}) has no keypoints (no "
            "keypoint_names in its metadata): train on a COCO keypoints json, or set "
            "MODEL.KEYPOINT_ON False"
        )
    J = len(keypoint_names)
    num_classes = len(dataset_classes(names[0]))
    per_class = meta.get("class_keypoints") or [list(range(J))] * num_classes
    layout = {
        "MODEL.CENTERNET.NUM_KEYPOINTS": J,
        "MODEL.CENTERNET.CLASS_KEYPOINTS": [list(k) for k in per_class],
    }
    if meta.get("keypoint_flip_map") is not None:
        layout["MODEL.CENTERNET.KEYPOINT_FLIP_INDICES"] = create_keypoint_hflip_indices(names[:1])
    sigmas = list(cfg.TEST.KEYPOINT_OKS_SIGMAS)
    if list(keypoint_names) != list(COCO_PERSON_KEYPOINT_NAMES) and len(sigmas) != J:
        layout["TEST.KEYPOINT_OKS_SIGMAS"] = [DEFAULT_OKS_SIGMA] * J
        log_first_n(
            logging.WARNING,
            f"dataset {names[0]!r} has its own {J} keypoints and TEST.KEYPOINT_OKS_SIGMAS gives "
            f"{len(sigmas)} sigmas: evaluated with {DEFAULT_OKS_SIGMA} for each (the mean of "
            "COCO's person sigmas); set one per keypoint for your set's annotation spread",
            name=__name__,
        )
    differ = []
    for full_key, value in layout.items():
        node, name = _node_and_name(cfg, full_key)
        current = node[name]
        unset = current in (0, [], ()) or full_key == "TEST.KEYPOINT_OKS_SIGMAS"
        if not unset and _as_lists(current) != value:
            differ.append(f"{full_key} {_as_lists(current)} -> {value}")
        node[name] = value
    if differ and not training:
        raise ValueError(
            f"dataset {names[0]!r} ({key}) has other keypoints than the model's config: "
            + "; ".join(d.replace(" -> ", ", the dataset's ") for d in differ)
        )
    if differ:
        logger.warning(
            f"keypoints of the training set {names[0]!r} replace the config's: " + "; ".join(differ)
        )


def _node_and_name(cfg: CfgNode, key: str):
    *path, name = key.split(".")
    node = cfg
    for part in path:
        node = node[part]
    return node, name


def _as_lists(value):
    """A config value with its tuples as lists, for comparisons."""
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value


def prepare_datasets(cfg: CfgNode, training: bool = True) -> None:
    """Before a run: generate the built-in datasets the cfg uses, log each dataset's statistics
    (:func:`~centernet_d2.data.log_dataset_statistics`), and check that every dataset has
    ``MODEL.CENTERNET.NUM_CLASSES`` classes, named as ``MODEL.CENTERNET.CLASS_NAMES`` if those are
    set (else class ids would not line up); ``ValueError`` otherwise. ``training``: include
    ``DATASETS.TRAIN``."""
    train = list(cfg.DATASETS.TRAIN) if training else []
    check_registered(train, "DATASETS.TRAIN")
    check_registered(cfg.DATASETS.TEST, "DATASETS.TEST")
    names = list(dict.fromkeys(train + list(cfg.DATASETS.TEST)))
    for name in names:
        if name in BUILTIN_SHAPES_SPLITS or name in BUILTIN_SHAPES_VIDEO_SPLITS:
            ensure_builtin_generated(name)
    stride, train_size = output_stride(cfg), tuple(cfg.INPUT.CENTERNET.TRAIN_SIZE)
    statistics = {}
    for name in names:
        dicts = DatasetCatalog.get(name)
        statistics[name] = dataset_statistics(dicts, dataset_classes(name), stride, train_size)
        log_dataset_statistics(name, statistics[name])
    check_num_classes(cfg.MODEL.CENTERNET.NUM_CLASSES, names, statistics)
    expected = list(cfg.MODEL.CENTERNET.CLASS_NAMES)
    for name in names:
        classes = dataset_classes(name)
        if expected and classes != expected:
            raise ValueError(
                f"dataset {name!r} has the classes {classes}, but the model's are {expected} "
                "(MODEL.CENTERNET.CLASS_NAMES): class ids would not line up. Register the "
                "dataset with the model's class names, in that order"
            )


def save_results(results: Mapping, output_dir: str) -> str:
    """Write evaluation results as ``eval_results.json`` and a markdown AP table
    ``eval_results.md`` in ``output_dir``; returns the table's path."""
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "eval_results.json"), "w") as f:
        json.dump(results, f, indent=2)
    lines = []
    for dataset, tasks in results.items():
        # a single dataset's results are {task: metrics}, several datasets' {dataset: {task: ...}}
        if not isinstance(next(iter(tasks.values()), None), Mapping):
            tasks, dataset = {dataset: tasks}, "results"
        for task, metrics in tasks.items():
            lines += [f"### {dataset} {task}", "", "| " + " | ".join(metrics) + " |"]
            lines += ["|" + "---|" * len(metrics)]
            lines += ["| " + " | ".join(f"{v:.2f}" for v in metrics.values()) + " |", ""]
    path = os.path.join(output_dir, "eval_results.md")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    return path
