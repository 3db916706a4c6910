#!/usr/bin/env python
"""Train Detectron2's RetinaNet-R18-FPN at the budget of a CenterNet config, for
``tools/compare_runs.py``:

    python tools/train_peer.py --config-file \\
        configs/CPU/centernet_MobileNetV3_small_FPN_shapes.yaml \\
        OUTPUT_DIR output/peer TEST.EVAL_PERIOD 250
    python tools/compare_runs.py --run centernet=output/centernet --run retinanet=output/peer \\
        --output docs/peer/ap_vs_iteration.png

The CenterNet config, with the trailing ``KEY VALUE`` overrides, gives the data and the budget
(batch, iterations, LR schedule, evaluation period, train and test sizes, output folder); the
peer keeps Detectron2's SGD recipe with the LR scaled to the batch. What is shared and what is
not, and why, is in ``benchmarks/peer_training.py``. The peer's config is saved as
``OUTPUT_DIR/config.yaml``, ``bbox/AP`` goes into ``OUTPUT_DIR/metrics.json`` at each evaluation.
One process; a mistake in the input ends with one ``error:`` line and exit status 2, ``--debug``
shows the traceback.
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import os
import sys

from detectron2.engine import default_setup
from detectron2.utils.logger import setup_logger

from centernet_d2.config import check_training_keys
from centernet_d2.data.flags import add_dataset_flags, dataset_hints, register_dataset_flags
from centernet_d2.engine.defaults import prepare_datasets, save_results, setup_cfg
from centernet_d2.utils.cli import config_tool_parser, run_tool

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:  # the benchmark is a package at the repository root, not in the library
    sys.path.insert(0, ROOT)
from benchmarks.peer_training import (  # noqa: E402  isort:skip
    DEFAULT_ANCHOR_SCALE,
    DEFAULT_DEPTH,
    RESNET_DEPTHS,
    TRAINABLE_PEERS,
    PeerTrainer,
    peer_training_cfg,
)


def argument_parser():
    parser = config_tool_parser(
        "Train Detectron2's RetinaNet peer at the budget of a CenterNet config"
    )
    parser.add_argument("--peer", default="retinanet", choices=TRAINABLE_PEERS)
    parser.add_argument(
        "--depth", type=int, default=DEFAULT_DEPTH, choices=RESNET_DEPTHS, help="ResNet depth"
    )
    parser.add_argument(
        "--anchor-scale",
        type=float,
        default=DEFAULT_ANCHOR_SCALE,
        help="factor of Detectron2's anchor sizes (32-512 px); the default makes each level's "
        "base anchor its stride (8 px at P3), 1 keeps Detectron2's",
    )
    parser.add_argument(
        "--resume", action="store_true", help="continue from OUTPUT_DIR's last checkpoint"
    )
    add_dataset_flags(parser)
    parser.add_argument(
        "opts", nargs=argparse.REMAINDER, help="KEY VALUE overrides of the CenterNet config"
    )
    return parser


def main(args):
    register_dataset_flags(args)
    cfg = setup_cfg(args.config_file, args.opts)
    check_training_keys(cfg)
    peer_cfg = peer_training_cfg(cfg, args.peer, args.depth, args.anchor_scale)
    peer_cfg.freeze()
    default_setup(peer_cfg, args)  # logs, seeds, writes OUTPUT_DIR/config.yaml
    setup_logger(peer_cfg.OUTPUT_DIR, name="centernet_d2")
    setup_logger(peer_cfg.OUTPUT_DIR, name="benchmarks")
    with dataset_hints(args):
        prepare_datasets(cfg)

    trainer = PeerTrainer(peer_cfg)
    trainer.resume_or_load(resume=args.resume)
    trainer.train()
    results = getattr(trainer, "_last_eval_results", None)  # v0.6's train() returns None
    if results and peer_cfg.OUTPUT_DIR:
        save_results(results, peer_cfg.OUTPUT_DIR)
    return results


if __name__ == "__main__":
    args = argument_parser().parse_args()
    print("Command Line Args:", args)
    run_tool(main, args)
