"""Explanation methods for Keras models: CAM, Grad-CAM, saliency, SmoothGrad, Guided Backprop, Guided Grad-CAM.

The same public names and behaviour as `utils.torch`; the shared conventions and error messages
live in `utils.explain`. `x` is a batch from `xt.preprocess`, shaped (B, H, W, 3).

How it works, in three ideas a reader can reuse:

- Reading an inner layer. `keras.Model(model.inputs, model.get_layer(name).output)` fails with
  "Graph disconnected" when the layer sits inside a nested model. Instead we run the whole model
  and, for the duration of that one call, replace the layer's `call` by a wrapper that records its
  output (`_tap`). Any layer can be read this way, however deeply nested.
- Changing the backward pass. Guided Backprop swaps every ReLU for one with a custom gradient, and
  every method removes a final softmax (scores are pre-softmax logits), again only while the model
  runs (`_patched`). A `finally` puts every attribute back exactly, even after an error.
- Speed. Each computation is a `tf.function`, traced once per (model, method, layer, image size)
  and cached (`_compiled`). The swaps above are in place only while tracing: the traced graph keeps
  them, the model itself is left as it was. Later calls, with any batch size or target, run the
  compiled graph: one forward and one backward pass, no Python per layer.
"""
from __future__ import annotations

import contextlib
import weakref

import keras
import numpy as np
import tensorflow as tf

from .. import explain

# ----------------------------------------------------------------------------------------------
# Finding layers (nested models included)
# ----------------------------------------------------------------------------------------------


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


def feature_layers(model: keras.Model, x=None) -> list[str]:
    """Names of the layers that output a 4-D feature map with height * width > 1, in forward order.

    Layers of nested models are included (and the nested model itself, after its layers). Without
    `x` the shapes come from the model's graph (unknown sizes count); with `x` one image is run
    through the model and the shapes it produces decide (a layer that runs twice is left out).
    """
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


def _feature_layer(model: keras.Model, x, name: str | None):
    """The layer `name` after checking it outputs a feature map; None: the last feature map."""
    if name is None:
        candidates = _static_feature_layers(model) or [_find_layer(model, n) for n in feature_layers(model, x)]
        if not candidates:
            raise ValueError("the model has no convolutional feature map (a 4-D layer output with height and width)")
        # A nested base model outputs its last layer's map: name that layer rather than the model
        leaves = [layer for layer in candidates if not isinstance(layer, keras.Model)]
        return (leaves or candidates)[-1]
    layer = _find_layer(model, name) if isinstance(name, str) else None
    if layer is None:
        raise explain.unknown_layer(name, feature_layers(model, x))
    shape = _static_shape(layer)
    if shape is not None and not _is_feature_map(shape):
        raise explain.not_a_feature_map(name, shape, feature_layers(model, x))
    return layer


def _check_feature_shape(model: keras.Model, x, layer, shape) -> None:
    """The run-time check for layers whose size the graph did not know (e.g. 1 x 1 on small inputs)."""
    shape = tuple(int(size) for size in shape)
    if not _is_feature_map(shape):
        raise explain.not_a_feature_map(layer.name, shape, feature_layers(model, x))


# ----------------------------------------------------------------------------------------------
# Temporary changes to the model: taps, guided ReLUs, no softmax
# ----------------------------------------------------------------------------------------------

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


def _guided_relu(max_value=None):
    """ReLU (or ReLU capped at `max_value`) whose gradient follows Springenberg et al. 2015, eq. in fig. 1:
    the gradient passes only where it is positive and the input is positive (and below the cap)."""
    @tf.custom_gradient
    def relu(z):
        y = tf.nn.relu(z) if max_value is None else tf.minimum(tf.nn.relu(z), tf.cast(max_value, z.dtype))

        def grad(upstream):
            keep = (upstream > 0) & (z > 0)
            if max_value is not None:
                keep &= z < max_value
            return tf.where(keep, upstream, tf.zeros_like(upstream))
        return y, grad
    return relu


_RELU = (keras.activations.relu, keras.ops.relu, tf.nn.relu)
_RELU6 = (keras.activations.relu6, keras.ops.relu6, tf.nn.relu6)


def _guided_relus(model: keras.Model):
    """The changes that make every ReLU and ReLU6 of the model guided, in nested models too:
    keras.layers.ReLU, Activation("relu"/"relu6") and layers with activation="relu"/"relu6" built in."""
    changes = []
    for layer in _all_layers(model):
        if isinstance(layer, keras.layers.ReLU):
            if not layer.negative_slope and not layer.threshold:  # a leaky or shifted ReLU stays as it is
                relu = _guided_relu(layer.max_value)
                changes.append((layer, "call", lambda inputs, *args, _relu=relu, **kwargs: _relu(inputs)))
        else:
            activation = layer.__dict__.get("activation")
            if any(activation is f for f in _RELU):
                changes.append((layer, "activation", _guided_relu()))
            elif any(activation is f for f in _RELU6):
                changes.append((layer, "activation", _guided_relu(6.0)))
    return changes


def _forward(model: keras.Model, x, tape=None, tap=None, guided=False):
    """Pre-softmax scores of model(x) in inference mode, and the output of the layer `tap` (watched
    by `tape`). The model is changed only while it runs."""
    tapped = []

    def record(out):
        if tape is not None:
            tape.watch(out)
        tapped.append(out)
    changes = _without_softmax(model) + (_guided_relus(model) if guided else []) + (_tap(tap, record) if tap else [])
    with _patched(changes):
        logits = tf.cast(model(x, training=False), tf.float32)
    if tap is None:
        return logits, None
    if len(tapped) != 1:
        if len(tapped) > 1:
            raise explain.layer_called_more_than_once(tap.name, len(tapped))
        raise ValueError(f"layer {tap.name!r} does not run when the model computes its output; choose another")
    return logits, tapped[0]


def _targets_and_scores(logits, targets):
    """Resolve the targets (-1: the image's top-1 class) and take each image's score S^c."""
    targets = tf.where(targets < 0, tf.argmax(logits, axis=-1), targets)
    scores = tf.gather(logits, targets, axis=1, batch_dims=1)
    return targets, scores


# ----------------------------------------------------------------------------------------------
# Compiled computations, cached per model
# ----------------------------------------------------------------------------------------------

# model -> (its structure, {(method, layer, image shape, ...): tf.function}). Keyed weakly: a model
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
        # One function per (model, method, layer, image size) is the design, but TensorFlow's retracing
        # detector keys on the Python code object: after a few models it takes each new model's first trace
        # for a retrace and logs a warning (to stdout in Jupyter, where nbval compares it). Silence only that.
        function._omit_frequent_tracing_warning = True
        return function
    return decorate


_TARGETS = tf.TensorSpec([None], tf.int64)


def _build_logits(model_ref, image_shape):
    @_function(image_shape)
    def logits(x):
        return _forward(model_ref(), x)[0]
    return logits


def _build_input_gradient(model_ref, image_shape, guided: bool):
    """dS^c/dx per image (Simonyan et al. 2014, eq. 3), through guided ReLUs when `guided`."""
    @_function(image_shape, _TARGETS)
    def input_gradient(x, targets):
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(x)
            logits, _ = _forward(model_ref(), x, guided=guided)
            _, scores = _targets_and_scores(logits, targets)
        # The gradient of a vector is that of its sum; the images are independent, so each image
        # gets the gradient of its own score (never pooled over the batch).
        return tape.gradient(scores, x)
    return input_gradient


def _grad_cam_maps(model: keras.Model, x, targets, layer_name: str):
    """Grad-CAM at one layer, raw and at the layer's resolution (Selvaraju et al. 2017, eqs. 1-2), and the
    layer's output shape; called while tracing."""
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        logits, features = _forward(model, x, tape=tape, tap=_find_layer(model, layer_name))
        _, scores = _targets_and_scores(logits, targets)
    grads = tape.gradient(scores, features)  # dS^c/dA^k_ij of each image's own score, (B, h, w, K)
    features, grads = tf.cast(features, tf.float32), tf.cast(grads, tf.float32)
    alpha = tf.reduce_mean(grads, axis=[1, 2])  # eq. 1: alpha_k^c, per image
    return tf.nn.relu(tf.einsum("bhwk,bk->bhw", features, alpha)), tf.shape(features)  # eq. 2


def _build_grad_cam(model_ref, image_shape, layer_name: str):
    """Grad-CAM at one layer, raw and at the layer's resolution."""
    @_function(image_shape, _TARGETS)
    def grad_cam_raw(x, targets):
        return _grad_cam_maps(model_ref(), x, targets, layer_name)
    return grad_cam_raw


def _last_dense(model: keras.Model):
    return next((layer for layer in reversed(list(_all_layers(model))) if isinstance(layer, keras.layers.Dense)),
                None)


def _cam_head(model: keras.Model, x: tf.Tensor, layer_name: str):
    """While tracing: the feature map at the layer, the last Dense layer's kernel (K, classes) and bias,
    the logits, and how far the logits are from what a GAP -> Dense head computes."""
    dense = _last_dense(model)
    logits, features = _forward(model, x, tap=_find_layer(model, layer_name))
    features = tf.cast(features, tf.float32)
    kernel = tf.cast(dense.kernel, tf.float32)
    if kernel.shape[0] != features.shape[-1] or kernel.shape[1] != logits.shape[-1]:
        raise explain.no_cam_head(
            f"the last Dense layer {dense.name!r} maps {kernel.shape[0]} inputs to {kernel.shape[1]} "
            f"outputs, but {layer_name!r} has {features.shape[-1]} channels and the model "
            f"{logits.shape[-1]} outputs")
    bias = tf.cast(dense.bias, tf.float32) if dense.bias is not None else tf.zeros(kernel.shape[1])
    mismatch = tf.reduce_max(tf.abs(tf.reduce_mean(features, axis=[1, 2]) @ kernel + bias - logits))
    return features, kernel, bias, logits, mismatch


def _build_cam(model_ref, image_shape, layer_name: str):
    """CAM at one layer, raw (Zhou et al. 2016, eq. 2), plus how far the logits are from the GAP head."""
    @_function(image_shape, _TARGETS)
    def cam_raw(x, targets):
        features, kernel, _, logits, mismatch = _cam_head(model_ref(), x, layer_name)
        targets, _ = _targets_and_scores(logits, targets)
        weights = tf.gather(tf.transpose(kernel), targets)  # w_k^c of each image's class, (B, K)
        cam = tf.einsum("bhwk,bk->bhw", features, weights)  # M_c(x, y) = sum_k w_k^c f_k(x, y)
        return cam, mismatch, tf.reduce_max(tf.abs(logits)), tf.shape(features)
    return cam_raw


def _build_cam_parts(model_ref, image_shape, layer_name: str):
    """The feature map at one layer, the last Dense layer's kernel and bias, and the GAP-head check."""
    @_function(image_shape)
    def parts(x):
        features, kernel, bias, logits, mismatch = _cam_head(model_ref(), x, layer_name)
        return features, kernel, bias, mismatch, tf.reduce_max(tf.abs(logits)), tf.shape(features)
    return parts


def _cam_layer(model: keras.Model, x: tf.Tensor, layer: str | None):
    """The feature layer CAM reads, once the model is known to end in a Dense layer."""
    if _last_dense(model) is None:
        raise explain.no_cam_head("the model has no Dense layer")
    return _feature_layer(model, x, layer)


def _check_cam_head(model: keras.Model, x: tf.Tensor, tap, features_shape, mismatch, largest, strict: bool) -> None:
    _check_feature_shape(model, x, tap, features_shape.numpy())
    if strict and float(mismatch) > 1e-3 * (1 + float(largest)):
        raise explain.no_cam_head(f"the logits differ from mean_xy({tap.name}) @ W + b of the last Dense layer "
                                  f"by up to {float(mismatch):.3g}, so the head is not global average pooling "
                                  f"followed by that layer")


def _mix(v: tf.Tensor) -> tf.Tensor:
    def shifted_xor(v):
        return tf.bitwise.bitwise_xor(v, tf.bitwise.right_shift(v, tf.constant(16, tf.int64)))

    for _ in range(2):
        v = tf.bitwise.bitwise_and(shifted_xor(v) * explain.HASH_MULTIPLIER, explain.HASH_MASK)
    return shifted_xor(v)


def _hashed_normal(key: tf.Tensor, sample_ids: tf.Tensor, image_shape) -> tf.Tensor:
    """explain.hashed_normal in TensorFlow: (len(sample_ids), H, W, C) standard normals."""
    elements = int(np.prod(image_shape))
    counter = sample_ids[:, None] * elements + tf.range(elements, dtype=tf.int64)[None, :]
    low, high = tf.bitwise.bitwise_and(counter, explain.HASH_MASK), tf.bitwise.right_shift(counter, tf.constant(32, tf.int64))
    bits = _mix(tf.bitwise.bitwise_xor(_mix(tf.bitwise.bitwise_xor(low, key)), high))
    u1 = (tf.cast(tf.bitwise.right_shift(bits, tf.constant(16, tf.int64)), tf.float32) + 0.5) / 65536.0
    u2 = (tf.cast(tf.bitwise.bitwise_and(bits, 0xFFFF), tf.float32) + 0.5) / 65536.0
    normal = tf.sqrt(-2.0 * tf.math.log(u1)) * tf.cos(2.0 * np.pi * u2)
    return tf.reshape(normal, (-1, *image_shape))


def _noisy_copies(x, noise_std, key, sample_ids, image_shape):
    """Noisy samples x_{j % B} + s_{j % B} * noise_j for the given sample ids j, which images they copy, and B."""
    batch = tf.shape(x, out_type=tf.int64)[0]
    images = sample_ids % batch  # sample j is a noisy copy of image j % B
    # Noise of sample j from (key, j): the same whatever the chunk size, and the same as PyTorch's.
    noise = _hashed_normal(key, sample_ids, image_shape)
    noisy = tf.gather(x, images) + noise * tf.gather(noise_std, images)[:, None, None, None]
    return noisy, images, batch


_SMOOTH_GRAD_SPECS = (tf.TensorSpec([None], tf.float32), _TARGETS, tf.TensorSpec([], tf.int64),
                      tf.TensorSpec([None], tf.int64))


def _build_smooth_grad(model_ref, image_shape, squared: bool):
    """Sum over one chunk of noisy samples of dS^c/dx (or its square), added up per image."""
    @_function(image_shape, *_SMOOTH_GRAD_SPECS)
    def noisy_gradient_sum(x, noise_std, targets, key, sample_ids):
        noisy, images, batch = _noisy_copies(x, noise_std, key, sample_ids, image_shape)
        with tf.GradientTape(watch_accessed_variables=False) as tape:
            tape.watch(noisy)
            logits, _ = _forward(model_ref(), noisy)
            _, scores = _targets_and_scores(logits, tf.gather(targets, images))
        grads = tape.gradient(scores, noisy)
        if squared:
            grads = tf.square(grads)
        return tf.math.unsorted_segment_sum(grads, images, batch)
    return noisy_gradient_sum


def _build_smooth_grad_cam(model_ref, image_shape, layer_name: str, squared: bool):
    """Sum over one chunk of noisy samples of the raw Grad-CAM map at one layer (or its square), added up
    per image, at the layer's resolution; and the layer's output shape."""
    @_function(image_shape, *_SMOOTH_GRAD_SPECS)
    def noisy_grad_cam_sum(x, noise_std, targets, key, sample_ids):
        noisy, images, batch = _noisy_copies(x, noise_std, key, sample_ids, image_shape)
        maps, features_shape = _grad_cam_maps(model_ref(), noisy, tf.gather(targets, images), layer_name)
        if squared:
            maps = tf.square(maps)
        return tf.math.unsorted_segment_sum(maps, images, batch), features_shape
    return noisy_grad_cam_sum


# ----------------------------------------------------------------------------------------------
# Inputs and outputs
# ----------------------------------------------------------------------------------------------


def _image_batch(x) -> tf.Tensor:
    """Check the batch (4-D, not empty, finite) and return it as float32."""
    explain.check_batch(tuple(np.shape(x)) if not tf.is_tensor(x) else tuple(x.shape), channels_last=True)
    x = tf.cast(tf.convert_to_tensor(x), tf.float32)
    if not bool(tf.reduce_all(tf.math.is_finite(x))):
        raise explain.non_finite_input()
    return x


def _num_classes(model: keras.Model, x) -> int:
    try:
        if model.outputs[0].shape[-1] is not None:
            return int(model.outputs[0].shape[-1])
    except (AttributeError, IndexError, TypeError, ValueError):
        pass  # a model without a symbolic graph: ask it
    return int(_compiled(model, ("logits", tuple(x.shape[1:])),
                         lambda ref: _build_logits(ref, tuple(x.shape[1:])))(x[:1]).shape[-1])


def _targets(model: keras.Model, x, target) -> tf.Tensor:
    """The checked targets as a (B,) int64 tensor; -1 stands for the image's top-1 class."""
    targets = explain.check_targets(target, int(x.shape[0]), _num_classes(model, x))
    return tf.fill([x.shape[0]], tf.constant(-1, tf.int64)) if targets is None else tf.constant(targets)


def _rescale(maps: tf.Tensor) -> tf.Tensor:
    """Per image to [0, 1] by (m - min) / (max - min); a constant map becomes zeros."""
    axes = list(range(1, maps.shape.rank))
    low = tf.reduce_min(maps, axis=axes, keepdims=True)
    high = tf.reduce_max(maps, axis=axes, keepdims=True)
    return tf.math.divide_no_nan(maps - low, high - low)


def _rescale_signed(maps: tf.Tensor) -> tf.Tensor:
    """Per image 0.5 + m / (2 max|m|): zero maps to 0.5, the sign is kept."""
    axes = list(range(1, maps.shape.rank))
    return 0.5 + tf.math.divide_no_nan(maps, 2 * tf.reduce_max(tf.abs(maps), axis=axes, keepdims=True))


def _upsample(maps: tf.Tensor, size) -> tf.Tensor:
    """(B, h, w) -> (B, H, W), bilinear with half-pixel centres (torch's align_corners=False)."""
    return tf.image.resize(maps[..., None], size, method="bilinear", antialias=False)[..., 0]


def _heatmap(maps: tf.Tensor, x: tf.Tensor, normalize: bool, upsample: bool) -> np.ndarray:
    if upsample:
        maps = _upsample(maps, x.shape[1:3])
    return (_rescale(maps) if normalize else maps).numpy().astype(np.float32)


# ----------------------------------------------------------------------------------------------
# The methods
# ----------------------------------------------------------------------------------------------


def cam(model: keras.Model, x, target=None, layer: str | None = None, normalize: bool = True,
        upsample: bool = True, strict: bool = True) -> np.ndarray:
    """Class activation map (Zhou et al. 2016, eq. 2): M_c(x, y) = sum_k w_k^c f_k(x, y), no ReLU.

    `w` is the kernel of the last Dense layer and `f` the feature map that global average pooling
    reduces (`layer`, default the last one). The head is checked on the batch itself: the logits must
    equal mean_xy(f) @ W + b, so that logit_c = mean_xy M_c + b_c; otherwise a ValueError points to
    grad_cam. Returns (B, H, W) float32 (`upsample=False`: the feature map's h x w).

    strict=False skips that check and only requires the last Dense layer to take as many inputs as
    `f` has channels: the same formula then applies to any pooling -> Dense head, e.g. global max
    pooling, as in the CAM paper's GAP-vs-GMP comparison (there mean_xy M_c + b_c is not the logit).
    """
    x = _image_batch(x)
    targets = _targets(model, x, target)
    tap = _cam_layer(model, x, layer)
    image_shape = tuple(x.shape[1:])
    fn = _compiled(model, ("cam", tap.name, image_shape), lambda ref: _build_cam(ref, image_shape, tap.name))
    maps, mismatch, largest, features_shape = fn(x, targets)
    _check_cam_head(model, x, tap, features_shape, mismatch, largest, strict)
    return _heatmap(maps, x, normalize, upsample)


def grad_cam(model: keras.Model, x, target=None, layer: str | None = None, normalize: bool = True,
             upsample: bool = True) -> np.ndarray:
    """Grad-CAM (Selvaraju et al. 2017, eqs. 1-2) at any convolutional layer, nested models included.

    alpha_k^c = mean_ij dS^c/dA^k_ij with S^c the pre-softmax score; map = ReLU(sum_k alpha_k^c A^k).
    `layer` None: the last feature map. Returns (B, H, W) float32, upsampled bilinearly to the input
    (`upsample=False`: the layer's h x w).
    """
    x = _image_batch(x)
    targets = _targets(model, x, target)
    maps = _grad_cam_raw(model, x, targets, layer)
    return _heatmap(maps, x, normalize, upsample)


def _grad_cam_raw(model: keras.Model, x: tf.Tensor, targets: tf.Tensor, layer: str | None) -> tf.Tensor:
    tap = _feature_layer(model, x, layer)
    image_shape = tuple(x.shape[1:])
    fn = _compiled(model, ("grad_cam", tap.name, image_shape),
                   lambda ref: _build_grad_cam(ref, image_shape, tap.name))
    maps, features_shape = fn(x, targets)
    _check_feature_shape(model, x, tap, features_shape.numpy())
    return maps


def _input_gradient(model: keras.Model, x: tf.Tensor, targets: tf.Tensor, guided: bool) -> tf.Tensor:
    image_shape = tuple(x.shape[1:])
    fn = _compiled(model, ("input_gradient", guided, image_shape),
                   lambda ref: _build_input_gradient(ref, image_shape, guided))
    return fn(x, targets)


def saliency(model: keras.Model, x, target=None, normalize: bool = True) -> np.ndarray:
    """Vanilla gradient (Simonyan et al. 2014, sec. 3.1): max over channels of |dS^c/dx|, (B, H, W)."""
    x = _image_batch(x)
    grads = _input_gradient(model, x, _targets(model, x, target), guided=False)
    return _heatmap(tf.reduce_max(tf.abs(grads), axis=-1), x, normalize, upsample=False)


def smooth_grad(model: keras.Model, x, target=None, n: int = explain.SMOOTH_GRAD_DEFAULT_N,
                sigma: float = explain.SMOOTH_GRAD_DEFAULT_SIGMA, batch_size: int | None = 32,
                squared: bool = False, seed: int | None = None, normalize: bool = True,
                method: str = "saliency", layer: str | None = None) -> np.ndarray:
    """SmoothGrad (Smilkov et al. 2017, eq. 3): the input gradient averaged over `n` noisy copies.

    Noise N(0, s^2) with s = sigma * (max - min) of each image; the target classes come from the
    clean images. The n * B noisy images run in chunks of at most `batch_size` (None: all at once),
    so memory does not grow with n. `squared`: average the squared gradients (SmoothGrad-Squared).
    An int `seed` draws the noise from explain.hashed_normal: the same noise as in PyTorch, on any
    device; the result does not depend on `batch_size`.
    Returns max over channels of |mean gradient|, (B, H, W).

    method="grad_cam": Smilkov et al. 2017 note that SmoothGrad can be applied to other gradient-based
    maps (they combine it with Integrated Gradients and Guided BackProp); here to Grad-CAM at `layer`
    (None: the last feature map). The same noisy copies, chunks and seed, the targets of the clean
    images; the mean of the raw (ReLU'd) Grad-CAM maps at the layer's resolution (squared=True: of
    their squares), upsampled bilinearly to the input and normalised like grad_cam. With sigma=0 it
    is grad_cam. `layer` is only for method="grad_cam".
    """
    x = _image_batch(x)
    explain.check_smooth_grad(n, sigma, batch_size)
    explain.check_smooth_grad_method(method, layer)
    targets = _targets(model, x, target)
    image_shape = tuple(x.shape[1:])
    if target is None:  # each clean image's top-1 class, once
        logits = _compiled(model, ("logits", image_shape), lambda ref: _build_logits(ref, image_shape))(x)
        targets = tf.argmax(logits, axis=-1)
    noise_std = float(sigma) * (tf.reduce_max(x, axis=[1, 2, 3]) - tf.reduce_min(x, axis=[1, 2, 3]))
    # A seed gives the same noise as in PyTorch (explain.hashed_normal); without one, fresh noise from
    # numpy's global generator (xt.seed_everything seeds it).
    key = tf.constant(explain.hash_key(seed if seed is not None else np.random.randint(2**31)), tf.int64)
    total, chunk = n * int(x.shape[0]), batch_size or n * int(x.shape[0])
    if method == "grad_cam":
        tap = _feature_layer(model, x, layer)
        fn = _compiled(model, ("smooth_grad_cam", tap.name, bool(squared), image_shape),
                       lambda ref: _build_smooth_grad_cam(ref, image_shape, tap.name, bool(squared)))
        map_sum = None
        for start in range(0, total, chunk):
            part, features_shape = fn(x, noise_std, targets, key, tf.range(start, min(start + chunk, total),
                                                                           dtype=tf.int64))
            if map_sum is None:
                _check_feature_shape(model, x, tap, features_shape.numpy())
                map_sum = part
            else:
                map_sum += part
        return _heatmap(map_sum / n, x, normalize, upsample=True)
    fn = _compiled(model, ("smooth_grad", bool(squared), image_shape),
                   lambda ref: _build_smooth_grad(ref, image_shape, bool(squared)))
    grad_sum = tf.zeros_like(x)
    for start in range(0, total, chunk):  # chunks of noisy images, not a loop over images
        grad_sum += fn(x, noise_std, targets, key, tf.range(start, min(start + chunk, total), dtype=tf.int64))
    mean = grad_sum / n
    return _heatmap(tf.reduce_max(mean if squared else tf.abs(mean), axis=-1), x, normalize, upsample=False)


def guided_backprop(model: keras.Model, x, target=None, normalize: bool = True) -> np.ndarray:
    """Guided Backprop (Springenberg et al. 2015, sec. 3.4 and fig. 1): dS^c/dx where every ReLU
    passes back only positive gradients at positive inputs (ReLU6: inputs in (0, 6)).

    Returns (B, H, W, 3): per input channel, signed; normalised as 0.5 + g / (2 max|g|) per image.
    """
    x = _image_batch(x)
    grads = _input_gradient(model, x, _targets(model, x, target), guided=True)
    return (_rescale_signed(grads) if normalize else grads).numpy().astype(np.float32)


def guided_grad_cam(model: keras.Model, x, target=None, layer: str | None = None,
                    normalize: bool = True) -> np.ndarray:
    """Guided Grad-CAM (Selvaraju et al. 2017, sec. 3.1): Guided Backprop times the upsampled Grad-CAM.

    Returns (B, H, W, 3), signed, normalised like guided_backprop.
    """
    x = _image_batch(x)
    targets = _targets(model, x, target)
    heat = _upsample(_grad_cam_raw(model, x, targets, layer), x.shape[1:3])
    guided = _input_gradient(model, x, targets, guided=True) * heat[..., None]
    return (_rescale_signed(guided) if normalize else guided).numpy().astype(np.float32)


def cam_parts(model: keras.Model, x, layer: str | None = None,
              strict: bool = True) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The pieces of CAM, for computing any class's map without running the model again.

    Returns numpy float32 (features f (B, K, h, w), weight W (classes, K), bias b (classes,)), channels
    first in both backends: cam(model, x, c, layer, normalize=False, upsample=False)[i] equals
    einsum("k,khw->hw", W[c], f[i]). One forward pass; the same head checks as `cam`.
    """
    x = _image_batch(x)
    tap = _cam_layer(model, x, layer)
    image_shape = tuple(x.shape[1:])
    fn = _compiled(model, ("cam_parts", tap.name, image_shape),
                   lambda ref: _build_cam_parts(ref, image_shape, tap.name))
    features, kernel, bias, mismatch, largest, features_shape = fn(x)
    _check_cam_head(model, x, tap, features_shape, mismatch, largest, strict)
    return (np.transpose(features.numpy(), (0, 3, 1, 2)).astype(np.float32), kernel.numpy().T.astype(np.float32),
            bias.numpy().astype(np.float32))
