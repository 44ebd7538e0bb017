"""What the explanation methods share across frameworks: argument checks and error messages.

The maths lives in each backend (utils/torch/methods.py, utils/tensorflow/methods.py), on the
model's device; this module only validates the small arguments, so both backends accept and
reject exactly the same inputs with the same words.

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

from typing import Sequence

import numpy as np

SMOOTH_GRAD_DEFAULT_N = 50
SMOOTH_GRAD_DEFAULT_SIGMA = 0.15


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
