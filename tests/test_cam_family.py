"""The CAM family beyond Grad-CAM (Grad-CAM++, LayerCAM, HiResCAM), on both backends: closed forms on the
embedded model's GAP head and on a tiny flatten head."""
import numpy as np
import pytest

import tiny_nets as nets
import utils


@pytest.fixture
def photos(xt, embedded_model):
    return embedded_model, xt.preprocess([utils.sample_image("chelsea"), utils.cat_and_coffee()], embedded_model)


def test_grad_cam_plus_plus_on_a_gap_head_is_its_closed_form(xt, photos):
    """On GAP -> linear, dS^c/dA^k_ij = w_ck / (h w) at every position, so eq. 19 gives alpha = 1 / (2 + w_ck mean(A^k))
    and eq. 7 the weight ReLU(w_ck) / (2 + w_ck mean(A^k)): the map is known from CAM's parts alone."""
    model, x = photos
    features, weight, _ = xt.cam_parts(model, x)
    for target in (285, 967):
        ours = xt.grad_cam_plus_plus(model, x, target, normalize=False, upsample=False)
        w = weight[target].astype(np.float64)
        means = features.mean(axis=(2, 3), dtype=np.float64)  # (B, K)
        denominator = 2 + w * means
        weights = np.where(denominator != 0, np.maximum(w, 0) / np.where(denominator != 0, denominator, 1), 0)
        expected = np.maximum(np.einsum("bk,bkhw->bhw", weights, features), 0)
        np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-4 * expected.max())
        assert (ours > 0).mean() > 0.1  # not trivially zero


def test_grad_cam_plus_plus_differs_from_grad_cam_and_follows_the_contract(xt, photos):
    model, x = photos
    plus = xt.grad_cam_plus_plus(model, x, 967)
    plain = xt.grad_cam(model, x, 967)
    assert plus.shape == plain.shape == (2, 224, 224) and plus.dtype == np.float32
    assert plus.min() == 0 and np.allclose(plus.max(axis=(1, 2)), 1)
    assert not np.allclose(plus, plain, atol=1e-2)  # a different weighting, not a rescaled Grad-CAM
    coarse = xt.grad_cam_plus_plus(model, x, [285, 967], layer=xt.feature_layers(model)[-2], upsample=False)
    assert coarse.shape[1:] == (7, 7)
    with pytest.raises(ValueError, match="no layer named 'nope'"):
        xt.grad_cam_plus_plus(model, x, 285, layer="nope")


def test_layer_cam_on_a_gap_head_is_its_closed_form(xt, photos):
    """On GAP -> linear every position's gradient is w_ck / (h w), so LayerCAM is ReLU(sum_k ReLU(w_ck) A^k) / (h w)."""
    model, x = photos
    features, weight, _ = xt.cam_parts(model, x)
    positions = features.shape[2] * features.shape[3]
    for target in (285, 967):
        ours = xt.layer_cam(model, x, target, normalize=False, upsample=False)
        expected = np.maximum(np.einsum("k,bkhw->bhw", np.maximum(weight[target], 0), features), 0) / positions
        np.testing.assert_allclose(ours, expected, rtol=1e-3, atol=1e-4 * expected.max())
        assert (ours > 0).mean() > 0.1


def test_hires_cam_on_a_gap_head_is_cam_over_the_number_of_positions(xt, photos):
    """Draelos and Carin's CAM equivalence: on a GAP head the signed HiResCAM map is CAM / (h w)."""
    model, x = photos
    for target in (285, 967):
        ours = xt.hires_cam(model, x, target, normalize=False, upsample=False)
        cam = xt.cam(model, x, target, normalize=False, upsample=False)
        np.testing.assert_allclose(ours * cam.shape[1] * cam.shape[2], cam, rtol=1e-3, atol=1e-4 * np.abs(cam).max())
        assert ours.min() < 0 < ours.max()  # signed, as in the paper
        np.testing.assert_array_equal(xt.hires_cam(model, x, target, normalize=False, upsample=False, relu=True),
                                      np.maximum(ours, 0))


def test_hires_cam_sums_to_the_logit_on_a_flatten_head_and_layer_cam_is_its_positive_part(xt):
    """conv -> ReLU -> flatten -> linear: after "relu" the score is sum_hwk W[h, w, k, c] A[h, w, k] + b_c, so
    HiResCAM summed over positions plus b_c is the logit (no averaging, unlike Grad-CAM), and LayerCAM is
    ReLU(sum_k ReLU(W[h, w, k, c]) A[h, w, k]) by hand."""
    rng = np.random.default_rng(3)
    kernel, weights, bias = rng.normal(size=(3, 4)), rng.normal(size=(5, 5, 4, 3)), rng.normal(size=3)
    model = nets.flatten_net(xt, kernel, weights, bias)
    images = rng.normal(size=(2, 5, 5, 3)).astype(np.float32)
    x = nets.batch(xt, images)
    logits = nets.logits(xt, model, x)
    activations = np.maximum(np.einsum("bhwc,ck->bhwk", images, kernel), 0)
    for target in range(3):
        hires = xt.hires_cam(model, x, target, layer="relu", normalize=False, upsample=False)
        np.testing.assert_allclose(hires.sum(axis=(1, 2)) + bias[target], logits[:, target], rtol=1e-5, atol=1e-5)
        layer = xt.layer_cam(model, x, target, layer="relu", normalize=False, upsample=False)
        expected = np.maximum(np.einsum("hwk,bhwk->bhw", np.maximum(weights[..., target], 0), activations), 0)
        np.testing.assert_allclose(layer, expected, rtol=1e-5, atol=1e-6)
        grad_cam = xt.grad_cam(model, x, target, layer="relu", normalize=False, upsample=False)
        assert not np.allclose(grad_cam, np.maximum(hires, 0), atol=1e-3)  # Grad-CAM averages: a different map


def test_the_cam_family_follows_the_contract(xt, photos):
    model, x = photos
    plain = xt.grad_cam(model, x, 967)
    for method in (xt.layer_cam, xt.hires_cam):
        ours = method(model, x, 967)
        assert ours.shape == (2, 224, 224) and ours.dtype == np.float32
        assert ours.min() == 0 and np.allclose(ours.max(axis=(1, 2)), 1)
        assert not np.allclose(ours, plain, atol=1e-2)
        block4 = {"torch": "features.block4", "tensorflow": "block4_add"}[xt.FRAMEWORK]
        assert method(model, x, [285, 967], layer=block4, upsample=False).shape[1:] == (28, 28)
        with pytest.raises(ValueError, match="no layer named 'nope'"):
            method(model, x, 285, layer="nope")
