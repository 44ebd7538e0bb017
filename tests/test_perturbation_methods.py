"""Score-CAM, occlusion and Integrated Gradients on both backends: each worked out by hand on tiny networks
(the network itself as the oracle for the forward passes), their options, their bad arguments, and
Integrated Gradients' completeness on the embedded model at the default steps."""
import numpy as np
import pytest

import tiny_nets as nets
import utils
from utils import contract


def normal(seed, *shape):
    return np.random.default_rng(seed).normal(size=shape).astype(np.float32)


def softmax(logits):
    e = np.exp(logits - logits.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def scores(xt, model, images, target, score):
    logits = nets.logits(xt, model, nets.batch(xt, images))
    return (softmax(logits) if score == "probability" else logits)[:, target]


@pytest.fixture
def gap(xt):
    """A GAP net whose feature map "relu" has the input's 4 x 4 size (upsampling is the identity)."""
    return nets.gap_net(xt, normal(1, 3, 5), normal(2, 5, 3), normal(3, 3), size=4), normal(4, 2, 4, 4, 3)


@pytest.mark.parametrize("score", ["probability", "logit"])
def test_score_cam_by_hand(xt, gap, score):
    """Wang et al.: H^k = minmax(A^k), C_k = f_c(X * H^k) - f_c(X * 0), map = ReLU(sum_k C_k A^k)."""
    model, images = gap
    activations = nets.feature_map(xt, model, nets.batch(xt, images), "relu")  # (B, K, h, w)
    peaks = []
    for target in range(3):
        expected = []
        for image, maps in zip(images, activations):
            low, high = maps.min(axis=(1, 2), keepdims=True), maps.max(axis=(1, 2), keepdims=True)
            masks = np.where(high > low, (maps - low) / np.where(high > low, high - low, 1), 0)
            masked = image[None] * masks[..., None]  # (K, h, w, C)
            weights = scores(xt, model, masked, target, score) - scores(xt, model, 0 * image[None], target, score)
            expected.append(np.maximum(np.einsum("k,khw->hw", weights, maps), 0))
        ours = xt.score_cam(model, nets.batch(xt, images), target, layer="relu", score=score, normalize=False)
        np.testing.assert_allclose(ours, np.stack(expected), rtol=1e-4, atol=1e-6)
        peaks.append(ours.max())
    assert max(peaks) > 0  # not trivially zero for every class


def test_score_cam_top_k_keeps_the_channels_of_largest_variance(xt, gap):
    model, images = gap
    x = nets.batch(xt, images)
    full = xt.score_cam(model, x, 1, layer="relu", normalize=False)
    np.testing.assert_allclose(xt.score_cam(model, x, 1, layer="relu", normalize=False, top_k=5), full, rtol=1e-5)
    activations = nets.feature_map(xt, model, x, "relu")
    strongest = activations.reshape(2, 5, -1).var(axis=2).argmax(axis=1)
    one = xt.score_cam(model, x, 1, layer="relu", normalize=False, top_k=1)
    for i, k in enumerate(strongest):  # the map is that one channel, scaled by its weight (or zero)
        kept = activations[i, k]
        assert np.allclose(one[i], 0) or np.corrcoef(one[i].ravel(), kept.ravel())[0, 1] > 0.9999
    chunked = xt.score_cam(model, x, 1, layer="relu", normalize=False, batch_size=3)  # chunks across images
    np.testing.assert_allclose(chunked, full, rtol=1e-5, atol=1e-7)


def occlusion_by_hand(weights, images, target, patch, stride, fill):
    """linear_net's logit drop is sum over the patch of W_c (x - fill); each pixel gets the mean of its patches."""
    _, height, width, _ = images.shape
    rows, columns = contract.patch_corners(height, patch, stride), contract.patch_corners(width, patch, stride)
    total, count = np.zeros(images.shape[:3]), np.zeros((height, width))
    for top in rows:
        for left in columns:
            part = (slice(top, top + patch), slice(left, left + patch))
            drop = np.einsum("bhwc,hwc->b", images[:, part[0], part[1]] - fill, weights[part[0], part[1], :, target])
            total[:, part[0], part[1]] += drop[:, None, None]
            count[part] += 1
    return total / count


@pytest.mark.parametrize("patch, stride", [(2, 1), (2, 2), (3, 2), (5, 5)])
def test_occlusion_of_a_linear_model_by_hand(xt, patch, stride):
    weights, images = normal(5, 5, 5, 3, 2), normal(6, 2, 5, 5, 3)
    model, x = nets.linear_net(xt, weights), nets.batch(xt, images)
    grey = contract.baseline_pixels(model, contract.GREY)  # 128 through the embedded model's (x - 127) / 128
    np.testing.assert_allclose(grey, 1 / 128)
    for target, baseline, fill in [(0, contract.GREY, grey), (1, 0.0, contract.baseline_pixels(model, 0.0)),
                                   (1, np.full((2, 5, 5, 3), 0.25, np.float32), 0.25)]:
        baseline = nets.batch(xt, baseline) if isinstance(baseline, np.ndarray) else baseline
        ours = xt.occlusion(model, x, target, patch=patch, stride=stride, baseline=baseline, score="logit",
                            normalize=False)
        np.testing.assert_allclose(ours, occlusion_by_hand(weights, images, target, patch, stride, fill),
                                   rtol=1e-4, atol=1e-5)


def test_occlusion_with_probabilities_and_in_chunks(xt):
    weights, images = normal(7, 4, 4, 3, 3), normal(8, 2, 4, 4, 3)
    model, x = nets.linear_net(xt, weights), nets.batch(xt, images)
    ours = xt.occlusion(model, x, 2, patch=4, stride=1, baseline=0.0, normalize=False)  # one patch: the whole image
    fill = np.broadcast_to(contract.baseline_pixels(model, 0.0), images.shape)
    drop = scores(xt, model, images, 2, "probability") - scores(xt, model, fill, 2, "probability")
    np.testing.assert_allclose(ours, np.broadcast_to(drop[:, None, None], ours.shape), rtol=1e-5, atol=1e-7)
    small = dict(target=[0, 2], patch=2, stride=1)
    np.testing.assert_allclose(xt.occlusion(model, x, batch_size=1, **small), xt.occlusion(model, x, batch_size=7, **small),
                               atol=1e-5)


def test_integrated_gradients_of_a_linear_model_is_exact(xt):
    """A constant gradient W: IG = (x - x') W summed over channels at any number of steps; it sums to F(x) - F(x')."""
    weights, images = normal(9, 4, 4, 3, 2), normal(10, 2, 4, 4, 3)
    model, x = nets.linear_net(xt, weights), nets.batch(xt, images)
    raw = None
    for steps, baseline, reference in [(1, 0.0, contract.baseline_pixels(model, 0.0)), (7, contract.GREY, 1 / 128),
                                       (3, np.zeros((4, 4, 3), np.float32), 0.0)]:
        base = baseline if not isinstance(baseline, np.ndarray) else nets.batch(xt, baseline[None])[0]  # one image
        ours = xt.integrated_gradients(model, x, 1, baseline=base, steps=steps, normalize=False, batch_size=5)
        expected = np.einsum("bhwc,hwc->bhw", images - reference, weights[..., 1])
        np.testing.assert_allclose(ours, expected, rtol=1e-4, atol=1e-5)
        start = np.broadcast_to(np.asarray(reference, np.float32), images.shape)
        gap = nets.logits(xt, model, x)[:, 1] - nets.logits(xt, model, nets.batch(xt, start.copy()))[:, 1]
        np.testing.assert_allclose(ours.sum(axis=(1, 2)), gap, rtol=1e-4, atol=1e-5)
        raw = ours if steps == 1 else raw  # the black baseline's map
    magnitude = np.abs(raw)
    low, high = magnitude.min(axis=(1, 2), keepdims=True), magnitude.max(axis=(1, 2), keepdims=True)
    np.testing.assert_allclose(xt.integrated_gradients(model, x, 1, steps=2), (magnitude - low) / (high - low), atol=1e-5)


def test_integrated_gradients_is_complete_within_5_percent_at_the_default_steps(xt, embedded_model, record_property):
    """Sundararajan et al.'s check: the attributions sum to F(x) - F(black); at the default steps within 5%."""
    x = xt.preprocess([utils.sample_image("chelsea")], embedded_model)
    ours = xt.integrated_gradients(embedded_model, x, normalize=False)
    black = xt.preprocess([np.zeros((224, 224, 3), np.uint8)], embedded_model)
    logits, floor = nets.logits(xt, embedded_model, x), nets.logits(xt, embedded_model, black)
    target = logits[0].argmax()
    error = ours.sum() / (logits[0, target] - floor[0, target]) - 1
    record_property("figure", f"IG completeness at {contract.INTEGRATED_GRADIENTS_DEFAULT_STEPS} steps: {error:+.2%}")
    assert abs(error) < 0.05


def test_bad_arguments_get_clear_errors(xt, gap):
    model, images = gap
    x = nets.batch(xt, images)
    for call, message in [
            (lambda: xt.occlusion(model, x, patch=5, stride=2), r"patch \(5 px\) is larger than the 4 x 4 image"),
            (lambda: xt.occlusion(model, x, patch=2, stride=0), "stride must be a positive int"),
            (lambda: xt.occlusion(model, x, patch=2, stride=3), r"stride \(3 px\) is larger than the patch"),
            (lambda: xt.occlusion(model, x, patch=2.5), "patch must be a positive int"),
            (lambda: xt.occlusion(model, x, patch=2, stride=1, baseline=300), "baseline must be a pixel value from 0 to 255"),
            (lambda: xt.occlusion(model, x, patch=2, stride=1, baseline=np.zeros((3, 3))), "a baseline array must be shaped"),
            (lambda: xt.occlusion(model, x, patch=2, stride=1, score="softmax"), "score must be 'probability'"),
            (lambda: xt.occlusion(model, x, patch=2, stride=1, batch_size=0), "batch_size .* must be a positive int"),
            (lambda: xt.score_cam(model, x, layer="relu", top_k=6), "top_k must be None .* from 1 to 5"),
            (lambda: xt.score_cam(model, x, layer="relu", top_k=0), "top_k must be None"),
            (lambda: xt.score_cam(model, x, layer="nope"), "no layer named 'nope'"),
            (lambda: xt.integrated_gradients(model, x, steps=0), r"steps \(points on the path"),
            (lambda: xt.integrated_gradients(model, x, baseline="black"), "baseline must be a pixel value")]:
        with pytest.raises(ValueError, match=message):
            call()


def test_the_default_batch_is_a_pixel_budget_on_a_cpu():
    # 4 EfficientNet-Lite0 inputs per pass (the measured fastest per image on a CPU), 49 of the
    # 64-pixel shapes, never fewer than one; on a GPU a fixed large batch whatever the size.
    assert contract.perturbation_batch(None, False, 224 * 224) == 4
    assert contract.perturbation_batch(None, False, 64 * 64) == 49
    assert contract.perturbation_batch(None, False, 1024 * 1024) == 1
    assert contract.perturbation_batch(None, True, 64 * 64) == contract.PERTURBATION_BATCH_GPU
    assert contract.perturbation_batch(7, False, 224 * 224) == 7
