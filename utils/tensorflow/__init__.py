"""The TensorFlow/Keras backend: `from utils import tensorflow as xt`.

Same public names and behaviour as `utils.torch`. Keras 3 on the TensorFlow backend.
"""
import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from .core import best_device, predict, preprocess, seed_everything  # noqa: E402
from .methods import (cam, feature_layers, grad_cam, guided_backprop, guided_grad_cam, saliency,  # noqa: E402
                      smooth_grad)
from .models import efficientnet_lite0, load_model, small_cnn  # noqa: E402

FRAMEWORK = "tensorflow"

__all__ = ["FRAMEWORK", "best_device", "cam", "efficientnet_lite0", "feature_layers", "grad_cam", "guided_backprop",
           "guided_grad_cam", "load_model", "predict", "preprocess", "saliency", "seed_everything", "small_cnn",
           "smooth_grad"]
