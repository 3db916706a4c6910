"""``Trainer``: Detectron2's ``DefaultTrainer`` with CenterNet's data, optimisers and evaluators."""

import logging
import os
import weakref
from collections import OrderedDict
from typing import Dict, Iterable, List

import torch
from detectron2.data import (
    MetadataCatalog,
    build_detection_test_loader,
    get_detection_dataset_dicts,
)
from detectron2.data.build import filter_images_with_only_crowd_annotations
from detectron2.engine import AMPTrainer, DefaultTrainer, SimpleTrainer, TrainerBase
from detectron2.engine.defaults import create_ddp_model as d2_create_ddp_model
from detectron2.evaluation import COCOEvaluator, DatasetEvaluators
from detectron2.modeling import META_ARCH_REGISTRY
from detectron2.solver.build import get_default_optimizer_params, maybe_add_gradient_clipping
from detectron2.utils import comm
from detectron2.utils.logger import setup_logger
from torch.nn.parallel import DistributedDataParallel

from ..config import check_training_keys
from ..data.checks import check_annotations, check_image_files
from ..data.frame_pairs import CenterTrackDatasetMapper
from ..data.mapper import CenterNetDatasetMapper
from ..data.train_loader import SeededMapDataset, build_resumable_train_loader
from ..data.video import build_video_test_loader, drop_hidden_objects
from ..evaluation import (
    DetectionAnalysis,
    FrameDetectionsEvaluator,
    MOTEvaluator,
    PascalVOCEvaluator,
    build_coco_evaluator,
    keypoint_oks_sigmas,
)
from ..layers import ModulatedDeformConv2d
from ..modeling.centertrack import CenterTrack
from ..modeling.fusion import StemFusion
from ..modeling.tta import CenterNetWithTTA
from ..tracking.inference import CenterTrackWithTracker
from .checkpoint import SafeCheckpointer
from .train_loop import CPUAutocastTrainer

__all__ = ["Trainer", "OPTIMIZERS", "create_ddp_model", "is_tracking_config"]

logger = logging.getLogger(__name__)

OPTIMIZERS = ("SGD", "ADAM", "ADAMW")
# Detectron2 after v0.6 checkpoints the optimiser ("_trainer" in DefaultTrainer.state_dict)
_D2_SAVES_OPTIMIZER = "state_dict" in vars(DefaultTrainer)


def is_tracking_config(cfg) -> bool:
    """Whether ``MODEL.META_ARCHITECTURE`` is a tracking model (:class:`CenterTrack` or a
    subclass)."""
    return issubclass(META_ARCH_REGISTRY.get(cfg.MODEL.META_ARCHITECTURE), CenterTrack)


def create_ddp_model(model, *, fp16_compression=False, **kwargs):
    """Detectron2's ``create_ddp_model`` that also wraps CPU models (gloo): no ``device_ids``."""
    if comm.get_world_size() > 1 and next(model.parameters()).device.type == "cpu":
        return DistributedDataParallel(model, **kwargs)
    return d2_create_ddp_model(model, fp16_compression=fp16_compression, **kwargs)


class Trainer(DefaultTrainer):
    """``DefaultTrainer`` plus: the CenterNet augmentation, ``SOLVER.OPTIMIZER`` (SGD, Adam,
    AdamW), evaluators chosen by the dataset's ``evaluator_type``, CPU multi-process training,
    ``SOLVER.AMP`` on CPU (bfloat16 autocast, see :class:`CPUAutocastTrainer`), atomic,
    ``weights_only`` checkpoints (:class:`SafeCheckpointer`) and exact resumption: checkpoints
    hold the optimiser state (Detectron2 v0.6 leaves it out) and the data seed, and the training
    data (:func:`build_resumable_train_loader`) restarts at the checkpoint's iteration.

    Tracking (``MODEL.META_ARCHITECTURE: "CenterTrack"``): training pairs from
    :class:`CenterTrackDatasetMapper`; the model is evaluated inside
    :class:`CenterTrackWithTracker`, on the frames of a video dataset in order
    (:func:`build_video_test_loader`), with COCO AP of the frames' detections and MOTA, IDF1 and
    HOTA of the tracks (:class:`MOTEvaluator`).
    """

    def __init__(self, cfg):
        """``DefaultTrainer.__init__``'s steps, with this project's DDP wrapper (CPU processes
        too), training loop (:meth:`build_train_loop`) and checkpointer (:class:`SafeCheckpointer`),
        which ``DefaultTrainer`` creates inline."""
        TrainerBase.__init__(self)
        if not logging.getLogger("detectron2").isEnabledFor(logging.INFO):
            setup_logger()
        cfg = DefaultTrainer.auto_scale_workers(cfg, comm.get_world_size())
        model = self.build_model(cfg)
        optimizer = self.build_optimizer(cfg, model)
        data_loader = self.build_train_loader(cfg)
        model = create_ddp_model(model, broadcast_buffers=False)
        self._trainer = self.build_train_loop(cfg, model, data_loader, optimizer)
        self.scheduler = self.build_lr_scheduler(cfg, optimizer)
        self.checkpointer = SafeCheckpointer(model, cfg.OUTPUT_DIR, trainer=weakref.proxy(self))
        self.start_iter = 0
        self.max_iter = cfg.SOLVER.MAX_ITER
        self.cfg = cfg
        self.register_hooks(self.build_hooks())

    @classmethod
    def build_train_loop(cls, cfg, model, data_loader, optimizer) -> SimpleTrainer:
        """Detectron2's ``AMPTrainer`` for ``SOLVER.AMP.ENABLED`` on GPUs,
        :class:`CPUAutocastTrainer` (bfloat16 autocast) for it on the CPU, else
        ``SimpleTrainer``."""
        if not cfg.SOLVER.AMP.ENABLED:
            return SimpleTrainer(model, data_loader, optimizer)
        if cfg.MODEL.DEVICE == "cpu":
            logger.info("SOLVER.AMP.ENABLED on CPU: the forward pass runs in bfloat16 autocast")
            return CPUAutocastTrainer(model, data_loader, optimizer)
        return AMPTrainer(model, data_loader, optimizer)

    @classmethod
    def test(cls, cfg, model, evaluators=None):
        """``DefaultTrainer.test``; with ``INPUT.CENTERNET.TEST_CANVAS`` the model runs inside
        :class:`~centernet_d2.modeling.CenterNetWithTTA` for the canvas; a :class:`CenterTrack`
        runs inside :class:`CenterTrackWithTracker` (a tracker over the frames of each video, in
        order)."""
        model = getattr(model, "module", model)
        if cfg.INPUT.CENTERNET.TEST_CANVAS and not isinstance(model, CenterNetWithTTA):
            model = CenterNetWithTTA(cfg, model)
        if isinstance(getattr(model, "model", model), CenterTrack):  # or CenterNetWithTTA's
            model = CenterTrackWithTracker(cfg, model)
        return super().test(cfg, model, evaluators)

    @classmethod
    def test_with_TTA(cls, cfg, model):
        """Evaluate ``model`` wrapped in :class:`~centernet_d2.modeling.CenterNetWithTTA`
        (``TEST.AUG``), as Detectron2's tools do for R-CNNs (a CenterTrack's tracker runs on
        the augmented detections); result names end in "_TTA"."""
        model = CenterNetWithTTA(cfg, getattr(model, "module", model))
        evaluators = [
            cls.build_evaluator(cfg, name, os.path.join(cfg.OUTPUT_DIR, "inference_TTA"))
            for name in cfg.DATASETS.TEST
        ]
        results = cls.test(cfg, model, evaluators)
        return OrderedDict((k + "_TTA", v) for k, v in results.items())

    def resume_or_load(self, resume: bool = True) -> None:
        """Detectron2's ``resume_or_load`` (model, optimiser, LR scheduler and iteration from
        the last checkpoint), then the data loader restarts at batch ``start_iter`` with the
        checkpoint's data seed: the training continues exactly as if it had not stopped."""
        stream = self._data_stream()
        seed = stream.seed if stream is not None else None
        super().resume_or_load(resume=resume)
        if stream is None:
            if self.start_iter > 0:
                logger.warning(
                    "the training data loader is not build_resumable_train_loader's: its data "
                    f"stream restarts from the beginning at iteration {self.start_iter}"
                )
        elif (stream.start_iter, stream.seed) != (self.start_iter, seed):
            stream.set_start_iter(self.start_iter)
            _restart_data_loader(self._trainer)

    def state_dict(self) -> dict:
        ret = super().state_dict()
        if not _D2_SAVES_OPTIMIZER:
            ret["_trainer"] = self._trainer.state_dict()
        stream = self._data_stream()
        if stream is not None:
            ret["data_stream"] = stream.state_dict()
        return ret

    def load_state_dict(self, state_dict: dict) -> None:
        super().load_state_dict(state_dict)
        if not _D2_SAVES_OPTIMIZER and "_trainer" in state_dict:
            self._trainer.load_state_dict(state_dict["_trainer"])
        stream = self._data_stream()
        if stream is not None and "data_stream" in state_dict:
            stream.load_state_dict(state_dict["data_stream"])

    def _data_stream(self):
        stream = getattr(self._trainer.data_loader, "dataset", None)
        return stream if isinstance(stream, SeededMapDataset) else None

    @classmethod
    def build_train_loader(cls, cfg):
        """The resumable loader of :meth:`build_train_dataset` with
        :class:`CenterNetDatasetMapper`, or for tracking :class:`CenterTrackDatasetMapper`
        (pairs of frames of the training set's videos, or still images and shifted copies)."""
        check_training_keys(cfg)
        dataset = cls.build_train_dataset(cfg)
        if is_tracking_config(cfg):
            mapper = CenterTrackDatasetMapper(cfg, True, frames=dataset)
        else:
            mapper = CenterNetDatasetMapper(cfg, True)
        return build_resumable_train_loader(cfg, mapper=mapper, dataset=dataset)

    @classmethod
    def build_test_loader(cls, cfg, dataset_name):
        """Detectron2's test loader with :class:`CenterNetDatasetMapper`; for a video dataset
        (every dict with "video_id" and "frame_id") its frames in order, whole videos per
        process (:func:`build_video_test_loader`)."""
        mapper = CenterNetDatasetMapper(cfg, False)
        dicts = get_detection_dataset_dicts([dataset_name], filter_empty=False)
        if dicts and all("video_id" in d and "frame_id" in d for d in dicts):
            return build_video_test_loader(dicts, mapper, cfg.DATALOADER.NUM_WORKERS)
        return build_detection_test_loader(cfg, dataset_name, mapper=mapper)

    @classmethod
    def build_train_dataset(cls, cfg):
        """The dataset dicts of ``DATASETS.TRAIN``, checked before training starts: bad boxes are
        dropped or clipped (:func:`check_annotations`), objects less visible than
        ``DATALOADER.MIN_VISIBILITY`` left out (:func:`drop_hidden_objects`), images left without objects are dropped
        if ``DATALOADER.FILTER_EMPTY_ANNOTATIONS``, and image files that are missing, unreadable
        or not of their annotated size stop training or are left out, per
        ``DATALOADER.BAD_IMAGES`` (:func:`check_image_files`).
        """
        dicts = get_detection_dataset_dicts(cfg.DATASETS.TRAIN, filter_empty=False)
        dicts = drop_hidden_objects(check_annotations(dicts), cfg.DATALOADER.MIN_VISIBILITY)
        if cfg.DATALOADER.FILTER_EMPTY_ANNOTATIONS:
            dicts = filter_images_with_only_crowd_annotations(dicts)
        return check_image_files(dicts, cfg.DATALOADER.BAD_IMAGES)

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
        for key in ("DEFORM_OFFSET_LR_FACTOR", "FUSION_GAIN_LR_FACTOR"):
            if cfg.SOLVER[key] < 0:
                raise ValueError(
                    f"SOLVER.{key} must be >= 0 (a factor of the LR), got {cfg.SOLVER[key]}"
                )
        params = scale_lr_of_deform_offsets(params, model, cfg.SOLVER.DEFORM_OFFSET_LR_FACTOR)
        params = scale_lr_of_fusion_gains(params, model, cfg.SOLVER.FUSION_GAIN_LR_FACTOR)
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
        evaluator = cls.build_ap_evaluator(cfg, dataset_name, output_folder)
        if not cfg.TEST.ANALYSIS.ENABLED:
            return evaluator
        a = cfg.TEST.ANALYSIS
        sigmas = None
        if cfg.MODEL.KEYPOINT_ON:
            sigmas = keypoint_oks_sigmas(dataset_name, cfg.TEST.KEYPOINT_OKS_SIGMAS)
        analysis = DetectionAnalysis(
            dataset_name,
            output_folder,
            score_thresh=a.SCORE_THRESH,
            iou_thresh=a.IOU_THRESH,
            worst_images=a.WORST_IMAGES,
            oks_sigmas=sigmas,
        )
        kind = MetadataCatalog.get(dataset_name).get("evaluator_type", "coco")
        if kind == "mot" and is_tracking_config(cfg):  # a tracker's outputs: the detections
            analysis = FrameDetectionsEvaluator(analysis)
        return DatasetEvaluators([evaluator, analysis])

    @classmethod
    def build_ap_evaluator(cls, cfg, dataset_name, output_folder):
        """The evaluator of the numbers: COCO AP, Pascal VOC AP, or for a video set COCO AP of
        the frames and, for a tracker, MOTA / IDF1 / HOTA."""
        kind = MetadataCatalog.get(dataset_name).get("evaluator_type", "coco")
        if kind == "coco":
            # the fast path: Detectron2's compiled COCOeval, or faster-coco-eval's in the
            # pure-Python install (packaging/detectron2_wheel/fast_eval_api.py); same AP; keypoint
            # AP too with MODEL.KEYPOINT_ON
            return build_coco_evaluator(
                dataset_name,
                output_folder,
                keypoints=cfg.MODEL.KEYPOINT_ON,
                oks_sigmas=cfg.TEST.KEYPOINT_OKS_SIGMAS,
            )
        if kind == "pascal_voc":
            return PascalVOCEvaluator(dataset_name)
        if kind == "mot":
            # COCO AP of every detection of the frames; a tracker adds MOTA / IDF1 / HOTA
            coco = COCOEvaluator(dataset_name, output_dir=output_folder)
            if not is_tracking_config(cfg):
                return coco
            # + MOTChallenge files, and with TEST.ANALYSIS the per-video table and switches
            mot = MOTEvaluator(
                dataset_name, output_dir=output_folder, analysis=cfg.TEST.ANALYSIS.ENABLED
            )
            return DatasetEvaluators([FrameDetectionsEvaluator(coco), mot])
        raise ValueError(
            f"dataset {dataset_name!r} has evaluator_type {kind!r}; centernet-d2 evaluates "
            "'coco', 'pascal_voc' and 'mot' (video) datasets"
        )


def scale_lr(param_groups: List[Dict], params: Iterable[torch.Tensor], factor: float) -> List[Dict]:
    """``param_groups`` (as from Detectron2's ``get_default_optimizer_params``, with an "lr" per
    group) with the LR of ``params`` times ``factor``, in groups of their own."""
    scaled_ids = {id(p) for p in params}
    if factor == 1.0 or not scaled_ids:
        return param_groups
    out = []
    for group in param_groups:
        rest = [p for p in group["params"] if id(p) not in scaled_ids]
        scaled = [p for p in group["params"] if id(p) in scaled_ids]
        if rest:
            out.append({**group, "params": rest})
        if scaled:
            out.append({**group, "params": scaled, "lr": group["lr"] * factor})
    return out


def scale_lr_of_deform_offsets(
    param_groups: List[Dict], model: torch.nn.Module, factor: float
) -> List[Dict]:
    """:func:`scale_lr` of every parameter of a deformable layer's offset/mask convolution
    (:class:`~centernet_d2.layers.ModulatedDeformConv2d` ``.conv_offset_mask``)."""
    offsets = [
        p
        for m in model.modules()
        if isinstance(m, ModulatedDeformConv2d)
        for p in m.conv_offset_mask.parameters()
    ]
    return scale_lr(param_groups, offsets, factor)


def scale_lr_of_fusion_gains(
    param_groups: List[Dict], model: torch.nn.Module, factor: float
) -> List[Dict]:
    """:func:`scale_lr` of the zero-initialised gains of CenterTrack's stem fusion
    (:class:`~centernet_d2.modeling.fusion.StemFusion` ``.gains``)."""
    gains = [m.gains for m in model.modules() if isinstance(m, StemFusion) and m.gains is not None]
    return scale_lr(param_groups, gains, factor)


def _restart_data_loader(trainer) -> None:
    """Make a ``SimpleTrainer`` create its data-loader iterator anew (the loader's dataset
    changed)."""
    if isinstance(getattr(type(trainer), "_data_loader_iter", None), property):
        trainer._data_loader_iter_obj = None  # Detectron2 after v0.6: created when first used
    else:  # v0.6: created in __init__; drop the old one first so that its workers stop
        trainer._data_loader_iter = None
        trainer._data_loader_iter = iter(trainer.data_loader)
