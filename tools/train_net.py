#!/usr/bin/env python
"""Train or evaluate CenterNet, with Detectron2's command line.

    python tools/train_net.py --config-file configs/CPU/centernet_R_18_deconv_shapes.yaml
    python tools/train_net.py --config-file CFG --eval-only MODEL.WEIGHTS output/model_final.pth
    python tools/train_net.py --config-file CFG --coco-dataset my_train ann.json images/ \\
        DATASETS.TRAIN '("my_train",)' MODEL.CENTERNET.NUM_CLASSES 3

``--num-gpus N`` starts N processes: on GPUs with NCCL, on a CPU-only machine with gloo.
"""

from detectron2.engine import default_argument_parser, default_setup
from detectron2.utils import comm

from centernet_d2.data import register_coco_dataset, register_voc_dataset
from centernet_d2.engine import Trainer, launch
from centernet_d2.engine.checkpoint import SafeCheckpointer
from centernet_d2.engine.defaults import prepare_datasets, save_results, setup_cfg


def argument_parser():
    parser = default_argument_parser()
    parser.add_argument(
        "--coco-dataset",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "JSON", "IMAGE_ROOT"),
        help="register a COCO-format dataset (repeatable); use NAME in DATASETS.TRAIN / TEST",
    )
    parser.add_argument(
        "--voc-dataset",
        nargs=3,
        action="append",
        default=[],
        metavar=("NAME", "DIR", "SPLIT"),
        help="register a Pascal-VOC-layout folder (Annotations/, JPEGImages/, ImageSets/Main/"
        "SPLIT.txt) (repeatable); classes come from the XML files unless --voc-classes is given",
    )
    parser.add_argument(
        "--voc-classes", default="", help="comma-separated class names of the --voc-dataset sets"
    )
    return parser


def main(args):
    for name, json_file, image_root in args.coco_dataset:
        register_coco_dataset(name, json_file, image_root)
    voc_classes = [c.strip() for c in args.voc_classes.split(",") if c.strip()]
    for name, dirname, split in args.voc_dataset:
        register_voc_dataset(name, dirname, split, voc_classes or None)

    cfg = setup_cfg(args.config_file, args.opts)
    cfg.freeze()
    default_setup(cfg, args)
    prepare_datasets(cfg)

    if args.eval_only:
        model = Trainer.build_model(cfg)
        SafeCheckpointer(model, save_dir=cfg.OUTPUT_DIR).resume_or_load(
            cfg.MODEL.WEIGHTS, resume=args.resume
        )
        results = Trainer.test(cfg, model)
    else:
        trainer = Trainer(cfg)
        trainer.resume_or_load(resume=args.resume)
        trainer.train()
        results = getattr(trainer, "_last_eval_results", None)
    if results and cfg.OUTPUT_DIR and comm.is_main_process():
        save_results(results, cfg.OUTPUT_DIR)
    return results


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


if __name__ == "__main__":
    args = argument_parser().parse_args()
    print("Command Line Args:", args)
    launch_main(main, args)
