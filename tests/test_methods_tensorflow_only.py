"""What only the Keras backend has: Keras' spellings of ReLU and softmax, nested models (Sequential and
functional) and their feature layers, subclassed models, the cache of compiled functions, and the
1x1 default layer of the embedded model. The contract both backends share is in
tests/test_methods_contract.py.

Private name used: utils.tensorflow.methods._COMPILED (the cache whose lifetime one test checks).
"""
import dataclasses
import gc
import weakref

import numpy as np
import pytest

import tiny_nets as nets
import utils

import keras  # noqa: E402  (after torch: the root conftest imports torch and torchvision first)
from keras import layers  # noqa: E402


@pytest.fixture
def xt():
    """This file runs on TensorFlow only (overrides the root conftest's fixture of both backends, so
    `embedded_model` is the Keras model)."""
    import utils.tensorflow
    return utils.tensorflow


def normal(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("kind", nets.KERAS_RELUS)
def test_guided_backprop_by_hand_through_keras_activations(xt, kind):
    """Activation("relu"), Activation("relu6") and activations built into a layer are guided too."""
    nets.check_guided_by_hand(xt, kind)


def softmax_models():
    """A GAP net ending in logits, and the same net ending in a softmax spelt the two Keras ways the
    contract's layers.Softmax test does not cover: built into the Dense layer, or an Activation layer."""
    keras.utils.set_random_seed(2)
    models = {}
    for kind in ("logits", "dense", "activation"):
        inputs = keras.Input((6, 6, 3))
        h = layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
        h = layers.GlobalAveragePooling2D(name="gap")(h)
        h = layers.Dense(5, activation="softmax" if kind == "dense" else None, name="dense")(h)
        if kind == "activation":
            h = layers.Activation("softmax", name="probs")(h)
        models[kind] = keras.Model(inputs, h)
    for kind in ("dense", "activation"):
        models[kind].set_weights(models["logits"].get_weights())
    return models


def test_methods_use_pre_softmax_scores_whatever_the_softmax_spelling(xt):
    models = softmax_models()
    x = normal(0, 2, 6, 6, 3) * 3
    for kind in ("dense", "activation"):
        softmax_model = models[kind]
        before, outputs = nets.state(xt, softmax_model), nets.logits(xt, softmax_model, x)
        np.testing.assert_allclose(outputs.sum(axis=1), 1, rtol=1e-5)  # it does end in a softmax
        assert softmax_model.layers[-1].activation is keras.activations.softmax
        for method in (xt.grad_cam, xt.cam):
            np.testing.assert_allclose(method(softmax_model, x, target=[1, 4], normalize=False),
                                       method(models["logits"], x, target=[1, 4], normalize=False),
                                       rtol=1e-5, atol=1e-6, err_msg=kind)
        for method in (xt.saliency, xt.guided_backprop):
            np.testing.assert_allclose(method(softmax_model, x, normalize=False),
                                       method(models["logits"], x, normalize=False), rtol=1e-5, atol=1e-6,
                                       err_msg=kind)
        assert nets.state(xt, softmax_model) == before
        np.testing.assert_array_equal(nets.logits(xt, softmax_model, x), outputs)


# ----------------------------------------------------------------------------------------------
# Nested and subclassed models


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
def test_methods_inside_a_nested_model(xt, outer_kind):
    nested, flat = nested_and_flat(outer_kind)
    x = normal(1, 2, 8, 8, 3)
    np.testing.assert_allclose(nets.logits(xt, nested, x), nets.logits(xt, flat, x), rtol=1e-5, atol=1e-6)
    before, outputs = nets.state(xt, nested), nets.logits(xt, nested, x)
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
    assert nets.state(xt, nested) == before
    np.testing.assert_array_equal(nets.logits(xt, nested, x), outputs)


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


def test_a_subclassed_model_works_too(xt):
    _, flat = nested_and_flat("functional")
    model = Subclassed()
    x = normal(2, 2, 8, 8, 3)
    model(x)
    model.set_weights(flat.get_weights())
    assert xt.feature_layers(model, x) == ["c1", "c2", "r2"]
    for method in (xt.cam, xt.grad_cam, xt.guided_backprop):
        np.testing.assert_allclose(method(model, x, normalize=False), method(flat, x, normalize=False),
                                   rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xt.grad_cam(model, x, layer="c1", target=2),
                               xt.grad_cam(flat, x, layer="flat_c1", target=2), atol=1e-5)


# ----------------------------------------------------------------------------------------------
# The compiled functions


def test_compiled_functions_follow_changes_to_the_model(xt):
    keras.utils.set_random_seed(5)
    model = keras.Sequential([keras.Input((6, 6, 3)), layers.Conv2D(4, 3, activation="relu", name="conv"),
                              layers.GlobalAveragePooling2D(), layers.Dense(3, name="dense")])
    x = normal(3, 2, 6, 6, 3)
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


def test_compiled_functions_die_with_their_model(xt):
    from utils.tensorflow import methods

    model = nets.linear_net(xt, np.ones((4, 4, 3, 2), np.float32))
    xt.saliency(model, np.ones((1, 4, 4, 3), np.float32))
    assert model in methods._COMPILED  # the cache holds it, so the test below is not vacuous
    ref = weakref.ref(model)
    del model
    gc.collect()
    assert ref() is None


# ----------------------------------------------------------------------------------------------
# The embedded model at 32 px: its default layer is 1 x 1 there


def test_the_default_layer_is_refused_where_its_map_is_one_by_one(xt, embedded_model):
    tiny = xt.preprocess([utils.sample_image("chelsea")],
                         preprocessing=dataclasses.replace(embedded_model.preprocessing, size=32))
    with pytest.raises(ValueError, match=r"'head_relu' outputs shape \(1, 1, 1, 1280\)"):
        xt.grad_cam(embedded_model, tiny)
