#!/usr/bin/env python
"""What the model will be trained on: the dataset's table, its box sizes against the stride, and
training samples after augmentation with their boxes and target heatmap. Open it when AP stays 0.

    python tools/inspect_dataset.py --config-file CFG --voc-dataset helmets DIR trainval \\
        --voc-classes hat,person --num 16 --output out/inspect DATASETS.TRAIN '("helmets",)'

Writes into ``--output``: ``statistics.md`` (per class the images and objects, objects per
image, the share of boxes smaller than the output stride), ``box_sizes.png`` (histograms of the
box sides at the training scale, stride marked), ``samples/<n>.jpg`` and ``samples.jpg`` (the
training samples, as the training's augmentation makes them, with the ground-truth boxes and the
target heatmap the model learns).
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import copy
import logging
import os
import random

import cv2
import numpy as np
import torch
import tqdm
from detectron2.data import DatasetCatalog
from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from centernet_d2.config import check_training_keys
from centernet_d2.data import (
    BUILTIN_SHAPES_SPLITS,
    CenterNetDatasetMapper,
    check_registered,
    dataset_classes,
    dataset_statistics,
    ensure_builtin_generated,
    format_statistics,
    log_dataset_statistics,
)
from centernet_d2.data.flags import add_dataset_flags, dataset_hints, register_dataset_flags
from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.engine.defaults import output_stride, setup_cfg
from centernet_d2.modeling.level_targets import LevelTargets
from centernet_d2.utils.cli import config_tool_parser, run_tool
from centernet_d2.utils.visualize import draw_training_sample, image_grid, plot_box_sizes

logger = logging.getLogger("centernet_d2")


def get_parser():
    parser = config_tool_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--dataset", help="the dataset to inspect (default: the first of DATASETS.TRAIN)"
    )
    parser.add_argument("--num", type=int, default=16, help="training samples to draw")
    parser.add_argument("--seed", type=int, default=0, help="picks the samples and augmentations")
    parser.add_argument("--output", required=True, help="folder for the table and pictures")
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config KEY VALUE pairs")
    return add_dataset_flags(parser)


def draw_samples(cfg, dicts, class_names, num, seed):
    """``num`` random training samples through the training mapper, drawn with their targets."""
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        SafeCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    mapper = CenterNetDatasetMapper(cfg, True)
    picks = random.Random(seed).sample(range(len(dicts)), min(num, len(dicts)))
    np.random.seed(seed)  # Detectron2's augmentations draw from numpy's global RNG
    pictures = []
    for i in tqdm.tqdm(picks, desc="samples", unit="img"):
        sample = mapper(copy.deepcopy(dicts[i]))
        images = model.preprocess_image([sample])
        instances = sample["instances"].to(model.device)
        with torch.no_grad():
            targets = model.build_targets(images, model.run_network(images.tensor), [instances])
        image = sample["image"].permute(1, 2, 0).numpy()
        rgb = image if cfg.INPUT.FORMAT == "RGB" else image[:, :, ::-1]
        boxes = instances.gt_boxes.tensor.cpu().numpy()
        labels = [class_names[c] for c in instances.gt_classes.tolist()]
        # the multi-level targets: the finest level, of stride model.stride
        heatmap = (
            targets.level("heatmap", 0)[0]
            if isinstance(targets, LevelTargets)
            else targets.heatmap[0]
        )
        pictures.append(
            draw_training_sample(np.ascontiguousarray(rgb), boxes, labels, heatmap, model.stride)
        )
    return pictures


def main(args):
    setup_logger(name="centernet_d2")
    register_dataset_flags(args)
    cfg = setup_cfg(args.config_file, args.opts)
    check_training_keys(cfg)
    name = args.dataset or (cfg.DATASETS.TRAIN[0] if cfg.DATASETS.TRAIN else "")
    if not name:
        raise ValueError("DATASETS.TRAIN is empty; name the dataset with --dataset")
    with dataset_hints(args):
        check_registered([name], "--dataset" if args.dataset else "DATASETS.TRAIN")
    if name in BUILTIN_SHAPES_SPLITS:
        ensure_builtin_generated(name)
    if args.num < 0:
        raise ValueError(f"--num must be >= 0, got {args.num}")
    dicts = DatasetCatalog.get(name)
    class_names = dataset_classes(name)
    stats = dataset_statistics(
        dicts, class_names, output_stride(cfg), tuple(cfg.INPUT.CENTERNET.TRAIN_SIZE)
    )
    log_dataset_statistics(name, stats)
    os.makedirs(args.output, exist_ok=True)
    table = os.path.join(args.output, "statistics.md")
    with open(table, "w") as f:
        f.write(f"# {name}\n\nBox sides at the training scale, stride {stats.stride} px.\n\n")
        f.write(format_statistics(stats) + "\n")
    written = [table, plot_box_sizes(stats, os.path.join(args.output, "box_sizes.png"), name)]
    if args.num:
        pictures = draw_samples(cfg, dicts, class_names, args.num, args.seed)
        os.makedirs(os.path.join(args.output, "samples"), exist_ok=True)
        for n, picture in enumerate(pictures):
            path = os.path.join(args.output, "samples", f"{n:03d}.jpg")
            cv2.imwrite(path, picture[:, :, ::-1])
        grid = os.path.join(args.output, "samples.jpg")
        cv2.imwrite(grid, image_grid(pictures)[:, :, ::-1])
        written += [grid, os.path.join(args.output, "samples", "*.jpg")]
    logger.info("wrote " + ", ".join(written))
    return stats


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
