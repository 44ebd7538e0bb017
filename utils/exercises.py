"""Checkers for the build-it exercises of the notebooks.

The reader writes the key lines of a method into a stub; a checker here compares the result with the
course's own implementation (computed by the notebook and passed in as numpy) and says right or wrong.
When it is wrong, it tests the usual mistakes (a missing ReLU, the wrong class, a sum for a mean, ...)
and names the one that matches as the hint. Framework-free: every argument is a numpy array.
"""
from __future__ import annotations

import numpy as np


def _verdict(right: bool, what: str, hint: str = "") -> bool:
    """Print the verdict (and the hint when wrong) and return it, so a notebook can assert it."""
    if right:
        print(f"Right: {what}")
    else:
        print(f"Not yet: {what}" + (f"\n  Hint: {hint}" if hint else ""))
    return bool(right)


def _close(answer, expected, rtol: float = 1e-3, atol: float = 1e-5) -> bool:
    answer, expected = np.asarray(answer, np.float64), np.asarray(expected, np.float64)
    return answer.shape == expected.shape and bool(np.allclose(answer, expected, rtol=rtol, atol=atol))


def _check_shape(answer, expected, what: str) -> str:
    """'' when the shapes agree, else the hint that says so."""
    answer, expected = np.asarray(answer), np.asarray(expected)
    if answer.shape != expected.shape:
        return f"{what} has shape {answer.shape}; expected {expected.shape}."
    return ""


# Class activation maps (notebooks 01-03)


def _rescaled(maps: np.ndarray) -> np.ndarray:
    """Each map min-max rescaled to [0, 1] (a constant map to zeros), as a display would."""
    low = maps.min(axis=(-2, -1), keepdims=True)
    span = maps.max(axis=(-2, -1), keepdims=True) - low
    return np.where(span > 0, (maps - low) / np.where(span > 0, span, 1), 0.0)


def _first_match(answer, candidates) -> str:
    """The hint of the first (expected, hint) pair whose expected value the answer equals, else ''."""
    for expected, hint in candidates:
        if expected is not None and _close(answer, expected):
            return hint
    return ""


def check_cam(answer, features, weights, target: int) -> bool:
    """Check a class activation map written by hand: M_c(x, y) = sum_k w_k^c f_k(x, y) (Zhou et al. 2016, eq. 2).

    answer: the reader's (h, w) map; features: one image's last feature map (K, h, w), channels first; weights:
    the linear layer's weight (classes, K), row c = w^c; target: the class c. The raw map is compared (no
    rescaling, no ReLU, no upsampling): its mean plus b_c is the logit, which a rescaled map would hide.
    """
    features, weights = np.asarray(features, np.float64), np.asarray(weights, np.float64)
    if features.ndim != 3 or weights.ndim != 2 or weights.shape[1] != features.shape[0]:
        raise ValueError(f"check_cam wants features (K, h, w) and weights (classes, K); got {features.shape} "
                         f"and {weights.shape}")
    if not 0 <= int(target) < len(weights):
        raise ValueError(f"target {target} is not a class of weights with {len(weights)} rows")
    c = int(target)
    what = f"the class activation map of class {c}"
    if answer is None:
        return _verdict(False, what, "the answer is None: the function must `return` the (h, w) map.")
    every_class = np.einsum("ck,khw->chw", weights, features)
    expected = every_class[c]
    answer = np.asarray(answer, np.float64)
    if answer.shape != expected.shape:
        if answer.shape == every_class.shape:
            hint = f"that is the map of every class {every_class.shape}; keep row c: weights[{c}]."
        elif answer.shape == expected.T.shape:
            hint = f"the map is transposed: {answer.shape} for (h, w) = {expected.shape}."
        elif answer.shape in ((features.shape[0],), (features.shape[0], 1, 1)):
            hint = "you summed over the positions; sum over the channels k instead (axis 0 of features)."
        else:
            hint = _check_shape(answer, expected, "your map") + " Sum w_k^c f_k over the channels k only."
        return _verdict(False, what, hint)
    if _close(answer, expected):
        return _verdict(True, what + ": M_c = sum_k w_k^c f_k.")
    K, (h, w) = features.shape[0], expected.shape
    candidates = [
        (expected.T if h == w else None, "the map is transposed: rows are y (h), columns x (w)."),
        (np.maximum(expected, 0) if (expected < 0).any() else None,
         "CAM has no ReLU: keep the negative cells (evidence against the class)."),
        (expected / K, "you averaged over the channels; M_c is their weighted sum (no division by K)."),
        (expected / (h * w), "you divided by Z = h w: that is the logit's average; the map is the plain sum."),
        (_rescaled(expected), "you rescaled the map to [0, 1]; return the raw map (its mean + b_c is the logit)."),
    ]
    hint = _first_match(answer, candidates)
    if not hint:
        other = [k for k in range(len(weights)) if k != c and _close(answer, every_class[k])]
        if other:
            hint = f"that is the map of class {other[0]}; use row {c} of the weights: weights[{c}]."
    return _verdict(False, what, hint or "compare with M_c(x, y) = sum_k weights[c, k] * features[k, y, x].")


def check_grad_cam(answer, activations, gradients) -> bool:
    """Check a Grad-CAM map written by hand (Selvaraju et al. 2017, eqs. 1-2):
    alpha_k = mean over positions of dS^c/dA^k, map = ReLU(sum_k alpha_k A^k).

    answer: the reader's (h, w) map; activations A and gradients dS^c/dA: one image's (K, h, w) each, channels
    first. The raw map is compared (no rescaling, no upsampling), so a sum in place of the mean (a factor
    Z = h w, which a min-max rescaling would hide) counts as a mistake.
    """
    activations, gradients = np.asarray(activations, np.float64), np.asarray(gradients, np.float64)
    if activations.ndim != 3 or activations.shape != gradients.shape:
        raise ValueError(f"check_grad_cam wants activations and gradients of one shape (K, h, w); got "
                         f"{activations.shape} and {gradients.shape}")
    what = "the Grad-CAM map"
    if answer is None:
        return _verdict(False, what, "the answer is None: the function must `return` the (h, w) map.")
    alpha = gradients.mean(axis=(1, 2))  # eq. 1
    signed = np.einsum("k,khw->hw", alpha, activations)
    expected = np.maximum(signed, 0)  # eq. 2
    answer = np.asarray(answer, np.float64)
    K, h, w = activations.shape
    if answer.shape != expected.shape:
        if answer.shape == (K,):
            hint = "that looks like the weights alpha_k; now weight the channels with them, sum over k, apply the ReLU."
        elif answer.shape == (K, h, w):
            hint = "sum the weighted channels over k (axis 0) to get one (h, w) map."
        elif answer.shape == expected.T.shape:
            hint = f"the map is transposed: {answer.shape} for (h, w) = {expected.shape}."
        else:
            hint = _check_shape(answer, expected, "your map")
        return _verdict(False, what, hint)
    if _close(answer, expected):
        return _verdict(True, what + ": ReLU(sum_k alpha_k A^k), alpha_k the spatial mean of the gradient.")
    over_channels = gradients.mean(axis=0)  # (h, w): the mean taken over the wrong axis
    candidates = [
        (signed if (signed < 0).any() else None, "you forgot the final ReLU: keep only the positive part."),
        (expected * h * w, f"alpha_k is the mean of the gradient over the positions, not the sum (a factor "
                           f"Z = {h * w}; a min-max rescaling would hide it, the raw map does not)."),
        (np.maximum(np.einsum("khw,khw->hw", gradients, activations), 0),
         "you multiplied gradient and activation cell by cell; average the gradient over the positions first, "
         "one weight alpha_k per channel."),
        (np.maximum(over_channels * activations.sum(axis=0), 0),
         "you averaged the gradient over the channels (axis 0); alpha_k is its mean over the positions (axes 1, 2)."),
        (np.maximum(np.einsum("k,khw->hw", np.maximum(alpha, 0), activations), 0) if (alpha < 0).any() else None,
         "the ReLU belongs on the weighted sum, not on the weights alpha_k."),
        (expected.T if h == w else None, "the map is transposed: rows are y (h), columns x (w)."),
        (_rescaled(expected), "you rescaled the map to [0, 1]; return the raw map."),
    ]
    hint = _first_match(answer, candidates)
    return _verdict(False, what, hint or "compare with ReLU(sum_k alpha_k A^k), alpha_k = gradients[k].mean().")


# Gradients (notebooks 04-05)


def check_guided_relu(answer, x, upstream, upper: float | None = None) -> bool:
    """Check Guided Backprop's backward rule through a ReLU, written by hand (Springenberg et al. 2015, eq. in
    Fig. 1): what reaches the input is the upstream gradient g where the forward input x > 0 AND g > 0, else 0.

    answer: the reader's array, the shape of x; x: the ReLU's forward input; upstream: g = dS/dy, the gradient
    arriving at its output (the shape of x). upper: for ReLU6 (upper=6) the forward mask is 0 < x < upper.
    """
    x, upstream = np.asarray(x, np.float64), np.asarray(upstream, np.float64)
    if x.shape != upstream.shape:
        raise ValueError(f"check_guided_relu wants x and upstream of one shape; got {x.shape} and {upstream.shape}")
    what = "the guided backward rule" + ("" if upper is None else f" of a ReLU clipped at {upper:g}")
    if answer is None:
        return _verdict(False, what, "the answer is None: the function must `return` the gradient that reaches x.")
    active = (x > 0) if upper is None else (x > 0) & (x < upper)
    positive = upstream > 0
    expected = upstream * (active & positive)
    answer = np.asarray(answer, np.float64)
    if answer.shape != expected.shape:
        return _verdict(False, what, _check_shape(answer, expected, "your gradient")
                        + " The rule acts element by element: mask the upstream gradient, keep its shape.")
    if _close(answer, expected, rtol=1e-6, atol=1e-7):
        return _verdict(True, what + ": g where x > 0 and g > 0, zero elsewhere.")
    candidates = [
        (upstream * active, "that is plain backprop's rule (a mask on x > 0 only): also drop the negative "
                            "gradients, g > 0 (you forgot the backward mask)."),
        (upstream * positive, "that is the deconvnet's rule (a mask on g > 0 only, a ReLU of the gradient): also "
                              "keep only where the forward input was positive, x > 0 (you forgot the forward mask)."),
        (upstream * ((x > 0) & positive) if upper is not None else None,
         f"for a ReLU clipped at {upper}, the forward mask is 0 < x < {upper}: a saturated unit passes nothing."),
        ((active & positive).astype(np.float64), "that is the mask itself; multiply it with the upstream gradient g."),
        (np.maximum(x, 0) if upper is None else np.clip(x, 0, upper),
         "that is the forward output, max(x, 0); the backward rule returns a masked copy of the gradient g."),
        (upstream, "the gradient passed through unchanged: mask it where x <= 0 or g <= 0."),
        (upstream * ~(active & positive), "the mask is inverted: keep g where x > 0 and g > 0, zero the rest."),
    ]
    return _verdict(False, what, _first_match(answer, candidates)
                    or "compare with upstream * ((x > 0) & (upstream > 0)), element by element.")


def _gradients_at(images, gradient_of) -> np.ndarray:
    """gradient_of applied to each image of a (n, H, W, C) batch, one at a time (as the reader's loop does)."""
    return np.concatenate([np.asarray(gradient_of(image[None]), np.float64).reshape((1,) + image.shape)
                           for image in images])


def _near(answer, expected, rtol: float = 1e-2) -> bool:
    """Same shape and a small difference relative to the whole: a network's gradient amplifies the rounding of
    its input (a noisy copy computed in another order or precision), so an exact comparison would be too strict."""
    answer, expected = np.asarray(answer, np.float64), np.asarray(expected, np.float64)
    if answer.shape != expected.shape:
        return False
    return bool(np.linalg.norm(answer - expected) <= rtol * np.linalg.norm(expected) + 1e-12)


def check_smooth_grad(answer, image, noise, level: float, gradient_of) -> bool:
    """Check a SmoothGrad map written by hand (Smilkov et al. 2017, eq. 3): for each standard normal array z_i
    of `noise`, the gradient g_i at the noisy copy x + sigma z_i with sigma = level (x_max - x_min); the map is
    the maximum over colour channels of |mean_i g_i| (the absolute value after the average).

    answer: the reader's (H, W) map; image: x, one image (1, H, W, C), channels last; noise: n standard normal
    arrays (n, H, W, C); level: the noise level, a fraction of the image's range; gradient_of: a function that
    takes a numpy batch (B, H, W, C) and returns the gradients of the score with respect to it, numpy of the same
    shape. The checker calls it once per copy for the right answer, and more often only to name a mistake.
    """
    dtype = np.result_type(image, noise, np.float32)  # the reader's arithmetic: float32 copies stay float32
    image, noise = np.asarray(image, dtype), np.asarray(noise, dtype)
    if image.ndim != 4 or image.shape[0] != 1 or noise.ndim != 4 or noise.shape[1:] != image.shape[1:]:
        raise ValueError(f"check_smooth_grad wants image (1, H, W, C) and noise (n, H, W, C); got {image.shape} "
                         f"and {noise.shape}")
    n = len(noise)
    what = f"the SmoothGrad map (n = {n}, noise level {level:g} of the range)"
    if answer is None:
        return _verdict(False, what, "the answer is None: the function must `return` the (H, W) map.")
    sigma = dtype.type(level) * (image.max() - image.min())
    gradients = _gradients_at(image + sigma * noise, gradient_of)
    average = gradients.mean(axis=0)
    expected = np.abs(average).max(axis=-1)
    answer = np.asarray(answer, np.float64)
    if answer.shape != expected.shape:
        if answer.shape in (average.shape, (1,) + average.shape):
            hint = "that is the averaged gradient, per channel; the map is its |.| maximised over the channels."
        elif answer.shape == (n,) + expected.shape:
            hint = "that is one map per noisy copy; average over the copies (axis 0)."
        elif answer.shape == gradients.shape:
            hint = "those are the n gradients; average them over the copies, then take the map."
        else:
            hint = _check_shape(answer, expected, "your map")
        return _verdict(False, what, hint)
    if _near(answer, expected):
        return _verdict(True, what + ": max over channels of |mean of the noisy copies' gradients|.")
    candidates = [
        (np.abs(gradients).mean(axis=0).max(axis=-1),
         "you took the absolute value before averaging; average the signed gradients, then take |.| and the max."),
        (np.abs(gradients).max(axis=-1).mean(axis=0),
         "you averaged the per-copy saliency maps; average the signed gradients first, then take |.| and the max."),
        (n * expected, f"you summed the gradients; divide by n = {n} to average them."),
        (np.abs(gradients[0]).max(axis=-1), "that is the map of the first noisy copy only; loop over all n."),
        (np.abs(gradients[-1]).max(axis=-1), "that is the map of the last noisy copy only: add every copy's "
                                             "gradient to the total (or collect them), not just the last."),
    ]
    hint = next((h for e, h in candidates if _near(answer, e)), "")
    if not hint:  # mistakes that need other gradients: computed only now, when the answer is wrong
        more = [
            (lambda: np.abs(_gradients_at(image + sigma * noise.mean(axis=0, keepdims=True), gradient_of)[0])
             .max(axis=-1), "you averaged the noisy images and took one gradient; take each noisy copy's gradient, "
                            "then average the gradients."),
            (lambda: np.abs(_gradients_at(image + level * noise, gradient_of).mean(axis=0)).max(axis=-1),
             f"the noise's standard deviation is level * (x_max - x_min) = {sigma:.4g}, relative to the image's "
             f"range, not the level {level:g} itself."),
            (lambda: np.abs(_gradients_at(image, gradient_of)[0]).max(axis=-1),
             "that is the vanilla gradient's map: add the noise sigma * z_i to each copy before the gradient."),
        ]
        for compute, candidate_hint in more:
            if _near(answer, compute()):
                hint = candidate_hint
                break
    return _verdict(False, what, hint or "compare with: for each z in noise, g = gradient_of(image + sigma * z); "
                                         "average the g; then np.abs(average).max(axis=-1).")


# Measuring explanations (notebook 06)


def check_pointing_game(answer, maps, masks, tolerance: float) -> bool:
    """Notebook 06's pointing game (Zhang et al. 2018, sec. 5.1) written by hand: (N,) hits.

    A map hits when its maximum (the first in raster order) lies within `tolerance` pixels of its object,
    measured to the nearest pixel of the object's mask; a constant map points nowhere and misses.
    `answer`: the reader's (N,) bools for maps (N, H, W) and masks (N, H, W) bool.
    """
    from . import metrics  # framework-free, like this module

    what = f"the pointing game with a {tolerance:g}-pixel tolerance"
    if answer is None:
        return _verdict(False, what, "pointing_hits returned None: return one hit (True or False) per image.")
    maps, masks = np.asarray(maps, np.float64), np.asarray(masks, bool)
    expected = metrics.pointing_game(maps, masks, tolerance)
    answer = np.asarray(answer)
    if answer.shape == expected.shape and answer.dtype != object and np.array_equal(answer.astype(bool), expected):
        return _verdict(True, f"{what}: {expected.sum()} hits of {len(expected)} (rate {expected.mean():.2f}).")
    if answer.size == 1 and np.isclose(float(answer), expected.mean()):
        return _verdict(False, what, "that is the hit rate: return the (N,) hits themselves (the rate is their mean).")
    shape = _check_shape(answer, expected, "your answer")
    if shape:
        return _verdict(False, what, shape)
    answer = answer.astype(bool)
    flat = maps.reshape(len(maps), -1)
    constant = flat.max(axis=1) <= flat.min(axis=1)
    peak = np.unravel_index(flat.argmax(axis=1), maps.shape[1:])
    rows = np.arange(len(maps))
    mistakes = [
        (masks[rows, peak[0], peak[1]] & ~constant,
         "you counted a hit only on the mask itself: within the tolerance counts too (the distance from the "
         "maximum to the nearest object pixel, scipy.ndimage.distance_transform_edt(~mask))."),
        (expected | constant,
         "a constant map has no maximum to point with: count it as a miss."),
        (metrics.pointing_game(-maps, masks, tolerance),
         "that points with the map's minimum: use its maximum (np.argmax)."),
    ]
    for wrong, hint in mistakes:
        if not np.array_equal(wrong, expected) and np.array_equal(answer, wrong):
            return _verdict(False, what, hint)
    return _verdict(False, what, f"{int((answer != expected).sum())} of {len(expected)} images differ: find each "
                                 "map's maximum (np.unravel_index of its argmax) and test its distance to the "
                                 "nearest pixel of the mask against the tolerance.")


# Debugging (notebook 10)


def check_cue_share(answer, maps, cue_masks, masks=None) -> bool:
    """Notebook 10's shortcut measurement: the share of each map's mass inside its image's cue mask.

    `answer`: the reader's (N,) shares for maps (N, H, W), non-negative, and cue_masks (N, H, W) bool;
    `masks` (the objects' masks), when given, lets the hint recognise the wrong mask.
    """
    what = "the share of each map's mass on the cue"
    if answer is None:
        return _verdict(False, what, "cue_share returned None: compute the shares and return them, one per image.")
    maps = np.asarray(maps, np.float64)
    cue_masks = np.asarray(cue_masks, bool)
    totals = maps.sum(axis=(1, 2))
    inside = (maps * cue_masks).sum(axis=(1, 2))
    expected = inside / totals
    answer = np.asarray(answer, np.float64)
    if _close(answer, expected):
        return _verdict(True, f"{what}: mean {expected.mean():.3f} over {len(expected)} images.")
    batch_share = inside.sum() / totals.sum()
    mistakes = [
        (inside, "that is the mass inside the mark, not its share: divide by each map's total, maps[i].sum()."),
        (inside / np.maximum(cue_masks.sum(axis=(1, 2)), 1),
         "that is the map's mean inside the mark: a share of mass is the sum inside over the sum of the whole map."),
    ]
    if masks is not None:
        masks = np.asarray(masks, bool)
        mistakes.append(((maps * masks).sum(axis=(1, 2)) / totals,
                         "that is the share on the object (masks): the shortcut's region is cue_masks."))
    for wrong, hint in mistakes:
        if _close(answer, wrong):
            return _verdict(False, what, hint)
    if answer.size == 1 and np.allclose(answer, batch_share, rtol=1e-3, atol=1e-5):
        return _verdict(False, what, "one number for the whole batch: return one share per image, summing "
                                     "over each image's pixels only (axis=(1, 2)).")
    if answer.size == 1 and np.allclose(answer, expected.mean(), rtol=1e-3, atol=1e-5):
        return _verdict(False, what, "that is the mean of the shares: return the (N,) shares themselves.")
    shape = _check_shape(answer, expected, "your answer")
    return _verdict(False, what, shape or "the values differ: for each image, the map's sum where the cue mask "
                                          "is True divided by the map's sum over all its pixels.")
