"""What both backends' `train` and `evaluate` share: argument checks and the learning-rate schedule."""
from __future__ import annotations

import math

import numpy as np


def cosine_factor(step: int, total_steps: int) -> float:
    """The learning rate's factor before optimizer step `step` (0-based): 1 at the start, then half a
    cosine down to 0 at `total_steps` (Loshchilov & Hutter 2017, without restarts)."""
    return 0.5 * (1 + math.cos(math.pi * min(step, total_steps) / total_steps))


def batch_bounds(n: int, batch_size: int) -> list[tuple[int, int]]:
    """(start, end) of each mini-batch over n shuffled images; a last batch of one image joins the one
    before it (BatchNorm cannot normalise a single value in training mode)."""
    starts = list(range(0, n, batch_size))
    if len(starts) > 1 and n - starts[-1] == 1:
        starts.pop()
    return list(zip(starts, starts[1:] + [n]))


def progress_bar(total_steps: int, enabled: bool):
    """tqdm's automatic bar over the optimizer steps: a widget in JupyterLab and Colab, text in a terminal;
    nothing when not enabled."""
    from tqdm.auto import tqdm

    return tqdm(total=total_steps, desc="training", unit="step", disable=not enabled, leave=False)


def check_training_args(n_images: int, labels, num_classes: int | None, epochs: int, batch_size: int,
                        lr: float) -> np.ndarray:
    """Validate what `train`/`evaluate` get; return the labels as an int64 array of shape (N,)."""
    labels = np.asarray(labels)
    if labels.ndim != 1 or len(labels) != n_images:
        raise ValueError(f"expected one label per image: {n_images} images but labels of shape {labels.shape}")
    if labels.dtype == bool or labels.dtype.kind not in "iu":
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    if num_classes is not None and len(labels) and (labels.min() < 0 or labels.max() >= num_classes):
        raise ValueError(f"labels must lie in [0, {num_classes}) for a model with {num_classes} outputs, "
                         f"got values from {labels.min()} to {labels.max()}")
    for name, value in (("epochs", epochs), ("batch_size", batch_size)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
            raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a positive number, got {lr!r}")
    return labels.astype(np.int64)
