"""Measuring explanations: the pointing game, deletion and insertion curves, rank correlation.

Framework-free: maps and images are numpy arrays; where a model must score images (deletion and
insertion), the caller passes a function, so both backends share every line of the metric.

- Pointing game (Zhang et al. 2018, "Top-down neural attention by excitation backprop", IJCV,
  sec. 5.1): a hit when the map's maximum falls on the object, with a 15-pixel tolerance.
- Deletion and insertion (Petsiuk et al. 2018, "RISE", sec. 4.2): remove (or insert) pixels in the
  order the map ranks them and follow the class probability; the area under the curve summarises it
  (deletion: lower is better; insertion: higher is better).
- Rank correlation (Adebayo et al. 2018, "Sanity checks for saliency maps", sec. 3): Spearman's rho
  between two maps, used to compare a map before and after the model's weights are randomised.
- Bootstrap interval (Efron and Tibshirani 1993, "An Introduction to the Bootstrap", ch. 13): the
  percentile confidence interval of a mean over images, to say whether two methods' scores differ.
The CAM paper's localization accuracy lives in utils.localization.
"""
from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import numpy as np
import scipy.ndimage
import scipy.stats

from .images import as_rgb_uint8

POINTING_TOLERANCE = 15  # pixels, Zhang et al. 2018
PERTURBATION_MODES = ("deletion", "insertion")
BASELINES = ("black", "blur", "mean")


def _maps(heatmaps, name: str = "heatmaps") -> np.ndarray:
    maps = np.asarray(heatmaps, dtype=np.float64)
    if maps.ndim == 2:
        maps = maps[None]
    if maps.ndim != 3 or maps.shape[0] == 0:
        raise ValueError(f"{name} must have shape (H, W) or (B, H, W) with B >= 1, got shape {maps.shape}")
    if not np.isfinite(maps).all():
        raise ValueError(f"{name} contain NaN or infinite values; check the method that produced them")
    return maps


def _regions(regions, shape: tuple[int, int, int]) -> np.ndarray:
    """Boolean masks (B, H, W) from masks of that shape or from boxes (B, 4) = (x0, y0, x1, y1)."""
    array = np.asarray(regions)
    if array.ndim == 1 and array.shape == (4,) and shape[0] == 1:
        array = array[None]
    if array.ndim == 2 and array.shape == (shape[0], 4):
        masks = np.zeros(shape, dtype=bool)
        for mask, (x0, y0, x1, y1) in zip(masks, array.astype(np.int64)):
            mask[max(y0, 0):max(y1, 0), max(x0, 0):max(x1, 0)] = True
        return masks
    if array.ndim == 2 and array.shape == shape[1:] and shape[0] == 1:
        array = array[None]
    if array.shape != shape:
        raise ValueError(f"expected one region per map: boolean masks of shape {shape} or boxes of shape "
                         f"({shape[0]}, 4), got shape {array.shape}")
    return array.astype(bool)


def pointing_game(heatmaps, regions, tolerance: float = POINTING_TOLERANCE) -> np.ndarray:
    """Hits of the pointing game (Zhang et al. 2018, sec. 5.1): (B,) bool.

    A map hits when its maximum lies within `tolerance` pixels of its object, given as boolean masks
    (B, H, W) or boxes (B, 4). Several equal maxima: the first in raster order. A constant map points
    nowhere and misses.
    """
    maps = _maps(heatmaps)
    masks = _regions(regions, maps.shape)
    if not tolerance >= 0:
        raise ValueError(f"tolerance must be a number of pixels >= 0, got {tolerance}")
    hits = np.zeros(len(maps), dtype=bool)
    for i, (heatmap, mask) in enumerate(zip(maps, masks)):
        if heatmap.max() <= heatmap.min() or not mask.any():
            continue
        row, column = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        distance = scipy.ndimage.distance_transform_edt(~mask)  # to the nearest object pixel
        hits[i] = distance[row, column] <= tolerance
    return hits


def rank_correlation(maps_a, maps_b, absolute: bool = False) -> np.ndarray:
    """Spearman's rank correlation between paired maps, over their pixels: (B,) float.

    Ties get their average rank. `absolute=True` ranks |map| (Adebayo et al. 2018 report both, since
    a method's sign may flip when weights change). A constant map shares no ordering with any map: 0.
    Maps of any trailing shape ((B, H, W) or (B, H, W, 3)) are compared element by element.
    """
    a, b = np.asarray(maps_a, dtype=np.float64), np.asarray(maps_b, dtype=np.float64)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"expected two batches of maps of the same shape (B, H, W), got {a.shape} and {b.shape}")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        raise ValueError("the maps contain NaN or infinite values")
    a, b = a.reshape(len(a), -1), b.reshape(len(b), -1)
    if absolute:
        a, b = np.abs(a), np.abs(b)
    result = np.zeros(len(a))
    for i, (x, y) in enumerate(zip(a, b)):
        if np.ptp(x) > 0 and np.ptp(y) > 0:
            result[i] = np.corrcoef(scipy.stats.rankdata(x), scipy.stats.rankdata(y))[0, 1]
    return result


def perturbation_order(heatmap, seed: int = 0) -> np.ndarray:
    """Pixel indices (row-major, of H * W) from the highest map value to the lowest.

    Ties are broken at random (seeded): a map that is flat over a region (Grad-CAM's zeros) must not
    delete that region from the top row down, which would score the image's layout, not the map.
    """
    heatmap = _maps(heatmap, "heatmap")[0]
    tie_breaker = np.random.default_rng(seed).random(heatmap.size)
    return np.lexsort((tie_breaker, -heatmap.ravel()))


def baseline_image(image, kind: str = "black", blur_sigma: float = 5.0) -> np.ndarray:
    """The image that removed pixels are replaced by (deletion) or that insertion starts from.

    "black": zeros (RISE's deletion); "blur": a Gaussian blur of the image, `blur_sigma` pixels
    (RISE's insertion canvas); "mean": the image's mean colour. uint8 (H, W, 3).
    """
    image = as_rgb_uint8(image)
    if kind == "black":
        return np.zeros_like(image)
    if kind == "mean":
        return np.broadcast_to(image.reshape(-1, 3).mean(0).round().astype(np.uint8), image.shape).copy()
    if kind == "blur":
        blurred = scipy.ndimage.gaussian_filter(image.astype(np.float64), sigma=(blur_sigma, blur_sigma, 0))
        return np.clip(blurred.round(), 0, 255).astype(np.uint8)
    raise ValueError(f"baseline must be one of {BASELINES}, got {kind!r}")


def perturbed_images(image, heatmap, mode: str = "deletion", steps: int = 32, baseline: str | None = None,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The images along a deletion or insertion curve and the fraction of pixels changed in each.

    Step k of `steps` has round(k / steps * H * W) pixels, those the map ranks highest, taken from
    the baseline (deletion: the image loses them) or from the image (insertion: the baseline gains
    them). Returns uint8 (steps + 1, H, W, 3) and fractions (steps + 1,) from 0 to 1. Default
    baselines as in RISE: black for deletion, a blurred copy for insertion.
    """
    if mode not in PERTURBATION_MODES:
        raise ValueError(f"mode must be one of {PERTURBATION_MODES}, got {mode!r}")
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    image = as_rgb_uint8(image)
    heatmap = _maps(heatmap, "heatmap")[0]
    if heatmap.shape != image.shape[:2]:
        raise ValueError(f"the heatmap {heatmap.shape} must have the image's height and width {image.shape[:2]}: "
                         f"upsample the map (or resize the image with utils.prepare_images) first")
    base = baseline_image(image, baseline or ("black" if mode == "deletion" else "blur"))
    start, end = (image, base) if mode == "deletion" else (base, image)
    order = perturbation_order(heatmap, seed)
    counts = np.round(np.arange(steps + 1) / steps * heatmap.size).astype(np.int64)
    taken = np.zeros(heatmap.size, dtype=np.int64)  # the step at which each pixel switches to `end`
    taken[order] = np.searchsorted(counts, np.arange(heatmap.size), side="right")
    switched = taken.reshape(heatmap.shape)[None] <= np.arange(steps + 1)[:, None, None]
    frames = np.where(switched[..., None], end[None], start[None])
    return frames, counts / heatmap.size


class PerturbationCurves(NamedTuple):
    """Deletion or insertion curves of a batch: the scores at each fraction of pixels, and their areas."""

    fractions: np.ndarray  # (steps + 1,) from 0 to 1
    scores: np.ndarray  # (B, steps + 1)
    auc: np.ndarray  # (B,) area under each curve (trapezoids over the fractions)


def perturbation_curves(score: Callable[[np.ndarray, int], np.ndarray], images, heatmaps, targets,
                        mode: str = "deletion", steps: int = 32, baseline: str | None = None,
                        seed: int = 0, max_frames: int = 256) -> PerturbationCurves:
    """Deletion or insertion curves (Petsiuk et al. 2018, sec. 4.2) of uint8 images (B, H, W, 3).

    `score(frames, target)` returns the model's probability of class `target` for each of the
    uint8 frames (N, H, W, 3), e.g. `lambda f, c: xt.probabilities(model, xt.preprocess(f, model))[:, c]`.
    The frames of images that share a target go to `score` together, at most `max_frames` per call
    (at least one image's steps + 1): one model call per class and chunk, not one per image, which
    is what costs most on small images. Deletion: a low area means the map found the pixels the
    class depends on; insertion: a high area means the same.
    """
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[None]
    maps = _maps(heatmaps)
    targets = np.broadcast_to(np.asarray(targets, dtype=np.int64), (len(images),))
    if len(maps) != len(images):
        raise ValueError(f"expected one heatmap per image: {len(images)} images, {len(maps)} heatmaps")
    if isinstance(max_frames, bool) or not isinstance(max_frames, (int, np.integer)) or max_frames < 1:
        raise ValueError(f"max_frames must be an integer >= 1, got {max_frames!r}")
    if len(images) == 0:
        raise ValueError("no images: pass at least one image (H, W, 3) with its heatmap and target")
    per_call = max(1, max_frames // (steps + 1))  # images whose frames share one call
    scores = np.empty((len(images), steps + 1))
    fractions = None
    for target in np.unique(targets):
        members = np.flatnonzero(targets == target)
        for chunk in np.array_split(members, -(-len(members) // per_call)):
            frames = [perturbed_images(images[i], maps[i], mode, steps, baseline, seed) for i in chunk]
            fractions = frames[0][1]
            values = np.asarray(score(np.concatenate([f for f, _ in frames]), int(target)), dtype=np.float64)
            values = values.reshape(-1)
            if values.shape != ((steps + 1) * len(chunk),):
                raise ValueError(f"score must return one value per frame ({(steps + 1) * len(chunk)}), "
                                 f"got shape {values.shape}")
            scores[chunk] = values.reshape(len(chunk), steps + 1)
    area = ((scores[:, 1:] + scores[:, :-1]) / 2 * np.diff(fractions)).sum(axis=1)  # trapezoids
    return PerturbationCurves(fractions, scores, area)


def randomized_like(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fresh random weights for the model-randomisation test (Adebayo et al. 2018, sec. 3.1).

    Drawn from a normal with the trained tensor's own mean and standard deviation: the learned
    structure is gone while the scale of the activations stays, so a map that changes reflects lost
    structure, not a blown-up or vanished signal. Both backends use this one rule.
    """
    values = np.asarray(values)
    return rng.normal(values.mean(), values.std(), values.shape).astype(values.dtype)


@functools.lru_cache(maxsize=8)
def _resample_counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """(N, R) float64: how often each of N images is drawn in each resample. The same as drawing N
    indices with replacement, and the means become one matrix product instead of an (..., R, N)
    gather. Cached (read-only), because drawing them costs far more than using them and a notebook
    asks for many intervals over the same images."""
    counts = np.random.default_rng(seed).multinomial(n, np.full(n, 1 / n), size=resamples).T.astype(np.float64)
    counts.flags.writeable = False
    return counts


def bootstrap_interval(values, confidence: float = 0.95, resamples: int = 10_000, seed: int = 0,
                       axis: int = -1) -> tuple[np.ndarray | float, np.ndarray | float]:
    """Percentile bootstrap confidence interval of the mean of per-image `values`: (low, high).

    The images are drawn with replacement `resamples` times (seeded: the same interval on every
    run), the mean of each draw is taken, and the interval runs from the (1 - confidence) / 2 to the
    (1 + confidence) / 2 quantile of those means. `values` (..., N) holds one value per image along
    `axis` (e.g. hits as bool, areas under curves, rank correlations); several rows (e.g. one per
    method) are resampled with the same draws, so their intervals are paired. Returns floats for
    1-D input, else arrays of the other axes' shape. The interval reflects the spread over these
    images only, not over models or data sets.
    """
    data = np.asarray(values)
    if data.dtype == object or not (np.issubdtype(data.dtype, np.number) or data.dtype == bool):
        raise TypeError(f"values must be numbers or bools, one per image, got dtype {data.dtype}")
    data = np.moveaxis(data.astype(np.float64), axis, -1) if data.ndim else data.astype(np.float64)
    if data.ndim == 0 or data.shape[-1] < 2:
        raise ValueError(f"need at least two values along axis {axis} (one per image), got shape {np.shape(values)}")
    if not np.isfinite(data).all():
        raise ValueError("values contain NaN or infinite values")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), e.g. 0.95, got {confidence}")
    if isinstance(resamples, bool) or not isinstance(resamples, (int, np.integer)) or resamples < 1:
        raise ValueError(f"resamples must be an integer >= 1, got {resamples!r}")
    n = data.shape[-1]
    counts = (_resample_counts(n, resamples, seed) if isinstance(seed, (int, np.integer))
              else _resample_counts.__wrapped__(n, resamples, seed))  # an unseeded draw is never cached
    means = data @ counts / n  # (..., R)
    low, high = np.quantile(means, [(1 - confidence) / 2, (1 + confidence) / 2], axis=-1)
    if data.ndim == 1:
        return float(low), float(high)
    return low, high
