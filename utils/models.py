"""What both backends share about models: names, input conventions, architectures as data.

Nothing here imports a framework. Each backend builds the same architectures from these
tables, so the PyTorch and Keras models have the same layers in the same order.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np

from .labels import imagenet_classes

EMBEDDED_MODEL = "efficientnet_lite0"
ONLINE_MODELS = ("vgg16", "resnet50")
MODEL_NAMES = (EMBEDDED_MODEL,) + ONLINE_MODELS
SMALL_CNN_HEADS = ("gap", "gmp", "flatten", "linear")


@dataclass(frozen=True)
class Preprocessing:
    """How a model wants its pixels: (x - mean) / std on the 0..255 scale, RGB or BGR order."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    bgr: bool = False

    def normalise(self, pixels: np.ndarray) -> np.ndarray:
        """(B, H, W, 3) uint8 RGB -> float32 normalised, channels last (the frameworks transpose)."""
        x = pixels.astype(np.float32)
        if self.bgr:
            x = x[..., ::-1]
        return (x - np.float32(self.mean)) / np.float32(self.std)


# EfficientNet-Lite was trained on (x - 127) / 128 (the TF reference's MEAN_RGB / STDDEV_RGB).
EFFICIENTNET_LITE0_INPUT = Preprocessing(224, (127.0, 127.0, 127.0), (128.0, 128.0, 128.0))
# torchvision's zoo: ImageNet mean/std of [0, 1] pixels, written on the 0..255 scale.
TORCHVISION_INPUT = Preprocessing(224, (123.675, 116.28, 103.53), (58.395, 57.12, 57.375))
# keras.applications VGG16/ResNet50: "caffe" mode, BGR with the mean subtracted.
KERAS_CAFFE_INPUT = Preprocessing(224, (103.939, 116.779, 123.68), (1.0, 1.0, 1.0), bgr=True)
# The small nets on the synthetic shapes: pixels scaled to [0, 1].
SHAPES_INPUT = Preprocessing(64, (0.0, 0.0, 0.0), (255.0, 255.0, 255.0))


class MBConvSpec(NamedTuple):
    """One inverted-residual block of EfficientNet-Lite (no squeeze-excitation, ReLU6)."""

    in_channels: int
    out_channels: int
    kernel_size: int
    stride: int
    expand_ratio: int


def _efficientnet_lite0_blocks() -> tuple[MBConvSpec, ...]:
    # EfficientNet-B0's stages (Tan & Le 2019, table 1) at width 1.0, depth 1.0:
    # (repeats, kernel, stride, expand, in, out).
    stages = [(1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40), (3, 3, 2, 6, 40, 80),
              (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192), (1, 3, 1, 6, 192, 320)]
    blocks = []
    for repeats, kernel, stride, expand, cin, cout in stages:
        for i in range(repeats):
            blocks.append(MBConvSpec(cin if i == 0 else cout, cout, kernel, stride if i == 0 else 1, expand))
    return tuple(blocks)


EFFICIENTNET_LITE0_BLOCKS = _efficientnet_lite0_blocks()
EFFICIENTNET_LITE0_STEM = 32
EFFICIENTNET_LITE0_FEATURES = 1280

# Where each layer's weights sit in the embedded package's state dict (a lukemelas-style port). Both
# backends name a layer by (part, stage, kind) and look up its source here.
_LITE0_ENDS = {"stem": {"conv": "_conv_stem", "bn": "_bn0"}, "head": {"conv": "_conv_head", "bn": "_bn1"}}
_LITE0_STAGES = {"conv": {"expand": "_expand_conv", "depthwise": "_depthwise_conv", "project": "_project_conv"},
                 "bn": {"expand": "_bn0", "depthwise": "_bn1", "project": "_bn2"}}


def efficientnet_lite0_source(part: str, stage: str | None = None, kind: str | None = None) -> str:
    """The state-dict prefix of one layer of EfficientNet-Lite0: part "stem", "head", "block{i}" or
    "classifier"; stage "expand", "depthwise" or "project" (blocks only); kind "conv" or "bn"."""
    if part == "classifier":
        return "_fc"
    if part in _LITE0_ENDS:
        return _LITE0_ENDS[part][kind]
    return f"_blocks.{part.removeprefix('block')}.{_LITE0_STAGES[kind][stage]}"


def check_model_name(name: str) -> str:
    if not isinstance(name, str) or name.lower() not in MODEL_NAMES:
        raise ValueError(
            f"unknown model {name!r}; choose one of {', '.join(MODEL_NAMES)} "
            f"({EMBEDDED_MODEL!r} is embedded and works offline)"
        )
    return name.lower()


def offline_error(name: str, cause: BaseException) -> RuntimeError:
    return RuntimeError(
        f"could not fetch the pretrained {name} weights ({type(cause).__name__}: {cause}). "
        f"They come from the framework's model zoo and need a network connection. Offline, use "
        f"the embedded ImageNet model: load_model({EMBEDDED_MODEL!r}); or load_model({name!r}, "
        "pretrained=False) for the architecture with random weights."
    )


def check_small_cnn_args(head: str, num_classes: int, input_size: int, depth: int) -> None:
    if head not in SMALL_CNN_HEADS:
        raise ValueError(f"unknown head {head!r}; choose one of {', '.join(SMALL_CNN_HEADS)}")
    if num_classes < 2:
        raise ValueError(f"num_classes must be at least 2, got {num_classes}")
    if depth < 1 or input_size % (2**depth):
        raise ValueError(f"input_size {input_size} must be divisible by 2**depth = {2**depth} (depth >= 1)")


class Predictions(NamedTuple):
    """Top-k classes of each image in a batch."""

    indices: np.ndarray  # (B, k) int64
    names: list[list[str]]
    probs: np.ndarray  # (B, k) float32


def top_k(probs: np.ndarray, k: int, class_names: Sequence[str] | None) -> Predictions:
    """Top-k from a (B, C) array of probabilities, with the class names (ImageNet when C is 1000)."""
    num_classes = probs.shape[1]
    if not 1 <= k <= num_classes:
        raise ValueError(f"top must be between 1 and the number of classes ({num_classes}), got {k}")
    if class_names is None and num_classes == 1000:
        class_names = imagenet_classes()
    indices = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    names = [[class_names[i] if class_names is not None else str(i) for i in row] for row in indices]
    return Predictions(indices.astype(np.int64), names, np.take_along_axis(probs, indices, 1).astype(np.float32))
