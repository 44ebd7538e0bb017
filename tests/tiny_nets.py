"""Tiny networks with given weights, built alike in PyTorch and Keras, so that a contract test
(tests/test_methods_contract.py) reads the same for both backends.

Every builder takes the backend module `xt` (or its FRAMEWORK name) and numpy weights in
channels-last order; the torch twin gets them transposed. Layer names are the same in both
frameworks, so a test names a layer without asking which framework runs. Images are written as
numpy (B, H, W, C) and become a backend's batch with `batch(xt, x)`: torch (B, C, H, W) on the CPU,
TensorFlow (B, H, W, C). Maps come back (B, H, W) from both backends.

torch is imported here when installed (the root conftest imported it before TensorFlow); Keras only
inside the Keras builders, so a torch-only run never loads TensorFlow.
"""
from __future__ import annotations

import contextlib
import functools

import numpy as np

try:
    import torch
    import torch.nn.functional as F
    from torch import nn
except ImportError:  # `make test-colab` has no torch: only the Keras builders are used there
    torch = None


def framework(xt) -> str:
    return xt if isinstance(xt, str) else xt.FRAMEWORK


def batch(xt, x: np.ndarray):
    """numpy (B, H, W, C) -> the backend's batch: torch (B, C, H, W) float32 on the CPU, or a tf.Tensor."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    if framework(xt) == "torch":
        return torch.from_numpy(x.transpose(0, 3, 1, 2).copy())
    import tensorflow as tf
    return tf.constant(x)


def channels_last(xt, x) -> np.ndarray:
    """A backend's image batch as numpy (B, H, W, C)."""
    if framework(xt) == "torch":
        return x.detach().cpu().numpy().transpose(0, 2, 3, 1)
    return np.asarray(x)


def logits(xt, model, x) -> np.ndarray:
    """The model's outputs in inference mode, as numpy; a torch model's training flags are put back."""
    if framework(xt) == "torch":
        flags = [(module, module.training) for module in model.modules()]
        model.eval()
        try:
            with torch.no_grad():
                return model(x).numpy()
        finally:
            for module, training in flags:
                module.training = training
    return np.asarray(model(x, training=False))


# ---------------------------------------------------------------------------------------------
# GAP networks: x -> 1x1 conv "conv" -> ReLU "relu" -> [max pool "pool"] -> GAP "gap" -> linear "dense"
# [-> softmax "probs"]


def gap_net(xt, kernel, weights, bias, size: int, pool: int = 1, conv_bias=None, softmax: bool = False,
            inplace: bool = False):
    """kernel (C, K) of the 1x1 conv, weights (K, classes) and bias (classes,) of the linear layer.

    `inplace` (torch only): the ReLU is nn.ReLU(inplace=True), so it overwrites the conv's output.
    """
    kernel, weights, bias = (np.asarray(a, np.float32) for a in (kernel, weights, bias))
    channels, features = kernel.shape
    if framework(xt) == "torch":
        model = _TorchGapNet(channels, features, weights.shape[1], pool, conv_bias is not None, softmax, inplace)
        with torch.no_grad():
            model.conv.weight.copy_(torch.from_numpy(kernel.T[:, :, None, None].copy()))
            if conv_bias is not None:
                model.conv.bias.copy_(torch.as_tensor(np.asarray(conv_bias, np.float32)))
            model.dense.weight.copy_(torch.from_numpy(weights.T.copy()))
            model.dense.bias.copy_(torch.from_numpy(bias))
        return model.eval()
    assert not inplace, "in-place activations are a torch idea"
    import keras
    from keras import layers
    inputs = keras.Input((size, size, channels))
    h = layers.Conv2D(features, 1, use_bias=conv_bias is not None, name="conv")(inputs)
    h = layers.ReLU(name="relu")(h)
    if pool > 1:
        h = layers.MaxPooling2D(pool, name="pool")(h)
    h = layers.Dense(weights.shape[1], name="dense")(layers.GlobalAveragePooling2D(name="gap")(h))
    if softmax:
        h = layers.Softmax(name="probs")(h)
    model = keras.Model(inputs, h)
    model.get_layer("conv").set_weights([kernel[None, None]] + ([np.asarray(conv_bias, np.float32)]
                                                                 if conv_bias is not None else []))
    model.get_layer("dense").set_weights([weights, bias])
    return model


if torch is not None:
    class _TorchGapNet(nn.Module):
        def __init__(self, channels, features, classes, pool, conv_bias, softmax, inplace):
            super().__init__()
            self.conv = nn.Conv2d(channels, features, 1, bias=conv_bias)
            self.relu = nn.ReLU(inplace=inplace)
            self.pool = nn.MaxPool2d(pool) if pool > 1 else None
            self.gap = nn.AdaptiveAvgPool2d(1)
            self.dense = nn.Linear(features, classes)
            self.probs = nn.Softmax(dim=1) if softmax else None

        def forward(self, x):
            h = self.relu(self.conv(x))
            if self.pool is not None:
                h = self.pool(h)
            h = self.dense(self.gap(h).flatten(1))
            return self.probs(h) if self.probs is not None else h


def no_linear_net(xt):
    """conv (5 channels) -> GAP: a model without a linear (Dense) layer."""
    if framework(xt) == "torch":
        return nn.Sequential(nn.Conv2d(3, 5, 1), nn.AdaptiveAvgPool2d(1), nn.Flatten()).eval()
    import keras
    from keras import layers
    inputs = keras.Input((4, 4, 3))
    return keras.Model(inputs, layers.GlobalAveragePooling2D()(layers.Conv2D(5, 1, name="conv")(inputs)))


# ---------------------------------------------------------------------------------------------
# Linear models and one-ReLU models, indexed in (H, W, C) order in both frameworks


def linear_net(xt, weights):
    """score_c = sum_hwc weights[h, w, c, class] * x[h, w, c] (no bias): flatten -> linear "dense"."""
    weights = np.asarray(weights, np.float32)
    height, width, channels, classes = weights.shape
    if framework(xt) == "torch":
        model = _TorchChannelsLastHead(None, nn.Linear(height * width * channels, classes, bias=False))
        with torch.no_grad():
            model.dense.weight.copy_(torch.from_numpy(weights.reshape(-1, classes).T.copy()))
        return model.eval()
    import keras
    from keras import layers
    inputs = keras.Input((height, width, channels))
    outputs = layers.Dense(classes, use_bias=False, name="dense")(layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.get_layer("dense").set_weights([weights.reshape(-1, classes)])
    return model


def flatten_net(xt, kernel, weights, bias):
    """x -> 1x1 conv "conv" (kernel (C, K), no bias) -> ReLU "relu" -> flatten in (H, W, K) order -> linear
    "dense" (weights (H, W, K, classes), bias (classes,)): everything after "relu" is linear."""
    kernel, weights, bias = (np.asarray(a, np.float32) for a in (kernel, weights, bias))
    channels, features = kernel.shape
    height, width, _, classes = weights.shape
    if framework(xt) == "torch":
        model = nn.Sequential()
        model.add_module("conv", nn.Conv2d(channels, features, 1, bias=False))
        model.add_module("relu", nn.ReLU())
        model.add_module("flatten", _ChannelsLastFlatten())
        model.add_module("dense", nn.Linear(height * width * features, classes))
        with torch.no_grad():
            model.conv.weight.copy_(torch.from_numpy(kernel.T[:, :, None, None].copy()))
            model.dense.weight.copy_(torch.from_numpy(weights.reshape(-1, classes).T.copy()))
            model.dense.bias.copy_(torch.from_numpy(bias))
        return model.eval()
    import keras
    from keras import layers
    inputs = keras.Input((height, width, channels))
    h = layers.ReLU(name="relu")(layers.Conv2D(features, 1, use_bias=False, name="conv")(inputs))
    model = keras.Model(inputs, layers.Dense(classes, name="dense")(layers.Flatten()(h)))
    model.get_layer("conv").set_weights([kernel[None, None]])
    model.get_layer("dense").set_weights([weights.reshape(-1, classes), bias])
    return model


# The ReLU spellings relu_net builds: the shared ones first, then each framework's own.
SHARED_RELUS = ("relu", "relu6")
TORCH_RELUS = ("F.relu", "F.relu6", "torch.relu", "Tensor.relu_", "F.hardtanh(0, 6)", "ReLU(inplace)",
               "ReLU6(inplace)")
KERAS_RELUS = ("Activation('relu')", "Activation('relu6')", "Conv2D(activation='relu')",
               "Conv2D(activation='relu6')")


def relu_cap(kind: str) -> float | None:
    """6 for the ReLU6 spellings, None for plain ReLU."""
    return 6.0 if "6" in kind else None


def relu_net(xt, kind: str, weights):
    """x -> 1x1 conv "conv" (the identity, bias 0) -> one ReLU or ReLU6 spelt `kind` -> flatten -> linear
    "dense" (weights (H, W, C, classes), no bias): score_c = sum_hwc weights[h, w, c, class] * act(x[h, w, c]).

    `kind`: "relu" / "relu6" (the activation layer: nn.ReLU, nn.ReLU6 / keras.layers.ReLU) in both
    frameworks, or one of TORCH_RELUS / KERAS_RELUS in its own.
    """
    weights = np.asarray(weights, np.float32)
    height, width, channels, classes = weights.shape
    if framework(xt) == "torch":
        act = {"relu": nn.ReLU(), "relu6": nn.ReLU6(), "F.relu": F.relu, "F.relu6": F.relu6,
               "torch.relu": torch.relu, "Tensor.relu_": lambda h: h.relu_(),
               "F.hardtanh(0, 6)": lambda h: F.hardtanh(h, 0.0, 6.0), "ReLU(inplace)": nn.ReLU(inplace=True),
               "ReLU6(inplace)": nn.ReLU6(inplace=True)}[kind]
        conv = nn.Conv2d(channels, channels, 1)
        model = _TorchChannelsLastHead(conv, nn.Linear(height * width * channels, classes, bias=False), act)
        with torch.no_grad():
            conv.weight.copy_(torch.eye(channels)[:, :, None, None])
            conv.bias.zero_()
            model.dense.weight.copy_(torch.from_numpy(weights.reshape(-1, classes).T.copy()))
        return model.eval()
    import keras
    from keras import layers
    builtin = {"Conv2D(activation='relu')": "relu", "Conv2D(activation='relu6')": "relu6"}.get(kind)
    inputs = keras.Input((height, width, channels))
    h = layers.Conv2D(channels, 1, activation=builtin, name="conv")(inputs)
    if kind in ("relu", "relu6"):
        h = layers.ReLU(max_value=relu_cap(kind), name="act")(h)
    elif kind.startswith("Activation"):
        h = layers.Activation(kind.split("'")[1], name="act")(h)
    elif builtin is None:
        raise ValueError(f"no Keras spelling {kind!r}")
    outputs = layers.Dense(classes, use_bias=False, name="dense")(layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").set_weights([np.eye(channels, dtype=np.float32)[None, None],
                                         np.zeros(channels, np.float32)])
    model.get_layer("dense").set_weights([weights.reshape(-1, classes)])
    return model


if torch is not None:
    class _ChannelsLastFlatten(nn.Module):
        """Flatten (B, C, H, W) in (H, W, C) order, as Keras' Flatten does on channels-last maps."""

        def forward(self, h):
            return h.permute(0, 2, 3, 1).flatten(1)

    class _TorchChannelsLastHead(nn.Module):
        """[conv -> act ->] flatten in (H, W, C) order -> dense, like Keras' Flatten on channels-last maps."""

        def __init__(self, conv, dense, act=None):
            super().__init__()
            self.conv = conv
            self.act_fn = act if not isinstance(act, nn.Module) else None
            self.act = act if isinstance(act, nn.Module) else None
            self.dense = dense

        def forward(self, x):
            h = x if self.conv is None else self.conv(x)
            if self.act is not None:
                h = self.act(h)
            elif self.act_fn is not None:
                h = self.act_fn(h)
            return self.dense(h.permute(0, 2, 3, 1).flatten(1))


def guided_by_hand(x, weights, targets, cap):
    """What Guided Backprop and the plain gradient are for relu_net, worked out in numpy.

    x (B, H, W, C), weights (H, W, C, classes). The identity conv makes the ReLU's input z = x; the
    upstream gradient of class c at unit (h, w, c') is weights[h, w, c', c]. The plain gradient passes
    where the ReLU is linear, 0 < z (< cap); the guided rule also drops negative upstream gradients.
    Returns (guided (B, H, W, C), plain (B, H, W, C)).
    """
    x = np.asarray(x, np.float32)
    upstream = np.moveaxis(np.asarray(weights, np.float32)[..., list(targets)], -1, 0)  # (B, H, W, C)
    linear = (x > 0) & ((x < cap) if cap is not None else True)
    return np.where(linear & (upstream > 0), upstream, 0).astype(np.float32), np.where(linear, upstream, 0)


# Guided Backprop by hand: one image (1 x 2 x 3) whose ReLU inputs z = x include z > 6 at (0, 1, 0) and
# z < 0 at (0, 0, 2), and class 0's upstream gradients with two negatives, which the guided rule drops.
GUIDED_X = np.array([[[[1.0, 2.0, -1.0], [7.0, 0.5, 3.0]]]], np.float32)
GUIDED_UPSTREAM = np.array([[[1.0, -2.0, 3.0], [4.0, 5.0, -6.0]]], np.float32)
GUIDED_WEIGHTS = np.stack([GUIDED_UPSTREAM, -GUIDED_UPSTREAM], axis=-1)  # class 1 = -class 0


def check_guided_by_hand(xt, kind: str) -> None:
    """Guided Backprop and saliency of relu_net(kind) on GUIDED_X equal guided_by_hand's answers exactly
    (small integers and halves: no float kernel changes them), normalised as 0.5 + g / (2 max|g|), and
    the model is left as it was."""
    model, x = relu_net(xt, kind, GUIDED_WEIGHTS), batch(xt, GUIDED_X)
    before, outputs = state(xt, model), logits(xt, model, x)
    guided, plain = guided_by_hand(GUIDED_X, GUIDED_WEIGHTS, [0], relu_cap(kind))
    assert not np.array_equal(guided, plain)  # the case tells the guided rule from the plain gradient
    got = xt.guided_backprop(model, x, target=0, normalize=False)
    assert got.shape == (1, 1, 2, 3) and got.dtype == np.float32
    np.testing.assert_array_equal(got, guided)
    np.testing.assert_array_equal(xt.saliency(model, x, target=0, normalize=False), np.abs(plain).max(axis=-1))
    np.testing.assert_allclose(xt.guided_backprop(model, x, target=0), 0.5 + guided / (2 * np.abs(guided).max()),
                               rtol=1e-6)
    assert state(xt, model) == before
    np.testing.assert_array_equal(logits(xt, model, x), outputs)


def hand_gap_net(xt, **kwargs):
    """The GAP net worked out by hand in the contract tests: conv channel 0 = +x_0 and channel 1 = -x_0
    (x's other channels are ignored), ReLU, GAP, dense w^0 = (2, -1), w^1 = (-1, 3), bias (0.5, -0.5);
    one 2 x 2 image with x_0 = [[1, -2], [3, 0]] and 5 in channel 1. Returns (model, batch)."""
    kernel = np.zeros((3, 2), np.float32)
    kernel[0] = [1.0, -1.0]
    model = gap_net(xt, kernel, [[2.0, -1.0], [-1.0, 3.0]], [0.5, -0.5], size=2, **kwargs)
    x = np.zeros((1, 2, 2, 3), np.float32)
    x[0, :, :, 0] = [[1.0, -2.0], [3.0, 0.0]]
    x[0, :, :, 1] = 5.0
    return model, batch(xt, x)


# ---------------------------------------------------------------------------------------------
# The small CNNs of the backends, and reading a model's layers without the methods


def small_cnn(xt, head: str = "gap", seed: int = 0, **kwargs):
    """xt.small_cnn(head, **kwargs) with seeded initial weights, on the CPU."""
    if framework(xt) == "torch":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return xt.small_cnn(head, device="cpu", **kwargs).eval()
    import keras
    keras.utils.set_random_seed(seed)
    return xt.small_cnn(head, **kwargs)


def randomise_batch_norm(xt, model, rng: np.random.Generator) -> None:
    """BatchNorm running statistics that are not the identity, so a test sees them."""
    if framework(xt) == "torch":
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.BatchNorm2d):
                    module.running_mean.copy_(torch.from_numpy(rng.uniform(-0.5, 0.5, module.num_features)))
                    module.running_var.copy_(torch.from_numpy(rng.uniform(0.5, 2.0, module.num_features)))
        return
    from keras import layers
    for layer in model.layers:
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, rng.uniform(-0.5, 0.5, mean.shape).astype(np.float32),
                               rng.uniform(0.5, 2.0, var.shape).astype(np.float32)])


def feature_map(xt, model, x, layer: str) -> np.ndarray:
    """The output of `layer` for the batch x, channels first (B, K, h, w), read without the methods:
    a forward hook in torch, a sub-model of the functional graph in Keras."""
    if framework(xt) == "torch":
        seen = []
        handle = dict(model.named_modules())[layer].register_forward_hook(lambda m, i, out: seen.append(out))
        try:
            logits(xt, model, x)
        finally:
            handle.remove()
        return seen[0].numpy()
    import keras
    reader = keras.Model(model.inputs, model.get_layer(layer).output)
    return np.asarray(reader(x, training=False)).transpose(0, 3, 1, 2)


def dense_params(xt, model, layer: str) -> tuple[np.ndarray, np.ndarray]:
    """The weight (classes, K) and bias (classes,) of the linear (Dense) layer `layer`."""
    if framework(xt) == "torch":
        linear = dict(model.named_modules())[layer]
        return linear.weight.detach().numpy().copy(), linear.bias.detach().numpy().copy()
    kernel, bias = model.get_layer(layer).get_weights()
    return kernel.T.copy(), bias


# ---------------------------------------------------------------------------------------------
# Model hygiene: a net with every kind of ReLU, a shared layer, a fuse and a softmax, and its state

_FUSE = {"blown": False}


@contextlib.contextmanager
def blown_fuse():
    """While inside, every zoo_net's "fuse" layer raises RuntimeError("fuse blown") in its forward pass."""
    _FUSE["blown"] = True
    try:
        yield
    finally:
        _FUSE["blown"] = False


def zoo_net(xt, seed: int = 4):
    """8x8x3 -> c1 (conv) -> bn1 -> r1 (ReLU) -> c2 (conv) -> r2 (ReLU6) -> fuse -> shared (1x1 conv) ->
    shared_relu -> shared -> shared_relu (both run twice) -> last (1x1 conv) -> a2 (ReLU6) -> gap -> dense
    -> probs (softmax). Each framework's own spellings: in torch r1 is in-place and a functional
    F.relu runs before `last`; in Keras c1..r2 are a nested model "inner", `last` has a built-in ReLU
    and a2 is Activation("relu6"). The same seed gives the same weights."""
    if framework(xt) == "torch":
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model = _TorchZoo()
            with torch.no_grad():
                model.bn1.running_mean.uniform_(-0.5, 0.5)
                model.bn1.running_var.uniform_(0.5, 2.0)
        return model.eval()
    import keras
    from keras import layers
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((8, 8, 3))
    h = layers.BatchNormalization(name="bn1")(layers.Conv2D(4, 3, padding="same", name="c1")(inputs))
    h = layers.Activation("relu", name="r1")(h)
    h = layers.ReLU(max_value=6.0, name="r2")(layers.Conv2D(4, 3, padding="same", name="c2")(h))
    inner = keras.Model(inputs, h, name="inner")
    outer_inputs = keras.Input((8, 8, 3))
    h = _keras_fuse()(name="fuse")(inner(outer_inputs))
    shared, shared_relu = layers.Conv2D(4, 1, name="shared"), layers.ReLU(name="shared_relu")
    h = shared_relu(shared(shared_relu(shared(h))))
    h = layers.Activation("relu6", name="a2")(layers.Conv2D(4, 1, activation="relu", name="last")(h))
    h = layers.Dense(3, name="dense")(layers.GlobalAveragePooling2D(name="gap")(h))
    model = keras.Model(outer_inputs, layers.Softmax(name="probs")(h))
    bn = inner.get_layer("bn1")
    rng = np.random.default_rng(seed)
    gamma, beta, mean, var = bn.get_weights()
    bn.set_weights([gamma, beta, rng.uniform(-0.5, 0.5, mean.shape).astype(np.float32),
                    rng.uniform(0.5, 2.0, var.shape).astype(np.float32)])
    return model


if torch is not None:
    class _TorchFuse(nn.Module):
        def forward(self, x):
            if _FUSE["blown"]:
                raise RuntimeError("fuse blown")
            return x

    class _TorchZoo(nn.Module):
        def __init__(self):
            super().__init__()
            self.c1, self.bn1, self.r1 = nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(inplace=True)
            self.c2, self.r2 = nn.Conv2d(4, 4, 3, padding=1), nn.ReLU6()
            self.fuse = _TorchFuse()
            self.shared, self.shared_relu = nn.Conv2d(4, 4, 1), nn.ReLU()
            self.last, self.a2 = nn.Conv2d(4, 4, 1), nn.ReLU6()
            self.gap, self.dense, self.probs = nn.AdaptiveAvgPool2d(1), nn.Linear(4, 3), nn.Softmax(dim=1)

        def forward(self, x):
            h = self.fuse(self.r2(self.c2(self.r1(self.bn1(self.c1(x))))))
            h = self.shared_relu(self.shared(self.shared_relu(self.shared(h))))
            h = self.a2(self.last(F.relu(h)))
            return self.probs(self.dense(self.gap(h).flatten(1)))


@functools.cache
def _keras_fuse():
    from keras import layers

    class Fuse(layers.Layer):
        """Identity that raises while the fuse is blown: an error in the middle of a forward pass."""

        def call(self, inputs):
            if _FUSE["blown"]:
                raise RuntimeError("fuse blown")
            return inputs
    return Fuse


def mix_flags(xt, model) -> None:
    """Set flags a method could forget to restore to a state that is not the default: in torch training
    mode with bn1 in eval mode; in Keras bn1 not trainable."""
    if framework(xt) == "torch":
        model.train()
        model.bn1.eval()
    else:
        _keras_layers(model)["bn1"].trainable = False


def _keras_layers(model) -> dict:
    """Every layer by name, nested models searched (public Keras API only)."""
    import keras
    found = {}
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            found.update(_keras_layers(layer))
        found[layer.name] = layer
    return found


def state(xt, model) -> dict:
    """Everything a method must leave as it found it, in a form `==` compares.

    torch: every module's type, training flag, in-place flag and hooks, each parameter's requires_grad
    and .grad, every parameter and buffer's values, and the grad mode. Keras: each layer's (nested
    models' too) instance `call` and `activation` attributes (a method may patch them only while it
    runs), config and trainable flag, and every weight's values.
    """
    if framework(xt) == "torch":
        modules = list(model.modules())
        return {
            "types": [type(m) for m in modules],
            "training": [m.training for m in modules],
            "inplace": [getattr(m, "inplace", None) for m in modules],
            "hooks": [(len(m._forward_hooks), len(m._forward_pre_hooks), len(m._backward_hooks),
                       len(m._backward_pre_hooks)) for m in modules],
            "requires_grad": [p.requires_grad for p in model.parameters()],
            "grads": [None if p.grad is None else p.grad.numpy().tobytes() for p in model.parameters()],
            "values": {k: v.detach().numpy().tobytes() for k, v in model.state_dict().items()},
            "grad_enabled": torch.is_grad_enabled(),
        }
    layers = list(_keras_layers(model).values()) + [model]
    return {
        "names": [layer.name for layer in layers],
        "instance_call": [layer.__dict__.get("call") for layer in layers],
        "activation": [layer.__dict__.get("activation") for layer in layers],
        "config": [layer.get_config() for layer in layers],
        "trainable": [layer.trainable for layer in layers],
        "values": [w.tobytes() for w in model.get_weights()],
    }


@contextlib.contextmanager
def global_state_restored(xt):
    """Undo what xt.seed_everything changes beyond the seeds: torch's thread count and cuDNN flags;
    TensorFlow's op determinism (only a private TensorFlow call can turn it off again)."""
    if framework(xt) == "torch":
        saved = (torch.get_num_threads(), torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark,
                 torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32)
        try:
            yield
        finally:
            torch.set_num_threads(saved[0])
            (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark, torch.backends.cudnn.allow_tf32,
             torch.backends.cuda.matmul.allow_tf32) = saved[1:]
        return
    from tensorflow.python.framework import config  # the public API can enable determinism, not disable it
    was_enabled = config.is_op_determinism_enabled()
    try:
        yield
    finally:
        if not was_enabled:
            config.disable_op_determinism()
