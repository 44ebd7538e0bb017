"""What every explanation method promises, in one place: the table of methods, their shared
behaviour (the docstrings both backends carry), the argument checks and the error messages.

The maths lives in each backend (utils/torch/methods.py, utils/tensorflow/methods.py), on the
model's device; this module imports no framework. Both backends accept and reject exactly the same
inputs with the same words, and the command line, the explorer, the benchmark and the tests read
the table below instead of keeping lists of their own (ARCHITECTURE.md, "Adding a method").

Conventions of every method (ARCHITECTURE.md, "What an explanation method promises"):
- `target`: None = each image's top-1 class; an int = that class for every image; a sequence =
  one class per image.
- Heatmaps come back as (B, H, W) float32 at input resolution (`upsample=False`: the feature
  map's resolution) and, unless `normalize=False`, rescaled per image to [0, 1] by
  (m - min) / (max - min); a constant map becomes all zeros, never NaN.
- Signed maps with colour channels (Guided Backprop, Guided Grad-CAM) come back as (B, H, W, 3);
  normalised, zero maps to 0.5: 0.5 + m / (2 max|m|).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

SMOOTH_GRAD_DEFAULT_N = 50
SMOOTH_GRAD_DEFAULT_SIGMA = 0.15
# Input-gradient maps are heavy-tailed (a few pixels set the maximum): for display they are scaled so
# that this percentile of their magnitude reaches the top of the colour scale, clipped beyond.
DISPLAY_CLIP_PERCENTILE = 99.0

HEATMAP = "heatmap"  # (B, H, W) in [0, 1]
SIGNED_RGB = "signed_rgb"  # (B, H, W, 3), 0.5 = zero gradient


@dataclass(frozen=True)
class Method:
    """One row of the table of methods: everything the command line, the explorer, the benchmark and
    the tests need to know about a method, besides its two backend functions (both named `name`)."""

    name: str  # the backend function, e.g. "grad_cam"
    cli_name: str  # its spelling on the command line, e.g. "grad-cam"
    title: str  # for people, e.g. "Grad-CAM"
    paper: str  # the paper and equation the backends follow
    takes_layer: bool  # has a `layer` argument (a feature map by name)
    output: str  # HEATMAP or SIGNED_RGB
    pixel_level: bool  # a map per input pixel (an input gradient): clipped at DISPLAY_CLIP_PERCENTILE for display

    @property
    def clip_percentile(self) -> float | None:
        return DISPLAY_CLIP_PERCENTILE if self.pixel_level else None


METHODS: tuple[Method, ...] = (
    Method("cam", "cam", "CAM", "Zhou et al. 2016, eq. 2", True, HEATMAP, False),
    Method("grad_cam", "grad-cam", "Grad-CAM", "Selvaraju et al. 2017, eqs. 1-2", True, HEATMAP, False),
    Method("grad_cam_plus_plus", "grad-cam++", "Grad-CAM++", "Chattopadhay et al. 2018, eqs. 7, 19", True, HEATMAP,
           False),
    Method("saliency", "saliency", "Saliency", "Simonyan et al. 2014, sec. 3.1", False, HEATMAP, True),
    Method("smooth_grad", "smoothgrad", "SmoothGrad", "Smilkov et al. 2017, eq. 3", False, HEATMAP, True),
    Method("guided_backprop", "guided-backprop", "Guided Backprop", "Springenberg et al. 2015, sec. 3.4", False,
           SIGNED_RGB, True),
    Method("guided_grad_cam", "guided-grad-cam", "Guided Grad-CAM", "Selvaraju et al. 2017, sec. 3.1", True,
           SIGNED_RGB, True),
)
METHOD_NAMES = tuple(m.name for m in METHODS)
# Other public functions of both backends' methods.py (helpers around the methods, not maps).
METHOD_HELPERS = ("feature_layers", "cam_parts")


def method(name: str) -> Method:
    """The row of a method by its function name or its command-line spelling ("grad_cam", "grad-cam",
    "Grad-CAM"); an unknown name lists the valid ones."""
    key = name.strip().lower().replace("_", "-") if isinstance(name, str) else name
    for row in METHODS:
        if key in (row.cli_name, row.name.replace("_", "-"), row.title.lower()):
            return row
    raise ValueError(f"unknown method {name!r}; choose one of {', '.join(METHOD_NAMES)}")


def shared_doc(name: str):
    """Decorator for a backend function: its docstring becomes the behaviour written once here (DOCS),
    followed by the backend's own notes (its docstring)."""
    def decorate(function):
        notes = (function.__doc__ or "").strip()
        function.__doc__ = DOCS[name] + (f"\n\n{notes}" if notes else "")
        return function
    return decorate


_HEATMAP_RETURNS = """Returns (B, H, W) float32 at the input's resolution (upsample=False: the layer's h x w), each map
rescaled to [0, 1] unless normalize=False."""
_SIGNED_RETURNS = """Returns (B, H, W, 3) float32, signed, per input channel; normalize=True maps it per image to
0.5 + m / (2 max|m|), so zero is mid-grey."""

DOCS = {
    "feature_layers": """Names of the convolutional feature maps of `model` (4-D outputs with height x width > 1), in
forward order, as `layer=` accepts them.""",
    "cam": f"""Class activation map (Zhou et al. 2016, eq. 2): M_c(x, y) = sum_k w_k^c f_k(x, y), signed (no ReLU).

f is the feature map that global average pooling reduces (`layer`, None: the last feature map) and w
the last linear layer. The head is checked on the batch itself: the logits must equal
mean_xy(f) W^T + b, so that mean_xy M_c + b_c = logit_c; otherwise a ValueError points to grad_cam.
strict=False skips that check and only requires the linear layer to take as many inputs as f has
channels: the same formula then applies to any pooling -> linear head, e.g. global max pooling, as
in the CAM paper's GAP-vs-GMP comparison (there mean_xy M_c + b_c is not the logit).
{_HEATMAP_RETURNS}""",
    "cam_parts": """The pieces of CAM, for computing any class's map without running the model again.

Returns numpy float32 (features f (B, K, h, w), weight W (classes, K), bias b (classes,)), channels
first in both backends: cam(model, x, c, layer, normalize=False, upsample=False)[i] equals
einsum("k,khw->hw", W[c], f[i]). One forward pass; the same head checks as `cam`.""",
    "grad_cam": f"""Grad-CAM (Selvaraju et al. 2017, eqs. 1-2): ReLU(sum_k alpha_k^c A^k), alpha_k^c = mean_ij dS^c/dA^k_ij.

S^c is the pre-softmax score (a final softmax is skipped); A is any convolutional feature map by
name (`layer`, None: the last one), nested models included. One forward and one backward pass for
the whole batch; each image gets the gradient of its own score.
{_HEATMAP_RETURNS}""",
    "grad_cam_plus_plus": f"""Grad-CAM++ (Chattopadhay et al. 2018, eqs. 7 and 19): Grad-CAM with each position weighted.

w_k^c = sum_ij alpha_ij^kc ReLU(dS^c/dA^k_ij) with the closed form of the paper's exponential score,
alpha_ij^kc = g_ij^2 / (2 g_ij^2 + sum_ab A^k_ab g_ij^3), g = dS^c/dA^k (alpha = 0 where the
denominator is 0); map = ReLU(sum_k w_k^c A^k). Only positive gradients count, and a channel that is
strong in a few places is not averaged away, so several instances of a class can all show. The
paper's map is exp(S^c) times this one (its score is exp(S^c)); the factor is positive per image,
so the normalised maps are the same, and it is left out because it overflows float32 for logits
above about 88. `layer`: any convolutional feature map (None: the last one).
{_HEATMAP_RETURNS}""",
    "saliency": f"""Vanilla gradient (Simonyan et al. 2014, sec. 3.1): max over colour channels of |dS^c/dx|.

{_HEATMAP_RETURNS}""",
    "smooth_grad": f"""SmoothGrad (Smilkov et al. 2017, eq. 3): the input gradient averaged over n noisy copies x + N(0, s^2).

s = sigma * (max(x) - min(x)) per image; the target classes are those of the clean images. The
n * B noisy images run in chunks of at most `batch_size` (None: all at once), so peak memory does
not grow with n. The map is the max over channels of |mean gradient|; squared=True averages the
squared gradients instead (SmoothGrad-Squared). An int `seed` draws the noise from
contract.hashed_normal: the same noise in both frameworks, on any device, whatever the batch_size.

method="grad_cam": Smilkov et al. note that SmoothGrad applies to other gradient-based maps; here
to Grad-CAM at `layer` (None: the last feature map): the mean of the raw (ReLU'd) Grad-CAM maps of
the same noisy copies at the layer's resolution (squared=True: of their squares), upsampled to the
input and normalised like grad_cam. With sigma=0 it is grad_cam. `layer` is only for this method.
{_HEATMAP_RETURNS}""",
    "guided_backprop": f"""Guided Backpropagation (Springenberg et al. 2015, sec. 3.4 and fig. 1): dS^c/dx where every ReLU
passes back only positive gradients at positive inputs (ReLU6: inputs in (0, 6)).

{_SIGNED_RETURNS}""",
    "guided_grad_cam": f"""Guided Grad-CAM (Selvaraju et al. 2017, sec. 3.1): Guided Backprop times the upsampled Grad-CAM
(at `layer`, None: the last feature map), for the same targets.

{_SIGNED_RETURNS}""",
}



def check_batch(shape: Sequence[int], channels_last: bool) -> None:
    """A 4-D image batch with at least one image; else a clear error."""
    if len(shape) != 4:
        layout = "(B, H, W, C)" if channels_last else "(B, C, H, W)"
        raise ValueError(f"expected a batch of images shaped {layout}, got shape {tuple(shape)}; "
                         "make one with xt.preprocess(images, model)")
    if shape[0] == 0:
        raise ValueError("empty batch: the input holds no image")


def check_targets(target, batch_size: int, num_classes: int) -> np.ndarray | None:
    """None, or the (B,) int64 class of each image after checking range and length."""
    if target is None:
        return None
    if isinstance(target, (bool, np.bool_)):
        raise TypeError("target must be None, an int or a sequence of ints, not a bool")
    if np.isscalar(target):
        if not isinstance(target, (int, np.integer)):
            raise TypeError(f"target must be None, an int or a sequence of ints, got {target!r}")
        targets = np.full(batch_size, int(target), np.int64)
    else:
        targets = np.asarray(target)
        if targets.ndim != 1 or not np.issubdtype(targets.dtype, np.integer):
            raise TypeError(f"target must be None, an int or a 1-D sequence of ints, got {target!r}")
        if len(targets) != batch_size:
            raise ValueError(f"target has {len(targets)} classes for a batch of {batch_size} images; "
                             "give one class per image, a single int, or None for each image's top-1")
        targets = targets.astype(np.int64)
    bad = targets[(targets < 0) | (targets >= num_classes)]
    if bad.size:
        raise ValueError(f"target class {int(bad[0])} is out of range: the model has {num_classes} classes "
                         f"(0 to {num_classes - 1})")
    return targets


def unknown_layer(name, valid: Sequence[str], what: str = "convolutional feature maps you can use") -> ValueError:
    return ValueError(f"no layer named {name!r} in the model; {what}: {', '.join(valid)}")


def not_a_feature_map(name: str, shape, valid: Sequence[str]) -> ValueError:
    return ValueError(f"layer {name!r} outputs shape {tuple(shape)}, not a convolutional feature map with "
                      f"height and width; choose one of: {', '.join(valid)}")


def layer_called_more_than_once(name: str, calls: int) -> ValueError:
    return ValueError(f"layer {name!r} runs more than once in one forward pass ({calls} calls seen: a shared "
                      "module), so its output is ambiguous; choose a layer that runs once")


def no_cam_head(reason: str) -> ValueError:
    return ValueError(f"CAM needs a model that ends in global average pooling followed by one linear layer "
                      f"({reason}); use grad_cam, which works with any head")


def non_finite_input() -> ValueError:
    return ValueError("the input holds NaN or infinite values; check the images and the preprocessing")


# SmoothGrad's noise for an explicit seed: a counter-based generator that both frameworks compute
# with the same integer operations, so one seed gives the same noise in PyTorch and TensorFlow (and
# on any device). Element e of noisy sample j, in (H, W, C) order, gets counter j * H*W*C + e; a
# 32-bit integer hash of (counter, seed) gives two 16-bit uniforms u1, u2 and Box-Muller turns
# them into a standard normal: sqrt(-2 ln u1) cos(2 pi u2). Without a seed the backends use their
# own (faster) random generators.
HASH_MASK = 0xFFFFFFFF
HASH_MULTIPLIER = 0x45D9F3B


def hash_key(seed: int) -> int:
    """A 32-bit key from any int seed."""
    return _mix(np.int64(seed) & HASH_MASK).item()


def _mix(v):
    """Two rounds of a 32-bit integer hash (xor-shift-multiply), on int64 values below 2**32."""
    for _ in range(2):
        v = ((v ^ (v >> 16)) * HASH_MULTIPLIER) & HASH_MASK
    return v ^ (v >> 16)


def hashed_normal(key: int, first: int, count: int, height: int, width: int, channels: int) -> np.ndarray:
    """The reference in numpy: (count, H, W, C) standard normals for noisy samples first .. first+count-1."""
    elements = height * width * channels
    counter = np.arange(first * elements, (first + count) * elements, dtype=np.int64)
    bits = _mix((counter & HASH_MASK) ^ key)
    bits = _mix(bits ^ (counter >> 32))
    u1 = ((bits >> 16) + 0.5) / 65536.0
    u2 = ((bits & 0xFFFF) + 0.5) / 65536.0
    normal = np.sqrt(-2.0 * np.log(u1)) * np.cos(2.0 * np.pi * u2)
    return normal.astype(np.float32).reshape(count, height, width, channels)


def check_smooth_grad(n: int, sigma: float, batch_size: int | None) -> None:
    if not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"n (the number of noisy samples) must be a positive int, got {n!r}")
    if not np.isfinite(sigma) or sigma < 0:
        raise ValueError(f"sigma is the noise level relative to each input's range (e.g. 0.15); got {sigma!r}")
    if batch_size is not None and (not isinstance(batch_size, (int, np.integer)) or batch_size < 1):
        raise ValueError(f"batch_size must be a positive int or None, got {batch_size!r}")


SMOOTH_GRAD_METHODS = ("saliency", "grad_cam")


def check_smooth_grad_method(method: str, layer) -> None:
    """The map SmoothGrad averages: 'saliency' (the input gradient) or 'grad_cam' (at `layer`)."""
    if not isinstance(method, str) or method not in SMOOTH_GRAD_METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in SMOOTH_GRAD_METHODS)} (the map that "
                         f"SmoothGrad averages over the noisy copies), got {method!r}")
    if method == "saliency" and layer is not None:
        raise ValueError(f"layer={layer!r} is only for method='grad_cam': the saliency map is the gradient at the "
                         "input, not at a layer; pass method='grad_cam' or leave layer out")
