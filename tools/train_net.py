#!/usr/bin/env python
"""Train or evaluate CenterNet, with Detectron2's command line.

    python tools/train_net.py --config-file configs/CPU/centernet_R_18_deconv_shapes.yaml
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
    python tools/train_net.py --config-file CFG --coco-dataset my_train ann.json images/ \\
        DATASETS.TRAIN '("my_train",)' MODEL.CENTERNET.NUM_CLASSES 3

``--num-gpus N`` starts N processes: on GPUs with NCCL, on a CPU-only machine with gloo. A mistake
in the input (a missing file, an unknown config key, a class count) ends with one ``error:`` line
and exit status 2; ``--debug`` shows the traceback.
"""

import centernet_d2  # noqa: F401  isort:skip  (first: Detectron2's import stays quiet)
from detectron2.engine import default_argument_parser, default_setup, hooks
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger

from centernet_d2.config import check_training_keys
from centernet_d2.data.flags import add_dataset_flags, dataset_hints, register_dataset_flags
from centernet_d2.engine import Trainer, launch
from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.engine.defaults import (
    fill_class_names,
    fill_keypoint_settings,
    prepare_datasets,
    save_results,
    setup_cfg,
)
from centernet_d2.utils.cli import add_debug_flag, run_tool


def argument_parser():
    return add_dataset_flags(add_debug_flag(default_argument_parser()))


def main(args):
    register_dataset_flags(args)
    cfg = setup_cfg(args.config_file, args.opts)
    if not args.eval_only:
        check_training_keys(cfg)
    with dataset_hints(args):
        fill_class_names(cfg, training=not args.eval_only)
        fill_keypoint_settings(cfg, training=not args.eval_only)
    cfg.freeze()
    default_setup(cfg, args)
    setup_logger(cfg.OUTPUT_DIR, distributed_rank=comm.get_rank(), name="centernet_d2")
    with dataset_hints(args):
        prepare_datasets(cfg, training=not args.eval_only)

    if args.eval_only:
        model = Trainer.build_model(cfg)
        SafeCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = Trainer.test(cfg, model)
        if cfg.TEST.AUG.ENABLED:
            results.update(Trainer.test_with_TTA(cfg, model))
    else:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        if cfg.TEST.AUG.ENABLED:  # evaluated with test-time augmentation after training
            trainer.register_hooks(
                [hooks.EvalHook(0, lambda: trainer.test_with_TTA(cfg, trainer.model))]
            )
        trainer.train()
        results = getattr(trainer, "_last_eval_results", None)
    if results and cfg.OUTPUT_DIR and comm.is_main_process():
        save_results(results, cfg.OUTPUT_DIR)
    return results


def check_inputs(args):
    """What ``main`` reads before training, checked in this process: a mistake then shows as one
    line here rather than as a traceback from every worker process."""
    register_dataset_flags(args)
    with dataset_hints(args):
        cfg = setup_cfg(args.config_file, args.opts)
        fill_class_names(cfg, training=not args.eval_only)
        fill_keypoint_settings(cfg, training=not args.eval_only)


def launch_main(main_fn, args):
    """Run ``main_fn(args)`` in ``args.num_gpus`` processes per machine (CPU processes with gloo
    when CUDA is absent), as Detectron2's tools do."""
    return launch(
        main_fn,
        args.num_gpus,
        num_machines=args.num_machines,
        machine_rank=args.machine_rank,
        dist_url=args.dist_url,
        args=(args,),
    )


def run(args):
    if args.num_gpus * args.num_machines > 1:
        check_inputs(args)
    return launch_main(main, args)


if __name__ == "__main__":
    args = argument_parser().parse_args()
    print("Command Line Args:", args)
    run_tool(run, args)
