"""Config set-up shared by the tools: a CenterNet cfg from a YAML file and overrides."""

import json
import logging
import os
from typing import Mapping, Sequence

import torch
from detectron2.config import CfgNode, get_cfg

from ..config import add_centernet_config
from ..data.builtin import BUILTIN_SHAPES_SPLITS, ensure_builtin_generated
from ..data.register import check_num_classes

__all__ = ["setup_cfg", "prepare_datasets", "save_results"]

logger = logging.getLogger(__name__)


def setup_cfg(config_file: str, opts: Sequence[str] = ()) -> CfgNode:
    """``get_cfg()`` + :func:`add_centernet_config` + the YAML file + ``KEY VALUE`` overrides.

    ``MODEL.DEVICE`` falls back to "cpu" when it names CUDA and no GPU is present, so the same
    configs run on laptops and GPU servers. An unknown key raises ``KeyError`` naming the key and
    the file (or the command line) it came from.
    """
    if not os.path.isfile(config_file):
        raise FileNotFoundError(f"config file {config_file} not found")
    cfg = add_centernet_config(get_cfg())
    hint = "check the spelling; centernet_d2/config.py lists CenterNet's keys"
    try:
        cfg.merge_from_file(config_file)
    except KeyError as e:
        raise KeyError(f"{config_file}: {e.args[0]} ({hint})") from e
    try:
        cfg.merge_from_list(list(opts))
    except (KeyError, AssertionError) as e:  # yacs asserts on unknown keys and odd-length lists
        error = KeyError if "Non-existent" in str(e) else ValueError
        raise error(f"command-line override: {e.args[0]} ({hint})") from e
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.info("CUDA is not available: MODEL.DEVICE set to cpu")
        cfg.MODEL.DEVICE = "cpu"
    return cfg


def prepare_datasets(cfg: CfgNode) -> None:
    """Generate the built-in datasets the cfg uses, then check that every train and test dataset
    has MODEL.CENTERNET.NUM_CLASSES classes (``ValueError`` naming both numbers otherwise)."""
    names = list(cfg.DATASETS.TRAIN) + list(cfg.DATASETS.TEST)
    for name in names:
        if name in BUILTIN_SHAPES_SPLITS:
            ensure_builtin_generated(name)
    check_num_classes(cfg.MODEL.CENTERNET.NUM_CLASSES, names)


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
