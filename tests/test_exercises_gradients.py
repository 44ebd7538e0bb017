"""The checkers of the build-it exercises on gradients (utils/exercises.py): the guided ReLU's backward rule
(notebook 05) and SmoothGrad's loop (notebook 04). The right answer is accepted, each usual mistake is
rejected with its own hint, and None and a wrong shape are rejected."""
import numpy as np
import pytest

from utils import exercises

RNG = np.random.default_rng(0)

# The guided ReLU: every sign combination occurs, and for ReLU6 some inputs are saturated (x >= 6).
X = RNG.uniform(-8, 8, size=(4, 5, 5))
G = RNG.normal(size=(4, 5, 5))
GUIDED = G * ((X > 0) & (G > 0))
GUIDED6 = G * ((X > 0) & (X < 6) & (G > 0))


def test_the_relu_data_can_show_every_mistake():
    for a, b in [((X > 0), (G > 0)), ((X > 0), (G <= 0)), ((X <= 0), (G > 0)), ((X >= 6), (G > 0))]:
        assert (a & b).any()


def check_guided_relu(answer, upper=None):
    return exercises.check_guided_relu(answer, X, G, upper=upper)


def test_guided_relu_right_answer_is_accepted(capsys):
    assert check_guided_relu(GUIDED) is True
    assert capsys.readouterr().out.startswith("Right:")
    assert check_guided_relu(GUIDED.astype(np.float32)) is True
    assert check_guided_relu(GUIDED6, upper=6) is True


@pytest.mark.parametrize("answer, hint", [
    (None, "None"),
    (G * (X > 0), "plain backprop"),
    (G * (G > 0), "deconvnet"),
    (((X > 0) & (G > 0)).astype(float), "the mask itself"),
    (np.maximum(X, 0), "forward output"),
    (G, "unchanged"),
    (G * ~((X > 0) & (G > 0)), "inverted"),
    (GUIDED[:2], "shape"),
    (GUIDED + 1.0, "compare with"),
])
def test_guided_relu_mistakes_get_their_hint(capsys, answer, hint):
    assert check_guided_relu(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet:") and hint in out, out


def test_guided_relu6_forgotten_upper_bound_gets_its_hint(capsys):
    assert check_guided_relu(GUIDED, upper=6) is False
    assert "saturated" in capsys.readouterr().out


def test_guided_relu_rejects_inputs_that_do_not_fit():
    with pytest.raises(ValueError, match="one shape"):
        exercises.check_guided_relu(GUIDED, X, G[:2])


# SmoothGrad: a nonlinear "network" in numpy, so that the gradient at the mean of the noisy images differs from
# the mean of their gradients; an image whose range is 4, so that sigma = level differs from level * range.
W = RNG.normal(size=(6, 6, 3))
IMAGE = RNG.uniform(-2, 2, size=(1, 6, 6, 3))
NOISE = RNG.standard_normal((5, 6, 6, 3))
LEVEL = 0.2
SIGMA = LEVEL * (IMAGE.max() - IMAGE.min())
CALLS = []


def gradient_of(images):
    """The gradient of S(x) = sum sin(3 W x) + sum x^2 / 2: 3 W cos(3 W x) + x, for a batch (B, 6, 6, 3)."""
    CALLS.append(len(images))
    return 3 * W * np.cos(3 * W * images) + images


def smooth_grad(image, noise, level, sigma=None, absolute_first=False, divide=True):
    sigma = level * (image.max() - image.min()) if sigma is None else sigma
    gradients = np.concatenate([gradient_of(image + sigma * z[None]) for z in noise])
    if absolute_first:
        gradients = np.abs(gradients)
    total = gradients.sum(axis=0)
    return np.abs(total / len(noise) if divide else total).max(axis=-1)


SMOOTH = smooth_grad(IMAGE, NOISE, LEVEL)


def check_smooth_grad(answer):
    return exercises.check_smooth_grad(answer, IMAGE, NOISE, LEVEL, gradient_of)


def test_the_smooth_grad_data_can_show_every_mistake():
    assert abs(IMAGE.max() - IMAGE.min() - 1) > 0.5
    averaged_images = np.abs(gradient_of(IMAGE + SIGMA * NOISE.mean(axis=0, keepdims=True))[0]).max(axis=-1)
    assert not np.allclose(averaged_images, SMOOTH, rtol=1e-2)
    assert not np.allclose(smooth_grad(IMAGE, NOISE, LEVEL, absolute_first=True), SMOOTH, rtol=1e-2)


def test_smooth_grad_right_answer_is_accepted(capsys):
    assert check_smooth_grad(SMOOTH) is True
    assert capsys.readouterr().out.startswith("Right:")
    assert check_smooth_grad(SMOOTH.astype(np.float32)) is True  # float32 from a framework
    batched = np.abs(gradient_of(IMAGE + SIGMA * NOISE).mean(axis=0)).max(axis=-1)  # one batch, not a loop
    assert check_smooth_grad(batched) is True


def test_smooth_grad_right_answer_costs_n_gradients():
    CALLS.clear()
    check_smooth_grad(SMOOTH)
    assert sum(CALLS) == len(NOISE)


@pytest.mark.parametrize("answer, hint", [
    (None, "None"),
    (smooth_grad(IMAGE, NOISE, LEVEL, absolute_first=True), "absolute value before averaging"),
    (np.abs(np.concatenate([gradient_of(IMAGE + SIGMA * z[None]) for z in NOISE])).max(axis=-1).mean(axis=0),
     "averaged the per-copy saliency maps"),
    (smooth_grad(IMAGE, NOISE, LEVEL, divide=False), "divide by n = 5"),
    (np.abs(gradient_of(IMAGE + SIGMA * NOISE.mean(axis=0, keepdims=True))[0]).max(axis=-1),
     "averaged the noisy images"),
    (smooth_grad(IMAGE, NOISE, LEVEL, sigma=LEVEL), "relative to the image's range"),
    (np.abs(gradient_of(IMAGE)[0]).max(axis=-1), "vanilla gradient"),
    (np.abs(gradient_of(IMAGE + SIGMA * NOISE[:1])[0]).max(axis=-1), "first noisy copy only"),
    (np.abs(gradient_of(IMAGE + SIGMA * NOISE[-1:])[0]).max(axis=-1), "last noisy copy only"),
    (gradient_of(IMAGE + SIGMA * NOISE).mean(axis=0), "averaged gradient, per channel"),
    (np.abs(gradient_of(IMAGE + SIGMA * NOISE)).max(axis=-1), "one map per noisy copy"),
    (SMOOTH[:3], "shape"),
    (SMOOTH + 1.0, "compare with"),
])
def test_smooth_grad_mistakes_get_their_hint(capsys, answer, hint):
    assert check_smooth_grad(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet:") and hint in out, out


def test_smooth_grad_rejects_inputs_that_do_not_fit():
    with pytest.raises(ValueError, match="noise"):
        exercises.check_smooth_grad(SMOOTH, IMAGE[0], NOISE, LEVEL, gradient_of)
    with pytest.raises(ValueError, match="noise"):
        exercises.check_smooth_grad(SMOOTH, IMAGE, NOISE[:, :3], LEVEL, gradient_of)
