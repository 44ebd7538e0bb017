"""The checker of notebook 06's build-it exercise (utils.exercises.check_pointing_game): the right answer
passes, each usual mistake gets its own hint, and an unanswered stub (None) is rejected."""
import numpy as np
import pytest
import scipy.ndimage

from utils import exercises

TOLERANCE = 2


@pytest.fixture
def case():
    """Six 12 x 12 maps, each with one object in the middle, chosen so that every mistake differs from
    the right answer: peaks on the object, near it, far from it, a constant map, and minima on it."""
    masks = np.zeros((6, 12, 12), bool)
    masks[:, 4:8, 4:8] = True
    maps = np.full((6, 12, 12), 0.5)
    maps[0, 5, 5] = 1.0                     # peak on the object: a hit
    maps[1, 5, 9] = 1.0                     # peak 2 px from it: a hit only with the tolerance
    maps[2, 0, 0], maps[2, 5, 5] = 1.0, 0.0  # peak far away, minimum on the object: a miss
    maps[3] = 0.3                           # constant: a miss
    maps[4, 11, 11], maps[4, 6, 6] = 1.0, 0.0  # a miss whose minimum is on the object
    maps[5, 6, 4] = 1.0                     # a hit
    return maps, masks


def right(maps, masks, tolerance=TOLERANCE):
    hits = []
    for heatmap, mask in zip(maps, masks):
        if heatmap.max() <= heatmap.min():
            hits.append(False)
            continue
        row, column = np.unravel_index(np.argmax(heatmap), heatmap.shape)
        hits.append(scipy.ndimage.distance_transform_edt(~mask)[row, column] <= tolerance)
    return np.array(hits)


def test_the_right_answer_passes(case, capsys):
    maps, masks = case
    assert list(right(maps, masks)) == [True, True, False, False, False, True]
    assert exercises.check_pointing_game(right(maps, masks), maps, masks, TOLERANCE) is True
    assert capsys.readouterr().out.startswith("Right:")
    assert exercises.check_pointing_game(list(right(maps, masks)), maps, masks, TOLERANCE) is True


@pytest.mark.parametrize("mistake, hint", [
    (lambda maps, masks: right(maps, masks, tolerance=0), "within the tolerance counts too"),
    (lambda maps, masks: right(maps, masks) | (maps.max(axis=(1, 2)) <= maps.min(axis=(1, 2))), "count it as a miss"),
    (lambda maps, masks: right(-maps, masks), "use its maximum"),
    (lambda maps, masks: right(maps, masks).mean(), "that is the hit rate"),
    (lambda maps, masks: right(maps, masks)[:3], "has shape (3,); expected (6,)"),
    (lambda maps, masks: ~right(maps, masks), "6 of 6 images differ"),
])
def test_each_mistake_gets_its_hint(case, capsys, mistake, hint):
    maps, masks = case
    assert exercises.check_pointing_game(mistake(maps, masks), maps, masks, TOLERANCE) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet:") and hint in out


def test_an_unanswered_stub_is_rejected(case, capsys):
    maps, masks = case
    assert exercises.check_pointing_game(None, maps, masks, TOLERANCE) is False
    assert "returned None" in capsys.readouterr().out
