"""Drawing of the synthetic "shapes" dataset: one image and its objects from a :class:`ShapesSpec`.

Each image has 1-8 filled shapes of :data:`SHAPE_CLASSES` on a cluttered background. What makes it
a real (if small) detection task:

* objects are 8-96 px on their long side (uniform), rotated, with per-class shape variation
  (triangle angles, rectangle aspect, star depth, cross arm width);
* every object and every distractor gets a random colour, so colour says nothing about the class
  (an object's colour only has to stand out from what lies under it, objects included);
* objects may overlap, but each keeps at least ``1 - max_occlusion`` of its area visible;
* the background is a random gradient plus smooth noise and stripes, under distractors that are
  not objects (lines, arcs, irregular blobs, pie slices, crescents), a few thin lines on top of
  the objects, pixel noise, sometimes a blur (JPEG compression comes when :mod:`.synthetic`
  writes the image).

Boxes are amodal (the whole shape, also where it is hidden), XYWH in image pixels, with pixel
``i`` spanning ``[i, i + 1)``; vertices sit on a 1/16 px grid, so box values are exact in JSON.
``area`` is the shape's polygon area (what COCO stores for a mask), not ``w * h``.

Keypoints (:data:`SHAPE_KEYPOINTS`; circles have none) are the corners of a triangle or rectangle,
the outer tips of a star and the midpoints of a cross's arm ends, taken from the drawn polygon's
vertices (so in the same continuous pixel coordinates as the boxes). So that a keypoint can be
told from the image whatever the rotation, the first is the topmost point (smallest y; ties:
smallest x) and the others follow clockwise on the screen (increasing ``atan2(y - cy, x - cx)``,
y down, around the mean of the points). A horizontal flip keeps the first and reverses the
order of the others, which the names follow (``right`` <-> ``left``, ``upper_right`` <->
``upper_left``, ...). Visibility is COCO's: 2 if the keypoint's pixel or one of its 8
neighbours shows the object in the final image, 1 if hidden (by a later object or a line),
0 outside the image.

Everything here is pure numpy + OpenCV on arrays: no files (see :mod:`.synthetic`), and no drawing
of annotations.
"""

import math
from typing import Any, Dict, List, Sequence, Tuple, Union

import cv2
import numpy as np

from .shapes_spec import ShapesSpec

__all__ = [
    "GENERATOR_VERSION",
    "SHAPE_CLASSES",
    "SHAPE_KEYPOINTS",
    "SHAPE_SKELETONS",
    "render_shapes",
    "render_shapes_image",
]

SHAPE_CLASSES = ("circle", "triangle", "rectangle", "star", "cross")
"""Class names; the COCO category id of ``SHAPE_CLASSES[k]`` is ``k + 1``."""

SHAPE_KEYPOINTS: Tuple[Tuple[str, ...], ...] = (
    (),  # circle
    ("top", "right", "left"),  # triangle: its corners
    ("top", "right", "bottom", "left"),  # rectangle: its corners
    ("top", "upper_right", "lower_right", "lower_left", "upper_left"),  # star: outer tips
    ("top", "right", "bottom", "left"),  # cross: the middle of each arm's end
)
"""Keypoint names of ``SHAPE_CLASSES[k]``, in the labelling order (see the module docstring)."""

SHAPE_SKELETONS: Tuple[Tuple[Tuple[int, int], ...], ...] = (
    (),
    ((1, 2), (2, 3), (3, 1)),  # the outline
    ((1, 2), (2, 3), (3, 4), (4, 1)),
    ((1, 2), (2, 3), (3, 4), (4, 5), (5, 1)),
    ((1, 3), (2, 4)),  # the two bars
)
"""COCO ``skeleton`` of ``SHAPE_CLASSES[k]``: 1-based index pairs into its keypoint names."""

# Bump when the rendering or the annotations change, so that datasets made by an older generator
# are remade. 3: keypoints (images unchanged).
GENERATOR_VERSION = 3
# OpenCV draws polygons with fixed-point vertices of SHIFT fractional bits: a 1/16 px grid.
SHIFT = 4
GRID = 1 << SHIFT
# Least RGB distance of an object's colour from the mean colour under it and from each object it
# covers (best effort: the farthest of 16 random colours when none is that far).
MIN_CONTRAST = 80.0
PLACEMENT_TRIES = 30  # per object; an object that never fits is dropped (the first always fits)
CIRCLE_VERTICES = 64


# ---------------------------------------------------------------------------------------------
# Shapes: unit-size polygons, (V, 2) float (x, y), centred near the origin.
# ---------------------------------------------------------------------------------------------
def _circle(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(CIRCLE_VERTICES) * (2 * math.pi / CIRCLE_VERTICES)
    return np.stack([np.cos(t), np.sin(t)], axis=1)


def _triangle(rng: np.random.Generator) -> np.ndarray:
    # Corners 120 deg apart, each moved by up to 20 deg: every angle stays >= 40 deg (no slivers).
    t = np.arange(3) * (2 * math.pi / 3) + rng.uniform(-0.35, 0.35, 3)
    r = rng.uniform(0.8, 1.0, 3)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _rectangle(rng: np.random.Generator) -> np.ndarray:
    a = rng.uniform(0.5, 1.0)  # short side / long side
    return np.array([[-1, -a], [1, -a], [1, a], [-1, a]], dtype=np.float64)


def _star(rng: np.random.Generator) -> np.ndarray:
    t = np.arange(10) * (math.pi / 5)
    r = np.where(np.arange(10) % 2 == 0, 1.0, rng.uniform(0.38, 0.55))
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _cross(rng: np.random.Generator) -> np.ndarray:
    w = rng.uniform(0.22, 0.38)  # half width of an arm; arms reach 1
    return np.array(
        [[w, -1], [w, -w], [1, -w], [1, w], [w, w], [w, 1]]
        + [[-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w], [-w, -1]]
    )


_SHAPE_FNS = (_circle, _triangle, _rectangle, _star, _cross)
assert len(_SHAPE_FNS) == len(SHAPE_CLASSES) == len(SHAPE_KEYPOINTS) == len(SHAPE_SKELETONS)

# Which vertices of each shape's polygon give its keypoints (before ordering): their mean, so
# that a cross's arm end is the middle of its end edge. Index pairs into the _SHAPE_FNS polygons.
_KEYPOINT_VERTICES: Tuple[Tuple[Tuple[int, int], ...], ...] = (
    (),
    ((0, 0), (1, 1), (2, 2)),
    ((0, 0), (1, 1), (2, 2), (3, 3)),
    ((0, 0), (2, 2), (4, 4), (6, 6), (8, 8)),  # the outer tips (radius 1)
    ((11, 0), (2, 3), (5, 6), (8, 9)),  # the end edges of the arms
)


def shape_keypoints(cls: int, pts: np.ndarray) -> np.ndarray:
    """
    The keypoints of a shape of class ``cls`` (index into :data:`SHAPE_CLASSES`) from its
    polygon ``pts`` (V, 2) (x, y), in the labelling order of :data:`SHAPE_KEYPOINTS` (topmost
    first, then clockwise on the screen).

    Returns:
        (P, 2) float (x, y), in the coordinates of ``pts``; P = ``len(SHAPE_KEYPOINTS[cls])``.
    """
    pairs = np.array(_KEYPOINT_VERTICES[cls], dtype=np.int64).reshape(-1, 2)
    kp = (pts[pairs[:, 0]] + pts[pairs[:, 1]]) / 2  # (P, 2)
    if len(kp) == 0:
        return kp
    first = int(np.lexsort((kp[:, 0], kp[:, 1]))[0])  # smallest y, then smallest x
    c = kp.mean(0)
    ang = np.arctan2(kp[:, 1] - c[1], kp[:, 0] - c[0])  # y down: increasing is clockwise
    order = np.argsort(np.mod(ang - ang[first], 2 * math.pi), kind="stable")
    assert order[0] == first, (order, first)
    return kp[order]


def keypoint_visibility(kp: np.ndarray, ids: np.ndarray, obj_id: int) -> np.ndarray:
    """
    COCO visibility of keypoints ``kp`` (P, 2) (x, y, continuous pixels) of the object whose
    pixels hold ``obj_id`` in ``ids`` (H, W): 2 if the keypoint's pixel or one of its 8
    neighbours shows the object, 1 if none does (hidden), 0 if the keypoint is outside the
    image.

    Returns:
        (P,) int64.
    """
    h, w = ids.shape
    v = np.zeros(len(kp), np.int64)
    for j, (x, y) in enumerate(kp):
        if not (0 <= x <= w and 0 <= y <= h):
            continue
        px, py = min(int(x), w - 1), min(int(y), h - 1)
        around = ids[max(py - 1, 0) : py + 2, max(px - 1, 0) : px + 2]
        v[j] = 2 if np.any(around == obj_id) else 1
    return v


def _polygon_area(pts: np.ndarray) -> float:
    x, y = pts[:, 0], pts[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def _to_cv(pts: np.ndarray) -> np.ndarray:
    """Pixel coordinates (pixel i spans [i, i + 1)) -> OpenCV's fixed point (centres at i)."""
    return (np.rint(pts * GRID) - GRID // 2).astype(np.int32)


# ---------------------------------------------------------------------------------------------
# Background and distractors
# ---------------------------------------------------------------------------------------------
def _random_color(rng: np.random.Generator) -> Tuple[int, int, int]:
    return tuple(int(c) for c in rng.integers(0, 256, 3))


def _pick_color(rng: np.random.Generator, avoid: np.ndarray, tries: int = 16) -> np.ndarray:
    """A random colour at least MIN_CONTRAST from each row of ``avoid`` (P, 3), if one of
    ``tries`` candidates is; else the candidate farthest from them."""
    cands = rng.integers(0, 256, (tries, 3))
    dist = np.linalg.norm(cands[:, None, :] - avoid[None, :, :], axis=2).min(1)  # (tries,)
    ok = np.flatnonzero(dist >= MIN_CONTRAST)
    return cands[ok[0] if len(ok) else int(dist.argmax())]


def _background(rng: np.random.Generator, h: int, w: int) -> np.ndarray:
    """(H, W, 3) float32: gradient + smooth noise + stripes."""
    c0, c1 = rng.uniform(0, 255, (2, 3)).astype(np.float32)
    theta = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    t = xx * math.cos(theta) / w + yy * math.sin(theta) / h
    t = (t - t.min()) / max(float(t.max() - t.min()), 1e-6)
    img = c0 + (c1 - c0) * t[..., None]
    g = int(rng.integers(3, 9))  # smooth noise: a coarse random grid, upsampled
    coarse = rng.standard_normal((g, g, 3), dtype=np.float32) * rng.uniform(10, 40)
    img += cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)
    if rng.random() < 0.5:
        period, phi, amp = rng.uniform(6, 40), rng.uniform(0, 2 * math.pi), rng.uniform(5, 25)
        a = rng.uniform(0, 2 * math.pi)
        phase = (xx * math.cos(a) + yy * math.sin(a)) * (2 * math.pi / period) + phi
        img += (amp * np.sin(phase))[..., None] * rng.uniform(-1, 1, 3).astype(np.float32)
    return img


def _draw_distractors(rng: np.random.Generator, img: np.ndarray, count: int) -> None:
    """Things that are not objects: lines, arcs, irregular blobs, pie slices, crescents."""
    h, w = img.shape[:2]
    for _ in range(count):
        kind = int(rng.integers(0, 5))
        color = _random_color(rng)
        cx, cy = int(rng.integers(0, w)), int(rng.integers(0, h))
        if kind == 0:  # line
            x1, y1 = int(rng.integers(0, w)), int(rng.integers(0, h))
            thickness = int(rng.integers(1, 5))
            cv2.line(img, (cx, cy), (x1, y1), color, thickness, cv2.LINE_AA)
        elif kind == 1:  # arc of an ellipse, open
            axes = (int(rng.integers(6, 50)), int(rng.integers(6, 50)))
            start = float(rng.uniform(0, 360))
            sweep = float(rng.uniform(40, 200))
            thickness = int(rng.integers(1, 4))
            cv2.ellipse(
                img, (cx, cy), axes, 0.0, start, start + sweep, color, thickness, cv2.LINE_AA
            )
        elif kind == 2:  # blob: a lumpy, elongated closed curve (never round)
            t = np.arange(32) * (2 * math.pi / 32)
            a2, a3 = rng.uniform(0.25, 0.45), rng.uniform(0.1, 0.3)
            p2, p3 = rng.uniform(0, 2 * math.pi, 2)
            r = rng.uniform(6, 40) * (1 + a2 * np.cos(2 * t + p2) + a3 * np.cos(3 * t + p3))
            pts = np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)
            cv2.fillPoly(img, [_to_cv(pts)], color, cv2.LINE_AA, SHIFT)
        elif kind == 3:  # pie slice: wide enough not to read as a triangle, too narrow for a disc
            axes = (int(rng.integers(10, 45)),) * 2
            start = float(rng.uniform(0, 360))
            sweep = float(rng.uniform(110, 200))
            cv2.ellipse(img, (cx, cy), axes, 0.0, start, start + sweep, color, -1, cv2.LINE_AA)
        else:  # crescent: a disc minus an overlapping disc
            r = int(rng.integers(6, 40))
            m = np.zeros((h, w), np.uint8)
            cv2.circle(m, (cx, cy), r, 1, -1)
            a = rng.uniform(0, 2 * math.pi)
            d = rng.uniform(0.3, 0.7) * r
            cv2.circle(m, (int(cx + d * math.cos(a)), int(cy + d * math.sin(a))), r, 0, -1)
            img[m.astype(bool)] = color


# ---------------------------------------------------------------------------------------------
# One image
# ---------------------------------------------------------------------------------------------
def render_shapes(spec: ShapesSpec, index: int) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """
    Render image ``index`` (0-based) of the split that ``spec`` describes, from
    ``np.random.default_rng([spec.seed, index])``.

    Returns:
        image: (H, W, 3) uint8, BGR (colours are random, so the order only matters to viewers).
        objects: one dict per object: ``bbox`` (XYWH, absolute pixels, amodal), ``area`` (pixels),
            ``category_id`` (1-based index into :data:`SHAPE_CLASSES`), ``visible`` (fraction of
            the area left visible), ``keypoints`` (flat ``[x1, y1, v1, ...]``, 3 per name of
            :data:`SHAPE_KEYPOINTS` of the class; x, y in continuous pixels (pixel ``i`` spans
            ``[i, i + 1)``), v COCO's visibility (2 visible, 1 hidden, 0 outside the image, then
            x = y = 0); ``[]`` for a circle).
    """
    if not 0 <= index < spec.num_images:
        raise ValueError(f"index must be in [0, num_images = {spec.num_images}), got {index}")
    return _render(np.random.default_rng([spec.seed, index]), spec)


def render_shapes_image(
    rng: np.random.Generator,
    image_size: Union[int, Sequence[int]] = ShapesSpec.image_size,
    **options: Any,
) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """
    Render one image from ``rng`` (the only source of randomness).

    Args:
        image_size: ``S`` or ``(H, W)``, in pixels.
        options: the other drawing fields of :class:`ShapesSpec` (``min_objects``,
            ``max_objects``, ``min_size``, ``max_size``, ``max_occlusion``), same defaults.

    Returns:
        As :func:`render_shapes`.
    """
    # num_images and seed say which rng an image of a split gets; here the caller gives the rng.
    return _render(rng, ShapesSpec(num_images=1, seed=0, image_size=image_size, **options))


def _render(rng: np.random.Generator, spec: ShapesSpec) -> Tuple[np.ndarray, List[Dict[str, Any]]]:
    """One image of ``spec``'s drawing fields from ``rng``; ``num_images``, ``seed`` and
    ``image_format`` are not used here."""
    h, w = spec.image_size
    img = _background(rng, h, w)
    img = np.clip(img, 0, 255).astype(np.uint8)
    _draw_distractors(rng, img, int(rng.integers(3, 13)))

    # Sizes are drawn from [min_size + 1/16, max_size - 1/16] so that snapping the vertices to
    # the 1/16 px grid keeps every long side within [min_size, max_size].
    lo, hi = spec.min_size + 1 / GRID, spec.max_size - 1 / GRID
    ids = np.zeros((h, w), np.int32)  # id + 1 of the topmost object at each pixel, 0: none
    areas: List[int] = []  # drawn pixels of each object, as placed
    visible: List[int] = []  # of those, still visible
    colors: List[np.ndarray] = []
    objects: List[Dict[str, Any]] = []
    keypoints: List[np.ndarray] = []  # (P, 2) of each object
    for _ in range(int(rng.integers(spec.min_objects, spec.max_objects + 1))):
        for _ in range(PLACEMENT_TRIES):
            cls = int(rng.integers(0, len(SHAPE_CLASSES)))
            pts = _SHAPE_FNS[cls](rng)
            if cls != 0:
                a = rng.uniform(0, 2 * math.pi)
                pts = pts @ np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
            pts = pts - pts.min(0)
            if spec.size_distribution == "log":
                size = math.exp(rng.uniform(math.log(lo), math.log(hi)))
            else:
                size = rng.uniform(lo, hi)
            pts = pts * (size / pts.max())
            pts = np.rint(pts * GRID) / GRID  # on the grid; min stays exactly 0
            ext = pts.max(0)  # (w, h) of the box
            off = np.floor(rng.uniform(0, 1, 2) * (np.array([w, h]) - ext) * GRID) / GRID
            pts = pts + off
            x0, y0 = int(off[0]), int(off[1])
            x1, y1 = (int(v) for v in np.minimum(np.ceil(off + ext) + 1, [w, h]))
            mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
            cv2.fillPoly(mask, [_to_cv(pts - [x0, y0])], 1, cv2.LINE_8, SHIFT)
            m = mask.astype(bool)
            n_pix = int(m.sum())
            if n_pix == 0:
                continue
            under = ids[y0:y1, x0:x1][m]
            hidden = np.bincount(under, minlength=len(areas) + 1)[1:]
            after = np.asarray(visible, np.int64) - hidden
            if np.any(after < (1 - spec.max_occlusion) * np.asarray(areas)):
                continue
            # Its colour must stand out from what lies under it and from each object it covers.
            avoid = [img[y0:y1, x0:x1][m].mean(0)] + [colors[j] for j in np.flatnonzero(hidden)]
            color = _pick_color(rng, np.stack(avoid))
            colors.append(color)
            cv2.fillPoly(img, [_to_cv(pts)], tuple(int(c) for c in color), cv2.LINE_AA, SHIFT)
            ids[y0:y1, x0:x1][m] = len(areas) + 1
            visible = list(after) + [n_pix]
            areas.append(n_pix)
            keypoints.append(shape_keypoints(cls, pts))
            objects.append(
                {
                    "bbox": [float(off[0]), float(off[1]), float(ext[0]), float(ext[1])],
                    "area": _polygon_area(pts),
                    "category_id": cls + 1,
                }
            )
            break

    # Thin lines over the objects, each kept only if it leaves every object visible enough.
    for _ in range(int(rng.integers(0, 4))):
        p0, p1 = rng.integers(0, [w, h], (2, 2))
        m = np.zeros((h, w), np.uint8)
        cv2.line(m, (int(p0[0]), int(p0[1])), (int(p1[0]), int(p1[1])), 1, 1, cv2.LINE_8)
        m = m.astype(bool)
        hidden = np.bincount(ids[m], minlength=len(areas) + 1)[1:]
        after = np.asarray(visible, np.int64) - hidden
        if np.any(after < (1 - spec.max_occlusion) * np.asarray(areas)):
            continue
        img[m] = rng.integers(0, 256, 3)
        ids[m] = 0
        visible = list(after)

    for k, (obj, v, a, kp) in enumerate(zip(objects, visible, areas, keypoints)):
        obj["visible"] = float(v) / a
        kv = keypoint_visibility(kp, ids, k + 1)
        kp = np.where(kv[:, None] > 0, kp, 0.0)
        obj["keypoints"] = [c for (x, y), vj in zip(kp, kv) for c in (float(x), float(y), int(vj))]
    noisy = img.astype(np.float32)
    noisy += rng.standard_normal((h, w, 3), dtype=np.float32) * rng.uniform(2, 10)
    img = np.clip(noisy, 0, 255).astype(np.uint8)
    if rng.random() < 0.3:
        img = cv2.GaussianBlur(img, (3, 3), 0)
    return img, objects
