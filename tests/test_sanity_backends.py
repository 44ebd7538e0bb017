"""xt.probabilities and xt.randomized_copy (the model-randomisation test) in both backends."""
import numpy as np
import pytest

import utils

# The same layers under each framework's names: the first conv stage and the final linear layer.
NAMES = {"torch": {"conv": "features.conv1", "linear": "classifier"},
         "tensorflow": {"conv": "conv1", "linear": "logits"}}


def small(xt, seed=0):
    xt.seed_everything(seed)
    return xt.small_cnn("gap", num_classes=5, input_size=32, width=8, depth=2)


def named_weights(xt, model):
    """{name: array} of every trainable tensor, with the layer (module) name it belongs to."""
    if xt.FRAMEWORK == "torch":
        return {name: p.detach().cpu().numpy().copy() for name, p in model.named_parameters()}
    return {w.path: w.numpy().copy() for w in model.trainable_weights}


def belongs(xt, weight_name, layer):
    if xt.FRAMEWORK == "torch":
        return weight_name.startswith(layer + ".")
    return weight_name.split("/")[0] == layer or weight_name.split("/")[0].startswith(layer + "_")


def test_probabilities_are_the_softmax_of_the_logits(xt):
    model = small(xt)
    x = xt.preprocess(utils.make_shapes(7, size=32, seed=1).images, model)
    probs = xt.probabilities(model, x)
    assert probs.shape == (7, 5) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(1), 1, atol=1e-5)
    np.testing.assert_allclose(xt.probabilities(model, x, batch_size=3), probs, atol=1e-6)
    top = xt.predict(model, x, top=1)
    np.testing.assert_array_equal(probs.argmax(1), top.indices[:, 0])
    np.testing.assert_allclose(probs.max(1), top.probs[:, 0], atol=1e-6)
    with pytest.raises(ValueError, match="batch_size"):
        xt.probabilities(model, x, batch_size=0)


def test_randomized_copy_changes_only_the_named_layers(xt):
    model, names = small(xt), NAMES[xt.FRAMEWORK]
    before = named_weights(xt, model)
    copy = xt.randomized_copy(model, [names["linear"], names["conv"]], seed=0)
    after_original, after_copy = named_weights(xt, model), named_weights(xt, copy)
    assert all(np.array_equal(before[k], after_original[k]) for k in before), "the original is not touched"
    assert set(after_copy) == set(before)
    for name, values in after_copy.items():
        randomised = belongs(xt, name, names["linear"]) or belongs(xt, name, names["conv"])
        if not randomised:
            assert np.array_equal(values, before[name]), name
        elif before[name].std() > 0:  # new values at the same scale (a constant, e.g. BN's initial gamma, stays)
            assert not np.array_equal(values, before[name]), name
            assert values.std() == pytest.approx(before[name].std(), rel=0.5), name
    x = xt.preprocess(utils.make_shapes(4, size=32, seed=1).images, model)
    assert not np.allclose(xt.probabilities(copy, x), xt.probabilities(model, x), atol=1e-4)
    assert copy.preprocessing == model.preprocessing


def test_randomized_copy_is_seeded(xt):
    model, linear = small(xt), NAMES[xt.FRAMEWORK]["linear"]
    first, again, other = (named_weights(xt, xt.randomized_copy(model, linear, seed=s)) for s in (3, 3, 4))
    assert all(np.array_equal(first[k], again[k]) for k in first)
    assert not all(np.array_equal(first[k], other[k]) for k in first)


def test_randomized_copy_unknown_layer_lists_the_valid_ones(xt):
    model = small(xt)
    with pytest.raises(ValueError, match=f"no layer named 'conv9'.*{NAMES[xt.FRAMEWORK]['conv']}"):
        xt.randomized_copy(model, ["conv9"])


def test_randomising_the_top_of_the_embedded_model_changes_grad_cam(xt, embedded_model):
    """The model-randomisation test in one step: the classifier and the last conv redrawn."""
    model = embedded_model
    top = ["classifier", "features.head"] if xt.FRAMEWORK == "torch" else ["predictions", "head"]
    x = xt.preprocess(utils.sample_image("chelsea"), model)
    trained = xt.grad_cam(model, x, target=285)
    randomised = xt.grad_cam(xt.randomized_copy(model, top, seed=0), x, target=285)
    np.testing.assert_array_equal(xt.grad_cam(model, x, target=285), trained)  # the original still explains the same
    assert utils.metrics.rank_correlation(trained, randomised)[0] < 0.9


def test_cascading_randomization_matches_randomized_copy_step_by_step(xt):
    """Step k of the cascade is the model with the first k + 1 names redrawn, from one copy."""
    model, names = small(xt), NAMES[xt.FRAMEWORK]
    order = [names["linear"], names["conv"]]
    before = named_weights(xt, model)
    steps = []
    for k, (name, randomised) in enumerate(xt.cascading_randomization(model, order, seed=5)):
        assert name == order[k]
        steps.append(named_weights(xt, randomised))
        expected = named_weights(xt, xt.randomized_copy(model, order[:k + 1], seed=5))
        assert all(np.array_equal(steps[-1][w], expected[w]) for w in expected), name
    assert len(steps) == 2
    assert all(np.array_equal(before[w], named_weights(xt, model)[w]) for w in before), "the original is not touched"
    with pytest.raises(ValueError, match="no layer named 'conv9'"):
        next(xt.cascading_randomization(model, ["conv9"]))
