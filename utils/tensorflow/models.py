"""Keras models: the embedded EfficientNet-Lite0, the zoo's VGG16/ResNet50, the small shape nets.

Layer names follow keras.applications' style; the comments give the PyTorch twin's module names.
"""
from __future__ import annotations

import dataclasses

import keras
import numpy as np
from keras import layers

from .. import contract, metrics
from .. import models as spec
from ..weights import efficientnet_lite0_state_dict


def _conv_bn(x, filters: int, kernel: int, stride: int, name: str, act: bool = True, depthwise: bool = False):
    if depthwise:
        x = layers.DepthwiseConv2D(kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    else:
        x = layers.Conv2D(filters, kernel, stride, padding="same", use_bias=False, name=f"{name}_conv")(x)
    x = layers.BatchNormalization(epsilon=1e-3, momentum=0.99, name=f"{name}_bn")(x)
    return layers.ReLU(max_value=6.0, name=f"{name}_relu")(x) if act else x


def efficientnet_lite0(pretrained: bool = True, num_classes: int = 1000, dropout: float = 0.2) -> keras.Model:
    """EfficientNet-Lite0 as a functional Keras model (Keras 'same' padding is TensorFlow's, as trained).

    `head_relu` is the last convolutional feature map (7 x 7 x 1280 at 224 px), the one CAM uses.
    """
    inputs = keras.Input((None, None, 3), name="image")
    x = _conv_bn(inputs, spec.EFFICIENTNET_LITE0_STEM, 3, 2, "stem")  # features.stem
    for i, block in enumerate(spec.EFFICIENTNET_LITE0_BLOCKS):  # features.block{i}
        shortcut = x
        hidden = block.in_channels * block.expand_ratio
        if block.expand_ratio != 1:
            x = _conv_bn(x, hidden, 1, 1, f"block{i}_expand")
        x = _conv_bn(x, hidden, block.kernel_size, block.stride, f"block{i}_depthwise", depthwise=True)
        x = _conv_bn(x, block.out_channels, 1, 1, f"block{i}_project", act=False)
        if block.stride == 1 and block.in_channels == block.out_channels:
            x = layers.Add(name=f"block{i}_add")([shortcut, x])
    x = _conv_bn(x, spec.EFFICIENTNET_LITE0_FEATURES, 1, 1, "head")  # features.head
    x = layers.GlobalAveragePooling2D(name="avg_pool")(x)
    x = layers.Dropout(dropout, name="dropout")(x)
    outputs = layers.Dense(num_classes, name="predictions")(x)  # classifier (logits, no softmax)
    model = keras.Model(inputs, outputs, name="efficientnet_lite0")
    if pretrained:
        _load_efficientnet_lite0_weights(model)
    model.preprocessing = spec.EFFICIENTNET_LITE0_INPUT
    return model


def _weight_name(layer_name: str) -> str:
    """Keras layer name ("block3_expand_bn") -> its prefix in the package's state dict."""
    if layer_name == "predictions":
        return spec.efficientnet_lite0_source("classifier")
    part, *stage, kind = layer_name.split("_")
    return spec.efficientnet_lite0_source(part, stage[0] if stage else None, kind)


def _load_efficientnet_lite0_weights(model: keras.Model) -> None:
    """Convert the package's arrays to Keras layouts: OIHW -> HWIO kernels, (C,1,k,k) -> (k,k,C,1) depthwise, W -> W.T."""
    state = efficientnet_lite0_state_dict()
    for layer in model.layers:
        if isinstance(layer, layers.Dense):
            prefix = _weight_name(layer.name)
            layer.set_weights([state[f"{prefix}.weight"].T, state[f"{prefix}.bias"]])
        elif isinstance(layer, layers.BatchNormalization):
            prefix = _weight_name(layer.name)
            layer.set_weights([state[f"{prefix}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")])
        elif isinstance(layer, layers.DepthwiseConv2D):
            layer.set_weights([state[f"{_weight_name(layer.name)}.weight"].transpose(2, 3, 0, 1)])
        elif isinstance(layer, layers.Conv2D):
            layer.set_weights([state[f"{_weight_name(layer.name)}.weight"].transpose(2, 3, 1, 0)])


def _zoo_model(name: str, pretrained: bool) -> keras.Model:
    builder = {"vgg16": keras.applications.VGG16, "resnet50": keras.applications.ResNet50}[name]
    try:
        # classifier_activation=None: the model returns logits, as the methods need pre-softmax scores.
        model = builder(weights="imagenet" if pretrained else None, classifier_activation=None)
    except Exception as error:  # Keras raises a bare Exception("URL fetch failure ...") offline
        if not isinstance(error, OSError) and "URL fetch failure" not in str(error):
            raise
        raise spec.offline_error(name, error) from error
    model.preprocessing = spec.KERAS_CAFFE_INPUT
    return model


def load_model(name: str = spec.EMBEDDED_MODEL, pretrained: bool = True) -> keras.Model:
    """A Keras model with `.preprocessing` set; it runs on the best device (TensorFlow places ops).

    "efficientnet_lite0" is embedded (works offline); "vgg16" and "resnet50" come from
    keras.applications and need a network connection when `pretrained` is true.
    """
    name = spec.check_model_name(name)
    return efficientnet_lite0(pretrained) if name == spec.EMBEDDED_MODEL else _zoo_model(name, pretrained)


def small_cnn(head: str = "gap", num_classes: int = 5, input_size: int = 64, width: int = 32, depth: int = 3,
              class_names=None, hidden: int = 128) -> keras.Model:
    """The SmallCNN of the PyTorch backend as a Keras model (same layers, channels last).

    `last_relu` is the last convolutional feature map, at input_size / 2**depth.
    """
    spec.check_small_cnn_args(head, num_classes, input_size, depth)
    inputs = keras.Input((input_size, input_size, 3), name="image")
    x, channels = inputs, width
    for i in range(depth):
        channels = width * 2 ** min(i, 2)
        x = _small_conv(x, channels, f"conv{i + 1}")
        x = layers.MaxPooling2D(2, name=f"pool{i + 1}")(x)
    x = _small_conv(x, channels, "last")
    if head == "flatten":
        x = layers.Flatten(name="flatten")(x)
        # BatchNorm after the wide first layer, as in PyTorch: without it the head does not train
        x = layers.Dense(hidden, use_bias=False, name="fc")(x)
        x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name="fc_bn")(x)
        x = layers.ReLU(name="fc_relu")(x)
    elif head == "linear":  # one Dense layer on the flattened map: a weight per position and channel
        x = layers.Flatten(name="flatten")(x)
    else:
        pool = layers.GlobalAveragePooling2D if head == "gap" else layers.GlobalMaxPooling2D
        x = pool(name=head)(x)
    outputs = layers.Dense(num_classes, name="logits")(x)
    model = keras.Model(inputs, outputs, name=f"small_cnn_{head}")
    model.preprocessing = dataclasses.replace(spec.SHAPES_INPUT, size=input_size)
    model.class_names = tuple(class_names) if class_names is not None else None
    return model


def _small_conv(x, filters: int, name: str):
    x = layers.Conv2D(filters, 3, padding="same", use_bias=False, name=f"{name}_conv")(x)
    # PyTorch's BatchNorm2d defaults (Keras' own are momentum 0.99, epsilon 1e-3): the same network in both
    x = layers.BatchNormalization(momentum=0.9, epsilon=1e-5, name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def randomized_copy(model: keras.Model, layer_names, seed: int = 0) -> keras.Model:
    """A copy of `model` whose named layers have fresh random weights; `model` is not touched.

    The model-randomisation test of Adebayo et al. 2018 (sec. 3.1): every trainable weight of each
    named layer is redrawn by utils.metrics.randomized_like; BatchNormalization's moving statistics
    stay. A name matches one layer, or a block: every layer named "<name>_..." (e.g. "block15" for
    block15_expand_conv, block15_expand_bn, ...), like the PyTorch twin's module names.
    """
    groups = _randomizable(model, layer_names)
    clone, rng = _clone(model), np.random.default_rng(seed)
    for group in groups:
        _redraw(clone, group, rng)
    return clone


def cascading_randomization(model: keras.Model, layer_names, seed: int = 0):
    """The cascading model-randomisation test (Adebayo et al. 2018, sec. 3.1), one step at a time.

    Yields (name, randomised) for each name of `layer_names` in order (top of the network first): the
    layers so far all redrawn, as randomized_copy does. One copy is made and redrawn further at each
    step, so the cascade costs one copy (and the methods compile once for it); a yielded model changes
    at the next step (copy it to keep it). `model` is not touched.
    """
    groups = _randomizable(model, layer_names)
    clone, rng = _clone(model), np.random.default_rng(seed)
    for name, group in zip([layer_names] if isinstance(layer_names, str) else layer_names, groups):
        _redraw(clone, group, rng)
        yield name, clone


def _randomizable(model: keras.Model, layer_names) -> list[list[str]]:
    """The layers each name stands for: itself, or the block of layers named "<name>_..."."""
    groups = []
    for name in [layer_names] if isinstance(layer_names, str) else list(layer_names):
        matched = [layer.name for layer in model.layers if layer.name == name or layer.name.startswith(f"{name}_")]
        if not matched:
            raise contract.unknown_layer(name, _layer_groups(model), "layers and blocks you can randomise (or any "
                                        "layer name in model.layers)")
        groups.append(matched)
    return groups


def _clone(model: keras.Model) -> keras.Model:
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    for attribute in ("preprocessing", "class_names"):
        if hasattr(model, attribute):
            setattr(clone, attribute, getattr(model, attribute))
    return clone


def _redraw(model: keras.Model, layers: list[str], rng: np.random.Generator) -> None:
    for name in layers:
        for weight in model.get_layer(name).trainable_weights:
            weight.assign(metrics.randomized_like(keras.ops.convert_to_numpy(weight), rng))


def _layer_groups(model: keras.Model) -> list[str]:
    """The model's blocks ("block3" for block3_*) and its other layers, in forward order."""
    prefixes = [layer.name.split("_")[0] for layer in model.layers]
    groups = []
    for layer, prefix in zip(model.layers, prefixes):
        group = prefix if prefixes.count(prefix) > 1 else layer.name
        if group not in groups:
            groups.append(group)
    return groups
