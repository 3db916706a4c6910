"""The measurements: speed and memory of CenterNet and its peers (``tools/benchmark.py``).

All models get random weights, random images (integer values in [0, 255], as a uint8 image gives)
and synthetic ground truth; nothing is downloaded. Each model is driven through its stages
(:class:`Stages`): CenterNet through its own methods (``preprocess_image``, ``run_network``,
``build_targets``, ``losses``, ``inference``), the peers through Detectron2's
(:class:`~.peers.PeerStages`). Times are :class:`~.timing.Stats` (median, p10-p90) in ms.

Definitions:
    inference latency: ``preprocess`` (``model.preprocess_image``), ``network`` (backbone + head:
        CenterNet's ``run_network``), ``decode`` (CenterNet's ``inference``, the peers'
        ``forward_inference`` (anchor decoding + NMS), then Detectron2's ``detector_postprocess``).
    training step: ``data`` (images normalised and batched, GT moved to the device),
        ``targets`` (target building: CenterNet's ``build_targets``, the peers' anchors +
        ``label_anchors``), ``forward_backward`` (the rest of the forward, the losses and the
        backward), ``optimizer`` (``step`` + ``zero_grad``). The peers' ``forward_training``
        labels the anchors again: that second time is not counted (the ``targets`` lap of the
        same iteration is subtracted from ``forward_backward``).
    activation memory: the bytes of the distinct tensor storages that autograd saves for backward
        during one training forward (``torch.autograd.graph.saved_tensors_hooks``), parameters and
        buffers excluded: the activations held at the peak before backward, on any device. On
        CUDA, ``cuda_peak_mb`` adds ``torch.cuda.max_memory_allocated`` over the whole step minus
        the memory allocated before it.
    FLOPs: fvcore's ``FlopCountAnalysis`` of the network (backbone + head) at batch 1 (one
        multiply-add counts as one FLOP, as fvcore and Detectron2 report them).
"""

import contextlib
import logging
import platform
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Dict, List, Optional, Protocol, Sequence, Tuple

import torch
from detectron2.config import CfgNode
from detectron2.modeling import build_model
from detectron2.modeling.postprocessing import detector_postprocess
from detectron2.structures import Boxes, ImageList, Instances
from detectron2.utils.events import EventStorage
from torch import Tensor, nn

from .peers import PEERS, PeerStages, build_peer, is_channels_last
from .timing import PhaseTimer, Stats, measure_interleaved

__all__ = [
    "Precision",
    "choose_precision",
    "Stages",
    "CenterNetStages",
    "build_centernet",
    "random_inputs",
    "count_parameters",
    "count_flops",
    "inference_run",
    "train_step_run",
    "targets_run",
    "activation_bytes",
    "cuda_peak_bytes",
    "run_benchmark",
]

logger = logging.getLogger(__name__)

MB = 2**20


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


class Stages(Protocol):
    """What the runs call on a model. ``model``: the detector (``preprocess_image``, ``device``);
    ``rebuilds_targets``: ``losses`` builds the targets again instead of using ``targets``."""

    model: nn.Module
    rebuilds_targets: bool

    def network(self, images: Tensor) -> Any:
        """Backbone + head on ``images.tensor`` of ``preprocess_image``: the outputs."""

    def targets(self, images: ImageList, outputs: Any, gt_instances: List[Instances]) -> Any:
        """The training targets of ``gt_instances``."""

    def losses(
        self, images: ImageList, outputs: Any, gt_instances: List[Instances], targets: Any
    ) -> Dict[str, Tensor]:
        """The training losses."""

    def inference(self, images: ImageList, outputs: Any) -> List[Instances]:
        """The detections, in the size of ``images.image_sizes``."""


class CenterNetStages:
    """CenterNet's own stage methods, nothing else."""

    rebuilds_targets = False

    def __init__(self, model: nn.Module):
        self.model = model

    def network(self, images: Tensor) -> Dict[str, Tensor]:
        return self.model.run_network(images)

    def targets(self, images: ImageList, predictions, gt_instances: List[Instances]):
        return self.model.build_targets(images, predictions, gt_instances)

    def losses(self, images: ImageList, predictions, gt_instances, targets) -> Dict[str, Tensor]:
        return self.model.losses(predictions, targets)

    def inference(self, images: ImageList, predictions) -> List[Instances]:
        return self.model.inference(images, predictions)


def build_centernet(cfg: CfgNode, precision: Precision) -> nn.Module:
    """CenterNet from a CenterNet cfg, random weights, on ``precision.device``."""
    cfg = cfg.clone()
    cfg.defrost()
    cfg.MODEL.DEVICE = precision.device
    cfg.MODEL.WEIGHTS = ""
    if precision.channels_last is not None:
        cfg.MODEL.CENTERNET.CHANNELS_LAST = precision.channels_last
    return build_model(cfg)


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
    """A model's ``network`` stage as one module with flat tensor outputs (for tracing)."""

    def __init__(self, stages: Stages):
        super().__init__()
        self.model = stages.model
        self.stages = stages

    def forward(self, x: Tensor) -> Tuple[Tensor, ...]:
        return _flatten(self.stages.network(x))


def _flatten(x) -> Tuple[Tensor, ...]:
    if isinstance(x, Tensor):
        return (x,)
    if isinstance(x, dict):
        x = list(x.values())
    return tuple(t for item in x for t in _flatten(item))


def count_flops(stages: Stages, size: int) -> float:
    """GFLOPs of the network (backbone + head) on one (3, size, size) image (fvcore:
    multiply-add = 1)."""
    from fvcore.nn import FlopCountAnalysis

    model = stages.model
    x = torch.zeros(1, 3, size, size, device=model.device)
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            analysis = FlopCountAnalysis(_Network(stages), (x,))
            analysis.unsupported_ops_warnings(False).uncalled_modules_warnings(False)
            return analysis.total() / 1e9
    finally:
        model.train(was_training)


def inference_run(
    stages: Stages, inputs: List[Dict], precision: Precision
) -> Callable[[PhaseTimer], None]:
    """A run for :func:`~.timing.measure_interleaved`: inference in eval mode without gradients,
    laps ``preprocess``, ``network`` and ``decode`` (see the module docstring)."""
    model = stages.model

    def run(timer: PhaseTimer):
        model.eval()
        with torch.no_grad(), precision.autocast():
            timer.start()
            images = model.preprocess_image(inputs)
            timer.lap("preprocess")
            outputs = stages.network(images.tensor)
            timer.lap("network")
            results = stages.inference(images, outputs)
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
    stages: Stages, inputs: List[Dict], precision: Precision
) -> Callable[[PhaseTimer], None]:
    """A run for :func:`~.timing.measure_interleaved`: one training step (Adam, lr 1e-4, the
    same for every model), laps ``data``, ``targets``, ``forward_backward`` and ``optimizer``
    (see the module docstring). The model's weights change."""
    model = stages.model
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
                outputs = stages.network(images.tensor)
                timer.lap("forward_backward")
                targets = stages.targets(images, outputs, gt_instances)
                timer.lap("targets")
                loss = sum(stages.losses(images, outputs, gt_instances, targets).values())
            (scaler.scale(loss) if scaler else loss).backward()
            timer.lap("forward_backward")
            if scaler:
                scaler.step(optimizer)
                scaler.update()
            else:
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            timer.lap("optimizer")
        if stages.rebuilds_targets:  # built a second time inside the forward_backward lap
            timer.laps["forward_backward"] -= timer.laps["targets"]

    return run


def targets_run(
    stages: Stages, gt_inputs: List[Dict], precision: Precision
) -> Callable[[PhaseTimer], None]:
    """A run for :func:`~.timing.measure_interleaved`: target building alone (lap ``targets``)
    for the images and GT of ``gt_inputs``."""
    model = stages.model
    model.eval()
    with torch.no_grad(), precision.autocast():
        images = model.preprocess_image(gt_inputs)
        outputs = stages.network(images.tensor)
    gt = [x["instances"].to(model.device) for x in gt_inputs]

    def run(timer: PhaseTimer):
        stages.targets(images, outputs, gt)
        timer.lap("targets")

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


@contextlib.contextmanager
def _logged(what: str):
    start = time.perf_counter()
    yield
    logger.info(f"  {what}: {time.perf_counter() - start:.1f} s")


def _jsonable(phases: Dict[str, Stats]) -> Dict[str, object]:
    return {name: asdict(s) for name, s in phases.items()}


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
    (:func:`~.timing.measure_interleaved`). Returns the JSON-ready measurements: ``meta`` and
    ``models`` (per model ``params``, ``gflops``, ``inference`` per batch size,
    ``activation_mb``, ``train``, ``latency_vs_size`` at batch 1, ``targets_vs_objects`` at the
    training batch, ``memory_format``); :mod:`.report` compares them. Times are :class:`Stats`
    dicts in ms. ``size`` defaults to ``cfg.INPUT.MIN_SIZE_TEST``, ``train_batch_size`` to the
    largest of ``batch_sizes``; the sweeps use ``sweep_repeats`` runs (default ``repeats``)."""
    for p in peers:
        if p not in PEERS:
            raise ValueError(f"peers must be among {PEERS}, got {p!r}")
    size = size or cfg.INPUT.MIN_SIZE_TEST
    train_batch_size = train_batch_size or max(batch_sizes)
    sweep_repeats = sweep_repeats or repeats
    num_classes = cfg.MODEL.CENTERNET.NUM_CLASSES
    device = precision.device

    torch.manual_seed(0)
    models: Dict[str, Stages] = {"centernet": CenterNetStages(build_centernet(cfg, precision))}
    for p in peers:
        models[p] = PeerStages(build_peer(p, cfg, device, bool(precision.channels_last)))

    def inputs(num_images, image_size, objects, seed):
        return random_inputs(
            num_images, image_size, objects, num_classes, torch.Generator().manual_seed(seed)
        )

    def measure(run, x, repeats_) -> Dict[str, Dict[str, Stats]]:
        runs = {n: run(s, x, precision) for n, s in models.items()}
        return measure_interleaved(runs, device, warmup, repeats_)

    out: Dict[str, Dict] = {
        n: {"params": count_parameters(s.model), "gflops": count_flops(s, size)}
        for n, s in models.items()
    }
    with _logged("inference"):
        for b in batch_sizes:
            for n, phases in measure(inference_run, inputs(b, size, 0, b), repeats).items():
                out[n].setdefault("inference", {})[str(b)] = _jsonable(phases)
                out[n]["inference"][str(b)]["images_per_s"] = 1000 * b / phases["total"].median
    with _logged("latency over input sizes"):
        for s in scaling_sizes:
            for n, phases in measure(inference_run, inputs(1, s, 0, s), sweep_repeats).items():
                out[n].setdefault("latency_vs_size", {})[str(s)] = asdict(phases["total"])
    with _logged("targets over objects"):
        for k in object_counts:
            x = inputs(train_batch_size, size, k, k)
            for n, phases in measure(targets_run, x, sweep_repeats).items():
                out[n].setdefault("targets_vs_objects", {})[str(k)] = asdict(phases["targets"])
    with _logged("training step"):
        x = inputs(train_batch_size, size, num_objects, 0)
        for n, s in models.items():
            out[n]["activation_mb"] = activation_bytes(s.model, x, precision) / MB
            if torch.device(device).type == "cuda":
                out[n]["cuda_peak_mb"] = cuda_peak_bytes(s.model, x, precision) / MB
        for n, phases in measure(train_step_run, x, repeats).items():
            out[n]["train"] = _jsonable(phases)
    for n, s in models.items():
        out[n]["memory_format"] = "channels-last" if is_channels_last(s.model) else "NCHW"

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
    return {"meta": meta, "models": out}
