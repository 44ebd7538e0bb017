"""The Keras explanation methods: analytic answers on hand-made nets, the embedded model, nested
models, pre-softmax scores, model hygiene, bad input and the output contract."""
import dataclasses

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import utils
import utils.tensorflow as xt
from utils import contract
from utils.tensorflow import methods

import keras  # noqa: E402  (after torch: conftest imports torch and torchvision first)
import tensorflow as tf  # noqa: E402
from keras import layers  # noqa: E402

RNG = np.random.default_rng(0)


# ----------------------------------------------------------------------------------------------
# Hand-made nets and helpers
# ----------------------------------------------------------------------------------------------


def gap_net(kernel, weights, bias, size=4, pool=1):
    """x -> 1x1 conv (kernel, no bias) -> ReLU -> [max pool] -> GAP -> Dense(weights, bias)."""
    inputs = keras.Input((size, size, kernel.shape[0]))
    h = layers.Conv2D(kernel.shape[1], 1, use_bias=False, name="conv")(inputs)
    h = layers.ReLU(name="relu")(h)
    if pool > 1:
        h = layers.MaxPooling2D(pool, name="pool")(h)
    h = layers.GlobalAveragePooling2D(name="gap")(h)
    outputs = layers.Dense(weights.shape[1], name="dense")(h)
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").set_weights([kernel[None, None]])
    model.get_layer("dense").set_weights([weights, bias])
    return model


@pytest.fixture(scope="module")
def tiny():
    """A GAP net with random hand-set weights and a batch whose maps have both signs."""
    kernel = RNG.normal(size=(3, 4)).astype(np.float32)
    weights = RNG.normal(size=(4, 3)).astype(np.float32)
    bias = np.array([0.5, -1.0, 2.0], np.float32)
    x = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    return gap_net(kernel, weights, bias), x, kernel, weights, bias


def logits_of(model, x):
    return model(tf.constant(x), training=False).numpy()


def snapshot(model):
    """What a method must leave untouched: each layer's instance `call`, `activation` and config."""
    return [(layer.name, layer.__dict__.get("call"), layer.__dict__.get("activation"), layer.get_config())
            for layer in list(methods._all_layers(model)) + [model]]


def assert_untouched(model, before, x, outputs):
    after = snapshot(model)
    assert [entry[:3] for entry in after] == [entry[:3] for entry in before]
    assert all(a[1] is None for a in after), "a layer kept an instance `call`"
    assert [entry[3] for entry in after] == [entry[3] for entry in before]
    np.testing.assert_array_equal(logits_of(model, x), outputs)


@pytest.fixture(scope="module")
def embedded():
    model = xt.load_model()
    x = xt.preprocess([utils.sample_image("chelsea"), utils.sample_image("coffee")], model)
    return model, x


# ----------------------------------------------------------------------------------------------
# Analytic answers
# ----------------------------------------------------------------------------------------------


def test_cam_and_grad_cam_by_hand(tiny):
    model, x, kernel, weights, _ = tiny
    targets = [0, 2]
    features = np.maximum(x @ kernel, 0)  # (2, 4, 4, 4)
    expected_cam = np.einsum("bhwk,bk->bhw", features, weights[:, targets].T)
    assert expected_cam.min() < 0 < expected_cam.max()  # the ReLU in Grad-CAM matters here
    cam = xt.cam(model, x, target=targets, normalize=False, upsample=False)
    np.testing.assert_allclose(cam, expected_cam, rtol=1e-5, atol=1e-6)
    # On a GAP -> Dense head dS/dA = w / Z, so Grad-CAM = ReLU(CAM) / Z (Z = 16 positions)
    grad_cam = xt.grad_cam(model, x, target=targets, normalize=False, upsample=False)
    np.testing.assert_allclose(grad_cam, np.maximum(expected_cam, 0) / 16, rtol=1e-5, atol=1e-6)
    # Before the ReLU, the gradient also carries the ReLU's mask: alpha_k = w_k / Z * fraction(A_k > 0)
    pre = x @ kernel
    alpha = weights[:, targets].T / 16 * (pre > 0).mean(axis=(1, 2))
    expected_conv = np.maximum(np.einsum("bhwk,bk->bhw", pre, alpha), 0)
    np.testing.assert_allclose(xt.grad_cam(model, x, target=targets, layer="conv", normalize=False,
                                           upsample=False), expected_conv, rtol=1e-5, atol=1e-6)
    # A second call with another layer or target reuses nothing it should not
    again = xt.grad_cam(model, x, target=[1, 1], normalize=False, upsample=False)
    expected_again = np.maximum(np.einsum("bhwk,k->bhw", features, weights[:, 1]), 0) / 16
    np.testing.assert_allclose(again, expected_again, rtol=1e-5, atol=1e-6)


def test_cam_mean_plus_bias_is_the_logit_on_a_tiny_net(tiny):
    model, x, _, _, bias = tiny
    logits = logits_of(model, x)
    for c in range(3):
        cam = xt.cam(model, x, target=c, normalize=False, upsample=False)
        np.testing.assert_allclose(cam.mean(axis=(1, 2)) + bias[c], logits[:, c], rtol=1e-5, atol=1e-5)


def test_upsampling_is_bilinear_with_half_pixel_centres_like_torch():
    kernel = RNG.normal(size=(3, 2)).astype(np.float32)
    model = gap_net(kernel, RNG.normal(size=(2, 2)).astype(np.float32), np.zeros(2, np.float32), size=8, pool=4)
    x = RNG.normal(size=(2, 8, 8, 3)).astype(np.float32)
    raw = xt.grad_cam(model, x, target=0, layer="pool", normalize=False, upsample=False)
    assert raw.shape == (2, 2, 2)
    up = xt.grad_cam(model, x, target=0, layer="pool", normalize=False)
    expected = F.interpolate(torch.from_numpy(raw)[:, None], size=(8, 8), mode="bilinear", align_corners=False)
    np.testing.assert_allclose(up, expected[:, 0].numpy(), rtol=1e-5, atol=1e-6)


def linear_net(weights):
    inputs = keras.Input((4, 4, 3))
    outputs = layers.Dense(weights.shape[1], name="dense")(layers.Flatten()(inputs))
    model = keras.Model(inputs, outputs)
    model.get_layer("dense").set_weights([weights, np.zeros(weights.shape[1], np.float32)])
    return model


def test_saliency_and_smooth_grad_of_a_linear_model_are_the_weights():
    weights = RNG.normal(size=(48, 3)).astype(np.float32)
    model = linear_net(weights)
    x = RNG.normal(size=(2, 4, 4, 3)).astype(np.float32)
    expected = np.abs(weights[:, [2, 0]].T.reshape(2, 4, 4, 3)).max(axis=-1)
    np.testing.assert_allclose(xt.saliency(model, x, target=[2, 0], normalize=False), expected, rtol=1e-6)
    # The gradient of a linear model is the same at every noisy copy, whatever sigma and chunking
    for sigma, batch_size in [(0.15, 3), (1.0, 1), (0.5, None)]:
        smooth = xt.smooth_grad(model, x, target=[2, 0], n=5, sigma=sigma, batch_size=batch_size, seed=1,
                                normalize=False)
        np.testing.assert_allclose(smooth, expected, rtol=1e-5)
    squared = xt.smooth_grad(model, x, target=[2, 0], n=3, squared=True, seed=1, normalize=False)
    np.testing.assert_allclose(squared, (weights[:, [2, 0]].T.reshape(2, 4, 4, 3) ** 2).max(axis=-1), rtol=1e-5)


@pytest.fixture(scope="module")
def small():
    keras.utils.set_random_seed(0)
    model = xt.small_cnn("gap", input_size=16, width=4, depth=2)
    x = RNG.normal(size=(2, 16, 16, 3)).astype(np.float32)
    return model, x


def test_smooth_grad_with_sigma_zero_is_saliency(small):
    model, x = small
    plain = xt.saliency(model, x, normalize=False)
    smooth = xt.smooth_grad(model, x, n=3, sigma=0.0, batch_size=4, normalize=False)
    np.testing.assert_allclose(smooth, plain, rtol=1e-5, atol=1e-7 * plain.max())
    normalised = xt.smooth_grad(model, x, n=3, sigma=0.0)
    assert normalised.shape == (2, 16, 16) and normalised.dtype == np.float32
    np.testing.assert_allclose(normalised.max(axis=(1, 2)), 1)
    np.testing.assert_allclose(normalised.min(axis=(1, 2)), 0)
    np.testing.assert_allclose(normalised, xt.saliency(model, x), atol=1e-5)


def test_smooth_grad_noise_is_seeded_and_independent_of_chunking(small):
    model, x = small
    one = xt.smooth_grad(model, x, n=4, sigma=0.3, batch_size=1, seed=7, normalize=False)
    all_at_once = xt.smooth_grad(model, x, n=4, sigma=0.3, batch_size=1000, seed=7, normalize=False)
    np.testing.assert_allclose(one, all_at_once, rtol=1e-5, atol=1e-6 * one.max())
    other_seed = xt.smooth_grad(model, x, n=4, sigma=0.3, batch_size=3, seed=8, normalize=False)
    assert np.abs(other_seed - one).max() > 1e-3 * one.max()  # the noise really changes the gradient
    unseeded = [xt.smooth_grad(model, x, n=2, sigma=0.3, normalize=False) for _ in range(2)]
    assert not np.array_equal(*unseeded)


def test_smooth_grad_resolves_targets_once_on_the_clean_images(small):
    model, x = small
    top1 = logits_of(model, x).argmax(axis=1)
    np.testing.assert_array_equal(xt.smooth_grad(model, x, n=3, sigma=2.0, seed=3),
                                  xt.smooth_grad(model, x, target=top1, n=3, sigma=2.0, seed=3))


def test_unseeded_smooth_grad_follows_seed_everything_under_op_determinism(small):
    """xt.seed_everything turns on op determinism; unseeded noise then comes from the seeded global state."""
    from tensorflow.python.framework import config  # the public API can enable determinism, not disable it

    model, x = small
    was_enabled = config.is_op_determinism_enabled()
    try:
        runs = []
        for _ in range(2):
            xt.seed_everything(0)
            runs.append(xt.smooth_grad(model, x, n=2, sigma=0.5, normalize=False))
        np.testing.assert_array_equal(*runs)
    finally:
        if not was_enabled:
            config.disable_op_determinism()


def one_relu_net(kind, kernel, bias, weights):
    """x (1 x 2 x 3) -> 1x1 conv (kernel, bias) -> one ReLU of the given kind -> flatten -> Dense(weights)."""
    inputs = keras.Input((1, 2, 3))
    builtin = {"builtin_relu": "relu", "builtin_relu6": "relu6"}.get(kind)
    h = layers.Conv2D(kernel.shape[1], 1, activation=builtin, name="conv")(inputs)
    if kind == "layer_relu":
        h = layers.ReLU(name="act")(h)
    elif kind == "layer_relu6":
        h = layers.ReLU(max_value=6.0, name="act")(h)
    elif kind.startswith("activation_"):
        h = layers.Activation(kind.removeprefix("activation_"), name="act")(h)
    outputs = layers.Dense(weights.shape[1], use_bias=False, name="dense")(layers.Flatten()(h))
    model = keras.Model(inputs, outputs)
    model.get_layer("conv").set_weights([kernel[None, None], bias])
    model.get_layer("dense").set_weights([weights])
    return model


@pytest.mark.parametrize("kind", ["layer_relu", "layer_relu6", "activation_relu", "activation_relu6",
                                  "builtin_relu", "builtin_relu6"])
def test_guided_backprop_by_hand(kind):
    kernel = np.eye(3, dtype=np.float32)  # unit z[p, f] = x[p, f] + bias[f]
    bias = np.zeros(3, np.float32)
    x = np.array([[[[1.0, 2.0, -1.0], [7.0, 0.5, 3.0]]]], np.float32)  # z > 6 at (1, 0), z < 0 at (0, 2)
    # upstream gradient of class 0 at each unit (flatten order p * 3 + f); negatives must be zeroed
    upstream = np.array([1.0, -2.0, 3.0, 4.0, 5.0, -6.0], np.float32)
    weights = np.stack([upstream, -upstream], axis=1)
    model = one_relu_net(kind, kernel, bias, weights)
    before, outputs = snapshot(model), logits_of(model, x)
    z = x.reshape(6)
    keep = (upstream > 0) & (z > 0)
    if kind.endswith("relu6"):
        keep &= z < 6
    expected = np.where(keep, upstream, 0).reshape(1, 1, 2, 3)  # the conv is the identity
    guided = xt.guided_backprop(model, x, target=0, normalize=False)
    assert guided.shape == (1, 1, 2, 3) and guided.dtype == np.float32
    np.testing.assert_allclose(guided, expected)
    plain_mask = (z > 0) & ((z < 6) if kind.endswith("relu6") else True)
    assert not np.allclose(expected, np.where(plain_mask, upstream, 0).reshape(1, 1, 2, 3))  # differs from grad
    normalised = xt.guided_backprop(model, x, target=0)
    np.testing.assert_allclose(normalised, 0.5 + expected / (2 * np.abs(expected).max()), rtol=1e-6)
    assert_untouched(model, before, x, outputs)


def test_guided_backprop_passes_each_image_on_its_own():
    """No batch-index-0 shortcut: two images, two targets, two different answers."""
    model = one_relu_net("layer_relu6", np.eye(3, dtype=np.float32), np.zeros(3, np.float32),
                         np.stack([np.arange(1.0, 7.0), -np.arange(1.0, 7.0)], 1).astype(np.float32))
    x = np.array([[[[1.0, 2.0, 3.0], [4.0, 5.0, 5.5]]], [[[-1.0, 2.0, 3.0], [4.0, 7.0, 5.5]]]], np.float32)
    both = xt.guided_backprop(model, x, target=[0, 0], normalize=False)
    np.testing.assert_allclose(both[0].ravel(), np.arange(1.0, 7.0))
    np.testing.assert_allclose(both[1].ravel(), [0, 2, 3, 4, 0, 6])
    np.testing.assert_array_equal(xt.guided_backprop(model, x, target=[0, 1], normalize=False)[1], 0)


def test_guided_grad_cam_is_guided_backprop_times_grad_cam(small):
    model, x = small
    # for each image a class whose Grad-CAM is not all zero (the net has random weights)
    peaks = np.stack([xt.grad_cam(model, x, target=c, normalize=False).max(axis=(1, 2)) for c in range(5)], 1)
    targets = peaks.argmax(axis=1)
    guided = xt.guided_backprop(model, x, target=targets, normalize=False)
    heat = xt.grad_cam(model, x, target=targets, normalize=False)
    product = guided * heat[..., None]
    assert np.abs(product).max(axis=(1, 2, 3)).min() > 0
    raw = xt.guided_grad_cam(model, x, target=targets, normalize=False)
    np.testing.assert_allclose(raw, product, rtol=1e-5, atol=1e-6 * np.abs(product).max())
    normalised = xt.guided_grad_cam(model, x, target=targets)
    scale = 2 * np.abs(product).max(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(normalised, 0.5 + product / scale, atol=1e-5)


# ----------------------------------------------------------------------------------------------
# The embedded model
# ----------------------------------------------------------------------------------------------


def test_cam_mean_plus_bias_is_the_logit_for_all_1000_classes(embedded, record_property):
    model, x = embedded
    bias = model.get_layer("predictions").bias.numpy()
    # At 224 px (7 x 7 maps) for each image's top-5 classes
    logits = logits_of(model, x)
    top5 = np.argsort(-logits, axis=1)[:, :5]
    worst_224 = 0.0
    for k in range(5):
        raw = xt.cam(model, x, target=top5[:, k], normalize=False, upsample=False)
        assert raw.shape == (2, 7, 7)
        error = raw.mean(axis=(1, 2)) + bias[top5[:, k]] - logits[np.arange(2), top5[:, k]]
        worst_224 = max(worst_224, np.abs(error).max() / np.ptp(logits))
    # Every class at once: the same image 1000 times at 64 px (2 x 2 maps), one class per copy
    small = xt.preprocess([utils.sample_image("chelsea")],
                          preprocessing=dataclasses.replace(model.preprocessing, size=64))
    copies = tf.repeat(small, 1000, axis=0)
    raw = xt.cam(model, copies, target=np.arange(1000), normalize=False, upsample=False)
    logits = logits_of(model, small)[0]
    error = np.abs(raw.mean(axis=(1, 2)) + bias - logits).max() / np.ptp(logits)
    record_property("figure", f"CAM keras efficientnet_lite0: max |mean_xy M_c + b_c - logit_c| / logit range = "
                              f"{error:.1e} (1000 classes, 64 px), {worst_224:.1e} (top-5 of 2 photos, 224 px)")
    assert error < 1e-5 and worst_224 < 1e-5


def test_grad_cam_is_relu_cam_over_z_on_the_embedded_model(embedded):
    """Tolerance: 1e-5 of the map's largest value (float32 through a 1280-channel sum)."""
    model, x = embedded
    cam = xt.cam(model, x, normalize=False, upsample=False)
    grad_cam = xt.grad_cam(model, x, normalize=False, upsample=False)
    np.testing.assert_allclose(grad_cam, np.maximum(cam, 0) / 49, atol=1e-5 * np.abs(cam).max() / 49)


def test_output_contract_on_the_embedded_model(embedded):
    model, x = embedded
    top1 = logits_of(model, x).argmax(axis=1)
    assert list(top1) == [utils.class_index("Egyptian cat"), utils.class_index("espresso")]
    for name, method, shape in [("cam", xt.cam, (2, 224, 224)), ("grad_cam", xt.grad_cam, (2, 224, 224)),
                                ("saliency", xt.saliency, (2, 224, 224)),
                                ("guided_backprop", xt.guided_backprop, (2, 224, 224, 3)),
                                ("guided_grad_cam", xt.guided_grad_cam, (2, 224, 224, 3))]:
        maps = method(model, x)
        assert maps.shape == shape and maps.dtype == np.float32, name
        assert np.isfinite(maps).all() and maps.min() >= 0 and maps.max() <= 1, name
        if len(shape) == 3:
            np.testing.assert_allclose(maps.min(axis=(1, 2)), 0, atol=1e-6, err_msg=name)
            np.testing.assert_allclose(maps.max(axis=(1, 2)), 1, atol=1e-6, err_msg=name)
        else:  # signed: 0.5 + g / (2 max|g|) touches 0 or 1 in each image
            assert np.all(np.isclose(maps.min(axis=(1, 2, 3)), 0, atol=1e-6)
                          | np.isclose(maps.max(axis=(1, 2, 3)), 1, atol=1e-6)), name
        np.testing.assert_allclose(method(model, x, target=top1), maps, atol=1e-6, err_msg=name)
    assert xt.grad_cam(model, x, upsample=False).shape == (2, 7, 7)
    assert xt.cam(model, x, upsample=False).shape == (2, 7, 7)
    np.testing.assert_allclose(xt.grad_cam(model, x, target=281), xt.grad_cam(model, x, target=[281, 281]),
                               atol=1e-6)


def test_feature_layers_of_the_embedded_model(embedded):
    model, x = embedded
    names = xt.feature_layers(model)
    assert names[0] == "stem_conv" and names[-3:] == ["head_conv", "head_bn", "head_relu"]
    assert "avg_pool" not in names and "predictions" not in names
    assert xt.feature_layers(model, x) == names


# ----------------------------------------------------------------------------------------------
# CAM needs a GAP -> Dense head
# ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("head", ["gmp", "flatten"])
def test_cam_refuses_other_heads(head):
    keras.utils.set_random_seed(1)
    model = xt.small_cnn(head, input_size=16, width=4, depth=2)
    x = RNG.normal(size=(2, 16, 16, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="grad_cam"):
        xt.cam(model, x)
    assert xt.grad_cam(model, x).shape == (2, 16, 16)  # Grad-CAM works with any head


def test_cam_refuses_a_model_without_dense_layer():
    inputs = keras.Input((4, 4, 3))
    model = keras.Model(inputs, layers.GlobalAveragePooling2D()(layers.Conv2D(5, 1, name="conv")(inputs)))
    with pytest.raises(ValueError, match="no Dense layer.*grad_cam"):
        xt.cam(model, np.ones((1, 4, 4, 3), np.float32))


# ----------------------------------------------------------------------------------------------
# Pre-softmax scores
# ----------------------------------------------------------------------------------------------


def softmax_twins(kind):
    """The same GAP net ending in logits and ending in a softmax (built into Dense or as a layer)."""
    keras.utils.set_random_seed(2)
    twins = []
    for softmax in (False, True):
        inputs = keras.Input((6, 6, 3))
        h = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
        h = layers.GlobalAveragePooling2D(name="gap")(h)
        activation = "softmax" if softmax and kind == "dense" else None
        h = layers.Dense(5, activation=activation, name="dense")(h)
        if softmax and kind == "activation":
            h = layers.Activation("softmax", name="probs")(h)
        elif softmax and kind == "layer":
            h = layers.Softmax(name="probs")(h)
        twins.append(keras.Model(inputs, h))
    twins[1].set_weights(twins[0].get_weights())
    return twins


@pytest.mark.parametrize("kind", ["dense", "activation", "layer"])
def test_methods_use_pre_softmax_scores(kind):
    logits_model, softmax_model = softmax_twins(kind)
    x = RNG.normal(size=(2, 6, 6, 3)).astype(np.float32) * 3
    before, outputs = snapshot(softmax_model), logits_of(softmax_model, x)
    np.testing.assert_allclose(outputs.sum(axis=1), 1, rtol=1e-5)  # it does end in a softmax
    for method in (xt.grad_cam, xt.cam):
        np.testing.assert_allclose(method(softmax_model, x, target=[1, 4], normalize=False),
                                   method(logits_model, x, target=[1, 4], normalize=False), rtol=1e-5, atol=1e-6)
    for method in (xt.saliency, xt.guided_backprop):
        np.testing.assert_allclose(method(softmax_model, x, normalize=False), method(logits_model, x, normalize=False),
                                   rtol=1e-5, atol=1e-6)
    assert_untouched(softmax_model, before, x, outputs)
    final = softmax_model.layers[-1]
    assert isinstance(final, layers.Softmax) or final.activation is keras.activations.softmax


# ----------------------------------------------------------------------------------------------
# Nested models
# ----------------------------------------------------------------------------------------------


def nested_and_flat(outer_kind):
    """An inner functional base model used as a layer, and the same network written flat."""
    keras.utils.set_random_seed(3)

    def body(inputs, prefix):
        h = layers.Conv2D(4, 3, padding="same", activation="relu", name=f"{prefix}c1")(inputs)
        h = layers.Conv2D(6, 3, padding="same", name=f"{prefix}c2")(h)
        return layers.ReLU(max_value=6.0, name=f"{prefix}r2")(h)

    inputs = keras.Input((8, 8, 3))
    inner = keras.Model(inputs, body(inputs, ""), name="base")
    head = [layers.GlobalAveragePooling2D(name="gap"), layers.Dense(3, name="dense")]
    if outer_kind == "sequential":
        nested = keras.Sequential([keras.Input((8, 8, 3)), inner, *head])
    else:
        outer_inputs = keras.Input((8, 8, 3))
        nested = keras.Model(outer_inputs, head[1](head[0](inner(outer_inputs))))
    flat_inputs = keras.Input((8, 8, 3))
    h = body(flat_inputs, "flat_")
    flat = keras.Model(flat_inputs, layers.Dense(3, name="flat_dense")(layers.GlobalAveragePooling2D()(h)))
    flat.set_weights(nested.get_weights())
    return nested, flat


@pytest.mark.parametrize("outer_kind", ["sequential", "functional"])
def test_grad_cam_inside_a_nested_model(outer_kind):
    nested, flat = nested_and_flat(outer_kind)
    x = RNG.normal(size=(2, 8, 8, 3)).astype(np.float32)
    np.testing.assert_allclose(logits_of(nested, x), logits_of(flat, x), rtol=1e-5, atol=1e-6)
    before, outputs = snapshot(nested), logits_of(nested, x)
    assert xt.feature_layers(nested) == ["c1", "c2", "r2", "base"]
    assert xt.feature_layers(nested, x) == ["c1", "c2", "r2", "base"]
    for layer in ("c1", "c2", "r2"):
        np.testing.assert_allclose(xt.grad_cam(nested, x, target=[0, 2], layer=layer, normalize=False),
                                   xt.grad_cam(flat, x, target=[0, 2], layer=f"flat_{layer}", normalize=False),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xt.grad_cam(nested, x, layer="base"), xt.grad_cam(flat, x), atol=1e-5)
    np.testing.assert_allclose(xt.grad_cam(nested, x), xt.grad_cam(flat, x), atol=1e-5)  # default layer
    np.testing.assert_allclose(xt.cam(nested, x, normalize=False), xt.cam(flat, x, normalize=False), rtol=1e-5,
                               atol=1e-6)
    # Guided Backprop reaches the ReLUs inside the base model
    np.testing.assert_allclose(xt.guided_backprop(nested, x, normalize=False),
                               xt.guided_backprop(flat, x, normalize=False), rtol=1e-5, atol=1e-7)
    assert_untouched(nested, before, x, outputs)


class Subclassed(keras.Model):
    """The flat net of `nested_and_flat` as a subclassed model: no symbolic graph to read shapes from."""

    def __init__(self):
        super().__init__()
        self.c1 = layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")
        self.c2 = layers.Conv2D(6, 3, padding="same", name="c2")
        self.r2 = layers.ReLU(max_value=6.0, name="r2")
        self.gap = layers.GlobalAveragePooling2D(name="gap")
        self.dense = layers.Dense(3, name="dense")

    def call(self, x):
        return self.dense(self.gap(self.r2(self.c2(self.c1(x)))))


def test_a_subclassed_model_works_too():
    _, flat = nested_and_flat("functional")
    model = Subclassed()
    x = RNG.normal(size=(2, 8, 8, 3)).astype(np.float32)
    model(x)
    model.set_weights(flat.get_weights())
    assert xt.feature_layers(model, x) == ["c1", "c2", "r2"]
    for method in (xt.cam, xt.grad_cam, xt.guided_backprop):
        np.testing.assert_allclose(method(model, x, normalize=False), method(flat, x, normalize=False),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xt.grad_cam(model, x, layer="c1", target=2), xt.grad_cam(flat, x, layer="flat_c1",
                                                                                      target=2), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# Hygiene: the model is left exactly as found
# ----------------------------------------------------------------------------------------------


class Fuse(layers.Layer):
    """Identity that raises while `blown` is set: an error in the middle of a patched forward pass."""

    blown = False

    def call(self, inputs):
        if Fuse.blown:
            raise RuntimeError("fuse blown")
        return inputs


def zoo_model():
    """Every kind of ReLU, a nested model, a shared layer and a softmax at the end."""
    keras.utils.set_random_seed(4)
    inputs = keras.Input((8, 8, 3))
    h = layers.Conv2D(4, 3, padding="same", activation="relu", name="c1")(inputs)
    h = layers.ReLU(max_value=6.0, name="r1")(layers.Conv2D(4, 3, padding="same", name="c2")(h))
    inner = keras.Model(inputs, layers.Activation("relu6", name="a1")(h), name="inner")
    outer_inputs = keras.Input((8, 8, 3))
    h = Fuse(name="fuse")(inner(outer_inputs))
    shared = layers.Conv2D(4, 1, name="shared")
    h = layers.Activation("relu", name="a2")(shared(shared(h)))
    h = layers.Dense(6, activation="relu", name="hidden")(layers.GlobalAveragePooling2D(name="gap")(h))
    return keras.Model(outer_inputs, layers.Dense(3, activation="softmax", name="probs")(h))


def test_every_method_leaves_the_model_as_it_was():
    model = zoo_model()
    x = RNG.normal(size=(2, 8, 8, 3)).astype(np.float32)
    before, outputs = snapshot(model), logits_of(model, x)
    calls = [lambda: xt.grad_cam(model, x, layer="c2"), lambda: xt.saliency(model, x),
             lambda: xt.smooth_grad(model, x, n=2), lambda: xt.guided_backprop(model, x),
             lambda: xt.guided_grad_cam(model, x, layer="a1"), lambda: xt.feature_layers(model, x)]
    for call in calls:
        call()
        assert_untouched(model, before, x, outputs)
    failing = [lambda: xt.grad_cam(model, x, layer="shared"),  # runs twice
               lambda: xt.grad_cam(model, x, layer="nope"), lambda: xt.guided_backprop(model, x, target=3),
               lambda: xt.cam(model, x)]  # not a GAP -> Dense head (hidden Dense in between)
    for call in failing:
        with pytest.raises(ValueError):
            call()
        assert_untouched(model, before, x, outputs)
    # An error raised in the middle of the forward pass (while tracing), with every swap and tap in place
    fresh = zoo_model()
    before_fresh = snapshot(fresh)
    Fuse.blown = True
    try:
        for method in (xt.guided_backprop, xt.saliency, xt.smooth_grad,
                       lambda model, x: xt.grad_cam(model, x, layer="c2")):
            with pytest.raises(RuntimeError, match="fuse blown"):
                method(fresh, x)
    finally:
        Fuse.blown = False
    assert_untouched(fresh, before_fresh, x, outputs)
    # and a failed trace leaves nothing behind: the next calls give the answers of the untouched twin
    np.testing.assert_allclose(xt.guided_backprop(fresh, x), xt.guided_backprop(model, x), atol=1e-6)
    np.testing.assert_allclose(xt.grad_cam(fresh, x, layer="c2"), xt.grad_cam(model, x, layer="c2"), atol=1e-6)


def test_a_layer_that_runs_twice_is_refused():
    with pytest.raises(ValueError, match="'shared' runs more than once"):
        xt.grad_cam(zoo_model(), RNG.normal(size=(1, 8, 8, 3)).astype(np.float32), layer="shared")


def test_compiled_functions_follow_changes_to_the_model():
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((6, 6, 3)), layers.Conv2D(4, 3, activation="relu", name="conv"),
                              layers.GlobalAveragePooling2D(), layers.Dense(3, name="dense")])
    x = RNG.normal(size=(2, 6, 6, 3)).astype(np.float32)
    first = xt.grad_cam(model, x, target=0, normalize=False)
    model.get_layer("dense").set_weights([-w for w in model.get_layer("dense").get_weights()])  # weights: live
    np.testing.assert_array_equal(xt.grad_cam(model, x, target=0, normalize=False),
                                  xt.grad_cam(model, x, target=0, normalize=False))
    assert not np.allclose(xt.grad_cam(model, x, target=0, normalize=False), first)
    model.get_layer("conv").activation = keras.activations.linear  # structure: traced again
    linear = keras.Sequential([keras.Input((6, 6, 3)), layers.Conv2D(4, 3), layers.GlobalAveragePooling2D(),
                               layers.Dense(3)])
    linear.set_weights(model.get_weights())
    np.testing.assert_allclose(xt.grad_cam(model, x, target=0, normalize=False),
                               xt.grad_cam(linear, x, target=0, normalize=False), rtol=1e-5, atol=1e-7)
    model.pop()
    model.add(layers.Dense(2, name="new_dense"))
    assert xt.grad_cam(model, x, target=1).shape == (2, 6, 6)
    with pytest.raises(ValueError, match="out of range"):
        xt.grad_cam(model, x, target=2)


def test_compiled_functions_die_with_their_model():
    import gc
    import weakref

    model = linear_net(np.ones((48, 2), np.float32))
    xt.saliency(model, np.ones((1, 4, 4, 3), np.float32))
    assert model in methods._COMPILED
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


# ----------------------------------------------------------------------------------------------
# Bad input
# ----------------------------------------------------------------------------------------------


def test_bad_layers_are_named_with_the_valid_ones(embedded):
    model, x = embedded
    with pytest.raises(ValueError, match="no layer named 'nope'.*head_relu"):
        xt.grad_cam(model, x, layer="nope")
    for name in ("predictions", "avg_pool"):
        with pytest.raises(ValueError, match=f"layer '{name}' outputs shape .*not a convolutional.*head_relu"):
            xt.grad_cam(model, x, layer=name)
    with pytest.raises(ValueError, match="'predictions'.*not a convolutional"):
        xt.guided_grad_cam(model, x, layer="predictions")


def test_a_one_by_one_map_is_not_a_feature_map(embedded):
    model, _ = embedded
    tiny_images = xt.preprocess([utils.sample_image("chelsea")],
                                preprocessing=dataclasses.replace(model.preprocessing, size=32))
    with pytest.raises(ValueError, match=r"'head_relu' outputs shape \(1, 1, 1, 1280\)"):
        xt.grad_cam(model, tiny_images)


@pytest.mark.parametrize("method", ["cam", "grad_cam", "saliency", "smooth_grad", "guided_backprop",
                                    "guided_grad_cam"])
def test_bad_batches_and_targets(tiny, method):
    model, x, *_ = tiny
    fn = getattr(xt, method)
    with pytest.raises(ValueError, match="target class 3 is out of range"):
        fn(model, x, target=3)
    with pytest.raises(ValueError, match="target has 3 classes for a batch of 2"):
        fn(model, x, target=[0, 1, 2])
    with pytest.raises(TypeError):
        fn(model, x, target=1.5)
    with pytest.raises(ValueError, match="empty batch"):
        fn(model, x[:0])
    with pytest.raises(ValueError, match=r"expected a batch of images shaped \(B, H, W, C\)"):
        fn(model, x[0])
    bad = x.copy()
    bad[1, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(model, bad)
    bad[1, 0, 0, 0] = np.inf
    with pytest.raises(ValueError, match="NaN or infinite"):
        fn(model, bad)


def test_bad_smooth_grad_arguments(tiny):
    model, x, *_ = tiny
    for kwargs in ({"n": 0}, {"sigma": -0.1}, {"sigma": float("nan")}, {"batch_size": 0}):
        with pytest.raises(ValueError):
            xt.smooth_grad(model, x, **kwargs)


def test_a_constant_map_normalises_to_zeros(tiny):
    model, x, kernel, weights, bias = tiny
    negative = gap_net(np.abs(kernel), -np.abs(weights), bias)  # every CAM value < 0: Grad-CAM is all zero
    maps = xt.grad_cam(negative, np.abs(x), target=0)
    assert not np.isnan(maps).any()
    np.testing.assert_array_equal(maps, 0)
    linear = linear_net(np.zeros((48, 2), np.float32))  # zero gradient everywhere
    np.testing.assert_array_equal(xt.saliency(linear, x), 0)
    np.testing.assert_array_equal(xt.guided_backprop(linear, x), 0.5)  # zero maps to 0.5 in signed maps


def test_explain_messages_are_the_shared_ones():
    assert "grad_cam" in str(contract.no_cam_head("x"))
    assert set(xt.__all__) >= {"cam", "grad_cam", "saliency", "smooth_grad", "guided_backprop",
                               "guided_grad_cam", "feature_layers"}


# ----------------------------------------------------------------------------------------------
# strict=False: the CAM formula on a head that is not GAP -> Dense (the CAM paper's GMP networks)
# ----------------------------------------------------------------------------------------------


def small_gmp_net():
    keras.utils.set_random_seed(3)
    model = xt.small_cnn("gmp", num_classes=3, input_size=16, width=4, depth=2)
    for layer in model.layers:  # BatchNorm statistics that are not the identity, so the test sees them
        if isinstance(layer, layers.BatchNormalization):
            gamma, beta, mean, var = layer.get_weights()
            layer.set_weights([gamma, beta, RNG.uniform(-0.5, 0.5, mean.shape).astype(np.float32),
                               RNG.uniform(0.5, 2.0, var.shape).astype(np.float32)])
    return model


def test_cam_strict_false_is_the_formula_on_a_gmp_head():
    model = small_gmp_net()
    x = RNG.normal(size=(2, 16, 16, 3)).astype(np.float32)
    features = keras.Model(model.input, model.get_layer("last_relu").output)(x, training=False).numpy()
    kernel, bias = (v.numpy() for v in (model.get_layer("logits").kernel, model.get_layer("logits").bias))
    logits = model(x, training=False).numpy()
    expected = np.einsum("bhwk,kc->bchw", features, kernel)  # M_c = sum_k w_k^c f_k
    got = xt.cam(model, x, target=[0, 2], normalize=False, upsample=False, strict=False)
    np.testing.assert_allclose(got, expected[[0, 1], [0, 2]], rtol=1e-5, atol=1e-5)
    # GMP: the logit is the Dense layer applied to the spatial max, not the mean of the map
    np.testing.assert_allclose(logits, features.max(axis=(1, 2)) @ kernel + bias, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got.mean(axis=(1, 2)) + bias[[0, 2]], logits[[0, 1], [0, 2]], atol=1e-2)
    top1 = xt.cam(model, x, normalize=False, upsample=False, strict=False)  # target None: each image's top-1
    np.testing.assert_allclose(top1, expected[[0, 1], logits.argmax(1)], rtol=1e-5, atol=1e-5)


def test_cam_strict_true_still_refuses_a_gmp_head():
    model = small_gmp_net()
    x = RNG.normal(size=(2, 16, 16, 3)).astype(np.float32)
    with pytest.raises(ValueError, match="not global average pooling.*use grad_cam"):
        xt.cam(model, x)
    with pytest.raises(ValueError, match="use grad_cam"):
        xt.cam(model, x, strict=True)


def test_cam_strict_false_changes_nothing_on_a_gap_head(tiny):
    model, x, *_ = tiny
    np.testing.assert_array_equal(xt.cam(model, x, target=1, strict=False), xt.cam(model, x, target=1))


def test_cam_strict_false_still_needs_one_weight_per_channel():
    keras.utils.set_random_seed(0)
    model = xt.small_cnn("flatten", num_classes=3, input_size=16, width=4, depth=2)
    with pytest.raises(ValueError, match="channels.*use grad_cam"):  # 8 channels, a Dense layer of 128 inputs
        xt.cam(model, RNG.normal(size=(1, 16, 16, 3)).astype(np.float32), strict=False)
