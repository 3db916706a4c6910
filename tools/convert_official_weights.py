#!/usr/bin/env python
"""Convert a published CenterNet, CenterTrack or CenterNet2 checkpoint to this project's model.

    python tools/convert_official_weights.py ctdet_coco_dla_2x.pth ctdet_coco_dla_2x.pkl

Reads the file you have (nothing is downloaded), recognises which published model it is from its
keys (or take ``--arch``), renames every key to the model of that model's config in
``configs/`` (or ``--config-file``, with ``--opts KEY VALUE ...`` overrides), checks that the
converted keys are exactly that model's, with the same shapes, and writes a Detectron2 checkpoint
(``.pkl`` or ``.pth``) with the class names inside. Then:

    python tools/train_net.py --config-file configs/COCO-Detection/centernet_DLA_34_official.yaml \\
        --eval-only MODEL.WEIGHTS ctdet_coco_dla_2x.pkl
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
import argparse
import logging
import os

from detectron2.modeling import build_model
from detectron2.utils.logger import setup_logger

from centernet_d2.engine.defaults import setup_cfg
from centernet_d2.official_weights import (
    PUBLISHED_MODELS,
    check_against_model,
    convert_official_state_dict,
    identify,
    load_official_state_dict,
    save_converted,
)
from centernet_d2.utils.cli import add_debug_flag, flag_context, run_tool

CONFIGS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs")
logger = logging.getLogger("centernet_d2")


def get_parser():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("input", help="the published checkpoint (.pth)")
    parser.add_argument("output", help="Detectron2 checkpoint to write (.pkl or .pth)")
    parser.add_argument(
        "--arch",
        choices=sorted(PUBLISHED_MODELS),
        help="which published model the file is (default: recognised from its keys)",
    )
    parser.add_argument(
        "--config-file",
        metavar="FILE",
        help="the config whose model the weights are for (default: the published model's)",
    )
    parser.add_argument(
        "--opts", default=[], nargs=argparse.REMAINDER, help="config KEY VALUE pairs, last"
    )
    return add_debug_flag(parser)


def main(args):
    setup_logger(name="centernet_d2")
    with flag_context(args.input):
        state_dict = load_official_state_dict(args.input)
        published = PUBLISHED_MODELS[args.arch] if args.arch else identify(state_dict)
        conversion = convert_official_state_dict(state_dict, published)
    config_file = args.config_file or os.path.join(CONFIGS, published.config)
    cfg = setup_cfg(config_file, list(args.opts) + ["MODEL.DEVICE", "cpu", "MODEL.WEIGHTS", ""])
    with flag_context(args.input):
        check_against_model(conversion, build_model(cfg).state_dict())
    save_converted(conversion, args.output, num_classes=cfg.MODEL.CENTERNET.NUM_CLASSES)
    print(
        f"{args.output}: {published.name} ({published.published}), {len(conversion.model)} tensors"
    )
    print(f"  config: {os.path.relpath(config_file)}")
    print(f"  left out (unused by the authors' forward): {len(conversion.dropped)} keys")
    print(f"  deformable-conv biases folded into their BatchNorm: {len(conversion.folded)}")
    print(
        f"  evaluate: python tools/train_net.py --config-file {os.path.relpath(config_file)} "
        f"--eval-only MODEL.WEIGHTS {args.output}"
    )
    return conversion


if __name__ == "__main__":
    run_tool(main, get_parser().parse_args())
