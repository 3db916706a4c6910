"""What a split of the synthetic "shapes" dataset is made from: :class:`ShapesSpec`.

The spec is the one place where the generation parameters and their defaults are spelled.
:mod:`.shapes_render` draws image ``i`` of a spec (pure, arrays only) and :mod:`.synthetic` writes
a spec's split to disk, recording the spec in the json so that an unchanged split is not rewritten.
"""

import dataclasses
import numbers
from typing import Any, Tuple, Union

__all__ = ["IMAGE_FORMATS", "SIZE_DISTRIBUTIONS", "ShapesSpec"]

IMAGE_FORMATS = ("jpg", "png")
# how an object's long side is drawn from [min_size, max_size]: "uniform", or "log" (uniform in
# log size: as many objects of 4-8 px as of 128-256 px, a wide-scale set)
SIZE_DISTRIBUTIONS = ("uniform", "log")


def _is_int(value) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def _image_size(value) -> Tuple[int, int]:
    """``S`` or ``(H, W)`` -> ``(H, W)``; ``ValueError`` naming ``image_size`` otherwise."""
    if _is_int(value):
        hw = (value, value)
    elif isinstance(value, str):
        hw = ()
    else:
        try:
            hw = tuple(value)
        except TypeError:  # not iterable
            hw = ()
    if len(hw) != 2 or not all(_is_int(v) and v >= 1 for v in hw):
        raise ValueError(
            f"image_size must be a positive int or (height, width) of positive ints, got {value!r}"
        )
    return int(hw[0]), int(hw[1])


def normalize_spec_fields(spec: Any) -> None:
    """Check a frozen spec dataclass's int and float fields (``ValueError`` naming the field),
    store them as Python numbers (numpy scalars become what the json records) and its
    ``image_size`` as (H, W)."""
    for field in dataclasses.fields(spec):
        value = getattr(spec, field.name)
        if field.type is int and not _is_int(value):
            raise ValueError(f"{field.name} must be an int, got {value!r}")
        if field.type is float and not _is_real(value):
            raise ValueError(f"{field.name} must be a number, got {value!r}")
        if field.type in (int, float):
            object.__setattr__(spec, field.name, field.type(value))  # frozen: set this way
    object.__setattr__(spec, "image_size", _image_size(spec.image_size))


@dataclasses.dataclass(frozen=True)
class ShapesSpec:
    """
    The generation parameters of one split; image ``i`` depends only on ``(seed, i)`` and the
    fields other than ``num_images`` and ``image_format``.

    Fields are in the order in which a split's json records them (``info.generator``), after the
    generator version. Values are normalised on construction (``image_size`` to ``(H, W)``, sizes
    to float), so equal parameters give equal specs; invalid ones raise ``ValueError`` naming the
    field.

    Attributes:
        num_images: images in the split, at least 1.
        seed: image ``i`` is rendered from ``np.random.default_rng([seed, i])``; >= 0.
        image_size: ``S`` or ``(H, W)`` in pixels; stored as ``(H, W)``.
        min_objects, max_objects: the object count is drawn uniformly from this range; an object
            that finds no place within the occlusion limit after some tries is left out, so an
            image may hold fewer than ``min_objects`` (but always at least one).
        min_size, max_size: range of an object's long side (of its box), in pixels.
        max_occlusion: the largest fraction of an object's area that later objects and
            foreground lines may hide, in [0, 1).
        image_format: one of :data:`IMAGE_FORMATS` ("jpg": JPEG quality 90, "png": lossless).
        size_distribution: one of :data:`SIZE_DISTRIBUTIONS`.
    """

    num_images: int
    seed: int
    image_size: Union[int, Tuple[int, int]] = 256
    min_objects: int = 1
    max_objects: int = 8
    min_size: float = 8.0
    max_size: float = 96.0
    max_occlusion: float = 0.6
    image_format: str = "jpg"
    size_distribution: str = "uniform"

    def __post_init__(self):
        normalize_spec_fields(self)
        h, w = self.image_size
        if self.num_images < 1:
            raise ValueError(f"num_images must be >= 1, got {self.num_images}")
        if self.seed < 0:
            raise ValueError(f"seed must be >= 0, got {self.seed}")
        if not 1 <= self.min_objects <= self.max_objects:
            raise ValueError(
                f"need 1 <= min_objects <= max_objects, got min_objects={self.min_objects}, "
                f"max_objects={self.max_objects}"
            )
        if not 1 <= self.min_size <= self.max_size - 1 <= min(h, w) - 1:
            raise ValueError(
                f"need 1 <= min_size <= max_size - 1 <= min(image_size) - 1 = {min(h, w) - 1}, "
                f"got min_size={self.min_size}, max_size={self.max_size}"
            )
        if not 0.0 <= self.max_occlusion < 1.0:
            raise ValueError(f"max_occlusion must be in [0, 1), got {self.max_occlusion}")
        if self.image_format not in IMAGE_FORMATS:
            raise ValueError(
                f"image_format must be one of {IMAGE_FORMATS}, got {self.image_format!r}"
            )
        if self.size_distribution not in SIZE_DISTRIBUTIONS:
            raise ValueError(
                f"size_distribution must be one of {SIZE_DISTRIBUTIONS}, "
                f"got {self.size_distribution!r}"
            )
