"""``Trainer``: Detectron2's ``DefaultTrainer`` with CenterNet's data, optimisers and evaluators."""

import logging
from unittest import mock

import torch
from detectron2.data import (
    DatasetMapper,
    MetadataCatalog,
    build_detection_test_loader,
    build_detection_train_loader,
)
from detectron2.engine import DefaultTrainer
from detectron2.engine import defaults as d2_defaults
from detectron2.evaluation import COCOEvaluator, PascalVOCDetectionEvaluator
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping
from detectron2.utils import comm
from torch.nn.parallel import DistributedDataParallel

from ..data.augmentation import build_centernet_augmentation
from .checkpoint import SafeCheckpointer
from .train_loop import CPUAutocastTrainer

__all__ = ["Trainer", "OPTIMIZERS", "create_ddp_model"]

logger = logging.getLogger(__name__)

OPTIMIZERS = ("SGD", "ADAM", "ADAMW")
_d2_create_ddp_model = d2_defaults.create_ddp_model


def create_ddp_model(model, *, fp16_compression=False, **kwargs):
    """Detectron2's ``create_ddp_model`` that also wraps CPU models (gloo): no ``device_ids``."""
    if comm.get_world_size() > 1 and next(model.parameters()).device.type == "cpu":
        return DistributedDataParallel(model, **kwargs)
    return _d2_create_ddp_model(model, fp16_compression=fp16_compression, **kwargs)


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` plus: the CenterNet augmentation, ``SOLVER.OPTIMIZER`` (SGD, Adam,
    AdamW), evaluators chosen by the dataset's ``evaluator_type``, CPU multi-process training,
    ``SOLVER.AMP`` on CPU (bfloat16 autocast, see :class:`CPUAutocastTrainer`) and atomic,
    ``weights_only`` checkpoints (:class:`SafeCheckpointer`).
    """

    def __init__(self, cfg):
        cpu_amp = cfg.SOLVER.AMP.ENABLED and cfg.MODEL.DEVICE == "cpu"
        if cpu_amp:  # Detectron2's AMPTrainer needs CUDA: build a plain one, then swap it
            cfg = cfg.clone()
            cfg.defrost()
            cfg.SOLVER.AMP.ENABLED = False
            cfg.freeze()
        with mock.patch.object(d2_defaults, "create_ddp_model", create_ddp_model):
            with mock.patch.object(d2_defaults, "DetectionCheckpointer", SafeCheckpointer):
                super().__init__(cfg)
        if cpu_amp:
            logger.info("SOLVER.AMP.ENABLED on CPU: the forward pass runs in bfloat16 autocast")
            t = self._trainer
            self._trainer = CPUAutocastTrainer(t.model, t.data_loader, t.optimizer)

    @classmethod
    def build_train_loader(cls, cfg):
        mapper = DatasetMapper(cfg, True, augmentations=build_centernet_augmentation(cfg, True))
        return build_detection_train_loader(cfg, mapper=mapper)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        mapper = DatasetMapper(cfg, False, augmentations=build_centernet_augmentation(cfg, False))
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_optimizer(cls, cfg, model):
        name = cfg.SOLVER.OPTIMIZER.upper()
        if name not in OPTIMIZERS:
            raise ValueError(f"SOLVER.OPTIMIZER must be one of {OPTIMIZERS}, got {name!r}")
        params = get_default_optimizer_params(
            model,
            base_lr=cfg.SOLVER.BASE_LR,
            weight_decay_norm=cfg.SOLVER.WEIGHT_DECAY_NORM,
            bias_lr_factor=cfg.SOLVER.BIAS_LR_FACTOR,
            weight_decay_bias=cfg.SOLVER.WEIGHT_DECAY_BIAS,
        )
        kwargs = {"lr": cfg.SOLVER.BASE_LR, "weight_decay": cfg.SOLVER.WEIGHT_DECAY}
        if name == "SGD":
            optim = torch.optim.SGD
            kwargs.update(momentum=cfg.SOLVER.MOMENTUM, nesterov=cfg.SOLVER.NESTEROV)
        else:
            optim = torch.optim.Adam if name == "ADAM" else torch.optim.AdamW
        return maybe_add_gradient_clipping(cfg, optim)(params, **kwargs)

    @classmethod
    def build_evaluator(cls, cfg, dataset_name, output_folder=None):
        output_folder = output_folder or f"{cfg.OUTPUT_DIR}/inference"
        kind = MetadataCatalog.get(dataset_name).get("evaluator_type", "coco")
        if kind == "coco":
            return COCOEvaluator(dataset_name, output_dir=output_folder, use_fast_impl=False)
        if kind == "pascal_voc":
            return PascalVOCDetectionEvaluator(dataset_name)
        raise ValueError(
            f"dataset {dataset_name!r} has evaluator_type {kind!r}; centernet-d2 evaluates "
            "'coco' and 'pascal_voc' datasets"
        )
