"""Training the small networks on the synthetic shapes: Adam on the cross-entropy of the logits.

Same names and behaviour as `utils.torch.training`: the same mini-batches (a shuffled order from
numpy's generator seeded with `seed`, a last batch of one image joined to the one before), Adam with a
learning rate that decays to zero along a half cosine (Loshchilov & Hutter 2017) over all the steps.
The decay matters for BatchNorm: while the weights still move fast, the running statistics used at
test time lag behind the batch statistics used in training, and the test accuracy falls far below
the training accuracy. A plain loop around one compiled step (no `model.fit`): nothing is compiled
into the model, and no tf.data pipeline logs version warnings into the notebooks.
"""
from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from ..training import batch_bounds, check_training_args, progress_bar
from .core import preprocess


def train(model: keras.Model, images: np.ndarray, labels: np.ndarray, epochs: int = 4, batch_size: int = 16,
          lr: float = 3e-3, seed: int = 0, verbose: bool = True,
          progress: bool = False) -> dict[str, list[float]]:
    """Train `model` in place on uint8 images (N, H, W, 3) with integer labels in [0, classes).

    Returns the per-epoch mean training loss and accuracy (measured on the training batches, in
    training mode, while the weights change), {"loss": [...], "accuracy": [...]}. `seed` fixes the
    order of the batches; the initial weights are the caller's (`xt.seed_everything` before building
    the model). Only `model.trainable_variables` change (a frozen base stays frozen). `verbose` prints
    one line per epoch; `progress` shows a progress bar over the steps (tqdm.auto).
    """
    x = preprocess(images, model)
    n = int(x.shape[0])
    labels = check_training_args(n, labels, int(model(x[:1], training=False).shape[-1]), epochs, batch_size, lr)
    y = tf.constant(labels)
    bounds = batch_bounds(n, batch_size)
    schedule = keras.optimizers.schedules.CosineDecay(lr, decay_steps=epochs * len(bounds))  # cosine_factor's curve
    optimizer = keras.optimizers.Adam(schedule)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")
    variables = model.trainable_variables
    optimizer.build(variables)  # its slots exist before tracing: one trace of `step`, not two

    @tf.function(input_signature=[tf.TensorSpec([None], tf.int64)], reduce_retracing=True)
    def step(index):
        x_batch, y_batch = tf.gather(x, index), tf.gather(y, index)
        with tf.GradientTape() as tape:
            logits = model(x_batch, training=True)
            loss_sum = loss_fn(y_batch, logits)
            loss = loss_sum / tf.cast(tf.shape(index)[0], loss_sum.dtype)
        optimizer.apply_gradients(zip(tape.gradient(loss, variables), variables))
        correct = tf.reduce_sum(tf.cast(tf.argmax(logits, axis=-1) == y_batch, tf.float32))
        return loss_sum, correct

    order = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    bar = progress_bar(epochs * len(bounds), progress)
    for epoch in range(epochs):
        permutation = order.permutation(n)
        total_loss = total_correct = 0.0
        for start, end in bounds:
            loss_sum, correct = step(tf.constant(permutation[start:end], tf.int64))
            total_loss += float(loss_sum)
            total_correct += float(correct)
            bar.update()
        history["loss"].append(total_loss / n)
        history["accuracy"].append(total_correct / n)
        bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", accuracy=f"{history['accuracy'][-1]:.3f}")
        if verbose:
            bar.write(f"epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.3f}, "
                      f"accuracy {history['accuracy'][-1]:.3f}")
    bar.close()
    return history


def evaluate(model: keras.Model, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` (in inference mode) on uint8 images (N, H, W, 3) with integer labels."""
    x = preprocess(images, model)
    labels = check_training_args(int(x.shape[0]), labels, None, 1, batch_size, 1.0)
    predicted = np.concatenate([tf.argmax(model(x[start:start + batch_size], training=False), axis=-1).numpy()
                                for start in range(0, int(x.shape[0]), batch_size)])
    return float((predicted == labels).mean())
