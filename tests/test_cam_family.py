"""The CAM family beyond Grad-CAM, on both backends: analytic cases on the embedded model's GAP head."""
import numpy as np
import pytest

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
