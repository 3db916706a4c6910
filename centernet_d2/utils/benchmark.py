"""Speed and memory of CenterNet against Detectron2's RetinaNet and FCOS (``tools/benchmark.py``).

All models get random weights, random images (integer values in [0, 255], as a uint8 image gives)
and synthetic ground truth; nothing is downloaded. Every time is the median of ``repeats`` runs
after ``warmup`` runs, with the 10th and 90th percentiles as its spread; on CUDA the device is
synchronised at each phase boundary.

Definitions:
    inference latency: ``preprocess`` (``model.preprocess_image``), ``network`` (backbone + head),
        ``decode`` (``model.forward_inference`` + Detectron2's ``detector_postprocess``; for
        CenterNet ``decode_boxes`` + ``to_instances``, for the peers anchor decoding + NMS).
    training step: ``data`` (images normalised and batched, GT moved to the device),
        ``targets`` (target building: CenterNet's ``build_targets``, the peers' anchors +
        ``label_anchors``), ``forward_backward`` (the rest of the forward, the losses and the
        backward), ``optimizer`` (``step`` + ``zero_grad``). Targets are timed by a separate call
        on the same inputs in the same iteration, and that time is subtracted from the forward
        (which builds them again inside ``forward_training``).
    activation memory: the bytes of the distinct tensor storages that autograd saves for backward
        during one training forward (``torch.autograd.graph.saved_tensors_hooks``), parameters and
        buffers excluded: the activations held at the peak before backward, on any device. On
        CUDA, ``cuda_peak_mb`` adds ``torch.cuda.max_memory_allocated`` over the whole step minus
        the memory allocated before it.
    FLOPs: fvcore's ``FlopCountAnalysis`` of backbone + head at batch 1 (one multiply-add counts
        as one FLOP, as fvcore and Detectron2 report them).

The peers are built from Detectron2's ``COCO-Detection/retinanet_R_50_FPN_1x.yaml`` with the
CenterNet config's ResNet depth, norm, frozen stages, pixel mean/std, class count and test size,
so only the detector design differs. FCOS follows Detectron2's ``fcos_R_50_FPN_1x`` (P6/P7 from
P5, GN head); it has no config entry in Detectron2 v0.6, so it is built from its modules.
"""

import contextlib
import logging
import platform
import time
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import numpy as np
import torch
from detectron2.config import CfgNode, get_cfg
from detectron2.layers import ShapeSpec
from detectron2.modeling import build_model, build_resnet_backbone
from detectron2.modeling.backbone.fpn import FPN, LastLevelP6P7
from detectron2.modeling.meta_arch.fcos import FCOS, FCOSHead
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, Instances
from detectron2.utils.events import EventStorage
from torch import Tensor, nn

from ..modeling.targets import build_targets

__all__ = [
    "PEERS",
    "Stats",
    "PhaseTimer",
    "measure_phases",
    "Precision",
    "choose_precision",
    "build_centernet",
    "build_peer",
    "random_inputs",
    "count_parameters",
    "count_flops",
    "activation_bytes",
    "measure_interleaved",
    "inference_run",
    "train_step_run",
    "targets_run",
    "cuda_peak_bytes",
    "compare",
    "run_benchmark",
    "markdown_table",
    "plot_benchmark",
]

logger = logging.getLogger(__name__)

PEERS = ("retinanet", "fcos")
RETINANET_CONFIG = "COCO-Detection/retinanet_R_50_FPN_1x.yaml"
MB = 2**20


@dataclass
class Stats:
    """Milliseconds over repeated runs: median, 10th and 90th percentiles, number of runs."""

    median: float
    p10: float
    p90: float
    n: int

    @classmethod
    def of(cls, seconds: Sequence[float]) -> "Stats":
        ms = np.asarray(seconds, dtype=np.float64) * 1000
        p10, median, p90 = np.percentile(ms, [10, 50, 90])
        return cls(float(median), float(p10), float(p90), len(ms))


class PhaseTimer:
    """Wall-clock laps of one run; ``lap(name)`` synchronises CUDA, then records the time since
    the previous lap (or ``start``) under ``name``, adding to it if the name repeats."""

    def __init__(self, device: torch.device):
        self.cuda = torch.device(device).type == "cuda"
        self.laps: Dict[str, float] = {}
        self.start()

    def _sync(self):
        if self.cuda:
            torch.cuda.synchronize()

    def start(self):
        self._sync()
        self._last = time.perf_counter()

    def lap(self, name: str):
        self._sync()
        now = time.perf_counter()
        self.laps[name] = self.laps.get(name, 0.0) + now - self._last
        self._last = now


def measure_interleaved(
    runs: Dict[str, Callable[[PhaseTimer], None]], device, warmup: int, repeats: int
) -> Dict[str, Dict[str, Stats]]:
    """Time several ``run(timer)`` callables round-robin: ``warmup`` untimed rounds, then
    ``repeats`` timed rounds, each calling every run once, so that a change of machine load
    affects all of them alike. Returns per run the :class:`Stats` of each lap name and of their
    sum, ``"total"``."""
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    for _ in range(warmup):
        for run in runs.values():
            run(PhaseTimer(device))
    laps: Dict[str, Dict[str, List[float]]] = {name: {} for name in runs}
    for _ in range(repeats):
        for name, run in runs.items():
            timer = PhaseTimer(device)
            run(timer)
            for lap, seconds in timer.laps.items():
                laps[name].setdefault(lap, []).append(seconds)
            laps[name].setdefault("total", []).append(sum(timer.laps.values()))
    return {
        name: {lap: Stats.of(seconds) for lap, seconds in per_run.items()}
        for name, per_run in laps.items()
    }


def measure_phases(
    run: Callable[[PhaseTimer], None], device, warmup: int, repeats: int
) -> Dict[str, Stats]:
    """:func:`measure_interleaved` of one run."""
    return measure_interleaved({"run": run}, device, warmup, repeats)["run"]


@dataclass
class Precision:
    """How the models run: autocast dtype (None: float32) and memory format: channels-last for
    all (True), NCHW for all (False), or each model's own default (None: CenterNet as its config's
    ``MODEL.CENTERNET.CHANNELS_LAST`` says, the peers in Detectron2's NCHW)."""

    device: str
    autocast_dtype: Optional[torch.dtype]
    channels_last: Optional[bool]

    def autocast(self):
        if self.autocast_dtype is None:
            return contextlib.nullcontext()
        return torch.autocast(torch.device(self.device).type, dtype=self.autocast_dtype)

    def describe(self) -> Dict[str, object]:
        dtype = "float32" if self.autocast_dtype is None else str(self.autocast_dtype)[6:]
        layout = {None: "config", True: "all channels-last", False: "all NCHW"}[self.channels_last]
        return {"device": self.device, "dtype": dtype, "channels_last": layout}


def choose_precision(
    device: str, amp: bool = False, channels_last: Optional[bool] = None
) -> Precision:
    """CUDA: float16 autocast and channels-last always. CPU: float32 unless ``amp`` (bfloat16
    autocast); memory format as ``channels_last`` says (see :class:`Precision`)."""
    if torch.device(device).type == "cuda":
        return Precision(device, torch.float16, True)
    return Precision(device, torch.bfloat16 if amp else None, channels_last)


def build_centernet(cfg: CfgNode, precision: Precision) -> nn.Module:
    """CenterNet from a CenterNet cfg, random weights, on ``precision.device``."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = precision.device
    cfg.MODEL.WEIGHTS = ""
    if precision.channels_last is not None:
        cfg.MODEL.CENTERNET.CHANNELS_LAST = precision.channels_last
    return build_model(cfg)


def _peer_cfg(cfg: CfgNode) -> CfgNode:
    from detectron2 import model_zoo  # imports model-zoo helpers only when peers are wanted

    peer = get_cfg()
    peer.merge_from_file(model_zoo.get_config_file(RETINANET_CONFIG))
    depth = cfg.MODEL.RESNETS.DEPTH
    if "resnet" not in cfg.MODEL.BACKBONE.NAME:
        logger.warning(
            f"backbone {cfg.MODEL.BACKBONE.NAME} is not a ResNet: the peers use ResNet-{depth}"
        )
    peer.MODEL.RESNETS.DEPTH = depth
    peer.MODEL.RESNETS.RES2_OUT_CHANNELS = 64 if depth in (18, 34) else 256
    for key in ("NORM", "STRIDE_IN_1X1", "NUM_GROUPS", "WIDTH_PER_GROUP"):
        peer.MODEL.RESNETS[key] = cfg.MODEL.RESNETS[key]
    peer.MODEL.BACKBONE.FREEZE_AT = cfg.MODEL.BACKBONE.FREEZE_AT
    peer.MODEL.PIXEL_MEAN = list(cfg.MODEL.PIXEL_MEAN)
    peer.MODEL.PIXEL_STD = list(cfg.MODEL.PIXEL_STD)
    peer.INPUT.FORMAT = cfg.INPUT.FORMAT
    peer.INPUT.MIN_SIZE_TEST = cfg.INPUT.MIN_SIZE_TEST
    peer.INPUT.MAX_SIZE_TEST = cfg.INPUT.MAX_SIZE_TEST
    peer.MODEL.RETINANET.NUM_CLASSES = cfg.MODEL.CENTERNET.NUM_CLASSES
    peer.TEST.DETECTIONS_PER_IMAGE = cfg.TEST.DETECTIONS_PER_IMAGE
    peer.MODEL.WEIGHTS = ""
    return peer


def _build_fcos(cfg: CfgNode) -> FCOS:
    # Detectron2's configs/common/models/fcos.py, which v0.6 has only as a LazyConfig
    bottom_up = build_resnet_backbone(cfg, ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN)))
    channels = cfg.MODEL.FPN.OUT_CHANNELS
    backbone = FPN(
        bottom_up=bottom_up,
        in_features=cfg.MODEL.FPN.IN_FEATURES,
        out_channels=channels,
        top_block=LastLevelP6P7(channels, channels, in_feature="p5"),
    )
    in_features = ["p3", "p4", "p5", "p6", "p7"]
    head = FCOSHead(
        input_shape=[backbone.output_shape()[f] for f in in_features],
        conv_dims=[channels] * cfg.MODEL.RETINANET.NUM_CONVS,
        num_classes=cfg.MODEL.RETINANET.NUM_CLASSES,
        prior_prob=cfg.MODEL.RETINANET.PRIOR_PROB,
    )
    # norm="GN" as in Detectron2's config; v0.6's RetinaNetHead probes get_norm("GN", 1), which
    # recent PyTorch rejects, so the GroupNorms go in after each 3x3 conv here instead
    head.cls_subnet = _with_group_norm(head.cls_subnet)
    head.bbox_subnet = _with_group_norm(head.bbox_subnet)
    return FCOS(
        backbone=backbone,
        head=head,
        head_in_features=in_features,
        num_classes=cfg.MODEL.RETINANET.NUM_CLASSES,
        max_detections_per_image=cfg.TEST.DETECTIONS_PER_IMAGE,
        pixel_mean=cfg.MODEL.PIXEL_MEAN,
        pixel_std=cfg.MODEL.PIXEL_STD,
    )


def _with_group_norm(subnet: nn.Sequential) -> nn.Sequential:
    layers = []
    for layer in subnet:
        layers.append(layer)
        if isinstance(layer, nn.Conv2d):
            layers.append(nn.GroupNorm(32, layer.out_channels))
    return nn.Sequential(*layers)


def build_peer(name: str, cfg: CfgNode, precision: Precision) -> nn.Module:
    """Detectron2's RetinaNet or FCOS with the CenterNet cfg's backbone depth, classes and input
    size, random weights, on ``precision.device``."""
    if name not in PEERS:
        raise ValueError(f"peer must be one of {PEERS}, got {name!r}")
    peer = _peer_cfg(cfg)
    peer.MODEL.DEVICE = precision.device
    model = build_model(peer) if name == "retinanet" else _build_fcos(peer)
    model.to(torch.device(precision.device))
    if precision.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def random_inputs(
    num_images: int,
    size: int,
    num_objects: int,
    num_classes: int,
    generator: Optional[torch.Generator] = None,
) -> List[Dict[str, object]]:
    """Detectron2-style inputs: a (3, size, size) float image of integers in [0, 255] and
    ``num_objects`` random GT boxes (sides 8 px to half the image, XYXY, inside it) per image."""
    g = generator if generator is not None else torch.Generator().manual_seed(0)
    inputs = []
    for _ in range(num_images):
        image = torch.randint(0, 256, (3, size, size), generator=g).float()
        side = torch.rand(num_objects, 2, generator=g) * max(size / 2 - 8, 1) + 8
        side = side.clamp(max=size)
        corner = torch.rand(num_objects, 2, generator=g) * (size - side)
        instances = Instances((size, size))
        instances.gt_boxes = Boxes(torch.cat([corner, corner + side], dim=1))
        instances.gt_classes = torch.randint(0, num_classes, (num_objects,), generator=g)
        inputs.append({"image": image, "height": size, "width": size, "instances": instances})
    return inputs


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


class _Network(nn.Module):
    """Backbone + head of a ``DenseDetector`` as one module with flat tensor outputs (for
    tracing)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        features = self.model.backbone(x)
        return _flatten(self.model.head([features[f] for f in self.model.head_in_features]))


def _flatten(x) -> Tuple[Tensor, ...]:
    if isinstance(x, Tensor):
        return (x,)
    if isinstance(x, dict):
        x = list(x.values())
    return tuple(t for item in x for t in _flatten(item))


def count_flops(model: nn.Module, size: int) -> float:
    """GFLOPs of backbone + head on one (3, size, size) image (fvcore: multiply-add = 1)."""
    from fvcore.nn import FlopCountAnalysis

    x = torch.zeros(1, 3, size, size, device=model.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(_Network(model), (x,))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return analysis.total() / 1e9
    finally:
        model.train(was_training)


def _network(model: nn.Module, images) -> Tuple[List[Tensor], object]:
    x = images.tensor
    if getattr(model, "channels_last", False) or _is_channels_last(model):
        x = x.contiguous(memory_format=torch.channels_last)
    features = model.backbone(x)
    features = [features[f] for f in model.head_in_features]
    return features, model.head(features)


def _is_channels_last(model: nn.Module) -> bool:
    # a 1x1 conv's weight is contiguous in both formats: look at a larger kernel
    conv = next(
        (m for m in model.modules() if isinstance(m, nn.Conv2d) and m.weight[0, 0].numel() > 1),
        None,
    )
    return conv is not None and conv.weight.is_contiguous(memory_format=torch.channels_last)


def _build_targets(model: nn.Module, images, features, predictions, gt_instances):
    """The model's target building, alone: CenterNet's ``build_targets``, the peers' anchors +
    ``label_anchors``."""
    if isinstance(predictions, dict):  # CenterNet
        return build_targets(
            gt_instances,
            images.image_sizes,
            predictions["heatmap"].shape,
            model.stride,
            kind=model.target_kind,
            min_overlap=model.min_overlap,
            ttf_alpha=model.ttf_alpha,
            ltrb_beta=model.ltrb_beta if "box" in predictions else None,
        )
    return model.label_anchors(model.anchor_generator(features), gt_instances)


def inference_run(
    model: nn.Module, inputs: List[Dict], precision: Precision
) -> Callable[[PhaseTimer], None]:
    """A run for :func:`measure_interleaved`: inference in eval mode without gradients, laps
    ``preprocess``, ``network`` and ``decode`` (see the module docstring)."""

    def run(timer: PhaseTimer):
        model.eval()
        with torch.no_grad(), precision.autocast():
            timer.start()
            images = model.preprocess_image(inputs)
            timer.lap("preprocess")
            features, predictions = _network(model, images)
            timer.lap("network")
            results = model.forward_inference(images, features, predictions)
            for r, x in zip(results, inputs):
                detector_postprocess(r, x["height"], x["width"])
            timer.lap("decode")

    return run


def _grad_scaler(precision: Precision):
    if precision.autocast_dtype != torch.float16:
        return None
    if hasattr(torch, "amp") and hasattr(torch.amp, "GradScaler"):
        return torch.amp.GradScaler("cuda")
    return torch.cuda.amp.GradScaler()


def train_step_run(
    model: nn.Module, inputs: List[Dict], precision: Precision
) -> Callable[[PhaseTimer], None]:
    """A run for :func:`measure_interleaved`: one training step (Adam, lr 1e-4, the same for
    every model), laps ``data``, ``targets``, ``forward_backward`` and ``optimizer`` (see the
    module docstring). The model's weights change."""
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-4)
    scaler = _grad_scaler(precision)

    def run(timer: PhaseTimer):
        model.train()
        with EventStorage():
            timer.start()
            images = model.preprocess_image(inputs)
            gt_instances = [x["instances"].to(model.device) for x in inputs]
            timer.lap("data")
            with precision.autocast():
                features, predictions = _network(model, images)
                timer.lap("forward_backward")
                _build_targets(model, images, features, predictions, gt_instances)
                timer.lap("targets")
                losses = model.forward_training(images, features, predictions, gt_instances)
                loss = sum(losses.values())
            (scaler.scale(loss) if scaler else loss).backward()
            timer.lap("forward_backward")
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            timer.lap("optimizer")
        # forward_training built the targets a second time, inside the forward_backward lap
        timer.laps["forward_backward"] -= timer.laps["targets"]

    return run


def activation_bytes(model: nn.Module, inputs: List[Dict], precision: Precision) -> int:
    """Bytes of the distinct storages saved for backward in one training forward, parameters and
    buffers excluded (see the module docstring)."""
    model.train()
    own = {t.untyped_storage().data_ptr() for t in list(model.parameters()) + list(model.buffers())}
    saved: Dict[Tuple[str, int], int] = {}

    def pack(t: Tensor) -> Tensor:
        storage = t.untyped_storage()
        if storage.data_ptr() not in own:
            saved[(str(t.device), storage.data_ptr())] = storage.nbytes()
        return t

    with EventStorage(), torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        with precision.autocast():
            losses = model(inputs)
            del losses
    model.zero_grad(set_to_none=True)
    return sum(saved.values())


def cuda_peak_bytes(model: nn.Module, inputs: List[Dict], precision: Precision) -> int:
    """``torch.cuda.max_memory_allocated`` over one training forward + backward, minus the memory
    allocated before it."""
    model.train()
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    with EventStorage():
        with precision.autocast():
            loss = sum(model(inputs).values())
        loss.backward()
    torch.cuda.synchronize()
    peak = torch.cuda.max_memory_allocated() - before
    model.zero_grad(set_to_none=True)
    return peak


def targets_run(
    model: nn.Module, gt_inputs: List[Dict], precision: Precision
) -> Callable[[PhaseTimer], None]:
    """A run for :func:`measure_interleaved`: target building alone (lap ``targets``) for the
    images and GT of ``gt_inputs``."""
    model.eval()
    with torch.no_grad(), precision.autocast():
        images = model.preprocess_image(gt_inputs)
        features, predictions = _network(model, images)
    gt = [x["instances"].to(model.device) for x in gt_inputs]

    def run(timer: PhaseTimer):
        _build_targets(model, images, features, predictions, gt)
        timer.lap("targets")

    return run


@contextlib.contextmanager
def _logged(what: str):
    start = time.perf_counter()
    yield
    logger.info(f"  {what}: {time.perf_counter() - start:.1f} s")


def _jsonable(phases: Dict[str, Stats]) -> Dict[str, object]:
    return {name: asdict(s) for name, s in phases.items()}


# (name, value from results, limit): CenterNet must be at or below the limit
TARGETS = (
    ("latency vs RetinaNet (batch {b})", "latency_vs_retinanet_b{b}", 0.45),
    ("latency vs FCOS (batch {b})", "latency_vs_fcos_b{b}", 0.8),
    ("decoding share of inference (batch {b})", "decode_share_b{b}", 0.03),
    ("target building share of a training step", "targets_share", 0.05),
    ("training step vs RetinaNet", "train_vs_retinanet", 0.6),
    ("training activation memory vs RetinaNet", "activation_vs_retinanet", 0.7),
)


def compare(models: Dict[str, Dict], batch_sizes: Sequence[int]) -> Tuple[Dict, List[Dict]]:
    """Ratios of CenterNet against the peers and the issue's targets (met or not)."""
    c = models["centernet"]
    ratios: Dict[str, float] = {}
    for b in batch_sizes:
        inf = c["inference"][str(b)]
        ratios[f"decode_share_b{b}"] = inf["decode"]["median"] / inf["total"]["median"]
        for peer in models:
            if peer != "centernet":
                ratio = (
                    inf["total"]["median"] / models[peer]["inference"][str(b)]["total"]["median"]
                )
                ratios[f"latency_vs_{peer}_b{b}"] = ratio
    ratios["targets_share"] = c["train"]["targets"]["median"] / c["train"]["total"]["median"]
    for peer in models:
        if peer != "centernet":
            p = models[peer]
            ratios[f"train_vs_{peer}"] = (
                c["train"]["total"]["median"] / p["train"]["total"]["median"]
            )
            ratios[f"activation_vs_{peer}"] = c["activation_mb"] / p["activation_mb"]
            ratios[f"gflops_vs_{peer}"] = c["gflops"] / p["gflops"]
            ratios[f"params_vs_{peer}"] = c["params"] / p["params"]
    targets = []
    for name, key, limit in TARGETS:
        for b in batch_sizes if "{b}" in key else [None]:
            k = key.format(b=b)
            if k in ratios:
                targets.append(
                    {
                        "target": name.format(b=b),
                        "ratio": ratios[k],
                        "limit": limit,
                        "met": ratios[k] <= limit,
                    }
                )
    return ratios, targets


def run_benchmark(
    cfg: CfgNode,
    precision: Precision,
    batch_sizes: Sequence[int] = (1, 8),
    size: Optional[int] = None,
    train_batch_size: Optional[int] = None,
    num_objects: int = 50,
    scaling_sizes: Sequence[int] = (256, 384, 512, 768, 1024),
    object_counts: Sequence[int] = (1, 10, 50, 100, 500),
    peers: Sequence[str] = PEERS,
    warmup: int = 1,
    repeats: int = 5,
    sweep_repeats: Optional[int] = None,
) -> Dict[str, object]:
    """Measure CenterNet from ``cfg`` and each peer, the models interleaved in every timing
    (:func:`measure_interleaved`). Returns the JSON-ready report: ``meta``, ``models`` (per
    model ``params``, ``gflops``, ``inference`` per batch size, ``activation_mb``, ``train``,
    ``latency_vs_size`` at batch 1, ``targets_vs_objects`` at the training batch), ``ratios`` and
    ``targets`` (:func:`compare`). Times are :class:`Stats` dicts in ms. ``size`` defaults to
    ``cfg.INPUT.MIN_SIZE_TEST``, ``train_batch_size`` to the largest of ``batch_sizes``; the
    sweeps use ``sweep_repeats`` runs (default ``repeats``)."""
    for p in peers:
        if p not in PEERS:
            raise ValueError(f"peers must be among {PEERS}, got {p!r}")
    size = size or cfg.INPUT.MIN_SIZE_TEST
    train_batch_size = train_batch_size or max(batch_sizes)
    sweep_repeats = sweep_repeats or repeats
    num_classes = cfg.MODEL.CENTERNET.NUM_CLASSES
    device = precision.device

    def build_all() -> Dict[str, nn.Module]:
        torch.manual_seed(0)
        models = {"centernet": build_centernet(cfg, precision)}
        models.update({p: build_peer(p, cfg, precision) for p in peers})
        return models

    def inputs(num_images, image_size, objects, seed):
        return random_inputs(
            num_images, image_size, objects, num_classes, torch.Generator().manual_seed(seed)
        )

    models = build_all()
    out: Dict[str, Dict] = {
        n: {"params": count_parameters(m), "gflops": count_flops(m, size)}
        for n, m in models.items()
    }
    with _logged("inference"):
        for b in batch_sizes:
            x = inputs(b, size, 0, b)
            runs = {n: inference_run(m, x, precision) for n, m in models.items()}
            for n, phases in measure_interleaved(runs, device, warmup, repeats).items():
                out[n].setdefault("inference", {})[str(b)] = _jsonable(phases)
                out[n]["inference"][str(b)]["images_per_s"] = 1000 * b / phases["total"].median
    with _logged("latency over input sizes"):
        for s in scaling_sizes:
            x = inputs(1, s, 0, s)
            runs = {n: inference_run(m, x, precision) for n, m in models.items()}
            for n, phases in measure_interleaved(runs, device, warmup, sweep_repeats).items():
                out[n].setdefault("latency_vs_size", {})[str(s)] = asdict(phases["total"])
    with _logged("targets over objects"):
        for k in object_counts:
            x = inputs(train_batch_size, size, k, k)
            runs = {n: targets_run(m, x, precision) for n, m in models.items()}
            for n, phases in measure_interleaved(runs, device, warmup, sweep_repeats).items():
                out[n].setdefault("targets_vs_objects", {})[str(k)] = asdict(phases["targets"])
    with _logged("training step"):
        x = inputs(train_batch_size, size, num_objects, 0)
        for n, m in models.items():
            out[n]["activation_mb"] = activation_bytes(m, x, precision) / MB
            if torch.device(device).type == "cuda":
                out[n]["cuda_peak_mb"] = cuda_peak_bytes(m, x, precision) / MB
        runs = {n: train_step_run(m, x, precision) for n, m in models.items()}
        for n, phases in measure_interleaved(runs, device, warmup, repeats).items():
            out[n]["train"] = _jsonable(phases)
    for n, m in models.items():
        out[n]["memory_format"] = "channels-last" if _is_channels_last(m) else "NCHW"

    ratios, targets = compare(out, batch_sizes)
    meta = dict(precision.describe())
    meta.update(
        {
            "size": size,
            "batch_sizes": list(batch_sizes),
            "train_batch_size": train_batch_size,
            "objects_per_image": num_objects,
            "scaling_sizes": list(scaling_sizes),
            "object_counts": list(object_counts),
            "warmup": warmup,
            "repeats": repeats,
            "sweep_repeats": sweep_repeats,
            "threads": torch.get_num_threads(),
            "torch": torch.__version__,
            "cpu": platform.processor() or platform.machine(),
            "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None,
            "optimizer": "Adam",
            "time_unit": "ms",
        }
    )
    return {"meta": meta, "models": out, "ratios": ratios, "targets": targets}


def _ms(s: Dict) -> str:
    return f"{s['median']:.1f} ({s['p10']:.1f}-{s['p90']:.1f})"


def markdown_table(report: Dict) -> str:
    """The report as markdown: one row per model, then the targets."""
    meta, models = report["meta"], report["models"]
    bs = meta["batch_sizes"]
    head = ["model", "format", "params (M)", "GFLOPs"]
    head += [f"latency b{b} ms" for b in bs]
    head += [f"decode b{bs[0]} ms", f"train step b{meta['train_batch_size']} ms"]
    head += ["targets ms", "activations MB"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, m in models.items():
        row = [name, m.get("memory_format", "?"), f"{m['params'] / 1e6:.2f}", f"{m['gflops']:.1f}"]
        row += [_ms(m["inference"][str(b)]["total"]) for b in bs]
        row += [_ms(m["inference"][str(bs[0])]["decode"]), _ms(m["train"]["total"])]
        row += [_ms(m["train"]["targets"]), f"{m['activation_mb']:.0f}"]
        lines.append("| " + " | ".join(row) + " |")
    lines += ["", "| target (CenterNet) | measured | limit | met |", "|---|---|---|---|"]
    for t in report["targets"]:
        met = "yes" if t["met"] else "no"
        lines.append(f"| {t['target']} | {t['ratio']:.3f} | {t['limit']} | {met} |")
    return "\n".join(lines)


def plot_benchmark(report: Dict, path: str) -> None:
    """PNG of the report: inference and training phases per model, latency over input size,
    target-building time over objects per image."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    meta, models = report["meta"], report["models"]
    names = list(models)
    fig, axes = plt.subplots(2, 2, figsize=(12, 8))
    for ax, key, phases, title in (
        (
            axes[0, 0],
            "inference",
            ("preprocess", "network", "decode"),
            f"inference, batch {meta['batch_sizes'][0]} ({meta['size']} px)",
        ),
        (
            axes[0, 1],
            "train",
            ("data", "targets", "forward_backward", "optimizer"),
            f"training step, batch {meta['train_batch_size']}",
        ),
    ):
        bottom = np.zeros(len(names))
        for phase in phases:
            if key == "inference":
                values = [
                    models[n][key][str(meta["batch_sizes"][0])][phase]["median"] for n in names
                ]
            else:
                values = [models[n][key][phase]["median"] for n in names]
            ax.bar(names, values, bottom=bottom, label=phase)
            bottom += np.asarray(values)
        ax.set_ylabel("ms (median)")
        ax.set_title(title)
        ax.legend()
    for ax, key, xlabel, title in (
        (axes[1, 0], "latency_vs_size", "input size (px)", "inference latency, batch 1"),
        (
            axes[1, 1],
            "targets_vs_objects",
            "objects per image",
            f"target building, batch {meta['train_batch_size']}",
        ),
    ):
        for n in names:
            xs = [int(x) for x in models[n][key]]
            ys = [s["median"] for s in models[n][key].values()]
            lo = [s["p10"] for s in models[n][key].values()]
            hi = [s["p90"] for s in models[n][key].values()]
            ax.plot(xs, ys, marker="o", label=n)
            ax.fill_between(xs, lo, hi, alpha=0.2)
        ax.set_xlabel(xlabel)
        ax.set_ylabel("ms (median, p10-p90)")
        ax.set_title(title)
        if key == "targets_vs_objects":
            ax.set_xscale("symlog")
        ax.legend()
    formats = ", ".join(f"{n} {m.get('memory_format', '?')}" for n, m in models.items())
    dtype = f"{meta['dtype']}; {formats}"
    fig.suptitle(f"{meta['device']} ({meta['gpu'] or meta['cpu']}), {dtype}")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
