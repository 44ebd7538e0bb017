"""Boxes from heatmaps and the CAM paper's localization metric.

Protocol (Zhou et al. 2016, "Learning Deep Features for Discriminative Localization", sec. 3):
keep the pixels of a class activation map that reach 20% of its maximum, take the largest
connected component, and use its bounding box; a box counts as correct when its IoU with the
ground-truth box is at least 0.5 (top-1 localization also requires the top-1 class to be right).

Boxes are (x0, y0, x1, y1) in pixels, half-open: x1 and y1 are one past the last column and row,
so a box's width is x1 - x0 and `image[y0:y1, x0:x1]` is its content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.ndimage

EMPTY_BOX = (0, 0, 0, 0)


def box_from_heatmap(heatmap, threshold: float = 0.2) -> np.ndarray:
    """Box of the largest connected region where heatmap >= threshold * max (8-connectivity).

    heatmap (H, W) -> (4,) int64; (B, H, W) -> (B, 4). A map whose maximum is <= 0 has no
    region and gives the empty box (0, 0, 0, 0).
    """
    maps = np.asarray(heatmap, dtype=np.float64)
    if maps.ndim not in (2, 3):
        raise ValueError(f"expected a heatmap of shape (H, W) or (B, H, W), got shape {maps.shape}")
    if not np.isfinite(maps).all():
        raise ValueError("the heatmap contains NaN or infinite values; check the method that produced it")
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1] (a fraction of the map's maximum), got {threshold}")
    flat = maps.reshape(-1, *maps.shape[-2:])
    return _largest_region_boxes(flat, threshold).reshape(*maps.shape[:-2], 4)


# 8-connectivity within each map, none across the stack: one labelling call for the whole batch.
_IN_PLANE = np.zeros((3, 3, 3), dtype=bool)
_IN_PLANE[1] = True


def _largest_region_boxes(maps: np.ndarray, threshold: float) -> np.ndarray:
    """(B, H, W) -> (B, 4) int64 boxes of each map's largest region; ties go to the region met first
    in raster order, as a per-map labelling numbers them."""
    peaks = maps.max(axis=(1, 2))
    masks = (maps >= threshold * peaks[:, None, None]) & (peaks > 0)[:, None, None]
    boxes = np.zeros((len(maps), 4), dtype=np.int64)
    labels, count = scipy.ndimage.label(masks, structure=_IN_PLANE)
    if count == 0:
        return boxes
    # Labels run in raster order through the stack, so each map's labels are one contiguous range.
    last = np.maximum.accumulate(labels.reshape(len(maps), -1).max(axis=1))
    ids = np.arange(1, count + 1)
    owner = np.searchsorted(last, ids)  # the map each label lies in
    sizes = np.bincount(labels.ravel(), minlength=count + 1)[1:]
    order = np.lexsort((ids, -sizes, owner))  # per map: largest first, then raster order
    first = order[np.r_[True, owner[order][1:] != owner[order][:-1]]]
    chosen = np.zeros(len(maps), dtype=labels.dtype)
    chosen[owner[first]] = ids[first]
    region = (labels == chosen[:, None, None]) & (chosen > 0)[:, None, None]
    rows, columns = region.any(axis=2), region.any(axis=1)
    height, width = maps.shape[1:]
    boxes[:] = np.stack([columns.argmax(axis=1), rows.argmax(axis=1),
                         width - columns[:, ::-1].argmax(axis=1), height - rows[:, ::-1].argmax(axis=1)], axis=1)
    boxes[chosen == 0] = EMPTY_BOX
    return boxes


def iou(boxes_a, boxes_b) -> np.ndarray | float:
    """Intersection over union of half-open boxes (..., 4), broadcast; empty boxes give 0."""
    a, b = np.asarray(boxes_a, dtype=np.float64), np.asarray(boxes_b, dtype=np.float64)
    if a.shape[-1:] != (4,) or b.shape[-1:] != (4,):
        raise ValueError(
            f"boxes must have a last axis of 4 (x0, y0, x1, y1), got shapes {a.shape} and {b.shape}"
        )
    x0, y0 = np.maximum(a[..., 0], b[..., 0]), np.maximum(a[..., 1], b[..., 1])
    x1, y1 = np.minimum(a[..., 2], b[..., 2]), np.minimum(a[..., 3], b[..., 3])
    intersection = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    union = _area(a) + _area(b) - intersection
    result = np.divide(intersection, union, out=np.zeros_like(intersection), where=union > 0)
    return float(result) if result.ndim == 0 else result


def _area(boxes: np.ndarray) -> np.ndarray:
    width = np.clip(boxes[..., 2] - boxes[..., 0], 0, None)
    height = np.clip(boxes[..., 3] - boxes[..., 1], 0, None)
    return width * height


def localization_accuracy(pred_boxes, true_boxes, iou_threshold: float = 0.5, correct=None) -> float:
    """Fraction of predicted boxes with IoU >= iou_threshold against the true boxes.

    With `correct` (a bool per image, e.g. "the top-1 class is right") a hit also needs
    correct, which is the CAM paper's top-1 localization accuracy.
    """
    pred, true = np.asarray(pred_boxes), np.asarray(true_boxes)
    if pred.shape != true.shape or pred.ndim != 2 or pred.shape[1] != 4:
        raise ValueError(
            f"expected predicted and true boxes of the same shape (N, 4), got {pred.shape} and {true.shape}"
        )
    if len(pred) == 0:
        raise ValueError("no boxes: accuracy over zero images is undefined")
    if not 0 <= iou_threshold <= 1:
        raise ValueError(f"iou_threshold must be in [0, 1], got {iou_threshold}")
    hits = iou(pred, true) >= iou_threshold
    if correct is not None:
        correct = np.asarray(correct)
        if correct.dtype != bool or correct.shape != hits.shape:
            raise ValueError(
                f"correct must be a bool array of shape {hits.shape}, "
                f"got {correct.dtype} of shape {correct.shape}"
            )
        hits &= correct
    return float(hits.mean())


def mass_fraction(heatmap, region) -> float:
    """Share of a non-negative map's total mass inside `region`: a bool mask (H, W) or a box."""
    heatmap = np.asarray(heatmap, dtype=np.float64)
    if heatmap.ndim != 2:
        raise ValueError(f"expected one heatmap of shape (H, W), got shape {heatmap.shape}")
    if not np.isfinite(heatmap).all() or (heatmap < 0).any():
        raise ValueError("the heatmap must be finite and non-negative; apply a ReLU or clip it first")
    region = np.asarray(region)
    if region.shape == (4,) and region.dtype != bool:
        x0, y0, x1, y1 = region.astype(np.int64)
        inside = heatmap[max(y0, 0) : max(y1, 0), max(x0, 0) : max(x1, 0)].sum()
    elif region.dtype == bool and region.shape == heatmap.shape:
        inside = heatmap[region].sum()
    else:
        raise ValueError(
            f"region must be a bool mask of shape {heatmap.shape} or a box (x0, y0, x1, y1), "
            f"got {region.dtype} of shape {region.shape}"
        )
    total = heatmap.sum()
    if total == 0:
        raise ValueError("the heatmap is zero everywhere, so the fraction of its mass is undefined")
    return float(inside / total)


@dataclass(eq=False)  # == on arrays has no single truth value: compare the fields
class LocalizationDataset:
    """Images with one labelled object each, its pixel mask and its box: the synthetic shapes
    (utils.make_shapes) and the Oxford-IIIT pets (utils.load_pets).

    Boxes are (x0, y0, x1, y1), half-open: x1 and y1 are one past the last column and row of
    the object, so the box is the mask's tight bounding box and `mask[y0:y1, x0:x1]` holds it.
    """

    images: np.ndarray  # (N, S, S, 3) uint8
    labels: np.ndarray  # (N,) int64, indices into class_names
    boxes: np.ndarray  # (N, 4) int64
    masks: np.ndarray  # (N, S, S) bool
    class_names: tuple[str, ...]
    instance_masks: np.ndarray | None = None  # (N, k, S, S) bool: each copy, for make_shapes(instances=k > 1)
    cue_labels: np.ndarray | None = None  # (N,) int64: the class the shortcut mark shows (make_shapes(cue=...))
    cue_masks: np.ndarray | None = None  # (N, S, S) bool: the mark's visible pixels

    def __len__(self) -> int:
        return len(self.labels)


def tight_boxes(masks) -> np.ndarray:
    """Half-open (x0, y0, x1, y1) bounding boxes of non-empty masks (N, H, W)."""
    columns, rows = masks.any(axis=1), masks.any(axis=2)  # (N, W) and (N, H): which hold the object
    x0, y0 = columns.argmax(axis=1), rows.argmax(axis=1)  # the first True
    x1 = columns.shape[1] - columns[:, ::-1].argmax(axis=1)  # one past the last True
    y1 = rows.shape[1] - rows[:, ::-1].argmax(axis=1)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.int64)
