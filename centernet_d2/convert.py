"""Convert torchvision ImageNet weights (ResNet / ResNeXt, MobileNetV2 / V3) into Detectron2
checkpoints that our backbones load.

The checkpoint is Detectron2's ImageNet format, as its ``tools/convert-torchvision-to-d2.py``
writes it: ``{"model": state_dict, "__author__": "torchvision", "matching_heuristics": True}``, with
the backbone's own names; ``DetectionCheckpointer`` matches them by suffix to the model's names
(``stem.conv1.weight`` -> ``backbone.bottom_up.stem.conv1.weight``).

* ResNet / ResNeXt / Wide ResNet: Detectron2's ResNet names. ``conv1``, ``bn1`` -> ``stem.conv1``,
  ``stem.conv1.norm``; ``layer<i>.<j>.conv<t>``, ``bn<t>`` -> ``res<i+1>.<j>.conv<t>``,
  ``conv<t>.norm``; ``downsample.0``, ``.1`` -> ``shortcut``, ``shortcut.norm``. torchvision puts
  the stride in the 3x3 conv: use ``MODEL.RESNETS.STRIDE_IN_1X1 False`` (our configs do).
* MobileNetV2 / V3: ``MobileNetBackbone`` keeps torchvision's ``features.<i>.*`` names, so the
  keys are kept as they are.

The classifier (``fc.*``, ``classifier.*``) is left out. torchvision's input is RGB normalised with
the ImageNet mean and std, which is what our configs' INPUT.FORMAT, PIXEL_MEAN and PIXEL_STD give.
"""

import inspect
import logging
import os
import pickle
import re
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence

import torch
from detectron2.checkpoint.c2_model_loading import align_and_update_state_dicts
from torch import Tensor

__all__ = [
    "Conversion",
    "KeyReport",
    "checkpoint_key_report",
    "convert_torchvision_file",
    "convert_torchvision_state_dict",
    "load_state_dict_file",
    "module_prefixes",
    "save_detectron2_checkpoint",
]

logger = logging.getLogger(__name__)

AUTHOR = "torchvision"
CHECKPOINT_EXTENSIONS = (".pkl", ".pth")
# (blocks per stage, bottleneck blocks) -> MODEL.RESNETS.DEPTH
RESNET_DEPTHS = {
    ((2, 2, 2, 2), False): 18,
    ((3, 4, 6, 3), False): 34,
    ((3, 4, 6, 3), True): 50,
    ((3, 4, 23, 3), True): 101,
    ((3, 8, 36, 3), True): 152,
}
# (number of blocks in features, channels of the last one) -> MODEL.MOBILENET.NAME
MOBILENET_NAMES = {
    (19, 1280): "mobilenet_v2",
    (17, 960): "mobilenet_v3_large",
    (13, 576): "mobilenet_v3_small",
}
_RESNET_STEM = re.compile(r"^(conv1|bn1)\.(\w+)$")
_RESNET_BLOCK = re.compile(r"^layer([1-4])\.(\d+)\.(conv\d|bn\d|downsample\.[01])\.(\w+)$")
# torchvision module name in a block -> Detectron2's
_RESNET_MODULES = {"downsample.0": "shortcut", "downsample.1": "shortcut.norm"}
_RESNET_MODULES.update({f"conv{t}": f"conv{t}" for t in (1, 2, 3)})
_RESNET_MODULES.update({f"bn{t}": f"conv{t}.norm" for t in (1, 2, 3)})


@dataclass
class Conversion:
    """What :func:`convert_torchvision_state_dict` made of a torchvision state dict."""

    model: Dict[str, Tensor]  # Detectron2 backbone names -> tensors
    family: str  # "resnet" or "mobilenet"
    dropped: List[str]  # classifier keys left out
    config_opts: List  # KEY VALUE overrides that build the matching backbone


@dataclass
class KeyReport:
    """How a checkpoint's keys match a model's, with Detectron2's name-matching heuristics."""

    missing: List[str] = field(default_factory=list)  # model keys the checkpoint lacks
    unexpected: List[str] = field(default_factory=list)  # checkpoint keys matching no model key
    mismatched: List[str] = field(default_factory=list)  # model keys whose shape differs


def _resnet_name(key: str) -> str:
    stem = _RESNET_STEM.match(key)
    if stem:
        module = "stem.conv1" if stem[1] == "conv1" else "stem.conv1.norm"
        return f"{module}.{stem[2]}"
    block = _RESNET_BLOCK.match(key)
    if block:
        stage, index, module, param = block.groups()
        return f"res{int(stage) + 1}.{index}.{_RESNET_MODULES[module]}.{param}"
    raise ValueError(f"{key!r} is not a key of a torchvision ResNet")


def _resnet_opts(state_dict: Mapping[str, Tensor]) -> List:
    """MODEL.RESNETS overrides for the architecture of a torchvision ResNet state dict."""
    blocks = tuple(
        len({k.split(".")[1] for k in state_dict if k.startswith(f"layer{i}.")})
        for i in (1, 2, 3, 4)
    )
    bottleneck = "layer1.0.conv3.weight" in state_dict
    depth = RESNET_DEPTHS.get((blocks, bottleneck))
    if depth is None:
        kind = "bottleneck" if bottleneck else "basic"
        raise ValueError(
            f"torchvision ResNet with {blocks} {kind} blocks per stage has no Detectron2 depth; "
            f"known: {sorted(set(RESNET_DEPTHS.values()))}"
        )
    opts = ["MODEL.RESNETS.DEPTH", depth, "MODEL.RESNETS.STRIDE_IN_1X1", False]
    if bottleneck:
        width = state_dict["layer1.0.conv1.weight"].shape[0]  # groups * width per group
        per_group = state_dict["layer1.0.conv2.weight"].shape[1]  # input channels of a group
        opts += ["MODEL.RESNETS.NUM_GROUPS", width // per_group]
        opts += ["MODEL.RESNETS.WIDTH_PER_GROUP", per_group]
        opts += ["MODEL.RESNETS.RES2_OUT_CHANNELS", state_dict["layer1.0.conv3.weight"].shape[0]]
    else:
        opts += ["MODEL.RESNETS.RES2_OUT_CHANNELS", state_dict["layer1.0.conv2.weight"].shape[0]]
    return opts


def _mobilenet_opts(state_dict: Mapping[str, Tensor]) -> List:
    """MODEL.MOBILENET.NAME of a torchvision MobileNet state dict, from its number of blocks and
    the output channels of the last one."""
    last = max(int(k.split(".")[1]) for k in state_dict if k.startswith("features."))
    channels = state_dict[f"features.{last}.0.weight"].shape[0]
    name = MOBILENET_NAMES.get((last + 1, channels))
    if name is None:
        raise ValueError(
            f"torchvision MobileNet with {last + 1} blocks ending in {channels} channels is none "
            f"of {sorted(MOBILENET_NAMES.values())}"
        )
    return ["MODEL.MOBILENET.NAME", name]


def convert_torchvision_state_dict(state_dict: Mapping[str, Tensor]) -> Conversion:
    """Rename a torchvision ResNet / ResNeXt or MobileNetV2 / V3 state dict for our backbones.

    Args:
        state_dict: ``torchvision.models.<name>(...).state_dict()``.
    Returns:
        the renamed tensors (classifier left out), the family and the config overrides.
    """
    if "layer1.0.conv1.weight" in state_dict:
        family, classifier = "resnet", "fc."
    elif any(k.startswith("features.") for k in state_dict):
        family, classifier = "mobilenet", "classifier."
    else:
        raise ValueError(
            "not a torchvision ResNet / ResNeXt or MobileNetV2 / V3 state dict (no layer1.0.conv1 "
            f"or features.* keys); first keys: {list(state_dict)[:5]}"
        )
    dropped = [k for k in state_dict if k.startswith(classifier)]
    kept = {k: v for k, v in state_dict.items() if not k.startswith(classifier)}
    if family == "resnet":
        return Conversion(
            {_resnet_name(k): v for k, v in kept.items()}, family, dropped, _resnet_opts(kept)
        )
    unknown = [k for k in kept if not k.startswith("features.")]
    if unknown:
        raise ValueError(f"keys of no torchvision MobileNet: {unknown[:5]}")
    return Conversion(kept, family, dropped, _mobilenet_opts(kept))


def load_state_dict_file(path: str, what: str = "torchvision weights") -> Dict[str, Tensor]:
    """The state dict in a torch file: a bare one, or the ``"state_dict"`` / ``"model"`` entry of a
    training checkpoint, read with ``weights_only`` where torch has it (no stored code runs).

    Raises:
        FileNotFoundError: no such file; ValueError: not a torch file or no state dict in it,
        each naming ``what`` and the file.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} {path} not found")
    kwargs = {}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = True  # a state dict needs no pickled code
    try:
        loaded = torch.load(path, map_location="cpu", **kwargs)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as e:
        raise ValueError(f"cannot read {what} {path} as a torch file: {e}") from e
    for key in ("state_dict", "model"):  # training checkpoints wrap the state dict
        if isinstance(loaded, Mapping) and isinstance(loaded.get(key), Mapping):
            loaded = loaded[key]
            break
    if not isinstance(loaded, Mapping) or not loaded:
        raise ValueError(f"{what} {path} holds a {type(loaded).__name__}, not a state dict")
    return {k: torch.as_tensor(v) for k, v in loaded.items()}


def save_detectron2_checkpoint(
    model: Mapping[str, Tensor],
    path: str,
    author: str = AUTHOR,
    matching_heuristics: bool = True,
    extra: Optional[Mapping] = None,
) -> str:
    """Write ``{"model": ..., "__author__": author, "matching_heuristics": ...}`` and the entries
    of ``extra`` (e.g. ``class_names``): a ".pkl" with numpy arrays (like Detectron2's ImageNet
    files) or a ".pth" with tensors, written to a temporary name and renamed into place, so an
    interrupted write leaves no partial file. Returns ``path``.

    ``matching_heuristics`` lets Detectron2 match the names by suffix (backbone-only files); False
    loads them exactly.
    """
    if not path.endswith(CHECKPOINT_EXTENSIONS):
        raise ValueError(
            f"the output file must end with one of {CHECKPOINT_EXTENSIONS}, got {path}"
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    if path.endswith(".pkl"):
        weights = {k: v.detach().cpu().numpy() for k, v in model.items()}
    else:
        weights = {k: v.detach().cpu() for k, v in model.items()}
    checkpoint = {
        "model": weights,
        "__author__": author,
        "matching_heuristics": matching_heuristics,
    }
    checkpoint.update(extra or {})
    tmp = f"{path}.tmp-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            if path.endswith(".pkl"):
                pickle.dump(checkpoint, f)
            else:
                torch.save(checkpoint, f)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def convert_torchvision_file(src: str, dst: str) -> Conversion:
    """:func:`convert_torchvision_state_dict` of the state dict in ``src`` (a torchvision ``.pth``),
    written to ``dst`` (``.pkl`` or ``.pth``) by :func:`save_detectron2_checkpoint`."""
    conversion = convert_torchvision_state_dict(load_state_dict_file(src))
    save_detectron2_checkpoint(conversion.model, dst)
    logger.info(
        f"wrote {dst}: {len(conversion.model)} tensors of a torchvision {conversion.family}, "
        f"left out {conversion.dropped}"
    )
    return conversion


def checkpoint_key_report(
    model_state_dict: Mapping[str, Tensor], checkpoint_state_dict: Mapping[str, Tensor]
) -> KeyReport:
    """Match a checkpoint to a model as ``DetectionCheckpointer`` does for files with
    "matching_heuristics" (Detectron2's ``align_and_update_state_dicts``: a checkpoint key matches
    the model keys it is a dot-separated suffix of, the longest match wins).

    Returns:
        the model keys the checkpoint lacks or has with another shape, and the checkpoint keys
        that match no model key.
    """
    ckpt = {k: torch.as_tensor(v) for k, v in checkpoint_state_dict.items()}
    matched = align_and_update_state_dicts(dict(model_state_dict), ckpt, c2_conversion=False)
    report = KeyReport()
    for key, value in model_state_dict.items():
        if key not in matched:
            # shape mismatches are left out by the matching; tell them apart from missing keys
            suffixes = [k for k in ckpt if key == k or key.endswith("." + k)]
            same = [k for k in suffixes if tuple(ckpt[k].shape) == tuple(value.shape)]
            if suffixes and not same:
                report.mismatched.append(key)
            else:
                report.missing.append(key)
    # left in the result under their own names: matched no model key, or one of another shape
    unused = [k for k in matched if k not in model_state_dict]
    report.unexpected = [
        k for k in unused if not any(m == k or m.endswith("." + k) for m in model_state_dict)
    ]
    return report


def module_prefixes(keys: Sequence[str], depth: int = 2) -> List[str]:
    """The distinct first ``depth`` dot-separated components of ``keys``, in order of appearance,
    e.g. ``["backbone.stage1", "head.branches"]``."""
    prefixes = {".".join(k.split(".")[:depth]): None for k in keys}
    return list(prefixes)
