"""The checkers of the build-it exercises on CAM and Grad-CAM (utils/exercises.py): the right answer is
accepted, each usual mistake is rejected with its own hint, and None and a wrong shape are rejected."""
import numpy as np
import pytest

from utils import exercises

RNG = np.random.default_rng(0)
FEATURES = RNG.uniform(0, 2, size=(6, 5, 5))       # (K, h, w), like a ReLU's output
WEIGHTS = RNG.normal(size=(4, 6))                  # (classes, K)
TARGET = 2
CAM = np.einsum("k,khw->hw", WEIGHTS[TARGET], FEATURES)
ACTIVATIONS = RNG.uniform(0, 2, size=(6, 5, 5))
GRADIENTS = RNG.normal(size=(6, 5, 5))
SIGNED = np.einsum("k,khw->hw", GRADIENTS.mean(axis=(1, 2)), ACTIVATIONS)
GRAD_CAM = np.maximum(SIGNED, 0)


def test_the_data_can_show_every_mistake():
    assert (CAM < 0).any() and (CAM > 0).any() and (SIGNED < 0).any() and (SIGNED > 0).any()
    assert (GRADIENTS.mean(axis=(1, 2)) < 0).any()


def check_cam(answer):
    return exercises.check_cam(answer, FEATURES, WEIGHTS, TARGET)


def check_grad_cam(answer):
    return exercises.check_grad_cam(answer, ACTIVATIONS, GRADIENTS)


def test_cam_right_answer_is_accepted(capsys):
    assert check_cam(CAM) is True
    assert capsys.readouterr().out.startswith("Right:")
    assert check_cam(CAM.astype(np.float32)) is True  # float32 from a framework


@pytest.mark.parametrize("answer, hint", [
    (None, "None"),
    (np.maximum(CAM, 0), "no ReLU"),
    (CAM / 6, "averaged over the channels"),
    (CAM / 25, "divided by Z"),
    (CAM.T, "transposed"),
    ((CAM - CAM.min()) / (CAM.max() - CAM.min()), "rescaled"),
    (np.einsum("k,khw->hw", WEIGHTS[0], FEATURES), "map of class 0"),
    (np.einsum("ck,khw->chw", WEIGHTS, FEATURES), "every class"),
    (np.einsum("k,khw->k", WEIGHTS[TARGET], FEATURES), "summed over the positions"),
    (CAM[:4], "shape"),
    (CAM + 1.0, "compare with"),
])
def test_cam_mistakes_get_their_hint(capsys, answer, hint):
    assert check_cam(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet:") and hint in out, out


def test_cam_rejects_inputs_that_do_not_fit():
    with pytest.raises(ValueError, match="features"):
        exercises.check_cam(CAM, FEATURES[0], WEIGHTS, TARGET)
    with pytest.raises(ValueError, match="target"):
        exercises.check_cam(CAM, FEATURES, WEIGHTS, 9)


def test_grad_cam_right_answer_is_accepted(capsys):
    assert check_grad_cam(GRAD_CAM) is True
    assert capsys.readouterr().out.startswith("Right:")
    assert check_grad_cam(GRAD_CAM.astype(np.float32)) is True


@pytest.mark.parametrize("answer, hint", [
    (None, "None"),
    (SIGNED, "forgot the final ReLU"),
    (GRAD_CAM * 25, "not the sum"),
    (np.maximum((GRADIENTS * ACTIVATIONS).sum(axis=0), 0), "cell by cell"),
    (np.maximum(GRADIENTS.mean(axis=0) * ACTIVATIONS.sum(axis=0), 0), "over the channels"),
    (np.maximum(np.einsum("k,khw->hw", np.maximum(GRADIENTS.mean(axis=(1, 2)), 0), ACTIVATIONS), 0), "not on the weights"),
    (GRAD_CAM.T, "transposed"),
    (GRAD_CAM / GRAD_CAM.max(), "rescaled"),
    (GRADIENTS.mean(axis=(1, 2)), "weights alpha_k"),
    (GRADIENTS.mean(axis=(1, 2))[:, None, None] * ACTIVATIONS, "sum the weighted channels"),
    (GRAD_CAM[:, :3], "shape"),
    (GRAD_CAM + 1.0, "compare with"),
])
def test_grad_cam_mistakes_get_their_hint(capsys, answer, hint):
    assert check_grad_cam(answer) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet:") and hint in out, out


def test_grad_cam_rejects_inputs_that_do_not_fit():
    with pytest.raises(ValueError, match="one shape"):
        exercises.check_grad_cam(GRAD_CAM, ACTIVATIONS, GRADIENTS[:, :3])
