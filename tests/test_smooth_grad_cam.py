"""smooth_grad(method="grad_cam"): SmoothGrad applied to Grad-CAM, the same way in both backends."""
import numpy as np
import pytest

import utils

LAYER = {"torch": "features.block14", "tensorflow": "block14_add"}


@pytest.fixture
def embedded(xt, embedded_model):
    """The embedded model and two photos."""
    return embedded_model, xt.preprocess([utils.sample_image("chelsea"), utils.cat_and_coffee()], embedded_model)


def test_with_sigma_zero_it_is_grad_cam(xt, embedded):
    model, x = embedded
    for layer in (None, LAYER[xt.FRAMEWORK]):
        smoothed = xt.smooth_grad(model, x, target=[285, 967], n=2, sigma=0.0, seed=0, method="grad_cam", layer=layer)
        plain = xt.grad_cam(model, x, target=[285, 967], layer=layer)
        assert smoothed.shape == plain.shape == (2, 224, 224)
        np.testing.assert_allclose(smoothed, plain, atol=1e-4)


def test_noise_changes_the_map_but_not_with_the_chunk_size(xt, embedded):
    model, x = embedded
    kwargs = dict(target=285, n=6, sigma=0.2, seed=3, method="grad_cam")
    whole = xt.smooth_grad(model, x, batch_size=None, **kwargs)
    chunked = xt.smooth_grad(model, x, batch_size=5, **kwargs)
    np.testing.assert_allclose(whole, chunked, atol=1e-4)
    plain = xt.grad_cam(model, x, target=285)
    assert np.abs(whole - plain).max() > 0.05  # the noise did something
    squared = xt.smooth_grad(model, x, batch_size=None, squared=True, **kwargs)
    assert np.abs(squared - whole).max() > 0.01


def test_bad_method_or_layer_is_a_clear_error(xt, embedded):
    model, x = embedded
    with pytest.raises(ValueError, match="method must be one of 'saliency', 'grad_cam'"):
        xt.smooth_grad(model, x, n=1, method="gradcam")
    with pytest.raises(ValueError, match="only for method='grad_cam'"):
        xt.smooth_grad(model, x, n=1, layer=LAYER[xt.FRAMEWORK])
    with pytest.raises(ValueError, match="no layer named 'block99'"):
        xt.smooth_grad(model, x, n=1, method="grad_cam", layer="block99")
