"""BatchNorm folded into the convolution before it, in the forward passes of the perturbation methods
(Score-CAM, occlusion, Integrated Gradients) and of probabilities: the same scores as the model, every
BatchNorm of the embedded model folded, no fold where another layer reads the convolution's output,
and the model left as found, also after an error."""
import importlib

import numpy as np
import pytest

import tiny_nets as nets
import utils
from utils import contract


def methods(xt):
    return importlib.import_module(f"{xt.__name__}.methods")


def folded_logits(xt, model, x) -> np.ndarray:
    """The logits with every foldable BatchNorm folded, as the perturbation methods compute them."""
    if nets.framework(xt) == "torch":
        import torch

        from utils.torch.core import inference

        with inference(model), torch.no_grad(), methods(xt)._folded_batchnorms(model):
            return model(x).numpy()
    return methods(xt)._logits(model, x, folded=True).numpy()


def batchnorms(xt, model) -> list:
    if nets.framework(xt) == "torch":
        import torch
        return [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    import keras
    return [layer for layer in model.layers if isinstance(layer, keras.layers.BatchNormalization)]


def test_the_embedded_model_folds_every_batchnorm_and_keeps_its_scores(xt, embedded_model):
    x = xt.preprocess([utils.sample_image(name) for name in ("chelsea", "coffee")], embedded_model)
    before = nets.state(xt, embedded_model)
    pairs = methods(xt)._fold_pairs(embedded_model)
    assert len(pairs) == len(batchnorms(xt, embedded_model)) > 40
    plain, folded = nets.logits(xt, embedded_model, x), folded_logits(xt, embedded_model, x)
    np.testing.assert_allclose(folded, plain, atol=1e-4 * np.abs(plain).max())
    assert (folded.argmax(axis=1) == plain.argmax(axis=1)).all()
    assert nets.state(xt, embedded_model) == before


def test_folding_reads_the_current_statistics(xt):
    """Non-trivial running statistics, then new ones: the folded scores follow (TensorFlow reuses its
    compiled function, which reads the variables; torch folds again at each call)."""
    model = nets.small_cnn(xt, width=8)
    x = nets.batch(xt, np.random.default_rng(0).normal(size=(3, 64, 64, 3)).astype(np.float32))
    assert len(methods(xt)._fold_pairs(model)) == len(batchnorms(xt, model)) == 4
    for seed in (1, 2):
        nets.randomise_batch_norm(xt, model, np.random.default_rng(seed))
        plain = nets.logits(xt, model, x)
        np.testing.assert_allclose(folded_logits(xt, model, x), plain, rtol=1e-5, atol=1e-5 * np.abs(plain).max())


def test_a_convolution_read_by_another_layer_is_not_folded(xt):
    """Folding changes the convolution's output, so it needs the BatchNorm to be its only reader: not
    the case for a conv whose output also feeds a skip connection, or one with a hook on it."""
    if nets.framework(xt) == "torch":
        import torch
        from torch import nn

        class Skip(nn.Module):
            def __init__(self):
                super().__init__()
                self.conv, self.bn = nn.Conv2d(3, 3, 3, padding=1), nn.BatchNorm2d(3)
                self.tail = nn.Sequential(nn.Conv2d(3, 4, 1), nn.BatchNorm2d(4), nn.AdaptiveAvgPool2d(1),
                                          nn.Flatten(), nn.Linear(4, 2))

            def forward(self, x):
                h = self.conv(x)
                return self.tail(h + self.bn(h))
        model = Skip().eval()
        assert [pair[0] for pair in methods(xt)._fold_pairs(model)] == [model.tail[0]]
        handle = model.tail[0].register_forward_hook(lambda *args: None)
        assert methods(xt)._fold_pairs(model) == []
        handle.remove()
    else:
        import keras
        from keras import layers
        inputs = keras.Input((8, 8, 3))
        h = layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
        h = layers.Add()([h, layers.BatchNormalization(name="bn")(h)])
        h = layers.BatchNormalization(name="tail_bn")(layers.Conv2D(4, 1, name="tail")(h))
        h = layers.Conv2D(4, 1, activation="relu", name="relu_conv")(h)  # a ReLU inside: nothing to fold into
        h = layers.BatchNormalization(name="relu_bn")(h)
        model = keras.Model(inputs, layers.Dense(2)(layers.GlobalAveragePooling2D()(h)))
        assert [conv.name for conv, _ in methods(xt)._fold_pairs(model)] == ["tail"]
    nets.randomise_batch_norm(xt, model, np.random.default_rng(3))
    x = nets.batch(xt, np.random.default_rng(4).normal(size=(2, 8, 8, 3)).astype(np.float32))
    plain = nets.logits(xt, model, x)
    np.testing.assert_allclose(folded_logits(xt, model, x), plain, rtol=1e-5, atol=1e-6)


def tripwire_net(xt):
    """conv -> bn -> ReLU -> wire -> GAP -> dense, where `wire` raises RuntimeError("folded") whenever it
    runs (torch) or is traced (Keras) while bn is folded: an error in the middle of a folded pass."""
    if nets.framework(xt) == "torch":
        import torch
        from torch import nn

        class Wire(nn.Module):
            def forward(self, h):
                if "forward" in model[1].__dict__:
                    raise RuntimeError("folded")
                return h
        torch.manual_seed(0)
        model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.ReLU(), Wire(),
                              nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
        return model, "2"
    import keras
    from keras import layers

    class Wire(layers.Layer):
        def call(self, inputs):
            if "call" in norm.__dict__:
                raise RuntimeError("folded")
            return inputs
    keras.utils.set_random_seed(0)
    inputs, norm = keras.Input((8, 8, 3)), layers.BatchNormalization(name="bn")
    h = layers.ReLU(name="relu")(norm(layers.Conv2D(4, 3, padding="same")(inputs)))
    model = keras.Model(inputs, layers.Dense(3)(layers.GlobalAveragePooling2D()(Wire()(h))))
    return model, "relu"


@pytest.mark.parametrize("method", ["score_cam", "occlusion", "integrated_gradients"])
def test_an_error_in_a_folded_pass_leaves_the_model_as_found(xt, method):
    model, layer = tripwire_net(xt)
    nets.randomise_batch_norm(xt, model, np.random.default_rng(5))
    x = nets.batch(xt, np.random.default_rng(6).normal(size=(2, 8, 8, 3)).astype(np.float32))
    before, outputs = nets.state(xt, model), nets.logits(xt, model, x)
    assert len(methods(xt)._fold_pairs(model)) == 1
    kwargs = {"layer": layer} if method == "score_cam" else {"patch": 4, "stride": 4} if method == "occlusion" else {}
    with pytest.raises(RuntimeError, match="folded"):
        getattr(xt, method)(model, x, **kwargs)
    assert nets.state(xt, model) == before
    np.testing.assert_array_equal(nets.logits(xt, model, x), outputs)
