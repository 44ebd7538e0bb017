"""The checker of notebook 10's build-it exercise (utils.exercises.check_cue_share): the right answer
passes, each usual mistake gets its own hint, and an unanswered stub (None) is rejected."""
import numpy as np
import pytest

from utils import exercises


@pytest.fixture
def case():
    rng = np.random.default_rng(0)
    maps = rng.random((4, 8, 8)).astype(np.float32)
    cue = np.zeros((4, 8, 8), bool)
    cue[:, :2, :2] = True
    masks = np.zeros((4, 8, 8), bool)
    masks[:, 3:7, 2:6] = True
    return maps, cue, masks


def right(maps, cue):
    return (maps * cue).sum(axis=(1, 2)) / maps.sum(axis=(1, 2))


def test_the_right_answer_passes(case, capsys):
    maps, cue, masks = case
    assert exercises.check_cue_share(right(maps, cue), maps, cue, masks) is True
    assert capsys.readouterr().out.startswith("Right:")
    assert exercises.check_cue_share(list(right(maps, cue)), maps, cue) is True  # any array-like


@pytest.mark.parametrize("mistake, hint", [
    (lambda maps, cue, masks: (maps * cue).sum(axis=(1, 2)), "divide by each map's total"),
    (lambda maps, cue, masks: (maps * cue).sum(axis=(1, 2)) / cue.sum(axis=(1, 2)), "the map's mean inside"),
    (lambda maps, cue, masks: right(maps, masks), "the share on the object"),
    (lambda maps, cue, masks: (maps * cue).sum() / maps.sum(), "one number for the whole batch"),
    (lambda maps, cue, masks: right(maps, cue).mean(), "the mean of the shares"),
    (lambda maps, cue, masks: right(maps, cue)[:2], "has shape (2,); expected (4,)"),
    (lambda maps, cue, masks: right(maps, cue) + 0.1, "the values differ"),
])
def test_each_mistake_gets_its_hint(case, capsys, mistake, hint):
    maps, cue, masks = case
    assert exercises.check_cue_share(mistake(maps, cue, masks), maps, cue, masks) is False
    out = capsys.readouterr().out
    assert out.startswith("Not yet:") and hint in out


def test_an_unanswered_stub_is_rejected(case, capsys):
    maps, cue, masks = case
    assert exercises.check_cue_share(None, maps, cue, masks) is False
    assert "returned None" in capsys.readouterr().out
