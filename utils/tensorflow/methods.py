"""The explanation methods for Keras models: the rows of the table of methods (utils.contract.METHODS).

Read it beside utils/torch/methods.py: the same sections in the same order, the same private names
for the same roles, the same loops; what differs is framework. What each method promises, and its
docstring, is written once in utils.contract (ARCHITECTURE.md, "What an explanation method
promises"). Every method takes a batch x (B, H, W, 3) from xt.preprocess and returns numpy arrays.

TensorFlow's part, in three ideas a reader can reuse:

- Reading an inner layer. `keras.Model(model.inputs, model.get_layer(name).output)` fails with
  "Graph disconnected" when the layer sits inside a nested model. Instead we run the whole model
  and, for the duration of that one call, replace the layer's `call` by a wrapper that records its
  output (`_tap`). Any layer can be read this way, however deeply nested.
- Changing the backward pass. Guided Backprop swaps every ReLU for one with a custom gradient, and
  every method removes a final softmax (scores are pre-softmax logits), again only while the model
  runs (`_patched`). A `finally` puts every attribute back exactly, even after an error.
- Speed. Each model computation is a `tf.function`, traced once per (model, computation, layer,
  image size) and cached (`_compiled`). The swaps above are in place only while tracing: the traced
  graph keeps them, the model itself is left as it was. Later calls, with any batch size or target,
  run the compiled graph: one forward and one backward pass, no Python per layer.
"""
from __future__ import annotations

import contextlib
import functools
import weakref

import keras
import numpy as np
import tensorflow as tf

from .. import contract
from .core import chunk_size

# ---------------------------------------------------------------------------------------------
# Inputs: the batch and the targets


def _check_input(model: keras.Model, x) -> tf.Tensor:
    """The batch as float32, after checking it is 4-D, not empty and finite."""
    contract.check_batch(tuple(np.shape(x)) if not tf.is_tensor(x) else tuple(x.shape), channels_last=True)
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    if not bool(tf.reduce_all(tf.math.is_finite(x))):
        raise contract.non_finite_input()
    return x


def _targets(model: keras.Model, x: tf.Tensor, target) -> tf.Tensor:
    """The checked targets as a (B,) int64 tensor; -1 stands for the image's top-1 class in the very
    forward pass that computes the map (`_scores` resolves it)."""
    targets = contract.check_targets(target, int(x.shape[0]), _num_classes(model, x))
    if targets is None:
        return tf.fill([x.shape[0]], tf.constant(-1, tf.int64))
    return tf.constant(targets)


def _clean_targets(model: keras.Model, x: tf.Tensor, target) -> tf.Tensor:
    """The (B,) classes of the clean batch, for methods that run the model on other images (noisy
    copies) or twice: explicit classes as they are, None the top-1 of one forward pass."""
    targets = _targets(model, x, target)
    if target is None:
        targets = tf.argmax(_logits(model, x), axis=-1)
    return targets


def _num_classes(model: keras.Model, x: tf.Tensor) -> int:
    try:
        if model.outputs[0].shape[-1] is not None:
            return int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError, ValueError):
        pass  # a model without a symbolic graph: ask it
    return int(_logits(model, x[:1]).shape[-1])


def _logits(model: keras.Model, x: tf.Tensor, folded: bool = False) -> tf.Tensor:
    """The pre-softmax scores of the batch, through the model's compiled forward pass (with each BatchNorm
    folded into its convolution when `folded`: the same function, faster)."""
    image_shape = tuple(x.shape[1:])
    return _compiled(model, ("logits", image_shape, folded), lambda ref: _build_logits(ref, image_shape, folded))(x)


# ---------------------------------------------------------------------------------------------
# Layers: which outputs are feature maps, and the one a method reads (nested models included)


def _all_layers(model: keras.Model):
    """Every layer in forward order, searching nested models; a nested model follows its own layers."""
    for layer in model.layers:
        if isinstance(layer, keras.layers.InputLayer):
            continue
        if isinstance(layer, keras.Model):
            yield from _all_layers(layer)
        yield layer


def _find_layer(model: keras.Model, name: str):
    """The first layer called `name` (nested models searched too), or None."""
    return next((layer for layer in _all_layers(model) if layer.name == name), None)


def _static_shape(layer) -> tuple | None:
    """The layer's output shape in the model's graph, e.g. (None, 7, 7, 1280); None when unknown."""
    try:
        return tuple(layer.output.shape)
    except (AttributeError, ValueError, RuntimeError):
        return None


def _is_feature_map(shape) -> bool:
    """4-D (B, h, w, C) with more than one position (unknown sizes count as a feature map)."""
    if shape is None or len(shape) != 4:
        return False
    height, width = shape[1], shape[2]
    return height is None or width is None or height * width > 1


@contract.shared_doc("feature_layers")
def feature_layers(model: keras.Model, x=None) -> list[str]:
    """Keras: layer names, those of nested models included (and the nested model itself, after its
    layers). Without `x` the shapes come from the model's graph (unknown sizes count); with `x` one
    image is run through the model and the shapes it produces decide (a layer that runs twice is left out)."""
    if x is None:
        return [layer.name for layer in _static_feature_layers(model)]
    outputs = _run_and_record_shapes(model, tf.convert_to_tensor(x)[:1])
    return [name for name, shapes in outputs.items() if len(shapes) == 1 and _is_feature_map(shapes[0])]


def _static_feature_layers(model: keras.Model) -> list:
    return [layer for layer in _all_layers(model) if _is_feature_map(_static_shape(layer))]


def _run_and_record_shapes(model: keras.Model, x) -> dict[str, list[tuple]]:
    """One forward pass that records the output shapes of every call of every layer, in forward order."""
    outputs: dict[str, list[tuple]] = {}
    wrappers = []
    for layer in _all_layers(model):
        def call(*args, _original=layer.call, _name=layer.name, **kwargs):
            out = _original(*args, **kwargs)
            outputs.setdefault(_name, []).append(tuple(out.shape) if tf.is_tensor(out) else None)
            return out
        wrappers.append((layer, "call", call))
    with _patched(wrappers):
        model(x, training=False)
    return outputs


def _feature_layer(model: keras.Model, x: tf.Tensor, layer: str | None):
    """The Keras layer of the feature map `layer`; None: the last feature map."""
    if layer is None:
        candidates = _static_feature_layers(model) or [_find_layer(model, n) for n in feature_layers(model, x)]
        if not candidates:
            raise ValueError("the model has no convolutional feature map; these methods explain CNNs")
        # A nested base model outputs its last layer's map: name that layer rather than the model
        leaves = [candidate for candidate in candidates if not isinstance(candidate, keras.Model)]
        return (leaves or candidates)[-1]
    found = _find_layer(model, layer) if isinstance(layer, str) else None
    if found is None:
        raise contract.unknown_layer(layer, feature_layers(model, x))
    shape = _static_shape(found)
    if shape is not None and not _is_feature_map(shape):
        raise contract.not_a_feature_map(layer, shape, feature_layers(model, x))
    return found


def _check_feature_shape(model: keras.Model, x: tf.Tensor, layer, shape) -> None:
    """The run-time check for layers whose size the graph did not know (e.g. 1 x 1 on small inputs)."""
    shape = tuple(int(size) for size in shape)
    if not _is_feature_map(shape):
        raise contract.not_a_feature_map(layer.name, shape, feature_layers(model, x))


# ---------------------------------------------------------------------------------------------
# Running the model: a tap on one layer, the pre-softmax scores (changes undone after each call)

_MISSING = object()


@contextlib.contextmanager
def _patched(changes):
    """Set attributes [(object, name, value), ...] for the duration of the block, then restore them.

    An attribute that was not an instance attribute before (a layer's `call` is a class method)
    is deleted again, so the model is left exactly as found, also when the block raised.
    """
    saved = []
    try:
        for obj, name, value in changes:
            saved.append((obj, name, obj.__dict__.get(name, _MISSING)))
            object.__setattr__(obj, name, value)  # bypass Keras' attribute tracking
        yield
    finally:
        for obj, name, old in reversed(saved):
            if old is _MISSING:
                object.__delattr__(obj, name)
            else:
                object.__setattr__(obj, name, old)


def _tap(layer, record):
    """The change that makes `layer` pass each output it computes to `record` (and return it as is)."""
    original = layer.call

    def call(*args, **kwargs):
        out = original(*args, **kwargs)
        record(out)
        return out
    return [(layer, "call", call)]


_SOFTMAX = (keras.activations.softmax, keras.ops.softmax, tf.nn.softmax)


def _output_layer(model: keras.Model):
    """The layer that produces the model's output (looking inside a nested model at the end)."""
    try:
        layer = model.outputs[0]._keras_history.operation  # functional and built Sequential models
    except (AttributeError, IndexError, TypeError, ValueError):
        layer = model.layers[-1] if model.layers else None
    return _output_layer(layer) if isinstance(layer, keras.Model) else layer


def _without_softmax(model: keras.Model):
    """The change that removes a final softmax, so the model returns the pre-softmax scores S^c."""
    layer = _output_layer(model)
    if isinstance(layer, keras.layers.Softmax):
        return [(layer, "call", lambda inputs, *args, **kwargs: inputs)]
    if layer is not None and any(layer.__dict__.get("activation") is softmax for softmax in _SOFTMAX):
        return [(layer, "activation", keras.activations.linear)]
    return []


def _forward(model: keras.Model, x, tape=None, tap=None, guided: bool = False, folded: bool = False):
    """The pre-softmax scores S of model(x) in inference mode, and the output of the layer `tap` (watched
    by `tape`); through guided ReLUs when `guided`, with BatchNorms folded into their convolutions when
    `folded`. The model is changed only while it runs."""
    tapped = []

    def record(out):
        if tape is not None:
            tape.watch(out)
        tapped.append(out)
    changes = _without_softmax(model) + (_guided_relus(model) if guided else []) + (_tap(tap, record) if tap else [])
    if folded:
        changes += _folded_batchnorms(model)
    with _patched(changes):
        logits = tf.cast(model(x, training=False), tf.float32)
    if tap is None:
        return logits, None
    if len(tapped) != 1:
        if len(tapped) > 1:
            raise contract.layer_called_more_than_once(tap.name, len(tapped))
        raise ValueError(f"layer {tap.name!r} does not run when the model computes its output; choose another")
    return logits, tapped[0]


def _scores(logits: tf.Tensor, targets: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """The targets with -1 resolved to each image's top-1 class, and each image's score S^c. The
    gradient of a vector is that of its sum; the images are independent, so each image gets the
    gradient of its own score."""
    targets = tf.where(targets < 0, tf.argmax(logits, axis=-1), targets)
    return targets, tf.gather(logits, targets, axis=1, batch_dims=1)


# ---------------------------------------------------------------------------------------------
# The guided ReLU


def _guided_relu(x: tf.Tensor, max_value: float | None = None) -> tf.Tensor:
    """ReLU (capped at `max_value`) with the guided backward rule (Springenberg et al. 2015, fig. 1): the
    gradient passes only where it is positive and the input is in the linear part, 0 < x (< max_value)."""
    @tf.custom_gradient
    def relu(z):
        y = tf.nn.relu(z) if max_value is None else tf.minimum(tf.nn.relu(z), tf.cast(max_value, z.dtype))

        def grad(upstream):
            keep = (upstream > 0) & (z > 0)
            if max_value is not None:
                keep &= z < max_value
            return tf.where(keep, upstream, tf.zeros_like(upstream))
        return y, grad
    return relu(x)


_RELU = (keras.activations.relu, keras.ops.relu, tf.nn.relu)
_RELU6 = (keras.activations.relu6, keras.ops.relu6, tf.nn.relu6)


def _guided_relus(model: keras.Model):
    """The changes that make every ReLU and ReLU6 of the model guided, in nested models too:
    keras.layers.ReLU, Activation("relu"/"relu6") and layers with activation="relu"/"relu6" built in."""
    changes = []
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.ReLU):
            if not layer.negative_slope and not layer.threshold:  # a leaky or shifted ReLU stays as it is
                relu = functools.partial(_guided_relu, max_value=layer.max_value)
                changes.append((layer, "call", lambda inputs, *args, _relu=relu, **kwargs: _relu(inputs)))
        else:
            activation = layer.__dict__.get("activation")
            if any(activation is f for f in _RELU):
                changes.append((layer, "activation", functools.partial(_guided_relu, max_value=None)))
            elif any(activation is f for f in _RELU6):
                changes.append((layer, "activation", functools.partial(_guided_relu, max_value=6.0)))
    return changes


_FOLDABLE_CONVS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def _fold_pairs(model: keras.Model) -> list:
    """(convolution, BatchNormalization) pairs of the model's graph in which the BatchNorm is the only
    reader of the convolution's output: each layer called once, a linear float32 channels-last convolution
    of exactly a Keras class whose call is known, a BatchNorm over the last axis. Nothing patched already."""
    outputs = {id(tensor) for owner in [model, *_all_layers(model)] if isinstance(owner, keras.Model)
               for tensor in getattr(owner, "outputs", None) or []}
    pairs = []
    for conv in _all_layers(model):
        if type(conv) not in _FOLDABLE_CONVS or len(conv._inbound_nodes) != 1 or len(conv._outbound_nodes) != 1:
            continue
        norm = conv._outbound_nodes[0].operation
        if (type(norm) is keras.layers.BatchNormalization and len(norm._inbound_nodes) == 1
                and norm.axis in (-1, 3) and conv.data_format == "channels_last"
                and conv.activation in (None, keras.activations.linear) and not getattr(conv, "lora_enabled", False)
                and conv.compute_dtype == norm.compute_dtype == conv.kernel.dtype == "float32"
                and id(conv.output) not in outputs and "call" not in conv.__dict__ and "call" not in norm.__dict__):
            pairs.append((conv, norm))
    return pairs


def _folded_batchnorms(model: keras.Model):
    """The changes that fold each BatchNorm into the convolution before it (inference only).

    BN(W * x + b) = (s W) * x + s (b - mu) + beta with s = gamma / sqrt(var + eps) (Ioffe and Szegedy 2015,
    sec. 3.1): one convolution with the scaled kernel, and no pass over the activations. The scaled kernel
    is computed inside the traced graph from the live variables, so a compiled function stays right when
    the weights change; the layers' own `call`s come back when the block ends."""
    changes = []
    for conv, norm in _fold_pairs(model):
        def call(inputs, *args, conv=conv, norm=norm, **kwargs):
            scale = tf.math.rsqrt(tf.convert_to_tensor(norm.moving_variance) + norm.epsilon)
            if norm.scale:
                scale = scale * norm.gamma
            shift = -norm.moving_mean * scale
            if norm.center:
                shift = shift + norm.beta
            if conv.use_bias:
                shift = shift + conv.bias * scale
            if type(conv) is keras.layers.DepthwiseConv2D:  # kernel (h, w, in, multiplier): out = in * m + j
                kernel = conv.kernel * tf.reshape(scale, (1, 1, -1, conv.depth_multiplier))
                outputs = keras.ops.depthwise_conv(inputs, kernel, strides=conv.strides, padding=conv.padding,
                                                   dilation_rate=conv.dilation_rate, data_format=conv.data_format)
            else:
                outputs = conv.convolution_op(inputs, conv.kernel * scale)
            return tf.nn.bias_add(outputs, shift)  # BiasAdd: grappler fuses it (and a ReLU after) into the conv
        changes += [(conv, "call", call), (norm, "call", lambda inputs, *args, **kwargs: inputs)]
    return changes


# ---------------------------------------------------------------------------------------------
# Compiled computations, cached per model

# model -> (its structure, {(computation, layer, image shape, ...): tf.function}). Keyed weakly: a model
# that is deleted takes its compiled functions with it (the functions hold the model only weakly).
_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _structure(model: keras.Model) -> tuple:
    """What a traced graph has baked in: the layers and their activations (weights are read live)."""
    return tuple((id(layer), id(layer.__dict__.get("activation")), id(layer.__dict__.get("call")))
                 for layer in _all_layers(model))


def _compiled(model: keras.Model, key: tuple, build):
    """The tf.function `build(model_ref)` for this model and key, built once and then reused
    (built again if layers or activations were changed since: e.g. Sequential.add, a new activation)."""
    structure = _structure(model)
    if model not in _COMPILED or _COMPILED[model][0] != structure:
        _COMPILED[model] = (structure, {})
    functions = _COMPILED[model][1]
    if key not in functions:
        functions[key] = build(weakref.ref(model))
    return functions[key]


def _function(image_shape, *specs):
    """tf.function decorator for f(x, *args): any batch size, this image size, traced once."""
    signature = [tf.TensorSpec((None, *image_shape), tf.float32), *specs]

    def decorate(python_function):
        # autograph=False: the plain Python body needs no conversion, and our error messages stay unchanged
        function = tf.function(python_function, input_signature=signature, reduce_retracing=True, autograph=False)
        # One function per (model, computation, layer, image size) is the design, but TensorFlow's retracing
        # detector keys on the Python code object: after a few models it takes each new model's first trace
        # for a retrace and logs a warning (to stdout in Jupyter, where nbval compares it). Silence only that.
        function._omit_frequent_tracing_warning = True
        return function
    return decorate


_TARGETS = tf.TensorSpec([None], tf.int64)


def _build_logits(model_ref, image_shape, folded: bool):
    @_function(image_shape)
    def logits(x):
        return _forward(model_ref(), x, folded=folded)[0]
    return logits


def _last_dense(model: keras.Model):
    return next((layer for layer in reversed(list(_all_layers(model))) if isinstance(layer, keras.layers.Dense)),
                None)


def _build_cam_parts(model_ref, image_shape, layer_name: str):
    """The feature map at one layer, the last Dense layer's weight (classes, K) and bias, the logits, how
    far they are from what a GAP -> Dense head computes, and the feature map's shape."""
    @_function(image_shape)
    def cam_parts(x):
        model = model_ref()
        dense = _last_dense(model)
        logits, features = _forward(model, x, tap=_find_layer(model, layer_name))
        features = tf.cast(features, tf.float32)
        kernel = tf.cast(dense.kernel, tf.float32)
        if kernel.shape[0] != features.shape[-1] or kernel.shape[1] != logits.shape[-1]:
            raise contract.no_cam_head(
                f"the last Dense layer {dense.name!r} maps {kernel.shape[0]} inputs to {kernel.shape[1]} "
                f"outputs, but {layer_name!r} has {features.shape[-1]} channels and the model "
                f"{logits.shape[-1]} outputs")
        bias = tf.cast(dense.bias, tf.float32) if dense.bias is not None else tf.zeros(kernel.shape[1])
        mismatch = tf.reduce_max(tf.abs(tf.reduce_mean(features, axis=[1, 2]) @ kernel + bias - logits))
        return features, tf.transpose(kernel), bias, logits, mismatch, tf.shape(features)
    return cam_parts


def _build_features(model_ref, image_shape, layer_name: str):
    """The logits and the feature map at one layer: one forward pass, no gradient."""
    @_function(image_shape)
    def features(x):
        model = model_ref()
        logits, activations = _forward(model, x, tap=_find_layer(model, layer_name))
        return logits, tf.cast(activations, tf.float32)
    return features


def _build_layer_gradients(model_ref, image_shape, layer_name: str):
    """The feature map at one layer and dS^c/dA of each image's own score, and the map's shape."""
    @_function(image_shape, _TARGETS)
    def layer_gradients(x, targets):
        model = model_ref()
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            logits, features = _forward(model, x, tape=tape, tap=_find_layer(model, layer_name))
            _, scores = _scores(logits, targets)
        gradients = tape.gradient(scores, features)
        return tf.cast(features, tf.float32), tf.cast(gradients, tf.float32), tf.shape(features)
    return layer_gradients


def _build_input_gradients(model_ref, image_shape, guided: bool, folded: bool):
    """dS^c/dx per image (Simonyan et al. 2014, eq. 3), through guided ReLUs when `guided`."""
    @_function(image_shape, _TARGETS)
    def input_gradients(x, targets):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            logits, _ = _forward(model_ref(), x, guided=guided, folded=folded)
            _, scores = _scores(logits, targets)
        return tape.gradient(scores, x)
    return input_gradients


def _build_masked_scores(model_ref, image_shape, score: str):
    """Score-CAM's step for a chunk of (image, channel) pairs in one graph: each channel's map upsampled
    and min-max normalised into a mask H^k, the image times it, and the target's score of the result
    (Wang et al. 2020, eq. 6-8), through the folded forward pass. Eagerly the mask's few ops cost about
    as much as a tenth of EfficientNet-Lite0's forward pass per chunk on a CPU."""
    @_function(image_shape, tf.TensorSpec([None, None, None], tf.float32), tf.TensorSpec([None], tf.int64),
               _TARGETS, tf.TensorSpec([], tf.int64))
    def masked_scores(x, maps, pairs, targets, channels):
        images = pairs // channels
        masks = _normalise(_upsample(tf.gather(maps, pairs), image_shape[:2]))
        logits, _ = _forward(model_ref(), tf.gather(x, images) * masks[..., None], folded=True)
        values = tf.nn.softmax(logits, axis=-1) if score == "probability" else logits
        return tf.gather(values, tf.gather(targets, images), axis=1, batch_dims=1)
    return masked_scores


# ---------------------------------------------------------------------------------------------
# The maps, on the device


def _cam_parts(model: keras.Model, x: tf.Tensor, layer: str | None, strict: bool):
    """One forward pass: the feature map f (B, h, w, K), the last Dense layer's weight (classes, K) and
    bias (classes,), and the logits, after CAM's head checks."""
    if _last_dense(model) is None:
        raise contract.no_cam_head("the model has no Dense layer")
    tap = _feature_layer(model, x, layer)
    image_shape = tuple(x.shape[1:])
    fn = _compiled(model, ("cam_parts", tap.name, image_shape), lambda ref: _build_cam_parts(ref, image_shape, tap.name))
    features, weight, bias, logits, mismatch, features_shape = fn(x)
    _check_feature_shape(model, x, tap, features_shape.numpy())
    if strict and float(mismatch) > 1e-3 * (1 + float(tf.reduce_max(tf.abs(logits)))):
        raise contract.no_cam_head(f"the logits differ from mean_xy({tap.name}) W^T + b of the last Dense layer "
                                   f"{_last_dense(model).name!r} by up to {float(mismatch):.3g}, so the head is not "
                                   "global average pooling followed by that layer")
    return features, weight, bias, logits


def _layer_gradients(model: keras.Model, x: tf.Tensor, targets: tf.Tensor, layer: str | None):
    """The feature map A (B, h, w, K) at `layer` and dS^c/dA of each image's own score: one forward pass,
    and a backward pass that stops at the layer."""
    tap = _feature_layer(model, x, layer)
    image_shape = tuple(x.shape[1:])
    fn = _compiled(model, ("layer_gradients", tap.name, image_shape),
                   lambda ref: _build_layer_gradients(ref, image_shape, tap.name))
    activations, gradients, features_shape = fn(x, targets)
    _check_feature_shape(model, x, tap, features_shape.numpy())
    return activations, gradients


def _grad_cam_maps(model: keras.Model, x: tf.Tensor, targets: tf.Tensor, layer: str | None,
                    counterfactual: bool = False) -> tf.Tensor:
    """Raw Grad-CAM maps (B, h, w) at the layer's resolution (Selvaraju et al. 2017, eqs. 1-2);
    counterfactual: with the gradients negated (sec. "Counterfactual Explanations")."""
    activations, gradients = _layer_gradients(model, x, targets, layer)
    weights = tf.reduce_mean(gradients, axis=[1, 2], keepdims=True)  # eq. 1: alpha_k^c
    if counterfactual:  # alpha_k^c of -dS^c/dA^k: the evidence against the class
        weights = -weights
    return tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1))  # eq. 2


def _input_gradients(model: keras.Model, x: tf.Tensor, targets: tf.Tensor, guided: bool = False,
                     folded: bool = False) -> tf.Tensor:
    """dS^c/dx per image (Simonyan et al. 2014, eq. 3), through guided ReLUs when `guided`, with each
    BatchNorm folded into its convolution when `folded`."""
    image_shape = tuple(x.shape[1:])
    fn = _compiled(model, ("input_gradients", guided, folded, image_shape),
                   lambda ref: _build_input_gradients(ref, image_shape, guided, folded))
    return fn(x, targets)


def _perturbed_scores(model: keras.Model, images: tf.Tensor, targets: tf.Tensor, score: str) -> tf.Tensor:
    """The target's score (softmax probability or logit) for a chunk of changed images."""
    logits = _logits(model, images, folded=True)
    values = tf.nn.softmax(logits, axis=-1) if score == "probability" else logits
    return tf.gather(values, targets, axis=1, batch_dims=1)


def _baseline(model: keras.Model, x: tf.Tensor, baseline) -> tf.Tensor:
    """The reference image x' in the model's input space: a pixel value made uniform image, or a batch as given."""
    if tf.is_tensor(baseline) or isinstance(baseline, np.ndarray):
        reference = tf.cast(tf.convert_to_tensor(baseline), x.dtype)
        if tuple(reference.shape) not in (tuple(x.shape), tuple(x.shape[1:])):
            raise ValueError(f"a baseline array must be shaped like the batch {tuple(x.shape)} or one image "
                             f"{tuple(x.shape[1:])}, got {tuple(reference.shape)}")
        return tf.broadcast_to(reference, tf.shape(x))
    colour = tf.constant(contract.baseline_pixels(model, baseline), x.dtype)
    return tf.broadcast_to(colour, tf.shape(x))


def _chunks(total: int, size: int):
    """Index ranges first .. first+size-1 covering 0 .. total-1, as tensors."""
    for first in range(0, total, size):
        yield tf.range(first, min(first + size, total), dtype=tf.int64)


def _noisy_copies(x: tf.Tensor, spread: tf.Tensor, key: int, first: int, count: int):
    """Noisy samples first .. first+count-1: sample j is x_{j % B} + s_{j % B} * noise_j; and which
    image each copies. The noise of sample j comes from (key, j): the same whatever the chunk size, and
    the same as PyTorch's."""
    return _noisy_copies_graph(x, spread, tf.constant(key, tf.int64), tf.constant(first, tf.int64),
                               tf.constant(count, tf.int64))


_SCALAR = tf.TensorSpec([], tf.int64)


@tf.function(input_signature=[tf.TensorSpec([None] * 4, tf.float32), tf.TensorSpec([None], tf.float32), _SCALAR,
                              _SCALAR, _SCALAR], autograph=False)
def _noisy_copies_graph(x, spread, key, first, count):
    shape = tf.shape(x, out_type=tf.int64)
    images = tf.range(first, first + count) % shape[0]
    noise = _hashed_normal(key, first, count, shape[1:])
    return tf.gather(x, images) + tf.gather(spread, images)[:, None, None, None] * noise, images


def _hashed_normal(key, first, count, hwc) -> tf.Tensor:
    """contract.hashed_normal in TensorFlow: (count, H, W, C) standard normals."""
    hwc = tf.cast(hwc, tf.int64)
    elements = tf.reduce_prod(hwc)
    counter = tf.range(first * elements, (first + count) * elements, dtype=tf.int64)
    low = tf.bitwise.bitwise_and(counter, contract.HASH_MASK)
    high = tf.bitwise.right_shift(counter, tf.constant(32, tf.int64))
    bits = _mix(tf.bitwise.bitwise_xor(_mix(tf.bitwise.bitwise_xor(low, key)), high))
    u1 = (tf.cast(tf.bitwise.right_shift(bits, tf.constant(16, tf.int64)), tf.float32) + 0.5) / 65536.0
    u2 = (tf.cast(tf.bitwise.bitwise_and(bits, 0xFFFF), tf.float32) + 0.5) / 65536.0
    normal = tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * np.pi * u2)
    return tf.reshape(normal, tf.concat([[-1], hwc], axis=0))


def _mix(v: tf.Tensor) -> tf.Tensor:
    """contract._mix on int64 tensors."""
    def shifted_xor(v):
        return tf.bitwise.bitwise_xor(v, tf.bitwise.right_shift(v, tf.constant(16, tf.int64)))

    for _ in range(2):
        v = tf.bitwise.bitwise_and(shifted_xor(v) * contract.HASH_MULTIPLIER, contract.HASH_MASK)
    return shifted_xor(v)


# ---------------------------------------------------------------------------------------------
# Outputs: resizing and normalising on the device, numpy at the end


def _upsample(maps: tf.Tensor, size) -> tf.Tensor:
    """(B, h, w) -> (B, H, W), bilinear with half-pixel centres (torch's align_corners=False)."""
    return tf.image.resize(maps[..., None], size, method="bilinear", antialias=False)[..., 0]


def _normalise(maps: tf.Tensor) -> tf.Tensor:
    """Per image (m - min) / (max - min); a constant map becomes zeros."""
    axes = list(range(1, maps.shape.rank))
    low = tf.reduce_min(maps, axis=axes, keepdims=True)
    high = tf.reduce_max(maps, axis=axes, keepdims=True)
    return tf.math.divide_no_nan(maps - low, high - low)


def _normalise_signed(maps: tf.Tensor) -> tf.Tensor:
    """Per image 0.5 + m / (2 max|m|): zero stays mid-grey; an all-zero map stays 0.5."""
    axes = list(range(1, maps.shape.rank))
    return 0.5 + tf.math.divide_no_nan(maps, 2 * tf.reduce_max(tf.abs(maps), axis=axes, keepdims=True))


def _heatmap(maps: tf.Tensor, x: tf.Tensor, normalize: bool, upsample: bool) -> np.ndarray:
    """(B, h, w) maps -> numpy (B, H, W) float32, upsampled to the input and normalised as asked."""
    if upsample:
        maps = _upsample(maps, x.shape[1:3])
    if normalize:
        maps = _normalise(maps)
    return maps.numpy().astype(np.float32)


def _signed_map(maps: tf.Tensor, normalize: bool) -> np.ndarray:
    """(B, H, W, C) signed maps -> numpy (B, H, W, C) float32, normalised around 0.5 as asked."""
    if normalize:
        maps = _normalise_signed(maps)
    return maps.numpy().astype(np.float32)


# ---------------------------------------------------------------------------------------------
# The methods, in the table's order


@contract.shared_doc("cam")
def cam(model: keras.Model, x, target=None, layer: str | None = None, normalize: bool = True,
        upsample: bool = True, strict: bool = True) -> np.ndarray:
    """Keras: w is the kernel of the model's last Dense layer."""
    x = _check_input(model, x)
    targets = _targets(model, x, target)
    features, weight, _, logits = _cam_parts(model, x, layer, strict)
    targets, _ = _scores(logits, targets)
    maps = tf.einsum("bk,bhwk->bhw", tf.gather(weight, targets), features)  # M_c(x, y) = sum_k w_k^c f_k(x, y)
    return _heatmap(maps, x, normalize, upsample)


@contract.shared_doc("cam_parts")
def cam_parts(model: keras.Model, x, layer: str | None = None,
              strict: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = _check_input(model, x)
    features, weight, bias, _ = _cam_parts(model, x, layer, strict)
    features = tf.transpose(features, (0, 3, 1, 2))  # channels first, as in PyTorch
    return tuple(t.numpy().astype(np.float32) for t in (features, weight, bias))


@contract.shared_doc("layer_gradients")
def layer_gradients(model: keras.Model, x, target=None,
                    layer: str | None = None) -> tuple[np.ndarray, np.ndarray]:
    x = _check_input(model, x)
    activations, gradients = _layer_gradients(model, x, _targets(model, x, target), layer)
    return tuple(tf.transpose(t, (0, 3, 1, 2)).numpy().astype(np.float32) for t in (activations, gradients))


@contract.shared_doc("grad_cam")
def grad_cam(model: keras.Model, x, target=None, layer: str | None = None, normalize: bool = True,
             upsample: bool = True, counterfactual: bool = False) -> np.ndarray:
    x = _check_input(model, x)
    targets = _targets(model, x, target)
    return _heatmap(_grad_cam_maps(model, x, targets, layer, counterfactual), x, normalize, upsample)


@contract.shared_doc("grad_cam_plus_plus")
def grad_cam_plus_plus(model: keras.Model, x, target=None, layer: str | None = None, normalize: bool = True,
                       upsample: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    activations, gradients = _layer_gradients(model, x, _targets(model, x, target), layer)
    squared = tf.square(gradients)
    denominator = 2 * squared + tf.reduce_sum(activations, axis=[1, 2], keepdims=True) * gradients ** 3  # eq. 19
    alpha = tf.math.divide_no_nan(squared, denominator)
    weights = tf.reduce_sum(alpha * tf.nn.relu(gradients), axis=[1, 2], keepdims=True)  # eq. 7, positive gradients only
    return _heatmap(tf.nn.relu(tf.reduce_sum(weights * activations, axis=-1)), x, normalize, upsample)


@contract.shared_doc("layer_cam")
def layer_cam(model: keras.Model, x, target=None, layer: str | None = None, normalize: bool = True,
              upsample: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    activations, gradients = _layer_gradients(model, x, _targets(model, x, target), layer)
    return _heatmap(tf.nn.relu(tf.reduce_sum(tf.nn.relu(gradients) * activations, axis=-1)), x, normalize, upsample)


@contract.shared_doc("hires_cam")
def hires_cam(model: keras.Model, x, target=None, layer: str | None = None, normalize: bool = True,
              upsample: bool = True, relu: bool = False) -> np.ndarray:
    x = _check_input(model, x)
    activations, gradients = _layer_gradients(model, x, _targets(model, x, target), layer)
    maps = tf.reduce_sum(gradients * activations, axis=-1)
    return _heatmap(tf.nn.relu(maps) if relu else maps, x, normalize, upsample)


@contract.shared_doc("score_cam")
def score_cam(model: keras.Model, x, target=None, layer: str | None = None, normalize: bool = True,
              upsample: bool = True, top_k: int | None = None, batch_size: int | None = None,
              score: str = "probability") -> np.ndarray:
    x = _check_input(model, x)
    batch_size = chunk_size(batch_size, x)
    contract.check_score(score)
    targets = _targets(model, x, target)
    tap = _feature_layer(model, x, layer)
    image_shape = tuple(x.shape[1:])
    fn = _compiled(model, ("features", tap.name, image_shape),
                   lambda ref: _build_features(ref, image_shape, tap.name))
    logits, activations = fn(x)
    _check_feature_shape(model, x, tap, tf.shape(activations).numpy())
    targets, _ = _scores(logits, targets)
    activations = tf.transpose(activations, (0, 3, 1, 2))  # (B, K, h, w): a channel's map is one slice
    contract.check_top_k(top_k, int(activations.shape[1]), tap.name)
    if top_k is not None:  # Faster Score-CAM: the channels of largest spatial variance
        variance = tf.math.reduce_variance(tf.reshape(activations, (*activations.shape[:2], -1)), axis=2)
        activations = tf.gather(activations, tf.math.top_k(variance, top_k).indices, batch_dims=1)
    batch, channels, height, width = activations.shape
    floor = _perturbed_scores(model, tf.zeros_like(x), targets, score)  # p_c(X_b), X_b = X * 0
    flat = tf.reshape(activations, (-1, height, width))
    masked_scores = _compiled(model, ("masked_scores", image_shape, score),
                              lambda ref: _build_masked_scores(ref, image_shape, score))
    scores = [masked_scores(x, flat, pairs, targets, tf.constant(channels, tf.int64))
              for pairs in _chunks(batch * channels, batch_size)]  # (image, channel) pairs, not per image
    weights = tf.reshape(tf.concat(scores, axis=0), (batch, channels)) - floor[:, None]  # p_c(X * H^k) - p_c(X_b)
    maps = tf.nn.relu(tf.einsum("bk,bkhw->bhw", weights, activations))
    return _heatmap(maps, x, normalize, upsample)


@contract.shared_doc("occlusion")
def occlusion(model: keras.Model, x, target=None, patch: int = 32, stride: int = 16, baseline=contract.GREY,
              batch_size: int | None = None, score: str = "probability", normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    batch_size = chunk_size(batch_size, x)
    contract.check_score(score)
    height, width = int(x.shape[1]), int(x.shape[2])
    targets = _clean_targets(model, x, target)
    contract.check_patch(patch, stride, height, width)
    fill = _baseline(model, x, baseline)
    covered = tf.constant(contract.patch_masks(height, width, patch, stride))
    positions = int(covered.shape[0])
    clean = _perturbed_scores(model, x, targets, score)
    drops = []
    for pairs in _chunks(int(x.shape[0]) * positions, batch_size):  # (image, position) pairs
        images, mask = pairs // positions, tf.gather(covered, pairs % positions)[..., None]
        occluded = tf.where(mask, tf.gather(fill, images), tf.gather(x, images))
        drops.append(tf.gather(clean, images) - _perturbed_scores(model, occluded, tf.gather(targets, images), score))
    coverage = tf.cast(covered, tf.float32)
    drops = tf.reshape(tf.concat(drops, axis=0), (-1, positions))
    maps = tf.einsum("bp,phw->bhw", drops, coverage) / tf.reduce_sum(coverage, axis=0)
    return _heatmap(maps, x, normalize, upsample=False)


@contract.shared_doc("saliency")
def saliency(model: keras.Model, x, target=None, normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    gradients = _input_gradients(model, x, _targets(model, x, target))
    return _heatmap(tf.reduce_max(tf.abs(gradients), axis=-1), x, normalize, upsample=False)


@contract.shared_doc("smooth_grad")
def smooth_grad(model: keras.Model, x, target=None, n: int = contract.SMOOTH_GRAD_DEFAULT_N,
                sigma: float = contract.SMOOTH_GRAD_DEFAULT_SIGMA, batch_size: int | None = 32,
                squared: bool = False, seed: int | None = None, normalize: bool = True,
                method: str = "saliency", layer: str | None = None) -> np.ndarray:
    """Keras: without a seed the hash's key comes from numpy's global generator (xt.seed_everything seeds it)."""
    x = _check_input(model, x)
    contract.check_smooth_grad(n, sigma, batch_size)
    contract.check_smooth_grad_method(method, layer)
    targets = _clean_targets(model, x, target)
    spread = float(sigma) * (tf.reduce_max(x, axis=[1, 2, 3]) - tf.reduce_min(x, axis=[1, 2, 3]))
    key = contract.hash_key(seed if seed is not None else np.random.randint(2**31))
    samples, total = n * int(x.shape[0]), None
    chunk = batch_size or samples
    for first in range(0, samples, chunk):  # chunks of noisy images, not a loop over images
        noisy, images = _noisy_copies(x, spread, key, first, min(chunk, samples - first))
        if method == "saliency":
            maps = _input_gradients(model, noisy, tf.gather(targets, images))
        else:
            maps = _grad_cam_maps(model, noisy, tf.gather(targets, images), layer)  # raw, ReLU'd, (chunk, h, w)
        if squared:
            maps = tf.square(maps)
        part = tf.math.unsorted_segment_sum(maps, images, int(x.shape[0]))
        total = part if total is None else total + part
    mean = total / n
    if method == "grad_cam":
        return _heatmap(mean, x, normalize, upsample=True)
    return _heatmap(tf.reduce_max(mean if squared else tf.abs(mean), axis=-1), x, normalize, upsample=False)


@contract.shared_doc("guided_backprop")
def guided_backprop(model: keras.Model, x, target=None, normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    return _signed_map(_input_gradients(model, x, _targets(model, x, target), guided=True), normalize)


@contract.shared_doc("guided_grad_cam")
def guided_grad_cam(model: keras.Model, x, target=None, layer: str | None = None,
                    normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    targets = _clean_targets(model, x, target)
    coarse = _upsample(_grad_cam_maps(model, x, targets, layer), x.shape[1:3])
    guided = _input_gradients(model, x, targets, guided=True)
    return _signed_map(guided * coarse[..., None], normalize)


@contract.shared_doc("integrated_gradients")
def integrated_gradients(model: keras.Model, x, target=None, baseline=contract.BLACK,
                         steps: int = contract.INTEGRATED_GRADIENTS_DEFAULT_STEPS, batch_size: int | None = None,
                         normalize: bool = True) -> np.ndarray:
    x = _check_input(model, x)
    contract.check_steps(steps)
    batch_size = chunk_size(batch_size, x)
    targets = _clean_targets(model, x, target)
    start = _baseline(model, x, baseline)
    path = x - start
    batch, total = int(x.shape[0]), tf.zeros_like(x)
    for samples in _chunks(steps * batch, batch_size):  # (step, image) pairs
        images = samples % batch
        alpha = tf.cast(samples // batch + 1, x.dtype) / steps  # eq. 3: k / m
        points = tf.gather(start, images) + alpha[:, None, None, None] * tf.gather(path, images)
        gradients = _input_gradients(model, points, tf.gather(targets, images), folded=True)
        total += tf.math.unsorted_segment_sum(gradients, images, batch)
    maps = tf.reduce_sum(path * total / steps, axis=-1)  # eq. 1, summed over colour channels
    return _heatmap(tf.abs(maps) if normalize else maps, x, normalize, upsample=False)
