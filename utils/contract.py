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

from .models import EFFICIENTNET_LITE0_INPUT

SMOOTH_GRAD_DEFAULT_N = 50
SMOOTH_GRAD_DEFAULT_SIGMA = 0.15
# Integrated Gradients' Riemann steps: the paper's guide is 20 to 300 for attributions that sum to
# F(x) - F(x') within 5%. The embedded EfficientNet-Lite0 (ReLU6) needs more, measured on the four
# sample photos with a black baseline (scripts/benchmark.py --case completeness): largest error
# 65% at 16 steps, 65% at 32, 23% at 64, 13% at 128, 7.3% at 256, 2.2% at 512.
INTEGRATED_GRADIENTS_DEFAULT_STEPS = 512
# Images per forward pass for the methods that run the model on many changed copies (Score-CAM,
# occlusion, Integrated Gradients) and for `probabilities`, when batch_size=None. On a CPU larger
# batches run slower per image once their activations leave the cache (EfficientNet-Lite0 at 224 px,
# 2 cores: 21 ms at 4, 36 ms at 16, 74 ms at 64), so the CPU default is a budget of input pixels:
# 4 images of 224 x 224, 49 of 64 x 64 (smaller batches of small images cost more in per-call
# overhead than they save). A GPU wants batches large.
PERTURBATION_PIXELS_CPU, PERTURBATION_BATCH_GPU = 4 * 224 * 224, 64
# Pixel values (0..255 scale, before the model's normalisation) of the papers' reference images.
BLACK, GREY = 0.0, 128.0
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
    # Lighter settings the explorer uses for the methods that run the model once per channel, patch or
    # step, so that a map takes seconds on a CPU; the explorer's status line names them.
    explorer_settings: tuple[tuple[str, int], ...] = ()

    @property
    def clip_percentile(self) -> float | None:
        return DISPLAY_CLIP_PERCENTILE if self.pixel_level else None


METHODS: tuple[Method, ...] = (
    Method("cam", "cam", "CAM", "Zhou et al. 2016, eq. 2", True, HEATMAP, False),
    Method("grad_cam", "grad-cam", "Grad-CAM", "Selvaraju et al. 2017, eqs. 1-2", True, HEATMAP, False),
    Method("grad_cam_plus_plus", "grad-cam++", "Grad-CAM++", "Chattopadhay et al. 2018, eqs. 7, 19", True, HEATMAP,
           False),
    Method("layer_cam", "layer-cam", "LayerCAM", "Jiang et al. 2021, sec. III-B", True, HEATMAP, False),
    Method("hires_cam", "hires-cam", "HiResCAM", "Draelos and Carin 2020, sec. 3", True, HEATMAP, False),
    Method("score_cam", "score-cam", "Score-CAM", "Wang et al. 2020, sec. 3", True, HEATMAP, False,
           explorer_settings=(("top_k", 32),)),
    Method("occlusion", "occlusion", "Occlusion", "Zeiler and Fergus 2014, sec. 4.2", False, HEATMAP, False,
           explorer_settings=(("patch", 32), ("stride", 32))),
    Method("saliency", "saliency", "Saliency", "Simonyan et al. 2014, sec. 3.1", False, HEATMAP, True),
    Method("smooth_grad", "smoothgrad", "SmoothGrad", "Smilkov et al. 2017, eq. 3", False, HEATMAP, True),
    Method("guided_backprop", "guided-backprop", "Guided Backprop", "Springenberg et al. 2015, sec. 3.4", False,
           SIGNED_RGB, True),
    Method("guided_grad_cam", "guided-grad-cam", "Guided Grad-CAM", "Selvaraju et al. 2017, sec. 3.1", True,
           SIGNED_RGB, True),
    Method("integrated_gradients", "integrated-gradients", "Integrated Gradients", "Sundararajan et al. 2017, eqs. 1, 3",
           False, HEATMAP, True, explorer_settings=(("steps", 32),)),
)
METHOD_NAMES = tuple(m.name for m in METHODS)
# Other public functions of both backends' methods.py (helpers around the methods, not maps).
METHOD_HELPERS = ("feature_layers", "cam_parts", "layer_gradients")


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


_FOLDED_PASSES = """These passes fold each BatchNorm into the convolution before it where the
BatchNorm is that convolution's only reader (consecutive in an nn.Sequential; in the Keras graph):
the same function up to float rounding, with one pass over the activations less."""
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
    "layer_gradients": """A feature map and its gradient, the two ingredients of every gradient-weighted CAM.

Returns numpy float32 (activations A (B, K, h, w), gradients dS^c/dA (B, K, h, w)), channels first in
both backends, for `target` (as in grad_cam) at `layer` (None: the last feature map). S^c is the
pre-softmax score. grad_cam(model, x, c, layer, normalize=False, upsample=False) equals
ReLU(einsum("bk,bkhw->bhw", gradients.mean(axis=(2, 3)), activations)). One forward and one backward
pass; for the build-it exercises and for methods a reader writes.""",
    "grad_cam": f"""Grad-CAM (Selvaraju et al. 2017, eqs. 1-2): ReLU(sum_k alpha_k^c A^k), alpha_k^c = mean_ij dS^c/dA^k_ij.

S^c is the pre-softmax score (a final softmax is skipped); A is any convolutional feature map by
name (`layer`, None: the last one), nested models included. One forward and one backward pass for
the whole batch; each image gets the gradient of its own score.
counterfactual=True gives the paper's counterfactual explanation (Selvaraju et al., Grad-CAM, ICCV
2017 / IJCV 2019, sec. "Counterfactual Explanations"): the weights of the negated gradients,
alpha_k^c = mean_ij(-dS^c/dA^k_ij), then the same ReLU(sum_k alpha_k^c A^k): the negative part of
the signed map, the regions whose features lower the score (evidence against class c). On a GAP
head its raw map is ReLU(-CAM) / (h w), where the plain map is ReLU(CAM) / (h w).
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
    "layer_cam": f"""LayerCAM (Jiang et al. 2021, sec. III-B): ReLU(sum_k ReLU(dS^c/dA^k) * A^k), position by position.

Grad-CAM gives each channel one weight (the mean gradient); LayerCAM weights every position of every
channel by its own positive gradient, so a map at an early, fine layer keeps its detail instead of
being averaged into noise. One forward and one backward pass, like grad_cam. `layer`: any
convolutional feature map (None: the last one).
{_HEATMAP_RETURNS}""",
    "hires_cam": f"""HiResCAM (Draelos and Carin 2020): sum_k dS^c/dA^k * A^k, the gradient times the activation, summed over
channels, signed (no ReLU, as in the paper).

Grad-CAM averages the gradient over positions first, so it can mark places whose features the score
does not use; HiResCAM does not average. When everything after `layer` is linear (flatten, or
global average pooling, then one linear layer) the raw map (normalize=False, upsample=False) sums
to S^c minus the bias of the class exactly, and on a GAP head it is CAM / (h w). pytorch-grad-cam
applies a ReLU to it; relu=True does the same. `layer`: any convolutional feature map (None: the
last one).
{_HEATMAP_RETURNS}""",
    "score_cam": f"""Score-CAM (Wang et al. 2020, sec. 3): ReLU(sum_k C_k A^k) with a weight per channel measured by
forward passes, no gradient.

Each channel's map A^k is upsampled to the input and min-max normalised to H^k in [0, 1]; the image
masked by it, X * H^k, is run through the model, and C_k = p_c(X * H^k) - p_c(X_b), the increase of
the target's softmax probability over the fully masked input X_b = X * 0 (the paper's "increase
of confidence"). The paper's reference code and pytorch-grad-cam leave out p_c(X_b), and
pytorch-grad-cam takes a softmax of the logits over channels instead; score="logit" uses S^c in
place of p_c. One forward pass per (image, channel): B K masked images in chunks of `batch_size`
(None: 4 per pass at 224 x 224 on a CPU, more for smaller images; 64 on a GPU); top_k=k keeps
the k channels of largest spatial variance per image (Faster Score-CAM) and costs B k passes.
{_FOLDED_PASSES} `layer`: any convolutional feature map (None: the last one).
{_HEATMAP_RETURNS}""",
    "occlusion": f"""Occlusion (Zeiler and Fergus 2014, sec. 4.2): how much the target's score drops when a square
patch of the image is covered.

A `patch` x `patch` square of colour `baseline` (a pixel value on the 0..255 scale, put through
the model's preprocessing; the paper's grey square by default, or a tensor shaped like x in the
model's input space) slides with `stride` (the last row and column placed so the patches cover
the image); each position gives drop = p_c(x) - p_c(x occluded) (score="logit": S^c), and each
pixel gets the mean drop of the patches that cover it, signed. One forward pass per (image,
position), in chunks of `batch_size` (None: 4 per pass at 224 x 224 on a CPU, more for smaller
images; 64 on a GPU).
{_FOLDED_PASSES}
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
    "integrated_gradients": f"""Integrated Gradients (Sundararajan et al. 2017, eqs. 1 and 3): (x - x') times the mean gradient on
the straight line from a baseline x' to x, summed over colour channels.

x' is `baseline`: a pixel value on the 0..255 scale put through the model's preprocessing (black,
the paper's choice, by default) or a tensor shaped like x in the model's input space. The integral
is the paper's right Riemann sum over `steps` points x' + (k / steps)(x - x'), k = 1 .. steps, run
in chunks of `batch_size` images (None: 4 per pass at 224 x 224 on a CPU, more for smaller
images; 64 on a GPU). Completeness (the paper's Proposition 1): the raw map (normalize=False)
is signed and sums over pixels to S^c(x) - S^c(x') up to the Riemann error, which shrinks as the
steps grow (INTEGRATED_GRADIENTS_DEFAULT_STEPS is the measured default).
{_FOLDED_PASSES}
Returns (B, H, W) float32; normalize=True rescales the magnitude |map| to [0, 1] per image, as
the paper's figures show it.""",
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
PERTURBATION_SCORES = ("probability", "logit")


def perturbation_batch(batch_size, on_gpu: bool, image_pixels: int = 224 * 224) -> int:
    """The checked number of images per forward pass; None: the measured default for the device
    (on a CPU, as many images of `image_pixels` pixels as fit PERTURBATION_PIXELS_CPU, at least one)."""
    if batch_size is None:
        return PERTURBATION_BATCH_GPU if on_gpu else max(1, PERTURBATION_PIXELS_CPU // int(image_pixels))
    if not isinstance(batch_size, (int, np.integer)) or isinstance(batch_size, bool) or batch_size < 1:
        raise ValueError(f"batch_size (images per forward pass) must be a positive int or None, got {batch_size!r}")
    return int(batch_size)


def check_score(score) -> None:
    if score not in PERTURBATION_SCORES:
        raise ValueError(f"score must be 'probability' (the paper's softmax probability) or 'logit' (the "
                         f"pre-softmax score), got {score!r}")


def check_top_k(top_k, channels: int, layer: str) -> None:
    if top_k is None:
        return
    if not isinstance(top_k, (int, np.integer)) or isinstance(top_k, bool) or not 1 <= top_k <= channels:
        raise ValueError(f"top_k must be None (every channel) or an int from 1 to {channels} (the channels of "
                         f"{layer!r}), got {top_k!r}")


def check_patch(patch, stride, height: int, width: int) -> None:
    for name, value in (("patch", patch), ("stride", stride)):
        if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
            raise ValueError(f"{name} must be a positive int (pixels), got {value!r}")
    if stride > patch:
        raise ValueError(f"stride ({stride} px) is larger than the patch ({patch} px), so some pixels lie under no "
                         "patch; choose a stride of at most the patch size (half of it is usual)")
    if patch > min(height, width):
        raise ValueError(f"patch ({patch} px) is larger than the {height} x {width} image; choose a patch of at "
                         f"most {min(height, width)} px (a tenth to a seventh of the side is usual)")


def check_steps(steps) -> None:
    if not isinstance(steps, (int, np.integer)) or isinstance(steps, bool) or steps < 1:
        raise ValueError(f"steps (points on the path from the baseline) must be a positive int, got {steps!r}")


def patch_corners(size: int, patch: int, stride: int) -> list[int]:
    """Where the patches start along one side: every `stride` pixels, plus a last one flush with the
    edge so that every pixel is covered."""
    corners = list(range(0, size - patch + 1, stride))
    if corners[-1] != size - patch:
        corners.append(size - patch)
    return corners


def patch_masks(height: int, width: int, patch: int, stride: int) -> np.ndarray:
    """(P, height, width) bool: where each occluding patch lies, row by row (patch_corners on each side)."""
    rows, columns = patch_corners(height, patch, stride), patch_corners(width, patch, stride)
    covered = np.zeros((len(rows) * len(columns), height, width), bool)
    for i, (top, left) in enumerate((top, left) for top in rows for left in columns):
        covered[i, top:top + patch, left:left + patch] = True
    return covered


def baseline_pixels(model, value: float) -> np.ndarray:
    """The (3,) float32 input of a uniform image of pixel `value` (0..255 scale, all three channels),
    after the model's preprocessing (the embedded model's when it has none)."""
    if not np.isscalar(value) or isinstance(value, (bool, str)) or not np.isfinite(value) or not 0 <= value <= 255:
        raise ValueError(f"baseline must be a pixel value from 0 to 255 (0 black, 128 grey) or an array shaped "
                         f"like the batch, got {value!r}")
    preprocessing = getattr(model, "preprocessing", EFFICIENTNET_LITE0_INPUT)
    return preprocessing.normalise(np.full((1, 1, 1, 3), value, np.float32)).reshape(3)


def check_smooth_grad_method(method: str, layer) -> None:
    """The map SmoothGrad averages: 'saliency' (the input gradient) or 'grad_cam' (at `layer`)."""
    if not isinstance(method, str) or method not in SMOOTH_GRAD_METHODS:
        raise ValueError(f"method must be one of {', '.join(repr(m) for m in SMOOTH_GRAD_METHODS)} (the map that "
                         f"SmoothGrad averages over the noisy copies), got {method!r}")
    if method == "saliency" and layer is not None:
        raise ValueError(f"layer={layer!r} is only for method='grad_cam': the saliency map is the gradient at the "
                         "input, not at a layer; pass method='grad_cam' or leave layer out")
