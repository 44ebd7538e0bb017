"""The TensorFlow/Keras backend: `from utils import tensorflow as xt`.

Same public names and behaviour as `utils.torch`. Keras 3 on the TensorFlow backend.
"""
import os as _os

_os.environ.setdefault("KERAS_BACKEND", "tensorflow")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# oneDNN's CPU kernels: measured on a 2-core CPU with TensorFlow 2.21, where they are off unless asked for,
# training the course's small CNN runs 3.5x faster with them (1.4 s instead of 5.2 s per 1,024 images).
# Read when TensorFlow loads, so it only helps when this backend is imported first (as the notebooks do).
_os.environ.setdefault("TF_ENABLE_ONEDNN_OPTS", "1")


def _import_tensorflow_quietly() -> None:
    """Import TensorFlow with the process's stderr (file descriptor 2) pointed at /dev/null.

    TensorFlow 2.21 writes C++ start-up lines (absl's "before InitializeLog" notice, oneDNN's INFO line)
    that ignore TF_CPP_MIN_LOG_LEVEL; Jupyter shows them under the import cell. Python errors are
    raised as usual; later warnings are not affected.
    """
    import sys

    if "tensorflow" in sys.modules:
        return
    try:
        sys.stderr.flush()
        saved = _os.dup(2)
    except (AttributeError, OSError, ValueError):  # no usable descriptor 2: import as is
        import tensorflow  # noqa: F401
        return
    devnull = _os.open(_os.devnull, _os.O_WRONLY)
    try:
        _os.dup2(devnull, 2)
        import tensorflow  # noqa: F401,F811
    finally:
        _os.dup2(saved, 2)
        _os.close(saved)
        _os.close(devnull)


_import_tensorflow_quietly()

from .core import best_device, predict, preprocess, probabilities, seed_everything  # noqa: E402
from .methods import (cam, cam_parts, feature_layers, grad_cam, grad_cam_plus_plus, guided_backprop,  # noqa: E402
                      guided_grad_cam, hires_cam, integrated_gradients, layer_cam, layer_gradients, occlusion,
                      saliency, score_cam, smooth_grad)
from .models import cascading_randomization, efficientnet_lite0, load_model, randomized_copy, small_cnn  # noqa: E402
from .training import evaluate, train  # noqa: E402

FRAMEWORK = "tensorflow"

__all__ = ["FRAMEWORK", "best_device", "cam", "cam_parts", "cascading_randomization", "efficientnet_lite0",
           "evaluate", "feature_layers", "grad_cam", "grad_cam_plus_plus", "guided_backprop",
           "guided_grad_cam", "hires_cam", "integrated_gradients", "layer_cam", "layer_gradients", "load_model",
           "occlusion", "predict", "preprocess", "probabilities", "randomized_copy", "saliency", "score_cam",
           "seed_everything", "small_cnn", "smooth_grad", "train"]
