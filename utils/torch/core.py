"""PyTorch plumbing shared by the backend: device, seeds and threads, input batches, predictions."""
from __future__ import annotations

from contextlib import contextmanager

import numpy as np
import torch

from .. import contract
from .. import models as spec
from .. import runtime
from ..images import prepare_images


def best_device() -> torch.device:
    """CUDA when there is a GPU, then Apple's MPS, else the CPU."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return torch.device("mps")
    return torch.device("cpu")


def seed_everything(seed: int = 0, threads: int | None = None) -> None:
    """Seed Python, numpy and torch, make cuDNN deterministic, keep float32 at full precision on GPUs
    (no TF32), and set torch's thread count."""
    runtime.seed_python_and_numpy(seed)
    torch.manual_seed(seed)  # also seeds every CUDA device
    torch.backends.cudnn.deterministic = True
    torch.backends.cudnn.benchmark = False
    # From Ampere on, cuDNN convolutions default to TF32 (10-bit mantissa): CAM's identity would hold to
    # about 1e-3 instead of 1e-6. Matmuls are full precision by default; say so rather than rely on it.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.set_num_threads(threads or runtime.default_threads())


def model_device(model: torch.nn.Module) -> torch.device:
    parameter = next(model.parameters(), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def preprocess(images, model: torch.nn.Module | None = None, preprocessing: spec.Preprocessing | None = None,
               device=None) -> torch.Tensor:
    """HxWx3 uint8 RGB image(s) -> the model's normalised (B, 3, H, W) float32 batch on its device.

    The resizing and the normalisation follow `model.preprocessing` (default: the embedded model's).
    """
    preprocessing = preprocessing or getattr(model, "preprocessing", spec.EFFICIENTNET_LITE0_INPUT)
    pixels = prepare_images(images, preprocessing.size)
    x = torch.from_numpy(preprocessing.normalise(pixels)).permute(0, 3, 1, 2).contiguous()
    device = device or (model_device(model) if model is not None else best_device())
    return x.to(device)


def chunk_size(batch_size, x: torch.Tensor) -> int:
    """contract.perturbation_batch for the (B, C, H, W) batch `x`: its device and its H x W pixels."""
    return contract.perturbation_batch(batch_size, x.device.type != "cpu", x.shape[2] * x.shape[3])


@contextmanager
def inference(model: torch.nn.Module):
    """Eval mode (BN running stats, no dropout) during the call; every module's flag restored after."""
    flags = [(module, module.training) for module in model.modules()]
    model.eval()
    try:
        yield
    finally:
        for module, training in flags:
            module.training = training


@torch.no_grad()
def predict(model: torch.nn.Module, x: torch.Tensor, top: int = 5) -> spec.Predictions:
    """Top-`top` class indices, names and softmax probabilities for each image of the batch `x`."""
    with inference(model):
        probs = torch.softmax(model(x), dim=1).float().cpu().numpy()
    return spec.top_k(probs, top, getattr(model, "class_names", None))


@torch.no_grad()
def probabilities(model: torch.nn.Module, x: torch.Tensor, batch_size: int | None = None) -> np.ndarray:
    """Softmax probabilities (B, classes) of the batch `x`, run in chunks of `batch_size` images
    (None: the perturbation methods' default for the device and image size, 4 images of 224 x 224
    on a CPU, where a deletion curve's 36 frames of EfficientNet-Lite0 run 1.7x faster than at 64).
    Like the perturbation methods, with each BatchNorm folded into the convolution before it."""
    from .methods import _folded_batchnorms  # methods imports this module, so not at the top

    batch_size = chunk_size(batch_size, x)
    with inference(model), _folded_batchnorms(model):
        return torch.cat([torch.softmax(model(chunk), dim=1).float() for chunk in x.split(batch_size)]).cpu().numpy()
