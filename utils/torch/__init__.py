"""The PyTorch backend: `from utils import torch as xt`.

Same public names and behaviour as `utils.tensorflow`.
"""
import sys as _sys

if "tensorflow" in _sys.modules and "torchvision" not in _sys.modules:
    # Measured here: torchvision (it loads triton) after tensorflow kills the process with a
    # segmentation fault. Fail with an explanation instead.
    raise ImportError(
        "import utils.torch (or torch and torchvision) before tensorflow: loading torchvision "
        "after tensorflow crashes this process. Restart the kernel and swap the two imports."
    )

import torch as _torch  # noqa: E402
import torchvision as _torchvision  # noqa: E402,F401

from .core import best_device, model_device, predict, preprocess, probabilities, seed_everything  # noqa: E402
from .methods import (cam, cam_parts, feature_layers, grad_cam, grad_cam_plus_plus, guided_backprop,  # noqa: E402
                      guided_grad_cam, hires_cam, integrated_gradients, layer_cam, layer_gradients, occlusion,
                      saliency, score_cam, smooth_grad)
from .models import (EfficientNetLite0, SmallCNN, cascading_randomization, efficientnet_lite0, load_model,  # noqa: E402
                     randomized_copy, small_cnn)
from .training import evaluate, train  # noqa: E402

FRAMEWORK = "torch"

# The public names both backends share (a test keeps the two lists equal).
__all__ = ["FRAMEWORK", "best_device", "cam", "cam_parts", "cascading_randomization", "efficientnet_lite0",
           "evaluate", "feature_layers", "grad_cam", "grad_cam_plus_plus", "guided_backprop",
           "guided_grad_cam", "hires_cam", "integrated_gradients", "layer_cam", "layer_gradients", "load_model",
           "occlusion", "predict", "preprocess", "probabilities", "randomized_copy", "saliency", "score_cam",
           "seed_everything", "small_cnn", "smooth_grad", "train"]
