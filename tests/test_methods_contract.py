"""What every explanation method promises in both backends (ARCHITECTURE.md, "What an explanation
method promises"), written once and run on each through the root conftest's `xt` fixture.

Analytic answers on tiny networks with given weights (tests/tiny_nets.py builds each one in both
frameworks, with the same layer names), the papers' identities on the embedded EfficientNet-Lite0
(the shared `embedded_model` fixture), the output contract, SmoothGrad's noise and targets, bad
input, and model hygiene. What only one framework has is in tests/test_methods_torch_only.py and
tests/test_methods_tensorflow_only.py; torch against TensorFlow in tests/test_methods_parity.py.

Tolerances: exact only where no float kernel can change the answer (small dyadic numbers, the same
computation run twice in one process, the rescaling's 0 and 1); otherwise relative to the size of
the quantity compared.
"""
import dataclasses
import re

import numpy as np
import pytest

import tiny_nets as nets
import utils
from utils import contract

# The embedded model's layers under each framework's names, and the shapes its error messages show.
EMBEDDED = {
    "torch": {"stem": "features.stem", "tail": ["features.block14", "features.block15", "features.head"],
              "last": "features.head", "block4": "features.block4",
              "block14": "features.block14", "pool": "pool", "linear": "classifier",
              "shapes": {"pool": "(2, 1280, 1, 1)", "classifier": "(2, 1000)", "1x1": "(1, 1280, 1, 1)"}},
    "tensorflow": {"stem": "stem_conv", "tail": ["head_conv", "head_bn", "head_relu"],
                   "last": "head_relu", "block4": "block4_add",
                   "block14": "block14_add", "pool": "avg_pool", "linear": "predictions",
                   "shapes": {"avg_pool": "(None, 1280)", "predictions": "(None, 1000)", "1x1": "(1, 1, 1, 1280)"}},
}
# The batch layout each backend's error message names.
LAYOUT = {"torch": "(B, C, H, W)", "tensorflow": "(B, H, W, C)"}
CAT, ESPRESSO = utils.class_index("Egyptian cat"), utils.class_index("espresso")
METHODS = contract.METHOD_NAMES  # every row of the table of methods
SMALL_IMAGES = {"occlusion": {"patch": 4, "stride": 2}}  # the defaults are for 224 px photos


@pytest.fixture
def photos(xt, embedded_model):
    """The embedded model and a batch of two photos: a cat (chelsea) and an espresso (coffee)."""
    return embedded_model, xt.preprocess([utils.sample_image("chelsea"), utils.sample_image("coffee")],
                                         embedded_model)


def normal(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def random_gap_net(xt, seed):
    """A GAP net (3 channels -> 4 features -> 3 classes) with random weights, and a batch of two 4 x 4 images."""
    model = nets.gap_net(xt, normal(seed, 3, 4), normal(seed + 1, 4, 3), normal(seed + 2, 3), size=4)
    return model, nets.batch(xt, normal(seed + 3, 2, 4, 4, 3))


# ---------------------------------------------------------------------------------------------
# Analytic answers on tiny networks


def test_cam_grad_cam_and_saliency_by_hand(xt):
    model, x = nets.hand_gap_net(xt)
    assert xt.feature_layers(model) == ["conv", "relu"]
    f0, f1 = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([[0.0, 2.0], [0.0, 0.0]])  # relu(x_0), relu(-x_0)
    raw = dict(normalize=False, upsample=False)
    # Small dyadic numbers throughout: exact in float32, whatever order a kernel sums in.
    for target, cam in [(0, 2 * f0 - f1), (1, -f0 + 3 * f1)]:
        np.testing.assert_array_equal(xt.cam(model, x, target=target, layer="relu", **raw)[0], cam)
        np.testing.assert_array_equal(xt.cam(model, x, target=target, **raw)[0], cam)  # layer None: the last map
        # GAP -> linear: dS/dA = w / Z, so Grad-CAM is ReLU(CAM) / Z with Z = 4 positions
        np.testing.assert_array_equal(xt.grad_cam(model, x, target=target, layer="relu", **raw)[0],
                                      np.maximum(cam, 0) / 4)
    # Before the ReLU the gradient carries its mask: alpha_k = w_k / Z * fraction(A_k > 0) on A = (x_0, -x_0):
    # class 0: (2/4 * 2/4) x_0 + (-1/4 * 1/4)(-x_0) = 5/16 x_0; class 1: (-1/8) x_0 + (3/16)(-x_0) = -5/16 x_0
    np.testing.assert_array_equal(xt.grad_cam(model, x, target=0, layer="conv", **raw)[0], [[5 / 16, 0], [15 / 16, 0]])
    np.testing.assert_array_equal(xt.grad_cam(model, x, target=1, layer="conv", **raw)[0], [[0, 10 / 16], [0, 0]])
    # Saliency: dS_c/dx_0 = w^c_0 / 4 where x_0 > 0, -w^c_1 / 4 where x_0 < 0, 0 where x_0 = 0 (ReLU'(0) = 0);
    # channel 1 (all 5s) never reaches the output
    np.testing.assert_array_equal(xt.saliency(model, x, target=0, normalize=False)[0], [[0.5, 0.25], [0.5, 0]])
    np.testing.assert_array_equal(xt.saliency(model, x, target=1, normalize=False)[0], [[0.25, 0.75], [0.25, 0]])


def test_cam_and_grad_cam_on_a_random_gap_net(xt):
    """Random weights and a batch of two whose maps have both signs: the formulas, per image and target."""
    kernel, weights, bias = normal(0, 3, 4), normal(1, 4, 3), np.array([0.5, -1.0, 2.0], np.float32)
    x_np = normal(2, 2, 4, 4, 3)
    model, x = nets.gap_net(xt, kernel, weights, bias, size=4), nets.batch(xt, x_np)
    raw, targets = dict(normalize=False, upsample=False), [0, 2]
    features = np.maximum(x_np @ kernel, 0)  # (2, 4, 4, 4)
    expected_cam = np.einsum("bhwk,bk->bhw", features, weights[:, targets].T)
    assert expected_cam.min() < 0 < expected_cam.max()  # the ReLU in Grad-CAM matters here
    np.testing.assert_allclose(xt.cam(model, x, target=targets, **raw), expected_cam, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(xt.grad_cam(model, x, target=targets, **raw), np.maximum(expected_cam, 0) / 16,
                               rtol=1e-5, atol=1e-6)
    pre = x_np @ kernel  # the conv's output, before the ReLU
    alpha = weights[:, targets].T / 16 * (pre > 0).mean(axis=(1, 2))
    np.testing.assert_allclose(xt.grad_cam(model, x, target=targets, layer="conv", **raw),
                               np.maximum(np.einsum("bhwk,bk->bhw", pre, alpha), 0), rtol=1e-5, atol=1e-6)
    # a later call with another target reuses nothing it should not
    np.testing.assert_allclose(xt.grad_cam(model, x, target=[1, 1], **raw),
                               np.maximum(np.einsum("bhwk,k->bhw", features, weights[:, 1]), 0) / 16,
                               rtol=1e-5, atol=1e-6)
    # CAM's identity: mean_xy M_c + b_c is the logit, for every class
    logits = nets.logits(xt, model, x)
    for c in range(3):
        np.testing.assert_allclose(xt.cam(model, x, target=c, **raw).mean(axis=(1, 2)) + bias[c], logits[:, c],
                                   rtol=1e-5, atol=1e-5)


def test_counterfactual_grad_cam_is_the_negative_part_on_a_gap_net(xt):
    """Selvaraju et al., "Counterfactual Explanations": the weights of -dS/dA, then the ReLU. On a GAP head
    dS^c/dA^k = w_ck / (h w), so the raw map is ReLU(-sum_k w_ck A^k) / (h w) = ReLU(-CAM) / (h w)."""
    model, x = nets.hand_gap_net(xt)
    raw = dict(normalize=False, upsample=False)
    f0, f1 = np.array([[1.0, 0.0], [3.0, 0.0]]), np.array([[0.0, 2.0], [0.0, 0.0]])  # as in the test above
    for target, cam in [(0, 2 * f0 - f1), (1, -f0 + 3 * f1)]:  # dyadic: exact in float32
        np.testing.assert_array_equal(xt.grad_cam(model, x, target=target, counterfactual=True, **raw)[0],
                                      np.maximum(-cam, 0) / 4)
    kernel, weights, bias = normal(0, 3, 4), normal(1, 4, 3), np.array([0.5, -1.0, 2.0], np.float32)
    x_np = normal(2, 2, 4, 4, 3)
    model, x = nets.gap_net(xt, kernel, weights, bias, size=4), nets.batch(xt, x_np)
    targets = [0, 2]
    features = np.maximum(x_np @ kernel, 0)  # (2, 4, 4, 4)
    cam = np.einsum("bhwk,bk->bhw", features, weights[:, targets].T)
    assert cam.min() < 0 < cam.max()  # both parts are non-zero somewhere
    counterfactual = xt.grad_cam(model, x, target=targets, counterfactual=True, **raw)
    np.testing.assert_allclose(counterfactual, np.maximum(-cam, 0) / 16, rtol=1e-5, atol=1e-6)
    plain = xt.grad_cam(model, x, target=targets, **raw)  # the two maps split the signed map between them
    np.testing.assert_allclose(plain - counterfactual, cam / 16, rtol=1e-5, atol=1e-6)
    # before the ReLU (layer="conv") the negated weights alpha_k = -w_k / Z * fraction(A_k > 0)
    pre = x_np @ kernel
    alpha = -weights[:, targets].T / 16 * (pre > 0).mean(axis=(1, 2))
    np.testing.assert_allclose(xt.grad_cam(model, x, target=targets, layer="conv", counterfactual=True, **raw),
                               np.maximum(np.einsum("bhwk,bk->bhw", pre, alpha), 0), rtol=1e-5, atol=1e-6)
    # upsampled and normalised like the plain map
    normalised = xt.grad_cam(model, x, target=targets, counterfactual=True)
    assert normalised.shape == (2, 4, 4) and normalised.max() == 1 and normalised.min() == 0


def test_layer_gradients_are_the_feature_map_and_its_gradient(xt):
    """On a GAP net dS^c/dA^k = w_ck / (h w) at every position; the activations are the ReLU's output;
    channels first in both backends; Grad-CAM is the ReLU of their mean-weighted sum."""
    kernel, weights, bias = normal(0, 3, 4), normal(1, 4, 3), np.array([0.5, -1.0, 2.0], np.float32)
    x_np = normal(2, 2, 4, 4, 3)
    model, x = nets.gap_net(xt, kernel, weights, bias, size=4), nets.batch(xt, x_np)
    activations, gradients = xt.layer_gradients(model, x, target=[0, 2])
    assert activations.shape == gradients.shape == (2, 4, 4, 4) and activations.dtype == gradients.dtype == np.float32
    np.testing.assert_allclose(activations, np.maximum(x_np @ kernel, 0).transpose(0, 3, 1, 2), rtol=1e-5, atol=1e-6)
    expected = np.broadcast_to(weights[:, [0, 2]].T[:, :, None, None] / 16, gradients.shape)
    np.testing.assert_allclose(gradients, expected, rtol=1e-5, atol=1e-7)
    grad_cam = np.maximum(np.einsum("bk,bkhw->bhw", gradients.mean(axis=(2, 3)), activations), 0)
    np.testing.assert_allclose(xt.grad_cam(model, x, target=[0, 2], normalize=False, upsample=False), grad_cam,
                               rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match="'nope'"):
        xt.layer_gradients(model, x, layer="nope")


def bilinear_half_pixel(maps: np.ndarray, size) -> np.ndarray:
    """(B, h, w) -> (B, H, W) bilinearly with half-pixel centres (torch's align_corners=False, TensorFlow's
    half_pixel_centers): output pixel i samples the input at (i + 0.5) * in / out - 0.5, clamped to the edges."""
    def matrix(n_in, n_out):
        source = np.clip((np.arange(n_out) + 0.5) * n_in / n_out - 0.5, 0, n_in - 1)
        low = np.floor(source).astype(int)
        high, frac = np.minimum(low + 1, n_in - 1), source - low
        m = np.zeros((n_out, n_in))
        np.add.at(m, (np.arange(n_out), low), 1 - frac)
        np.add.at(m, (np.arange(n_out), high), frac)
        return m
    return np.einsum("yh,bhw,xw->byx", matrix(maps.shape[1], size[0]), maps, matrix(maps.shape[2], size[1]))


def test_upsampling_is_bilinear_with_half_pixel_centres(xt):
    model = nets.gap_net(xt, normal(3, 3, 2), normal(4, 2, 2), np.zeros(2, np.float32), size=8, pool=4)
    x = nets.batch(xt, normal(5, 2, 8, 8, 3))
    for method in (xt.grad_cam, xt.cam):
        raw = method(model, x, target=0, layer="pool", normalize=False, upsample=False)
        assert raw.shape == (2, 2, 2)  # upsample=False: the layer's resolution
        assert np.ptp(raw) > 0
        up = method(model, x, target=0, layer="pool", normalize=False)
        assert up.shape == (2, 8, 8) and up.dtype == np.float32
        np.testing.assert_allclose(up, bilinear_half_pixel(raw, (8, 8)), rtol=1e-5, atol=1e-6 * np.abs(raw).max())


def test_saliency_and_smooth_grad_of_a_linear_model_are_its_weights(xt):
    weights = normal(6, 4, 4, 3, 3)  # (H, W, C, classes)
    model, x = nets.linear_net(xt, weights), nets.batch(xt, normal(7, 2, 4, 4, 3))
    per_image = np.moveaxis(weights[..., [2, 0]], -1, 0)  # each image's target class, (2, 4, 4, 3)
    expected = np.abs(per_image).max(axis=-1)
    np.testing.assert_allclose(xt.saliency(model, x, target=[2, 0], normalize=False), expected, rtol=1e-6)
    # The gradient of a linear model is the same at every noisy copy, whatever sigma and chunking
    for sigma, batch_size in [(0.15, 3), (1.0, 1), (0.5, None), (0.0, 32)]:
        smooth = xt.smooth_grad(model, x, target=[2, 0], n=5, sigma=sigma, batch_size=batch_size, seed=1,
                                normalize=False)
        np.testing.assert_allclose(smooth, expected, rtol=1e-5)
    squared = xt.smooth_grad(model, x, target=[2, 0], n=3, squared=True, seed=1, normalize=False)
    np.testing.assert_allclose(squared, (per_image ** 2).max(axis=-1), rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# SmoothGrad: the noise, the chunks, the targets


@pytest.fixture
def small(xt):
    """A small GAP CNN with seeded random weights (16 px, 5 classes) and two random images."""
    return nets.small_cnn(xt, "gap", seed=0, input_size=16, width=4, depth=2), nets.batch(xt, normal(8, 2, 16, 16, 3))


def test_smooth_grad_with_sigma_zero_is_saliency(xt, small):
    model, x = small
    plain = xt.saliency(model, x, normalize=False)
    smooth = xt.smooth_grad(model, x, n=3, sigma=0.0, batch_size=4, normalize=False)
    np.testing.assert_allclose(smooth, plain, rtol=1e-5, atol=1e-7 * plain.max())
    normalised = xt.smooth_grad(model, x, n=3, sigma=0.0)
    assert normalised.shape == (2, 16, 16) and normalised.dtype == np.float32
    assert (normalised.min(axis=(1, 2)) == 0).all() and (normalised.max(axis=(1, 2)) == 1).all()
    np.testing.assert_allclose(normalised, xt.saliency(model, x), atol=1e-6)


def test_smooth_grad_noise_is_seeded_and_independent_of_chunking(xt, small):
    model, x = small
    one = xt.smooth_grad(model, x, n=4, sigma=0.3, batch_size=1, seed=7, normalize=False)
    all_at_once = xt.smooth_grad(model, x, n=4, sigma=0.3, batch_size=None, seed=7, normalize=False)
    np.testing.assert_allclose(one, all_at_once, rtol=1e-5, atol=1e-6 * one.max())
    np.testing.assert_allclose(xt.smooth_grad(model, x, n=4, sigma=0.3, batch_size=3, seed=7, normalize=False), one,
                               rtol=1e-5, atol=1e-6 * one.max())  # chunks that cut across the images
    other_seed = xt.smooth_grad(model, x, n=4, sigma=0.3, batch_size=3, seed=8, normalize=False)
    assert np.abs(other_seed - one).max() > 1e-3 * one.max()  # the noise really changes the gradient
    unseeded = [xt.smooth_grad(model, x, n=2, sigma=0.3, normalize=False) for _ in range(2)]
    assert not np.array_equal(*unseeded)
    squared = xt.smooth_grad(model, x, n=4, sigma=0.3, seed=7, squared=True, normalize=False)
    assert (squared >= 0).all() and not np.allclose(squared / squared.max(), one / one.max(), atol=1e-3)


def test_seed_everything_makes_unseeded_smooth_grad_repeatable(xt, small):
    model, x = small
    with nets.global_state_restored(xt):
        runs = []
        for _ in range(2):
            xt.seed_everything(0)
            runs.append(xt.smooth_grad(model, x, n=2, sigma=0.5, normalize=False))
    np.testing.assert_array_equal(*runs)


def test_smooth_grad_resolves_targets_once_on_the_clean_images(xt, small):
    model, x = small
    top1 = nets.logits(xt, model, x).argmax(axis=1)
    np.testing.assert_array_equal(xt.smooth_grad(model, x, n=3, sigma=2.0, seed=3),
                                  xt.smooth_grad(model, x, target=top1, n=3, sigma=2.0, seed=3))
    # On a linear model each class has its own constant gradient: noise large enough to change the top-1
    # class of some noisy copies (checked with the documented seeded noise) still averages the clean top-1's.
    weights = normal(9, 4, 4, 3, 3)
    linear, images = nets.linear_net(xt, weights), normal(10, 2, 4, 4, 3)
    clean_top1 = np.einsum("bhwc,hwck->bk", images, weights).argmax(axis=1)
    n, sigma, seed = 8, 2.0, 5
    noise = contract.hashed_normal(contract.hash_key(seed), 0, n * 2, 4, 4, 3)  # sample j copies image j % 2
    spread = sigma * np.ptp(images.reshape(2, -1), axis=1)
    noisy = images[np.arange(n * 2) % 2] + spread[np.arange(n * 2) % 2, None, None, None] * noise
    noisy_top1 = np.einsum("bhwc,hwck->bk", noisy, weights).argmax(axis=1)
    assert (noisy_top1 != clean_top1[np.arange(n * 2) % 2]).any()
    expected = np.abs(np.moveaxis(weights[..., clean_top1], -1, 0)).max(axis=-1)
    np.testing.assert_allclose(xt.smooth_grad(linear, nets.batch(xt, images), n=n, sigma=sigma, seed=seed,
                                              normalize=False), expected, rtol=1e-5)


# ---------------------------------------------------------------------------------------------
# Guided Backprop by hand: ReLU and ReLU6 layers (each framework's other spellings: its own file)


@pytest.mark.parametrize("kind", nets.SHARED_RELUS)
def test_guided_backprop_by_hand(xt, kind):
    nets.check_guided_by_hand(xt, kind)


@pytest.mark.parametrize("kind", nets.SHARED_RELUS)
def test_guided_backprop_treats_each_image_of_a_batch_on_its_own(xt, kind):
    """No batch-index-0 shortcut: three images, two targets, three different answers."""
    x = np.concatenate([nets.GUIDED_X, [[[[-1.0, 2.0, 1.0], [7.0, -0.5, 3.0]]]],
                        [[[[2.0, -3.0, 5.0], [1.0, 0.5, -3.0]]]]])
    targets = [0, 1, 0]
    model = nets.relu_net(xt, kind, nets.GUIDED_WEIGHTS)
    expected, _ = nets.guided_by_hand(x, nets.GUIDED_WEIGHTS, targets, nets.relu_cap(kind))
    assert all(expected[i].any() and not np.array_equal(expected[i], expected[j]) for i in range(3) for j in range(i))
    np.testing.assert_array_equal(xt.guided_backprop(model, nets.batch(xt, x), target=targets, normalize=False),
                                  expected)


# ---------------------------------------------------------------------------------------------
# Pre-softmax scores, CAM's head, strict=False


def test_methods_use_pre_softmax_scores_when_the_model_ends_in_softmax(xt):
    kernel, weights, bias = normal(11, 3, 4), normal(12, 4, 5), normal(13, 5)
    logits_model = nets.gap_net(xt, kernel, weights, bias, size=6)
    softmax_model = nets.gap_net(xt, kernel, weights, bias, size=6, softmax=True)
    x = nets.batch(xt, 3 * normal(14, 2, 6, 6, 3))
    before, outputs = nets.state(xt, softmax_model), nets.logits(xt, softmax_model, x)
    np.testing.assert_allclose(outputs.sum(axis=1), 1, rtol=1e-5)  # it does end in a softmax
    for method, kwargs in [(xt.cam, {}), (xt.grad_cam, {}), (xt.grad_cam, {"layer": "conv"}),
                           (xt.guided_grad_cam, {"layer": "conv"})]:
        np.testing.assert_allclose(method(softmax_model, x, target=[1, 4], normalize=False, **kwargs),
                                   method(logits_model, x, target=[1, 4], normalize=False, **kwargs),
                                   rtol=1e-5, atol=1e-6)
    for method in (xt.saliency, xt.guided_backprop,
                   lambda model, x, **kwargs: xt.smooth_grad(model, x, n=2, seed=0, **kwargs)):
        np.testing.assert_allclose(method(softmax_model, x, normalize=False), method(logits_model, x, normalize=False),
                                   rtol=1e-5, atol=1e-6)
    assert nets.state(xt, softmax_model) == before
    np.testing.assert_array_equal(nets.logits(xt, softmax_model, x), outputs)


@pytest.mark.parametrize("head", ["gmp", "flatten"])
def test_cam_refuses_other_heads_and_grad_cam_takes_them(xt, head):
    model = nets.small_cnn(xt, head, seed=1, input_size=16, width=4, depth=2)
    x = nets.batch(xt, normal(15, 2, 16, 16, 3))
    for method in (xt.cam, xt.cam_parts):
        with pytest.raises(ValueError, match="CAM needs a model that ends in global average pooling.*use grad_cam"):
            method(model, x)
    assert xt.grad_cam(model, x).shape == (2, 16, 16)  # Grad-CAM works with any head


def test_cam_refuses_a_model_without_a_linear_layer(xt):
    name = {"torch": "nn.Linear", "tensorflow": "Dense"}[xt.FRAMEWORK]
    with pytest.raises(ValueError, match=f"no {name} layer.*use grad_cam"):
        xt.cam(nets.no_linear_net(xt), nets.batch(xt, np.ones((1, 4, 4, 3))))


# The small CNN's last feature map and its linear layer, under each framework's names.
SMALL = {"torch": {"last": "features.last", "linear": "classifier"},
         "tensorflow": {"last": "last_relu", "linear": "logits"}}


def small_gmp_net(xt):
    model = nets.small_cnn(xt, "gmp", seed=3, num_classes=3, input_size=16, width=4, depth=2)
    nets.randomise_batch_norm(xt, model, np.random.default_rng(3))  # statistics the test sees
    return model


def test_cam_strict_false_is_the_formula_on_a_gmp_head(xt):
    model, x = small_gmp_net(xt), nets.batch(xt, normal(16, 2, 16, 16, 3))
    features = nets.feature_map(xt, model, x, SMALL[xt.FRAMEWORK]["last"])  # (B, K, h, w), read without the methods
    weight, bias = nets.dense_params(xt, model, SMALL[xt.FRAMEWORK]["linear"])
    logits = nets.logits(xt, model, x)
    expected = np.einsum("ck,bkhw->bchw", weight, features)  # M_c = sum_k w_k^c f_k
    got = xt.cam(model, x, target=[0, 2], normalize=False, upsample=False, strict=False)
    np.testing.assert_allclose(got, expected[[0, 1], [0, 2]], rtol=1e-5, atol=1e-6 * np.abs(expected).max())
    # GMP: the logit is the linear layer applied to the spatial max, not the mean of the map
    np.testing.assert_allclose(logits, features.max(axis=(2, 3)) @ weight.T + bias, rtol=1e-5, atol=1e-5)
    assert not np.allclose(got.mean(axis=(1, 2)) + bias[[0, 2]], logits[[0, 1], [0, 2]], atol=1e-2)
    top1 = xt.cam(model, x, normalize=False, upsample=False, strict=False)  # target None: each image's top-1
    np.testing.assert_allclose(top1, expected[[0, 1], logits.argmax(1)], rtol=1e-5, atol=1e-6 * np.abs(expected).max())


def test_cam_strict_true_still_refuses_a_gmp_head(xt):
    model, x = small_gmp_net(xt), nets.batch(xt, normal(17, 2, 16, 16, 3))
    reason = "differ from mean_xy.* so the head is not global average pooling"  # the same words in both backends
    with pytest.raises(ValueError, match=f"{reason}.*use grad_cam"):
        xt.cam(model, x)
    with pytest.raises(ValueError, match=f"{reason}.*use grad_cam"):
        xt.cam(model, x, strict=True)


def test_cam_strict_false_changes_nothing_on_a_gap_head(xt):
    model, x = random_gap_net(xt, seed=18)
    np.testing.assert_array_equal(xt.cam(model, x, target=1, strict=False), xt.cam(model, x, target=1))


def test_cam_strict_false_still_needs_one_weight_per_channel(xt):
    model = nets.small_cnn(xt, "flatten", seed=0, num_classes=3, input_size=16, width=4, depth=2)
    with pytest.raises(ValueError, match="channels.*use grad_cam"):  # 8 channels, a last linear layer of 128 inputs
        xt.cam(model, nets.batch(xt, normal(22, 1, 16, 16, 3)), strict=False)


# ---------------------------------------------------------------------------------------------
# Bad input


@pytest.mark.parametrize("method", METHODS)
def test_bad_batches_and_targets_get_clear_errors(xt, method):
    x_np = normal(23, 2, 4, 4, 3)
    model, x = nets.gap_net(xt, normal(24, 3, 4), normal(25, 4, 3), normal(26, 3), size=4), nets.batch(xt, x_np)
    fn = getattr(xt, method)
    for target in (3, -1, [0, 3]):
        with pytest.raises(ValueError, match="target class (3|-1) is out of range: the model has 3 classes"):
            fn(model, x, target=target)
    with pytest.raises(ValueError, match="target has 3 classes for a batch of 2"):
        fn(model, x, target=[0, 1, 2])
    for target in (1.5, True, [[0], [1]], ["a", "b"]):
        with pytest.raises(TypeError, match="target must be None, an int or a"):
            fn(model, x, target=target)
    with pytest.raises(ValueError, match="empty batch"):
        fn(model, x[:0])
    with pytest.raises(ValueError, match=re.escape(f"expected a batch of images shaped {LAYOUT[xt.FRAMEWORK]}")):
        fn(model, x[0])
    for bad_value in (np.nan, np.inf, -np.inf):
        bad = x_np.copy()
        bad[1, 0, 0, 0] = bad_value
        with pytest.raises(ValueError, match="NaN or infinite"):
            fn(model, nets.batch(xt, bad))


def test_bad_smooth_grad_arguments_get_clear_errors(xt):
    model, x = random_gap_net(xt, seed=27)
    for kwargs, message in [({"n": 0}, r"n \(the number of noisy samples\)"), ({"n": 2.5}, r"n \(the number"),
                            ({"sigma": -0.1}, "sigma is the noise level"), ({"sigma": float("nan")}, "sigma is the"),
                            ({"sigma": float("inf")}, "sigma is the"), ({"batch_size": 0}, "batch_size must be"),
                            ({"batch_size": 1.5}, "batch_size must be"),
                            ({"method": "gradcam"}, "method must be one of 'saliency', 'grad_cam'"),
                            ({"layer": "conv"}, "only for method='grad_cam'"),
                            ({"method": "grad_cam", "layer": "nope"}, "no layer named 'nope'")]:
        with pytest.raises(ValueError, match=message):
            xt.smooth_grad(model, x, **kwargs)


# ---------------------------------------------------------------------------------------------
# A constant map, model hygiene


def test_a_constant_map_normalises_to_zeros(xt):
    kernel, weights, bias = np.abs(normal(31, 3, 4)), -np.abs(normal(32, 4, 3)), normal(33, 3)
    x = nets.batch(xt, np.abs(normal(34, 2, 4, 4, 3)))
    negative = nets.gap_net(xt, kernel, weights, bias, size=4)  # every CAM value < 0: Grad-CAM is all zero
    np.testing.assert_array_equal(xt.grad_cam(negative, x, target=0, normalize=False), 0)
    np.testing.assert_array_equal(xt.grad_cam(negative, x, target=0), 0)  # not NaN
    # A constant feature map (zero kernel, conv bias 1): constant, non-zero CAM and Grad-CAM maps
    constant = nets.gap_net(xt, np.zeros((3, 4)), np.abs(weights), bias, size=4, conv_bias=np.ones(4))
    for method in (xt.cam, xt.grad_cam):
        raw = method(constant, x, target=0, normalize=False)
        assert np.ptp(raw) == 0 and raw.min() > 0
        np.testing.assert_array_equal(method(constant, x, target=0), 0)
    linear = nets.linear_net(xt, np.zeros((4, 4, 3, 2)))  # zero gradient everywhere
    np.testing.assert_array_equal(xt.saliency(linear, x), 0)
    np.testing.assert_array_equal(xt.smooth_grad(linear, x, n=2, seed=0), 0)
    np.testing.assert_array_equal(xt.guided_backprop(linear, x), 0.5)  # signed maps: zero is 0.5


def test_every_method_leaves_the_model_as_it_was(xt):
    model = nets.zoo_net(xt)
    nets.mix_flags(xt, model)
    x = nets.batch(xt, normal(35, 2, 8, 8, 3))
    before, outputs = nets.state(xt, model), nets.logits(xt, model, x)
    probes = [lambda m: xt.saliency(m, x), lambda m: xt.grad_cam(m, x, layer="c2"), lambda m: xt.guided_backprop(m, x),
              lambda m: xt.cam(m, x)]
    first = [probe(model) for probe in probes]
    assert nets.state(xt, model) == before
    calls = [lambda: xt.cam(model, x), lambda: xt.cam_parts(model, x), lambda: xt.grad_cam(model, x, layer="c2"),
             lambda: xt.layer_gradients(model, x, layer="c2"),
             lambda: xt.saliency(model, x), lambda: xt.smooth_grad(model, x, n=2),
             lambda: xt.smooth_grad(model, x, n=1, method="grad_cam", layer="c2"), lambda: xt.guided_backprop(model, x),
             lambda: xt.guided_grad_cam(model, x), lambda: xt.feature_layers(model, x),
             lambda: xt.feature_layers(model)]
    calls += [lambda function=getattr(xt, row.name), layer={"layer": "c2"} if row.takes_layer and row.name != "cam" else {},
              small=SMALL_IMAGES.get(row.name, {}): function(model, x, **layer, **small)
              for row in contract.METHODS]  # every row of the table: new methods too
    for call in calls:
        call()
        assert nets.state(xt, model) == before
        np.testing.assert_array_equal(nets.logits(xt, model, x), outputs)
    nan = nets.batch(xt, np.full((2, 8, 8, 3), np.nan))
    failing = [lambda: xt.grad_cam(model, x, layer="shared"), lambda: xt.grad_cam(model, x, layer="shared_relu"),
               lambda: xt.grad_cam(model, x, layer="nope"), lambda: xt.grad_cam(model, x, layer="dense"),
               lambda: xt.cam(model, x, layer="c1"),  # the head is not GAP of c1's map
               lambda: xt.guided_backprop(model, x, target=3),
               lambda: xt.guided_grad_cam(model, x, target=[0, 1, 2]), lambda: xt.smooth_grad(model, x, n=0),
               lambda: xt.saliency(model, nan), lambda: xt.occlusion(model, x, patch=9),
               lambda: xt.score_cam(model, x, layer="c2", top_k=0), lambda: xt.integrated_gradients(model, x, steps=0)]
    for call in failing:
        with pytest.raises(ValueError):
            call()
        assert nets.state(xt, model) == before
        np.testing.assert_array_equal(nets.logits(xt, model, x), outputs)
    # Nothing left behind changes a later answer (a hook, a function mode, a swapped activation)
    for probe, answer in zip(probes, first):
        np.testing.assert_array_equal(probe(model), answer)
    # An error raised in the middle of the forward pass, with every tap and swap in place
    fresh = nets.zoo_net(xt)
    before_fresh = nets.state(xt, fresh)
    with nets.blown_fuse():
        for call in [*probes, lambda m: xt.feature_layers(m, x)]:
            with pytest.raises(RuntimeError, match="fuse blown"):
                call(fresh)
    assert nets.state(xt, fresh) == before_fresh
    # and the failed calls left nothing behind: the next ones give the answers of the untouched twin
    for probe, answer in zip(probes, first):
        np.testing.assert_allclose(probe(fresh), answer, atol=1e-6)


def test_a_layer_that_runs_twice_is_refused(xt):
    model, x = nets.zoo_net(xt), nets.batch(xt, normal(36, 1, 8, 8, 3))
    for layer in ("shared", "shared_relu"):  # a conv and a ReLU, each called twice per forward pass
        for method in (xt.grad_cam, xt.guided_grad_cam, xt.cam):
            with pytest.raises(ValueError, match=f"layer '{layer}' runs more than once in one forward pass"):
                method(model, x, layer=layer)


def test_both_backends_export_the_methods(xt):
    assert set(xt.__all__) >= set(contract.METHOD_NAMES) | set(contract.METHOD_HELPERS)
    assert "use grad_cam" in str(contract.no_cam_head("x"))


# ---------------------------------------------------------------------------------------------
# The embedded model: the papers' identities, the output contract, bad layers


class TestEmbeddedModel:
    """On the shared embedded EfficientNet-Lite0. A class of its own, so that `pytest -n 2 --dist loadscope`
    (make test) can run it on one worker and the tiny networks above on the other."""

    def test_cam_mean_plus_bias_is_the_logit_for_every_class(self, xt, photos, record_property):
        model, x = photos
        names = EMBEDDED[xt.FRAMEWORK]
        features, weight, bias = xt.cam_parts(model, x)
        assert features.shape == (2, 1280, 7, 7) and weight.shape == (1000, 1280) and bias.shape == (1000,)
        assert features.dtype == weight.dtype == bias.dtype == np.float32
        # The parts are the model's own: its linear layer, and its last feature map read without the methods
        own_weight, own_bias = nets.dense_params(xt, model, names["linear"])
        np.testing.assert_array_equal(weight, own_weight)
        np.testing.assert_array_equal(bias, own_bias)
        np.testing.assert_allclose(features, nets.feature_map(xt, model, x, names["last"]), rtol=1e-5,
                                   atol=1e-5 * np.abs(features).max())
        logits = nets.logits(xt, model, x)
        maps = np.einsum("ck,bkhw->bchw", weight, features)  # all 1000 classes' maps M_c at once
        error = np.abs(maps.mean(axis=(2, 3)) + bias - logits).max()
        relative = error / np.ptp(logits)
        # xt.cam itself, for each image's top-5 classes: the same maps, so the same identity
        top5 = np.argsort(-logits, axis=1)[:, :5]
        worst_cam = 0.0
        for k in range(5):
            raw = xt.cam(model, x, target=top5[:, k], normalize=False, upsample=False)
            np.testing.assert_allclose(raw, maps[[0, 1], top5[:, k]], rtol=1e-5, atol=1e-5 * np.abs(maps).max())
            gap = raw.mean(axis=(1, 2)) + bias[top5[:, k]] - logits[[0, 1], top5[:, k]]
            worst_cam = max(worst_cam, float(np.abs(gap).max() / np.ptp(logits)))
        record_property("figure", f"CAM {xt.FRAMEWORK}: max |mean_xy M_c + b_c - logit_c| = {error:.1e} "
                                  f"({relative:.1e} of the logit range; 1000 classes x 2 images), "
                                  f"xt.cam top-5 {worst_cam:.1e}")
        assert error < 1e-4 and relative < 1e-5 and worst_cam < 1e-5

    def test_grad_cam_is_relu_cam_over_z_on_a_gap_head(self, xt, photos):
        """Tolerance: 1e-5 of the map's largest value (float32 through a 1280-channel sum)."""
        model, x = photos
        for target in (None, [ESPRESSO, CAT]):  # each image's top-1 class, then the other photo's
            cam = xt.cam(model, x, target=target, normalize=False, upsample=False)
            grad_cam = xt.grad_cam(model, x, target=target, normalize=False, upsample=False)
            np.testing.assert_allclose(grad_cam, np.maximum(cam, 0) / 49, atol=1e-5 * np.abs(cam).max() / 49)

    def test_each_class_map_falls_on_its_half_of_the_composite(self, xt, embedded_model):
        composite = xt.preprocess([utils.cat_and_coffee()], embedded_model)  # a cat left, an espresso right
        for method in (xt.cam, xt.grad_cam):
            cat = method(embedded_model, composite, target=CAT)[0]
            espresso = method(embedded_model, composite, target=ESPRESSO)[0]
            assert utils.mass_fraction(cat, (0, 0, 112, 224)) > 0.7
            assert utils.mass_fraction(espresso, (112, 0, 224, 224)) > 0.7

    def test_output_contract(self, xt, photos):
        model, x = photos
        top1 = nets.logits(xt, model, x).argmax(axis=1)
        # (smooth_grad's output contract: on the small CNN, test_smooth_grad_with_sigma_zero_is_saliency)
        heatmaps = {"cam": xt.cam, "grad_cam": xt.grad_cam, "saliency": xt.saliency}
        for name, method in heatmaps.items():
            maps = method(model, x)
            assert maps.shape == (2, 224, 224) and maps.dtype == np.float32, name
            # (m - min) / (max - min) per image: exactly 0 at the minimum and 1 at the maximum
            assert (maps.min(axis=(1, 2)) == 0).all() and (maps.max(axis=(1, 2)) == 1).all(), name
            np.testing.assert_array_equal(method(model, x, target=top1), maps, err_msg=name)  # None: each top-1
        for name, method in {"guided_backprop": xt.guided_backprop, "guided_grad_cam": xt.guided_grad_cam}.items():
            maps = method(model, x)
            assert maps.shape == (2, 224, 224, 3) and maps.dtype == np.float32, name
            assert np.isfinite(maps).all() and 0 <= maps.min() <= maps.max() <= 1, name
            # signed, 0.5 + g / (2 max|g|) per image: touches 0 or 1 exactly
            assert ((maps.min(axis=(1, 2, 3)) == 0) | (maps.max(axis=(1, 2, 3)) == 1)).all(), name
        np.testing.assert_array_equal(xt.guided_backprop(model, x, target=top1), xt.guided_backprop(model, x))
        raw = xt.guided_backprop(model, x, normalize=False)
        scale = 2 * np.abs(raw).max(axis=(1, 2, 3), keepdims=True)
        np.testing.assert_allclose(xt.guided_backprop(model, x), 0.5 + raw / scale, atol=1e-6)  # zero is 0.5
        # upsample=False: the feature map's resolution
        assert xt.cam(model, x, upsample=False).shape == (2, 7, 7)
        assert xt.grad_cam(model, x, upsample=False).shape == (2, 7, 7)
        assert xt.grad_cam(model, x, layer=EMBEDDED[xt.FRAMEWORK]["block4"], upsample=False).shape == (2, 28, 28)
        # an int is that class for every image
        np.testing.assert_array_equal(xt.cam(model, x, target=CAT), xt.cam(model, x, target=[CAT, CAT]))
        np.testing.assert_array_equal(xt.grad_cam(model, x, target=np.int64(281)),
                                      xt.grad_cam(model, x, target=(281, 281)))

    def test_feature_layers_of_the_embedded_model(self, xt, photos):
        model, x = photos
        names = xt.feature_layers(model)
        expected = EMBEDDED[xt.FRAMEWORK]
        assert names[0] == expected["stem"] and names[-3:] == expected["tail"] and names[-1] == expected["last"]
        assert expected["block4"] in names and expected["block14"] in names
        assert expected["pool"] not in names and expected["linear"] not in names
        assert xt.feature_layers(model, x) == names

    def test_guided_grad_cam_is_guided_backprop_times_grad_cam(self, xt, photos):
        model, x = photos
        targets = [CAT, ESPRESSO]
        guided = xt.guided_backprop(model, x, target=targets, normalize=False)
        heat = xt.grad_cam(model, x, target=targets, normalize=False)  # upsampled to the input
        product = guided * heat[..., None]
        assert np.abs(product).max(axis=(1, 2, 3)).min() > 0
        raw = xt.guided_grad_cam(model, x, target=targets, normalize=False)
        np.testing.assert_allclose(raw, product, rtol=1e-5, atol=1e-6 * np.abs(product).max())
        scale = 2 * np.abs(product).max(axis=(1, 2, 3), keepdims=True)
        np.testing.assert_allclose(xt.guided_grad_cam(model, x, target=targets), 0.5 + product / scale, atol=1e-5)

    def test_smooth_grad_cam_with_sigma_zero_is_grad_cam(self, xt, photos):
        model, x = photos
        for layer in (None, EMBEDDED[xt.FRAMEWORK]["block4"]):
            smoothed = xt.smooth_grad(model, x, target=[CAT, ESPRESSO], n=2, sigma=0.0, seed=0, method="grad_cam",
                                      layer=layer)
            plain = xt.grad_cam(model, x, target=[CAT, ESPRESSO], layer=layer)
            assert smoothed.shape == plain.shape == (2, 224, 224)
            np.testing.assert_allclose(smoothed, plain, atol=1e-4)

    def test_smooth_grad_cam_noise_changes_the_map_but_not_with_the_chunk_size(self, xt, photos):
        model, x = photos
        kwargs = dict(target=[CAT, ESPRESSO], n=3, sigma=0.2, seed=3, method="grad_cam")
        whole = xt.smooth_grad(model, x, batch_size=None, **kwargs)
        chunked = xt.smooth_grad(model, x, batch_size=4, **kwargs)  # chunks of 4 and 2 noisy copies
        np.testing.assert_allclose(whole, chunked, atol=1e-4)
        plain = xt.grad_cam(model, x, target=[CAT, ESPRESSO])
        assert np.abs(whole - plain).max() > 0.05  # the noise did something
        squared = xt.smooth_grad(model, x, batch_size=None, squared=True, **kwargs)
        assert np.abs(squared - whole).max() > 0.01

    def test_bad_layers_are_named_with_the_valid_ones(self, xt, photos):
        model, x = photos
        names = EMBEDDED[xt.FRAMEWORK]
        valid = xt.feature_layers(model, x)
        with pytest.raises(ValueError) as error:
            xt.grad_cam(model, x, layer="nope")
        assert str(error.value) == str(contract.unknown_layer("nope", valid))  # every valid layer, listed
        for name, methods in [(names["linear"], (xt.grad_cam, xt.guided_grad_cam)),
                              (names["pool"], (xt.grad_cam,))]:
            message = (f"layer '{name}' outputs shape {re.escape(names['shapes'][name])}, not a convolutional feature "
                       f"map.*{names['last']}")
            for method in methods:
                with pytest.raises(ValueError, match=message):
                    method(model, x, layer=name)

    def test_a_one_by_one_map_is_not_a_feature_map(self, xt, photos):
        model, _ = photos
        names = EMBEDDED[xt.FRAMEWORK]
        # Ask for the layers at the model's own size first: torch remembers the layers of the first batch a
        # model is explained on, and the shared model must not learn them from a 32 px one.
        assert xt.feature_layers(model)[-1] == names["last"]
        tiny = xt.preprocess([utils.sample_image("chelsea")],
                             preprocessing=dataclasses.replace(model.preprocessing, size=32))
        with pytest.raises(ValueError, match=f"'{names['last']}' outputs shape {re.escape(names['shapes']['1x1'])}, "
                                             "not a convolutional feature map"):
            xt.grad_cam(model, tiny, layer=names["last"])
