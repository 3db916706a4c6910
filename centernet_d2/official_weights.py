"""Convert the authors' published CenterNet, CenterTrack and CenterNet2 checkpoints into Detectron2
checkpoints of this project's models, with exact parameter names.

Published files and the model of this project each becomes (:data:`PUBLISHED_MODELS`):

* CenterNet (github.com/xingyizhou/CenterNet) ``ctdet_coco_dla_2x.pth``,
  ``multi_pose_dla_3x.pth`` (DLA-34 + DLA-up with DCNv2: :class:`~.modeling.CenterNet` on
  ``build_dla34_backbone``), ``ctdet_coco_resdcn18.pth`` / ``ctdet_coco_resdcn101.pth`` (ResNet +
  DCNv2 deconvolutions: ``build_resnet_deconv_backbone``);
* CenterTrack (github.com/xingyizhou/CenterTrack) ``coco_tracking.pth``, ``mot17_half.pth``
  (DLA-34 with ``pre_img_layer`` / ``pre_hm_layer``: :class:`~.modeling.CenterTrack` with the
  stem fusion; MOT's ``ltrb_amodal`` head: ``MODEL.CENTERTRACK.AMODAL_BOX``);
* CenterNet2 (github.com/xingyizhou/CenterNet2) ``CenterNet-FPN_R50_1x.pth``, its one-stage
  detector (ResNet-50 + FPN P3-P7, a head shared by the levels: the multi-level CenterNet).

What the conversion does besides renaming:

* the authors' files hold ``{"epoch", "state_dict"}`` (CenterNet2's: Detectron2's ``{"model"}``),
  keys with or without ``module.``: both are read;
* left out as unused by the authors' own forward: DLA's ImageNet classifier ``base.fc.*`` and the
  ``project`` of DLA's depth-2 trees (``base.level3.project.*``, ``base.level4.project.*``: their
  first subtree computes its own residual), CenterNet2's ``pixel_mean`` / ``pixel_std`` (the
  config's ``MODEL.PIXEL_MEAN`` / ``PIXEL_STD``);
* the bias of each deformable conv followed by BatchNorm (``...conv.bias`` in DCNv2's layers) is
  folded into that BatchNorm, ``running_mean - bias``, which computes the same in evaluation and
  changes nothing in training (the batch mean absorbs a constant);
* CenterNet2's per-level box scales ``scales.<l>.scale`` become the head's ``level_scales``.

Every other key is placed; a key that cannot be placed raises ``ValueError`` naming it, and
:func:`check_against_model` names a model key that the file does not fill and a key whose shape
differs from the model's.
"""

import logging
import re
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Mapping, Optional, Sequence, Tuple, Union

import torch
from detectron2.data.datasets.builtin_meta import (
    COCO_CATEGORIES,
    COCO_PERSON_KEYPOINT_FLIP_MAP,
    COCO_PERSON_KEYPOINT_NAMES,
    KEYPOINT_CONNECTION_RULES,
)
from torch import Tensor

from .convert import (
    RESNET_DEPTHS,
    _resnet_name,
    load_state_dict_file,
    save_detectron2_checkpoint,
)

__all__ = [
    "PUBLISHED_MODELS",
    "Conversion",
    "PublishedModel",
    "check_against_model",
    "convert_official_state_dict",
    "identify",
    "load_official_state_dict",
    "save_converted",
]

logger = logging.getLogger(__name__)

# Keys of this project's models that no published file holds: they come from the config.
CONFIG_BUFFERS = ("keypoint_class_mask", "keypoint_flip_indices")
COCO_CLASSES = tuple(c["name"] for c in COCO_CATEGORIES if c["isthing"])


@dataclass(frozen=True)
class PublishedModel:
    """A published checkpoint and the config of this project that runs it.

    Attributes:
        name: the published file's name without ``.pth``.
        family: its key layout: "centernet_dla", "centernet_resdcn", "centertrack_dla" or
            "centernet2".
        config: this project's config for it, relative to the repository's ``configs/``.
        published: the result its authors report.
        classes: names of its classes, in the order of its heatmap channels.
        keypoints: for keypoint models, Detectron2's keypoint metadata: "keypoint_names",
            "keypoint_flip_map", "keypoint_connection_rules".
    """

    name: str
    family: str
    config: str
    published: str
    classes: Tuple[str, ...]
    keypoints: Optional[Dict] = None


_PERSON_KEYPOINTS = {
    "keypoint_names": list(COCO_PERSON_KEYPOINT_NAMES),
    "keypoint_flip_map": [list(p) for p in COCO_PERSON_KEYPOINT_FLIP_MAP],
    "keypoint_connection_rules": [list(r) for r in KEYPOINT_CONNECTION_RULES],
}

PUBLISHED_MODELS: Dict[str, PublishedModel] = {
    m.name: m
    for m in [
        PublishedModel(
            "ctdet_coco_dla_2x",
            "centernet_dla",
            "COCO-Detection/centernet_DLA_34_official.yaml",
            "COCO val AP 37.4 (39.2 flip, 41.7 multi-scale)",
            COCO_CLASSES,
        ),
        PublishedModel(
            "multi_pose_dla_3x",
            "centernet_dla",
            "COCO-Keypoints/centernet_keypoints_DLA_34_official.yaml",
            "COCO keypoint AP 58.9 (flip test)",
            ("person",),
            _PERSON_KEYPOINTS,
        ),
        PublishedModel(
            "ctdet_coco_resdcn18",
            "centernet_resdcn",
            "COCO-Detection/centernet_R_18_dcn_official.yaml",
            "COCO val AP 28.1 (30.0 flip, 33.2 multi-scale)",
            COCO_CLASSES,
        ),
        PublishedModel(
            "ctdet_coco_resdcn101",
            "centernet_resdcn",
            "COCO-Detection/centernet_R_101_dcn_official.yaml",
            "COCO val AP 34.6 (36.2 flip, 39.3 multi-scale)",
            COCO_CLASSES,
        ),
        PublishedModel(
            "coco_tracking",
            "centertrack_dla",
            "COCO-Tracking/centertrack_DLA_34_coco_official.yaml",
            "CenterTrack's COCO-trained tracker (its demo model)",
            COCO_CLASSES,
        ),
        PublishedModel(
            "mot17_half",
            "centertrack_dla",
            "MOT/centertrack_DLA_34_mot17_half_official.yaml",
            "MOT17 half-val MOTA 66.1",
            ("pedestrian",),
        ),
        PublishedModel(
            "CenterNet-FPN_R50_1x",
            "centernet2",
            "COCO-Detection/centernet_multilevel_R_50_FPN_1x_official.yaml",
            "COCO val AP 40.2",
            COCO_CLASSES,
        ),
    ]
}

# the authors' head names -> the branches of this project's CenterNetHead
CENTERNET_HEADS = {
    "hm": "heatmap",
    "wh": "size",
    "reg": "offset",
    "hps": "keypoints",
    "hm_hp": "keypoint_heatmap",
    "hp_offset": "keypoint_offset",
    "tracking": "displacement",
    "ltrb_amodal": "amodal_box",
}


@dataclass
class Conversion:
    """What :func:`convert_official_state_dict` made of a published state dict.

    Attributes:
        model: this project's parameter names -> tensors.
        published: the :class:`PublishedModel` the file was taken for.
        sources: for each converted key, the published key it came from (for messages).
        dropped: published keys left out as unused by the authors' forward.
        folded: published DCN biases folded into the BatchNorm after them.
    """

    model: Dict[str, Tensor]
    published: PublishedModel
    sources: Dict[str, str] = field(default_factory=dict)
    dropped: List[str] = field(default_factory=list)
    folded: List[str] = field(default_factory=list)


def load_official_state_dict(path: str) -> Dict[str, Tensor]:
    """The state dict of a published file: ``{"epoch", "state_dict"}`` (CenterNet, CenterTrack),
    ``{"model"}`` (CenterNet2, Detectron2) or a bare state dict; ``module.`` prefixes removed.

    Raises:
        FileNotFoundError: no such file. ValueError: not a torch file, or no state dict in it.
    """
    loaded = load_state_dict_file(path, what="published checkpoint")
    return {_strip_module(k): v for k, v in loaded.items()}


def _strip_module(key: str) -> str:
    return key[len("module.") :] if key.startswith("module.") else key


def identify(state_dict: Mapping[str, Tensor]) -> PublishedModel:
    """The :class:`PublishedModel` whose layout ``state_dict``'s keys have.

    Raises:
        ValueError: the keys are of none of them.
    """
    keys = set(state_dict)
    if any(k.startswith("proposal_generator.centernet_head.") for k in keys):
        return PUBLISHED_MODELS["CenterNet-FPN_R50_1x"]
    if "base.pre_img_layer.0.weight" in keys or "base.pre_hm_layer.0.weight" in keys:
        amodal = "ltrb_amodal.0.weight" in keys
        return PUBLISHED_MODELS["mot17_half" if amodal else "coco_tracking"]
    if "base.base_layer.0.weight" in keys:
        return PUBLISHED_MODELS[
            "multi_pose_dla_3x" if "hps.0.weight" in keys else "ctdet_coco_dla_2x"
        ]
    if "deconv_layers.0.conv_offset_mask.weight" in keys and "layer1.0.conv1.weight" in keys:
        depth = _resnet_depth(state_dict)
        if depth in (18, 101):
            return PUBLISHED_MODELS[f"ctdet_coco_resdcn{depth}"]
        raise ValueError(
            f"a CenterNet ResNet-{depth}-DCN checkpoint: only ResNet-18 and -101 were published; "
            "pass --arch ctdet_coco_resdcn18 or ctdet_coco_resdcn101 with --config-file of your "
            "depth"
        )
    raise ValueError(
        "not a published CenterNet, CenterTrack or CenterNet2 checkpoint (none of their layouts "
        f"fits); its first keys: {sorted(keys)[:4]}; known: {sorted(PUBLISHED_MODELS)}"
    )


def _resnet_depth(state_dict: Mapping[str, Tensor]) -> int:
    blocks = tuple(
        len({k.split(".")[1] for k in state_dict if k.startswith(f"layer{i}.")})
        for i in (1, 2, 3, 4)
    )
    bottleneck = "layer1.0.conv3.weight" in state_dict
    return RESNET_DEPTHS.get((blocks, bottleneck), 0)


# A rule: regex on the published key -> this project's key (a format with the match's groups, or
# a function of the key), None to drop the key, "fold:<norm>" to fold a DCN bias into that
# BatchNorm's running mean, "level_scale:<level>" for CenterNet2's per-level box scales.
Rule = Tuple[str, Union[None, str, Callable[[str], str]]]

# DCNv2 + BN + ReLU of the DLA up path: actf.0 is the BN, conv the DCN
_DLA_UP_RULES: List[Rule] = [
    (r"(dla_up\.ida_\d+|ida_up)\.((?:proj|node)_\d+)\.actf\.0\.(\w+)", "backbone.{0}.{1}.norm.{2}"),
    (r"(dla_up\.ida_\d+|ida_up)\.((?:proj|node)_\d+)\.conv\.weight", "backbone.{0}.{1}.weight"),
    (r"(dla_up\.ida_\d+|ida_up)\.((?:proj|node)_\d+)\.conv\.bias", "fold:backbone.{0}.{1}.norm"),
    (
        r"(dla_up\.ida_\d+|ida_up)\.((?:proj|node)_\d+)\.conv\.conv_offset_mask\.(\w+)",
        "backbone.{0}.{1}.conv_offset_mask.{2}",
    ),
    (r"(dla_up\.ida_\d+|ida_up)\.(up_\d+)\.weight", "backbone.{0}.{1}.weight"),
]
_HEAD_RULES: List[Rule] = [
    (rf"{theirs}\.(\d+)\.(weight|bias)", f"head.branches.{ours}" + ".{0}.{1}")
    for theirs, ours in CENTERNET_HEADS.items()
]
_DLA_RULES: List[Rule] = (
    [
        (r"base\.fc\.\w+", None),  # the ImageNet classifier
        (r"base\.((?:base_layer|level\d).*)", "backbone.bottom_up.{0}"),
    ]
    + _DLA_UP_RULES
    + _HEAD_RULES
)
_CENTERTRACK_RULES: List[Rule] = [
    (r"base\.pre_img_layer\.(\d)\.(\w+)", "fusion.prev_image_layer.{0}.{1}"),
    (r"base\.pre_hm_layer\.(\d)\.(\w+)", "fusion.prev_heatmap_layer.{0}.{1}"),
] + _DLA_RULES
_CENTERNET2_HEAD = r"proposal_generator\.centernet_head\."
_CENTERNET2_RULES: List[Rule] = [
    (r"pixel_(mean|std)", None),  # the config's MODEL.PIXEL_MEAN / PIXEL_STD
    (r"(backbone\..*)", "{0}"),
    (_CENTERNET2_HEAD + r"scales\.(\d+)\.scale", "level_scale:{0}"),
]


def _deconv_rules(num_stages: int = 3) -> List[Rule]:
    """CenterNet's ResNet-DCN upsampler: per stage i, ``deconv_layers.<6i + j>`` is DCN (j = 0),
    BN (1), ReLU, transposed conv (3), BN (4), ReLU."""
    rules = []
    for i in range(num_stages):
        stage, base = f"backbone.stage{i + 1}", 6 * i
        rules += [
            (rf"deconv_layers\.{base}\.weight", f"{stage}.conv.weight"),
            (rf"deconv_layers\.{base}\.bias", f"fold:{stage}.conv.norm"),
            (
                rf"deconv_layers\.{base}\.conv_offset_mask\.(\w+)",
                stage + ".conv.conv_offset_mask.{0}",
            ),
            (rf"deconv_layers\.{base + 1}\.(\w+)", stage + ".conv.norm.{0}"),
            (rf"deconv_layers\.{base + 3}\.weight", f"{stage}.up.weight"),
            (rf"deconv_layers\.{base + 4}\.(\w+)", stage + ".up_norm.{0}"),
        ]
    return rules


def _centernet2_tower_rules(num_convs: int) -> List[Rule]:
    """CenterNet2's towers ``<tower>.<3i>`` conv, ``<3i + 1>`` GN, ``<3i + 2>`` ReLU and the output
    conv -> the branch's ``<2i>`` (Detectron2 ``Conv2d`` with its norm inside), ``<2 num_convs>``.
    """
    rules = []
    for tower, out, branch in (
        ("cls_tower", "cls_logits", "heatmap"),
        ("bbox_tower", "bbox_pred", "box"),
    ):
        for i in range(num_convs):
            prefix = f"head.branches.{branch}.{2 * i}"
            rules += [
                (rf"{_CENTERNET2_HEAD}{tower}\.{3 * i}\.(weight|bias)", prefix + ".{0}"),
                (rf"{_CENTERNET2_HEAD}{tower}\.{3 * i + 1}\.(weight|bias)", prefix + ".norm.{0}"),
            ]
        rules.append(
            (
                rf"{_CENTERNET2_HEAD}{out}\.(weight|bias)",
                f"head.branches.{branch}.{2 * num_convs}" + ".{0}",
            )
        )
    return rules


def _rules(family: str, state_dict: Mapping[str, Tensor]) -> List[Rule]:
    if family == "centernet_dla":
        return _dla_unused_projects(state_dict) + _DLA_RULES
    if family == "centertrack_dla":
        return _dla_unused_projects(state_dict) + _CENTERTRACK_RULES
    if family == "centernet_resdcn":
        resnet = (
            r"(?:conv1|bn1|layer[1-4])\..*",
            lambda key: "backbone.bottom_up." + _resnet_name(key),
        )
        return [resnet] + _deconv_rules() + _HEAD_RULES
    if family == "centernet2":
        pattern = re.compile(_CENTERNET2_HEAD + r"cls_tower\.(\d+)\.weight")
        convs = len({m[1] for k in state_dict for m in [pattern.fullmatch(k)] if m}) // 2
        return _CENTERNET2_RULES + _centernet2_tower_rules(convs)
    raise ValueError(f"unknown layout {family!r}")


def _dla_unused_projects(state_dict: Mapping[str, Tensor]) -> List[Rule]:
    """Drop rules for the ``project`` of DLA trees of depth >= 2, which the authors' forward never
    calls (such a tree has a ``tree1.tree1``)."""
    levels = sorted(
        {m[1] for k in state_dict for m in [re.match(r"base\.level(\d)\.tree1\.tree1\.", k)] if m}
    )
    return [(rf"base\.level{i}\.project\.\d\.\w+", None) for i in levels]


def _apply(rules: Sequence[Rule], key: str) -> Tuple[bool, Optional[str]]:
    """(matched, target) of the first rule matching ``key``."""
    for pattern, target in rules:
        m = re.fullmatch(pattern, key)
        if m:
            if callable(target):
                return True, target(key)
            return True, None if target is None else target.format(*m.groups())
    return False, None


def convert_official_state_dict(
    state_dict: Mapping[str, Tensor], published: Optional[PublishedModel] = None
) -> Conversion:
    """Rename a published state dict for this project's model.

    Args:
        state_dict: the published file's state dict (:func:`load_official_state_dict`).
        published: which published model it is; default :func:`identify`.
    Returns:
        the :class:`Conversion`; its keys are those of the config ``published.config``'s model
        (head branches named as ``CenterNetHead``'s: ``hm`` -> ``heatmap``, ``wh`` -> ``size``,
        ...).
    Raises:
        ValueError: naming the first published keys that no rule places.
    """
    state_dict = {_strip_module(k): v for k, v in state_dict.items()}
    published = published or identify(state_dict)
    rules = _rules(published.family, state_dict)
    conversion = Conversion({}, published)
    folds, scales, unplaced = {}, {}, []
    for key, value in state_dict.items():
        matched, target = _apply(rules, key)
        if not matched:
            unplaced.append(key)
        elif target is None:
            conversion.dropped.append(key)
        elif target.startswith("fold:"):
            folds[target[len("fold:") :]] = (key, value)
        elif target.startswith("level_scale:"):
            scales[int(target.split(":")[1])] = (key, value)
        else:
            conversion.model[target] = value
            conversion.sources[target] = key
    if unplaced:
        raise ValueError(
            f"{len(unplaced)} key(s) of the {published.name} layout have no place in this "
            f"project's model: {unplaced[:5]}; check --arch (or the file)"
        )
    for norm, (key, bias) in folds.items():
        mean = f"{norm}.running_mean"
        if mean not in conversion.model:
            raise ValueError(f"key {key}: the BatchNorm it folds into ({mean}) is not in the file")
        conversion.model[mean] = conversion.model[mean] - bias
        conversion.folded.append(key)
    if scales:
        values = [scales[i][1].reshape(1) for i in sorted(scales)]
        conversion.model["head.level_scales"] = torch.cat(values)
        conversion.sources["head.level_scales"] = ", ".join(scales[i][0] for i in sorted(scales))
    return conversion


def check_against_model(conversion: Conversion, model_state_dict: Mapping[str, Tensor]) -> None:
    """Fill the config-made buffers (:data:`CONFIG_BUFFERS`) from the model and check that the
    conversion's keys are exactly the model's, of the same shapes.

    Raises:
        ValueError: naming a converted key the model lacks (left over), a model key the file
            does not fill (missing), or a key of another shape, and the published key it came
            from.
    """
    converted = conversion.model
    for key in CONFIG_BUFFERS:
        if key in model_state_dict and key not in converted:
            converted[key] = model_state_dict[key].clone()
    name = conversion.published.name
    left_over = [k for k in converted if k not in model_state_dict]
    if left_over:
        k = left_over[0]
        raise ValueError(
            f"key {conversion.sources.get(k, k)} of the {name} file (as {k}) has no place in the "
            f"config's model ({len(left_over)} such key(s)); is the config the one for {name}?"
        )
    missing = [k for k in model_state_dict if k not in converted]
    if missing:
        raise ValueError(
            f"key {missing[0]} of the config's model is missing from the {name} file "
            f"({len(missing)} such key(s)); is the config the one for {name}?"
        )
    for k, value in converted.items():
        expected = tuple(model_state_dict[k].shape)
        if tuple(value.shape) != expected:
            raise ValueError(
                f"key {conversion.sources.get(k, k)} of the {name} file has shape "
                f"{tuple(value.shape)}, but the config's model has {expected} for {k}; set the "
                "config's class count (MODEL.CENTERNET.NUM_CLASSES) or head to the file's"
            )


def save_converted(conversion: Conversion, path: str, num_classes: Optional[int] = None) -> str:
    """Write the converted weights as a Detectron2 checkpoint with exact names
    (:func:`~.convert.save_detectron2_checkpoint`, ``.pkl`` or ``.pth``) that also holds the
    published model's ``class_names`` (and keypoint metadata), left out when ``num_classes`` (the
    heatmap's channels) says the file was trained on other classes.

    Returns:
        ``path``.
    """
    published = conversion.published
    extra = {}
    if num_classes is None or num_classes == len(published.classes):
        extra = {"class_names": list(published.classes), **(published.keypoints or {})}
    return save_detectron2_checkpoint(
        conversion.model,
        path,
        author=f"{published.name} (converted)",
        matching_heuristics=False,
        extra=extra,
    )
