"""A synthetic "shapes on clutter" data set for weakly supervised localization.

Each image holds exactly one target shape (its class) on a textured background with a few
clutter strokes (dots, dashes, thin lines) that belong to no class. A small CNN trained on the
labels alone can then be asked where the object is: its CAM box is compared with the true box,
as in Zhou et al. 2016, sec. 3 (see `utils.localization`).

Geometry: pixel (row i, column j) has its centre at (x, y) = (j + 0.5, i + 0.5); a pixel belongs
to a shape when its centre does. Every target fits in a square of side `scale * size` that lies
inside the image; the clutter is drawn first, so the target is never covered.
"""

from __future__ import annotations


import numpy as np
from matplotlib.colors import hsv_to_rgb

from .localization import LocalizationDataset, tight_boxes

SHAPE_CLASSES = ("circle", "square", "triangle", "cross", "ring")

MIN_IMAGE_SIZE = 16
MIN_OBJECT_PIXELS = 4
CHUNK = 256  # images rendered at once: bounds memory, keeps every step vectorised

# Clutter kinds, drawn as capsules (all points within `radius` of a segment of length `length`),
# both as fractions of the image side: ((length range), (radius range)).
CLUTTER_KINDS = {
    "dot": ((0.0, 0.0), (0.015, 0.035)),
    "dash": ((0.06, 0.12), (0.012, 0.022)),
    "line": ((0.25, 0.5), (0.008, 0.014)),
}
MIN_CLUTTER_RADIUS = 0.6  # pixels: thinner strokes would fall between pixel centres
NOISE_GRID = 5  # control points per side of the smooth background noise
# The optional shortcut (make_shapes(cue="corner")): a square mark in the top-left corner whose colour
# names a class, one fixed hue per class, so that a network can learn the class from the mark alone.
CUE_KINDS = ("corner",)
CUE_SIDE = 0.125  # of the image side: 8 pixels at 64
CUE_COLOURS = hsv_to_rgb(np.stack([np.arange(5) / 5, np.ones(5), np.ones(5)], -1)).astype(np.float32)


def make_shapes(
    n: int,
    size: int = 64,
    seed: int = 0,
    min_scale: float = 0.25,
    max_scale: float = 0.5,
    distractors: int = 3,
    instances: int = 1,
    cue: str | None = None,
    cue_agreement: float = 1.0,
) -> LocalizationDataset:
    """Make `n` images of `size` x `size` pixels, the same ones for the same `seed`.

    The target's side is a random fraction of `size` in [min_scale, max_scale]; its position
    and saturated colour are random; `distractors` clutter strokes are added per image. The
    classes are balanced (counts differ by at most one).

    instances=k > 1 draws k copies of the image's class (each its own size, place and colour, their
    squares apart by at least a pixel; k * max_scale <= 1 so that they fit) for the several-instance
    claim of Grad-CAM++; `instance_masks` (N, k, S, S) then holds each copy, `masks` their union and
    `boxes` the union's box. instances=1 gives exactly the single-target data set.

    cue="corner" adds a shortcut: a square mark (CUE_SIDE of the side) in the top-left corner in the
    colour of a class (CUE_COLOURS), painted under the target like the clutter. With probability
    `cue_agreement` its class is the image's own, otherwise another class drawn uniformly: 1.0 is a
    perfect shortcut (a training split), 1 / 5 a mark that says nothing (a clean test split), 0.0 a
    mark that always lies. `cue_labels` and `cue_masks` (the mark's visible pixels) say where it is.
    The images, labels and targets are those of the same call without a cue, mark aside.
    """
    _check_arguments(n, size, min_scale, max_scale, distractors)
    if isinstance(instances, bool) or not isinstance(instances, (int, np.integer)) or instances < 1:
        raise ValueError(f"instances must be an integer >= 1, got {instances!r}")
    if instances * max_scale > 1:
        raise ValueError(f"{instances} instances of up to {max_scale} of the side do not fit side by side; "
                         f"choose max_scale <= {1 / instances:.3g}")
    if cue is not None and cue not in CUE_KINDS:
        raise ValueError(f"cue must be None or one of {', '.join(map(repr, CUE_KINDS))}, got {cue!r}")
    if not 0 <= cue_agreement <= 1:
        raise ValueError(f"cue_agreement is a probability in [0, 1], got {cue_agreement!r}")
    rng = np.random.default_rng(seed)
    labels = rng.permutation(np.arange(n) % len(SHAPE_CLASSES)).astype(np.int64)
    if instances == 1:
        targets = [_draw_target_parameters(rng, n, size, min_scale, max_scale)]
    else:
        targets = _draw_separate_targets(rng, n, instances, size, min_scale, max_scale)
    background = _draw_background_parameters(rng, n)
    clutter = _draw_clutter_parameters(rng, n, size, distractors)

    cue_labels = _draw_cue_labels(np.random.default_rng([seed, 1]), labels, cue_agreement) if cue else None
    cue_square = np.zeros((size, size), bool)
    cue_square[:round(CUE_SIDE * size), :round(CUE_SIDE * size)] = True

    images = np.empty((n, size, size, 3), np.uint8)
    instance_masks = np.empty((n, instances, size, size), bool)
    for start in range(0, n, CHUNK):
        part = slice(start, min(start + CHUNK, n))
        picture = _render_background({k: v[part] for k, v in background.items()}, size)
        for stroke in range(distractors):
            params = {k: v[part, stroke] for k, v in clutter.items()}
            _paint(picture, _capsule_mask(params, size), params["colour"])
        if cue:
            _paint(picture, np.broadcast_to(cue_square, picture.shape[:3]), CUE_COLOURS[cue_labels[part]])
        for copy, target in enumerate(targets):
            instance_masks[part, copy] = _target_mask(labels[part], {k: v[part] for k, v in target.items()}, size)
            _paint(picture, instance_masks[part, copy], target["colour"][part])
        images[part] = (picture * 255).round().astype(np.uint8)
    masks = instance_masks.any(axis=1)
    cue_masks = (cue_square & ~masks) if cue else None
    return LocalizationDataset(images, labels, tight_boxes(masks), masks, SHAPE_CLASSES,
                               instance_masks if instances > 1 else None, cue_labels, cue_masks)


def _draw_cue_labels(rng, labels, agreement: float) -> np.ndarray:
    """The class each mark shows: the image's own with probability `agreement`, else another class."""
    classes = len(SHAPE_CLASSES)
    other = (labels + rng.integers(1, classes, len(labels))) % classes  # uniform over the other classes
    return np.where(rng.random(len(labels)) < agreement, labels, other).astype(np.int64)


def _check_arguments(n, size, min_scale, max_scale, distractors) -> None:
    for name, value, lowest in (("n", n, 1), ("size", size, MIN_IMAGE_SIZE), ("distractors", distractors, 0)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lowest:
            raise ValueError(f"{name} must be an integer >= {lowest}, got {value!r}")
    if not (0 < min_scale <= max_scale <= 1):
        raise ValueError(
            f"need 0 < min_scale <= max_scale <= 1, got min_scale={min_scale!r}, max_scale={max_scale!r}"
        )
    if min_scale * size < MIN_OBJECT_PIXELS:
        raise ValueError(
            f"objects would be {min_scale * size:.1f} pixels across; raise min_scale or size so "
            f"that min_scale * size >= {MIN_OBJECT_PIXELS}"
        )


def _saturated_colours(rng, shape) -> np.ndarray:
    hsv = np.stack([rng.random(shape), rng.uniform(0.75, 1, shape), rng.uniform(0.8, 1, shape)], -1)
    return hsv_to_rgb(hsv).astype(np.float32)


def _draw_target_parameters(rng, n, size, min_scale, max_scale) -> dict[str, np.ndarray]:
    side = rng.uniform(min_scale, max_scale, n) * size
    centre = side[:, None] / 2 + rng.random((n, 2)) * (size - side[:, None])  # box inside image
    return {"half": side / 2, "cx": centre[:, 0], "cy": centre[:, 1], "colour": _saturated_colours(rng, n)}


def _draw_separate_targets(rng, n, instances, size, min_scale, max_scale) -> list[dict[str, np.ndarray]]:
    """`instances` targets per image whose squares keep at least a pixel apart: each drawn as a single
    target is, and drawn again (up to 100 times) while it touches an earlier one; an image where that
    fails gets its squares along the diagonal, where k * max_scale <= 1 always leaves room."""
    copies = [_draw_target_parameters(rng, n, size, min_scale, max_scale) for _ in range(instances)]
    for i in range(n):
        placed = []
        for copy in copies:
            for _ in range(100):
                if all(max(abs(copy["cx"][i] - cx), abs(copy["cy"][i] - cy)) >= copy["half"][i] + half + 1
                       for cx, cy, half in placed):
                    break
                redraw = _draw_target_parameters(rng, 1, size, min_scale, max_scale)
                for key in ("half", "cx", "cy"):
                    copy[key][i] = redraw[key][0]
            else:
                break
            placed.append((copy["cx"][i], copy["cy"][i], copy["half"][i]))
        else:
            continue
        slot = size / instances
        for j, copy in enumerate(copies):  # the diagonal: square j in the j-th cell, apart by construction
            copy["half"][i] = min(copy["half"][i], slot / 2 - 0.5)
            copy["cx"][i] = copy["cy"][i] = (j + 0.5) * slot
    return copies


def _draw_background_parameters(rng, n) -> dict[str, np.ndarray]:
    muted = np.stack([rng.random((n, 2)), rng.uniform(0, 0.35, (n, 2)), rng.uniform(0.2, 0.7, (n, 2))], -1)
    return {
        "colours": hsv_to_rgb(muted).astype(np.float32),  # (n, 2, 3): the two ends of the blend
        "noise": rng.random((n, NOISE_GRID, NOISE_GRID)).astype(np.float32),
        "stripe_mix": rng.uniform(0, 0.7, n),
        "stripe_cycles": rng.uniform(1.5, 5, n),
        "stripe_angle": rng.uniform(0, np.pi, n),
        "stripe_phase": rng.uniform(0, 2 * np.pi, n),
    }


def _draw_clutter_parameters(rng, n, size, count) -> dict[str, np.ndarray]:
    ranges = np.array(list(CLUTTER_KINDS.values()))  # (kinds, 2 [length, radius], 2 [lo, hi])
    kind = rng.integers(len(CLUTTER_KINDS), size=(n, count))
    low, high = ranges[kind, :, 0], ranges[kind, :, 1]
    fractions = low + rng.random((n, count, 2)) * (high - low)
    length, radius = fractions[..., 0] * size, fractions[..., 1] * size
    angle = rng.uniform(0, np.pi, (n, count))
    half_step = np.stack([np.cos(angle), np.sin(angle)], -1) * length[..., None] / 2
    centre = rng.random((n, count, 2)) * size
    return {
        "start": centre - half_step,
        "end": centre + half_step,
        "radius": np.maximum(radius, MIN_CLUTTER_RADIUS),
        "colour": _saturated_colours(rng, (n, count)),
    }


def _pixel_centres(size: int) -> tuple[np.ndarray, np.ndarray]:
    """x of shape (1, 1, S) and y of shape (1, S, 1), ready to broadcast over a batch."""
    centres = np.arange(size, dtype=np.float32) + 0.5
    return centres[None, None, :], centres[None, :, None]


def _render_background(params, size) -> np.ndarray:
    """Blend of two muted colours, weighted by smooth noise mixed with stripes: (m, S, S, 3)."""
    x, y = _pixel_centres(size)
    knots = np.linspace(0, size, NOISE_GRID, dtype=np.float32)
    hat = np.clip(1 - np.abs(x[0, 0, :, None] - knots) / knots[1], 0, None)  # (S, G): linear interpolation
    noise = hat @ params["noise"] @ hat.T
    angle, cycles, phase, mix = (
        params[name].astype(np.float32)[:, None, None]
        for name in ("stripe_angle", "stripe_cycles", "stripe_phase", "stripe_mix")
    )
    across = x * np.cos(angle) + y * np.sin(angle)  # distance along the stripes' normal
    stripes = 0.5 + 0.5 * np.sin(2 * np.pi * cycles * across / size + phase)
    weight = ((1 - mix) * noise + mix * stripes)[..., None]
    first, second = params["colours"][:, 0, None, None, :], params["colours"][:, 1, None, None, :]
    return first + weight * (second - first)


def _capsule_mask(params, size) -> np.ndarray:
    """Pixels within `radius` of the segment start-end (a dot when start == end): (m, S, S)."""
    x, y = _pixel_centres(size)
    ends = np.concatenate([params["start"], params["end"]], axis=1).astype(np.float32)
    ax, ay, bx, by = ends.T[:, :, None, None]
    ux, uy = bx - ax, by - ay
    squared_length = np.maximum(ux**2 + uy**2, 1e-6)  # a dot: `along` is then 0
    along = np.clip(((x - ax) * ux + (y - ay) * uy) / squared_length, 0, 1)
    distance_sq = (x - ax - along * ux) ** 2 + (y - ay - along * uy) ** 2
    return distance_sq <= params["radius"][:, None, None] ** 2


def _target_mask(labels, params, size) -> np.ndarray:
    """The target shapes, in coordinates (u, v) scaled so that the shape's square is [-1, 1]^2."""
    x, y = _pixel_centres(size)
    half = params["half"][:, None, None]
    u, v = (x - params["cx"][:, None, None]) / half, (y - params["cy"][:, None, None]) / half
    r2 = u**2 + v**2
    in_square = (np.abs(u) <= 1) & (np.abs(v) <= 1)
    shapes = {
        "circle": r2 <= 1,
        "square": in_square,
        "triangle": (v <= 1) & (np.abs(u) <= (v + 1) / 2),  # apex at the top, base at the bottom
        "cross": in_square & ((np.abs(u) <= 1 / 3) | (np.abs(v) <= 1 / 3)),
        "ring": (r2 <= 1) & (r2 >= 0.55**2),
    }
    every_shape = np.stack([shapes[name] for name in SHAPE_CLASSES], axis=1)  # (m, classes, S, S)
    return every_shape[np.arange(len(labels)), labels]


def _paint(picture, mask, colour) -> None:
    """Set the masked pixels of each picture (m, S, S, 3) to its colour (m, 3), in place."""
    image, row, column = np.nonzero(mask)
    picture[image, row, column] = colour[image]
