"""xt.train and xt.evaluate in both backends: learning, history, determinism, evaluation, bad input."""
import math

import numpy as np
import pytest

import utils
import utils.tensorflow as xtf
import utils.torch as xtt
from utils import training as core


@pytest.fixture(scope="module")
def shapes():
    """Training and test shapes from different seeds."""
    return utils.make_shapes(800, seed=1), utils.make_shapes(200, seed=2)


def fresh(xt, head="gap", seed=0, **kwargs):
    xt.seed_everything(seed)
    kwargs = {"num_classes": 5, "width": 8, **kwargs}
    return xt.small_cnn(head, **kwargs)


def weights(xt, model):
    if xt is xtt:
        return [p.detach().cpu().numpy().copy() for p in model.state_dict().values()]
    return [w.copy() for w in model.get_weights()]


def logits(xt, model, images):
    x = xt.preprocess(images, model)
    if xt is xtt:
        import torch

        training = model.training
        model.eval()  # BatchNorm with its running statistics, as evaluate uses it
        try:
            with torch.no_grad():
                return model(x).cpu().numpy()
        finally:
            model.train(training)
    return model(x, training=False).numpy()


def test_a_small_net_learns_the_shapes_well_above_chance(xt, shapes, record_property):
    (train_set, test_set), model = shapes, fresh(xt)
    history = xt.train(model, train_set.images, train_set.labels, epochs=4, verbose=False)
    assert set(history) == {"loss", "accuracy"}
    assert len(history["loss"]) == len(history["accuracy"]) == 4
    assert all(math.isfinite(v) for v in history["loss"]) and all(0 <= v <= 1 for v in history["accuracy"])
    assert history["loss"][-1] < history["loss"][0] and history["accuracy"][-1] > history["accuracy"][0]
    accuracy = xt.evaluate(model, test_set.images, test_set.labels)
    record_property("figure", f"train {xt.FRAMEWORK}: small_cnn gap width 8, 800 images x 4 epochs, "
                              f"test accuracy {accuracy:.3f} (chance 0.2)")
    assert accuracy > 0.6


def test_the_flatten_head_trains(xt, shapes):
    """It used to stay at chance level (1/5): a wide first layer needs the BatchNorm the head now has."""
    train_set, test_set = shapes
    model = fresh(xt, "flatten")
    history = xt.train(model, train_set.images, train_set.labels, epochs=3, verbose=False)
    assert history["accuracy"][-1] > 0.4
    assert xt.evaluate(model, train_set.images, train_set.labels) > 0.4


def test_training_is_deterministic_for_a_seed(xt, shapes):
    images, labels = shapes[0].images[:96], shapes[0].labels[:96]
    runs = []
    for seed in (0, 0, 1):
        model = fresh(xt, width=4)  # the same initial weights every time
        history = xt.train(model, images, labels, epochs=2, batch_size=32, seed=seed, verbose=False)
        runs.append((history, weights(xt, model)))
    (first, w_first), (again, w_again), (other, _) = runs
    assert first == again
    assert all(np.array_equal(a, b) for a, b in zip(w_first, w_again))
    assert first != other  # another seed, another order of the batches


def test_the_model_changes_and_torch_is_left_in_eval_mode(xt, shapes):
    model = fresh(xt, width=4)
    before = weights(xt, model)
    xt.train(model, shapes[0].images[:40], shapes[0].labels[:40], epochs=1, verbose=False)
    assert not all(np.array_equal(a, b) for a, b in zip(before, weights(xt, model)))
    if xt is xtt:
        assert not model.training


def test_a_last_batch_of_one_image_is_joined_to_the_previous_one(xt, shapes):
    """17 images in batches of 16: a batch of one would break the flatten head's BatchNorm1d in PyTorch."""
    model = fresh(xt, "flatten", width=4)
    history = xt.train(model, shapes[0].images[:17], shapes[0].labels[:17], epochs=1, batch_size=16,
                       verbose=False)
    assert math.isfinite(history["loss"][0])


def test_verbose_prints_one_line_per_epoch_and_progress_draws_a_bar(xt, shapes, capsys):
    model = fresh(xt, width=4)
    xt.train(model, shapes[0].images[:40], shapes[0].labels[:40], epochs=2, batch_size=16, verbose=True)
    out, err = capsys.readouterr()
    lines = out.strip().splitlines()
    assert len(lines) == 2 and lines[0].startswith("epoch 1/2: loss ") and "accuracy" in lines[1]
    assert "training" not in err, "no bar unless asked for"
    xt.train(model, shapes[0].images[:40], shapes[0].labels[:40], epochs=2, batch_size=16, verbose=False,
             progress=True)
    out, err = capsys.readouterr()
    assert out == "" and "training" in err and "6/6" in err  # 2 epochs x 3 batches of 16, 16 and 8 images


def test_evaluate_matches_a_manual_count(xt, shapes):
    model, (_, test_set) = fresh(xt), shapes
    labels = np.random.default_rng(0).integers(0, 5, len(test_set))  # any labels: a count, not a score
    expected = float((logits(xt, model, test_set.images).argmax(1) == labels).mean())
    assert xt.evaluate(model, test_set.images, labels) == pytest.approx(expected, abs=1e-12)
    assert xt.evaluate(model, test_set.images, labels, batch_size=7) == pytest.approx(expected, abs=1e-12)
    predicted = logits(xt, model, test_set.images).argmax(1)
    assert xt.evaluate(model, test_set.images, predicted) == 1.0
    if xt is xtt:  # a fresh torch model is in training mode: evaluate switches to eval mode and back
        assert model.training


def test_bad_input_gets_clear_errors(xt, shapes):
    model, images, labels = fresh(xt, width=4), shapes[0].images[:8], shapes[0].labels[:8]
    with pytest.raises(ValueError, match="one label per image: 8 images"):
        xt.train(model, images, labels[:5], verbose=False)
    with pytest.raises(TypeError, match="integer class indices"):
        xt.train(model, images, labels.astype(np.float32), verbose=False)
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 5\)"):
        xt.train(model, images, labels + 5, verbose=False)
    for kwargs, message in (({"epochs": 0}, "epochs"), ({"batch_size": 0}, "batch_size"),
                            ({"batch_size": 2.5}, "batch_size"), ({"lr": 0.0}, "lr"),
                            ({"lr": float("nan")}, "lr")):
        with pytest.raises(ValueError, match=message):
            xt.train(model, images, labels, verbose=False, **kwargs)
    with pytest.raises(TypeError, match="uint8"):
        xt.train(model, images.astype(np.float32), labels, verbose=False)
    with pytest.raises(ValueError, match="one label per image"):
        xt.evaluate(model, images, labels[:3])
    with pytest.raises(ValueError, match="batch_size"):
        xt.evaluate(model, images, labels, batch_size=0)


def test_cosine_schedule_and_batches():
    assert core.cosine_factor(0, 10) == 1.0
    assert core.cosine_factor(5, 10) == pytest.approx(0.5)
    assert core.cosine_factor(10, 10) == pytest.approx(0.0) and core.cosine_factor(12, 10) == pytest.approx(0.0)
    assert core.batch_bounds(32, 16) == [(0, 16), (16, 32)]
    assert core.batch_bounds(33, 16) == [(0, 16), (16, 33)]  # the lone last image joins the batch before
    assert core.batch_bounds(20, 16) == [(0, 16), (16, 20)]
    assert core.batch_bounds(1, 16) == [(0, 1)]


def test_keras_schedule_is_the_cosine_factor():
    import keras

    schedule = keras.optimizers.schedules.CosineDecay(3e-3, decay_steps=40)
    for step in (0, 1, 17, 39, 40):
        assert float(schedule(step)) == pytest.approx(3e-3 * core.cosine_factor(step, 40), rel=1e-4, abs=1e-9)

