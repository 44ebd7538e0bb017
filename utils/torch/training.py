"""Training the small networks on the synthetic shapes: Adam on the cross-entropy of the logits.

Same names and behaviour as `utils.tensorflow.training`: the same mini-batches (a shuffled order
from numpy's generator seeded with `seed`, a last batch of one image joined to the one before),
Adam with a learning rate that decays to zero along a half cosine (Loshchilov & Hutter 2017) over
all the steps, the model left in eval mode. The decay matters for BatchNorm: while the weights still
move fast, the running statistics used at test time lag behind the batch statistics used in
training, and the test accuracy falls far below the training accuracy.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..training import batch_bounds, check_training_args, cosine_factor, progress_bar
from .core import preprocess


def train(model: nn.Module, images: np.ndarray, labels: np.ndarray, epochs: int = 4, batch_size: int = 16,
          lr: float = 3e-3, seed: int = 0, verbose: bool = True,
          progress: bool = False) -> dict[str, list[float]]:
    """Train `model` in place on uint8 images (N, H, W, 3) with integer labels in [0, classes).

    Returns the per-epoch mean training loss and accuracy (measured on the training batches, in
    training mode, while the weights change), {"loss": [...], "accuracy": [...]}. `seed` fixes the
    order of the batches; the initial weights are the caller's (`xt.seed_everything` before
    building the model). The model is left in eval mode, also when training raised. `verbose` prints
    one line per epoch; `progress` shows a progress bar over the steps (tqdm.auto).
    """
    x = preprocess(images, model)
    labels = check_training_args(len(x), labels, _num_outputs(model, x), epochs, batch_size, lr)
    y = torch.as_tensor(labels, dtype=torch.int64, device=x.device)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    bounds = batch_bounds(len(x), batch_size)
    total_steps = epochs * len(bounds)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: cosine_factor(step, total_steps))
    order = np.random.default_rng(seed)
    history: dict[str, list[float]] = {"loss": [], "accuracy": []}
    model.train()
    bar = progress_bar(total_steps, progress)
    try:
        for epoch in range(epochs):
            total_loss = torch.zeros((), device=x.device)
            correct = torch.zeros((), device=x.device)
            permutation = order.permutation(len(x))
            for start, end in bounds:
                index = torch.as_tensor(permutation[start:end], device=x.device)
                logits = model(x[index])
                loss = F.cross_entropy(logits, y[index])
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                schedule.step()
                total_loss += loss.detach() * len(index)
                correct += (logits.argmax(1) == y[index]).sum()
                bar.update()
            history["loss"].append(total_loss.item() / len(x))
            history["accuracy"].append(correct.item() / len(x))
            bar.set_postfix(loss=f"{history['loss'][-1]:.3f}", accuracy=f"{history['accuracy'][-1]:.3f}")
            if verbose:
                bar.write(f"epoch {epoch + 1}/{epochs}: loss {history['loss'][-1]:.3f}, "
                          f"accuracy {history['accuracy'][-1]:.3f}")
    finally:
        bar.close()
        model.eval()
    return history


@torch.no_grad()
def _num_outputs(model: nn.Module, x: torch.Tensor) -> int:
    training = model.training
    model.eval()
    try:
        return int(model(x[:1]).shape[1])
    finally:
        model.train(training)


@torch.no_grad()
def evaluate(model: nn.Module, images: np.ndarray, labels: np.ndarray, batch_size: int = 256) -> float:
    """Top-1 accuracy of `model` (in eval mode) on uint8 images (N, H, W, 3) with integer labels."""
    x = preprocess(images, model)
    labels = check_training_args(len(x), labels, None, 1, batch_size, 1.0)
    training = model.training
    model.eval()
    try:
        predicted = torch.cat([model(chunk).argmax(1) for chunk in x.split(batch_size)])
    finally:
        model.train(training)
    return float((predicted.cpu().numpy() == labels).mean())
