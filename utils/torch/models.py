"""PyTorch models: the embedded EfficientNet-Lite0, the zoo's VGG16/ResNet50, the small shape nets."""
from __future__ import annotations

import copy
import dataclasses
import math
from collections import OrderedDict

import numpy as np
import torch
import torch.nn.functional as F
import torchvision
from torch import nn

from .. import contract, metrics
from .. import models as spec
from ..weights import efficientnet_lite0_state_dict
from .core import best_device


class SameConv2d(nn.Conv2d):
    """Conv2d with TensorFlow's 'SAME' padding (extra pixel at the bottom/right), as the weights expect."""

    convolves_last = True  # forward pads, then runs nn.Conv2d's: core.folded_batchnorm may fold the BN after it

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pads = []
        for size, k, s in zip(x.shape[:1:-1], self.kernel_size[::-1], self.stride[::-1]):
            total = max((math.ceil(size / s) - 1) * s + k - size, 0)
            pads += [total // 2, total - total // 2]
        return super().forward(F.pad(x, pads) if any(pads) else x)


def _conv_bn(cin: int, cout: int, kernel: int, stride: int = 1, groups: int = 1, act: bool = True) -> nn.Sequential:
    layers = [("conv", SameConv2d(cin, cout, kernel, stride, groups=groups, bias=False)),
              ("bn", nn.BatchNorm2d(cout, eps=1e-3))]
    if act:
        layers.append(("act", nn.ReLU6()))
    return nn.Sequential(OrderedDict(layers))


class MBConv(nn.Module):
    """Inverted residual block (MobileNetV2 / EfficientNet-Lite): expand 1x1, depthwise kxk, project 1x1."""

    def __init__(self, block: spec.MBConvSpec):
        super().__init__()
        hidden = block.in_channels * block.expand_ratio
        self.expand = _conv_bn(block.in_channels, hidden, 1) if block.expand_ratio != 1 else nn.Identity()
        self.depthwise = _conv_bn(hidden, hidden, block.kernel_size, block.stride, groups=hidden)
        self.project = _conv_bn(hidden, block.out_channels, 1, act=False)
        self.residual = block.stride == 1 and block.in_channels == block.out_channels

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.project(self.depthwise(self.expand(x)))
        return x + y if self.residual else y


class EfficientNetLite0(nn.Module):
    """EfficientNet-Lite0: features (stem, 16 blocks, head conv) -> GAP -> dropout -> linear.

    `features.head` is the last convolutional feature map (1280 x 7 x 7 at 224 px), the one CAM uses.
    """

    def __init__(self, num_classes: int = 1000, dropout: float = 0.2):
        super().__init__()
        layers = [("stem", _conv_bn(3, spec.EFFICIENTNET_LITE0_STEM, 3, 2))]
        layers += [(f"block{i}", MBConv(block)) for i, block in enumerate(spec.EFFICIENTNET_LITE0_BLOCKS)]
        layers.append(("head", _conv_bn(spec.EFFICIENTNET_LITE0_BLOCKS[-1].out_channels, spec.EFFICIENTNET_LITE0_FEATURES, 1)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(spec.EFFICIENTNET_LITE0_FEATURES, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.dropout(self.flatten(self.pool(self.features(x)))))


def efficientnet_lite0(pretrained: bool = True) -> EfficientNetLite0:
    """EfficientNet-Lite0 with the embedded ImageNet weights (or random ones), `.preprocessing` set."""
    model = EfficientNetLite0()
    if pretrained:
        _load_efficientnet_lite0_weights(model)
    model.preprocessing = spec.EFFICIENTNET_LITE0_INPUT
    return model


def _weight_name(name: str) -> str:
    """Our parameter name ("features.block3.expand.conv.weight") -> its name in the package's state dict."""
    parts = name.split(".")
    if parts[0] == "classifier":
        return f"{spec.efficientnet_lite0_source('classifier')}.{parts[1]}"
    part, rest = parts[1], parts[2:]
    if part in ("stem", "head"):
        return f"{spec.efficientnet_lite0_source(part, kind=rest[0])}.{rest[1]}"
    stage, kind, leaf = rest
    return f"{spec.efficientnet_lite0_source(part, stage, kind)}.{leaf}"


def _load_efficientnet_lite0_weights(model: EfficientNetLite0) -> None:
    """Copy the package's arrays into the modules: the layouts are PyTorch's already."""
    source = efficientnet_lite0_state_dict()
    model.load_state_dict({name: torch.from_numpy(source[_weight_name(name)].copy()) for name in model.state_dict()})


def _zoo_model(name: str, pretrained: bool) -> nn.Module:
    builder = getattr(torchvision.models, name)
    try:
        model = builder(weights="DEFAULT" if pretrained else None)
    except OSError as error:  # urllib's URLError is an OSError
        raise spec.offline_error(name, error) from error
    model.preprocessing = spec.TORCHVISION_INPUT
    return model


def load_model(name: str = spec.EMBEDDED_MODEL, pretrained: bool = True, device=None) -> nn.Module:
    """A model in eval mode on `device` (default: the best one here), with `.preprocessing` set.

    "efficientnet_lite0" is embedded (works offline); "vgg16" and "resnet50" come from torchvision's
    zoo and need a network connection when `pretrained` is true.
    """
    name = spec.check_model_name(name)
    model = efficientnet_lite0(pretrained) if name == spec.EMBEDDED_MODEL else _zoo_model(name, pretrained)
    return model.eval().to(device or best_device())


class SmallCNN(nn.Module):
    """A small CNN for the synthetic shapes: `depth` conv+pool stages, a last conv, then a head.

    head "gap": global average pooling -> linear (CAM applies);
    head "gmp": global max pooling -> linear (the CAM paper's contrast);
    head "flatten": flatten -> linear -> BN -> ReLU -> linear (no CAM; Grad-CAM still works);
    head "linear": flatten -> one linear layer (a weight per position and channel: HiResCAM's exact case).
    `features.last` is the last convolutional feature map, at input_size / 2**depth.
    """

    def __init__(self, head: str = "gap", num_classes: int = 5, input_size: int = 64, width: int = 32,
                 depth: int = 3, hidden: int = 128):
        super().__init__()
        spec.check_small_cnn_args(head, num_classes, input_size, depth)
        layers, cin = [], 3
        for i in range(depth):
            cout = width * 2 ** min(i, 2)
            layers += [(f"conv{i + 1}", self._conv(cin, cout)), (f"pool{i + 1}", nn.MaxPool2d(2))]
            cin = cout
        layers.append(("last", self._conv(cin, cin)))
        self.features = nn.Sequential(OrderedDict(layers))
        self.head_type = head
        if head == "flatten":
            side = input_size // 2**depth
            self.pool = nn.Flatten()
            # BatchNorm after the wide first layer: without it, Adam's steps on its cin * side**2 inputs
            # move the hidden units so far that the head does not train (measured: chance level).
            self.classifier = nn.Sequential(OrderedDict(
                fc=nn.Linear(cin * side * side, hidden, bias=False), bn=nn.BatchNorm1d(hidden), relu=nn.ReLU(),
                out=nn.Linear(hidden, num_classes)))
        elif head == "linear":
            side = input_size // 2**depth
            self.pool = nn.Flatten()
            self.classifier = nn.Linear(cin * side * side, num_classes)
        else:
            pool = nn.AdaptiveAvgPool2d(1) if head == "gap" else nn.AdaptiveMaxPool2d(1)
            self.pool = nn.Sequential(pool, nn.Flatten())
            self.classifier = nn.Linear(cin, num_classes)

    @staticmethod
    def _conv(cin: int, cout: int) -> nn.Sequential:
        return nn.Sequential(OrderedDict(conv=nn.Conv2d(cin, cout, 3, padding=1, bias=False),
                                         bn=nn.BatchNorm2d(cout), relu=nn.ReLU()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.pool(self.features(x)))


def small_cnn(head: str = "gap", num_classes: int = 5, input_size: int = 64, width: int = 32, depth: int = 3,
              class_names=None, device=None) -> SmallCNN:
    """A freshly initialised SmallCNN on `device`, with `.preprocessing` and `.class_names` set."""
    model = SmallCNN(head, num_classes, input_size, width, depth)
    model.preprocessing = dataclasses.replace(spec.SHAPES_INPUT, size=input_size)
    model.class_names = tuple(class_names) if class_names is not None else None
    return model.to(device or best_device())


def randomized_copy(model: nn.Module, layer_names, seed: int = 0) -> nn.Module:
    """A deep copy of `model` whose named layers have fresh random weights; `model` is not touched.

    The model-randomisation test of Adebayo et al. 2018 (sec. 3.1): every parameter of each named
    module (its submodules included) is redrawn by utils.metrics.randomized_like; BatchNorm's running
    statistics are buffers and stay. `layer_names`: names from model.named_modules(), e.g.
    ["classifier", "features.head"] to randomise the top of EfficientNet-Lite0.
    """
    layer_names = _randomizable(model, layer_names)
    clone, rng = copy.deepcopy(model), np.random.default_rng(seed)
    for name in layer_names:
        _redraw(clone, name, rng)
    return clone


def cascading_randomization(model: nn.Module, layer_names, seed: int = 0):
    """The cascading model-randomisation test (Adebayo et al. 2018, sec. 3.1), one step at a time.

    Yields (name, randomised) for each name of `layer_names` in order (top of the network first): the
    layers so far all redrawn, as randomized_copy does. One copy is made and redrawn further at each
    step, so the cascade costs one copy; a yielded model changes at the next step (copy it to keep
    it). `model` is not touched.
    """
    layer_names = _randomizable(model, layer_names)
    clone, rng = copy.deepcopy(model), np.random.default_rng(seed)
    for name in layer_names:
        _redraw(clone, name, rng)
        yield name, clone


def _randomizable(model: nn.Module, layer_names) -> list[str]:
    layer_names = [layer_names] if isinstance(layer_names, str) else list(layer_names)
    modules = dict(model.named_modules())
    for name in layer_names:
        if not name or name not in modules:
            raise contract.unknown_layer(name, [n for n in modules if n and n.count(".") <= 1],
                                        "layers you can randomise (or any name in model.named_modules())")
    return layer_names


@torch.no_grad()
def _redraw(model: nn.Module, name: str, rng: np.random.Generator) -> None:
    for parameter in model.get_submodule(name).parameters():
        values = parameter.detach().cpu().numpy()
        parameter.copy_(torch.from_numpy(metrics.randomized_like(values, rng)))
