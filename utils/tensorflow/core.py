"""TensorFlow plumbing shared by the backend: device, seeds and threads, input batches, predictions."""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from .. import contract
from .. import models as spec
from .. import runtime
from ..images import prepare_images


def best_device() -> str:
    """'/GPU:0' when TensorFlow sees a GPU, else '/CPU:0'."""
    return "/GPU:0" if tf.config.list_physical_devices("GPU") else "/CPU:0"


def seed_everything(seed: int = 0, threads: int | None = None) -> None:
    """Seed Python, numpy and TensorFlow, make ops deterministic, keep float32 at full precision on GPUs
    (no TF32), and set TensorFlow's thread counts.

    Thread counts can only change before TensorFlow runs its first op; later calls keep the old ones.
    """
    runtime.seed_python_and_numpy(seed)
    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()
    # From Ampere on, TensorFlow runs float32 matmuls and convolutions in TF32 (10-bit mantissa) by
    # default: CAM's identity would hold to about 1e-3 instead of 1e-6.
    tf.config.experimental.enable_tensor_float_32_execution(False)
    threads = threads or runtime.default_threads()
    try:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(min(threads, 2))
    except RuntimeError:  # the runtime is already initialised
        pass


def preprocess(images, model: keras.Model | None = None, preprocessing: spec.Preprocessing | None = None,
               device: str | None = None) -> tf.Tensor:
    """HxWx3 uint8 RGB image(s) -> the model's normalised (B, H, W, 3) float32 batch on `device`.

    The resizing and the normalisation follow `model.preprocessing` (default: the embedded model's).
    """
    preprocessing = preprocessing or getattr(model, "preprocessing", spec.EFFICIENTNET_LITE0_INPUT)
    pixels = prepare_images(images, preprocessing.size)
    with tf.device(device or best_device()):
        return tf.identity(tf.convert_to_tensor(preprocessing.normalise(pixels)))


def chunk_size(batch_size, x: tf.Tensor) -> int:
    """contract.perturbation_batch for the (B, H, W, C) batch `x`: its device and its H x W pixels."""
    return contract.perturbation_batch(batch_size, "GPU" in x.device.upper(), x.shape[1] * x.shape[2])


def predict(model: keras.Model, x, top: int = 5) -> spec.Predictions:
    """Top-`top` class indices, names and softmax probabilities for each image of the batch `x`."""
    return spec.top_k(probabilities(model, x, batch_size=max(1, int(x.shape[0]))), top,
                      getattr(model, "class_names", None))


def probabilities(model: keras.Model, x, batch_size: int | None = None) -> np.ndarray:
    """Softmax probabilities (B, classes) of the batch `x`, run in chunks of `batch_size` images
    (None: the perturbation methods' default for the device and image size, 4 images of 224 x 224
    on a CPU).

    Through the model's compiled forward pass (the methods' own, traced once per model and image
    size): eager Keras spends most of a call on per-layer Python overhead, 3-4 times the compiled
    pass's time on EfficientNet-Lite0 on a CPU, and deletion curves call the model hundreds of times.
    Like the methods, it reads the scores before a final softmax layer, so a model that ends in one
    (keras.applications' default) is not put through softmax twice, and like the perturbation methods it
    folds each BatchNorm into the convolution before it.
    """
    from .methods import _logits  # methods imports this module, so not at the top

    x = tf.convert_to_tensor(x, tf.float32)
    batch_size = chunk_size(batch_size, x)
    return np.concatenate([tf.nn.softmax(_logits(model, x[start:start + batch_size], folded=True), axis=-1).numpy()
                           for start in range(0, int(x.shape[0]), batch_size)])
