"""utils.metrics on cases whose answer is known: pointing game, rank correlation, deletion and insertion."""
import numpy as np
import pytest
import scipy.stats

from utils import metrics

RNG = np.random.default_rng(0)


def peak_at(row, column, shape=(64, 64)):
    heatmap = np.zeros(shape)
    heatmap[row, column] = 1.0
    return heatmap


# ------------------------------------------------------------------------------------------------
# Pointing game
# ------------------------------------------------------------------------------------------------


def test_pointing_game_hits_inside_and_within_the_tolerance():
    box = np.array([20, 20, 40, 40])  # x0, y0, x1, y1: columns and rows 20..39
    maps = np.stack([peak_at(30, 30), peak_at(30, 49), peak_at(30, 60), peak_at(5, 5)])
    boxes = np.stack([box] * 4)
    # inside; 10 px right of the box (column 49 vs last column 39); 21 px right; ~21 px diagonally away
    np.testing.assert_array_equal(metrics.pointing_game(maps, boxes), [True, True, False, False])
    np.testing.assert_array_equal(metrics.pointing_game(maps, boxes, tolerance=0), [True, False, False, False])
    np.testing.assert_array_equal(metrics.pointing_game(maps, boxes, tolerance=25), [True, True, True, True])


def test_pointing_game_takes_masks_and_boxes_alike():
    masks = np.zeros((2, 64, 64), dtype=bool)
    masks[:, 20:40, 20:40] = True
    maps = np.stack([peak_at(25, 25), peak_at(63, 0)])
    from_masks = metrics.pointing_game(maps, masks)
    np.testing.assert_array_equal(from_masks, metrics.pointing_game(maps, [[20, 20, 40, 40]] * 2))
    np.testing.assert_array_equal(from_masks, [True, False])
    ring = masks.copy()
    ring[:, 25:35, 25:35] = False  # a ring-shaped object: its hole is 5 px from the object, within 15
    assert metrics.pointing_game(peak_at(30, 30), ring[:1]).tolist() == [True]
    assert metrics.pointing_game(peak_at(30, 30), ring[:1], tolerance=4).tolist() == [False]


def test_pointing_game_a_constant_map_misses_and_bad_input_is_refused():
    assert metrics.pointing_game(np.ones((64, 64)), [20, 20, 40, 40]).tolist() == [False]
    with pytest.raises(ValueError, match="one region per map"):
        metrics.pointing_game(np.zeros((2, 64, 64)), [[0, 0, 4, 4]] * 3)
    with pytest.raises(ValueError, match="NaN"):
        metrics.pointing_game(np.full((8, 8), np.nan), [0, 0, 4, 4])
    with pytest.raises(ValueError, match="tolerance"):
        metrics.pointing_game(peak_at(1, 1), [0, 0, 4, 4], tolerance=-1)


# ------------------------------------------------------------------------------------------------
# Rank correlation
# ------------------------------------------------------------------------------------------------


def test_rank_correlation_known_values():
    a = RNG.normal(size=(3, 16, 16))
    np.testing.assert_allclose(metrics.rank_correlation(a, a), 1.0)
    np.testing.assert_allclose(metrics.rank_correlation(a, np.exp(a)), 1.0)  # monotone: same ranks
    np.testing.assert_allclose(metrics.rank_correlation(a, -a), -1.0)
    np.testing.assert_allclose(metrics.rank_correlation(a, -a, absolute=True), 1.0)  # sign flips ignored
    b = RNG.normal(size=(3, 16, 16))
    expected = [scipy.stats.spearmanr(x.ravel(), y.ravel())[0] for x, y in zip(a, b)]
    np.testing.assert_allclose(metrics.rank_correlation(a, b), expected, atol=1e-12)
    assert np.abs(metrics.rank_correlation(a, b)).max() < 0.3  # independent maps: near zero


def test_rank_correlation_ties_constants_and_colour_maps():
    a = np.array([[[0.0, 0.0], [1.0, 2.0]]])
    b = np.array([[[0.0, 1.0], [1.0, 2.0]]])
    assert metrics.rank_correlation(a, b)[0] == pytest.approx(scipy.stats.spearmanr(a.ravel(), b.ravel())[0])
    assert metrics.rank_correlation(a, np.zeros_like(a)).tolist() == [0.0]  # a constant map: no ordering
    rgb = RNG.normal(size=(2, 8, 8, 3))
    np.testing.assert_allclose(metrics.rank_correlation(rgb, rgb), 1.0)
    with pytest.raises(ValueError, match="same shape"):
        metrics.rank_correlation(np.zeros((2, 8, 8)), np.zeros((2, 8, 9)))


# ------------------------------------------------------------------------------------------------
# Deletion and insertion
# ------------------------------------------------------------------------------------------------


def test_perturbation_order_is_descending_and_breaks_ties_at_random():
    heatmap = np.zeros((16, 16))
    heatmap[4, 5], heatmap[10, 2] = 2.0, 1.0
    order = metrics.perturbation_order(heatmap)
    assert order[0] == 4 * 16 + 5 and order[1] == 10 * 16 + 2
    tied = order[2:]
    assert sorted(tied) == sorted(set(range(256)) - {69, 162})
    assert not np.all(np.diff(tied) > 0), "ties must not be taken in raster order"
    np.testing.assert_array_equal(order, metrics.perturbation_order(heatmap, seed=0))
    assert not np.array_equal(order, metrics.perturbation_order(heatmap, seed=1))


def test_deletion_and_insertion_frames():
    image = RNG.integers(1, 256, (8, 8, 3), dtype=np.uint8)  # no black pixel: a deleted pixel is visible
    heatmap = RNG.random((8, 8))
    frames, fractions = metrics.perturbed_images(image, heatmap, "deletion", steps=4)
    assert frames.shape == (5, 8, 8, 3) and frames.dtype == np.uint8
    np.testing.assert_allclose(fractions, [0, 0.25, 0.5, 0.75, 1])
    np.testing.assert_array_equal(frames[0], image)
    assert not frames[-1].any()  # all black
    deleted = (frames == 0).all(axis=-1)
    assert deleted.reshape(5, -1).sum(1).tolist() == [0, 16, 32, 48, 64]
    top16 = np.argsort(-heatmap.ravel())[:16]
    assert deleted[1].ravel()[top16].all()  # the map's highest pixels go first
    frames, _ = metrics.perturbed_images(image, heatmap, "insertion", steps=4)
    np.testing.assert_array_equal(frames[0], metrics.baseline_image(image, "blur"))
    np.testing.assert_array_equal(frames[-1], image)
    np.testing.assert_array_equal(frames[1].reshape(-1, 3)[top16], image.reshape(-1, 3)[top16])


def test_areas_under_the_curves_of_a_perfect_and_a_reversed_map():
    """score = share of the object's pixels left intact; the object covers a = 1/4 of the image.

    Deletion with the object's mask as the map removes the object first: the score falls linearly to 0
    at fraction a, area a/2. The reversed map removes it last: area 1 - a/2. Insertion mirrors it.
    """
    image = RNG.integers(1, 256, (32, 32, 3), dtype=np.uint8)
    mask = np.zeros((32, 32), dtype=bool)
    mask[8:24, 8:24] = True
    a = mask.mean()

    def intact(frames, target):
        assert target == 3
        return (frames[:, mask] == image[mask]).all(axis=-1).mean(axis=1)

    maps = np.stack([mask.astype(float), (~mask).astype(float)])
    deletion = metrics.perturbation_curves(intact, np.stack([image] * 2), maps, 3, "deletion", steps=64)
    np.testing.assert_allclose(deletion.auc, [a / 2, 1 - a / 2], atol=1e-9)
    assert deletion.scores.shape == (2, 65) and deletion.fractions[-1] == 1
    np.testing.assert_allclose(deletion.scores[:, 0], 1.0)
    insertion = metrics.perturbation_curves(intact, np.stack([image] * 2), maps, [3, 3], "insertion", steps=64)
    np.testing.assert_allclose(insertion.auc, [1 - a / 2, a / 2], atol=1e-9)


def test_baselines_and_bad_input():
    image = RNG.integers(0, 256, (16, 16, 3), dtype=np.uint8)
    mean = metrics.baseline_image(image, "mean")
    np.testing.assert_array_equal(mean[3, 7], image.reshape(-1, 3).mean(0).round())
    assert metrics.baseline_image(image, "blur").std() < image.std() / 2
    with pytest.raises(ValueError, match="baseline must be one of"):
        metrics.baseline_image(image, "grey")
    with pytest.raises(ValueError, match="mode must be one of"):
        metrics.perturbed_images(image, np.zeros((16, 16)), "removal")
    with pytest.raises(ValueError, match="steps"):
        metrics.perturbed_images(image, np.zeros((16, 16)), steps=0)
    with pytest.raises(ValueError, match="upsample the map"):
        metrics.perturbed_images(image, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="one value per frame"):
        metrics.perturbation_curves(lambda frames, t: np.zeros(3), image, np.zeros((16, 16)), 0, steps=4)
    with pytest.raises(ValueError, match="one heatmap per image"):
        metrics.perturbation_curves(lambda f, t: np.zeros(len(f)), np.stack([image] * 2), np.zeros((16, 16)), 0)


def test_perturbation_curves_group_frames_by_target_without_changing_the_scores():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (7, 12, 12, 3), dtype=np.uint8)
    maps, targets = rng.random((7, 12, 12)), np.array([0, 1, 0, 0, 2, 1, 0])
    calls = []

    def score(frames, target):  # depends on the frame and the class, not on the batch
        calls.append((len(frames), target))
        return frames.reshape(len(frames), -1).mean(1) / 255 + target

    grouped = metrics.perturbation_curves(score, images, maps, targets, "insertion", steps=4, max_frames=10)
    assert all(size <= 10 for size, _ in calls) and len(calls) < len(images)
    assert {t for _, t in calls} == {0, 1, 2}
    one_by_one = [metrics.perturbation_curves(score, images[i], maps[i], targets[i], "insertion", steps=4)
                  for i in range(len(images))]
    np.testing.assert_allclose(grouped.scores, np.concatenate([c.scores for c in one_by_one]))
    np.testing.assert_allclose(grouped.auc, np.concatenate([c.auc for c in one_by_one]))
    with pytest.raises(ValueError, match="max_frames"):
        metrics.perturbation_curves(score, images, maps, targets, max_frames=0)


# ------------------------------------------------------------------------------------------------
# Bootstrap interval
# ------------------------------------------------------------------------------------------------
def test_bootstrap_interval_covers_the_mean_and_shrinks_with_more_images():
    values = np.random.default_rng(1).normal(0.6, 0.2, 400)
    low, high = metrics.bootstrap_interval(values)
    assert isinstance(low, float) and low < values.mean() < high
    half_width = 1.96 * values.std(ddof=1) / np.sqrt(len(values))  # the normal approximation
    assert abs((high - low) / 2 - half_width) < 0.15 * half_width
    low_few, high_few = metrics.bootstrap_interval(values[:25])
    assert high_few - low_few > 2 * (high - low)
    assert metrics.bootstrap_interval(np.full(10, 0.3)) == (pytest.approx(0.3), pytest.approx(0.3))


def test_bootstrap_interval_hits_rows_and_seed():
    hits = np.zeros(200, dtype=bool)
    hits[:150] = True  # a hit rate of 0.75
    low, high = metrics.bootstrap_interval(hits, confidence=0.9)
    assert low < 0.75 < high and high - low < 0.15
    assert metrics.bootstrap_interval(hits, seed=3) == metrics.bootstrap_interval(hits, seed=3)
    assert metrics.bootstrap_interval(hits, seed=3) != metrics.bootstrap_interval(hits, seed=4)
    rows = np.stack([hits, ~hits, hits])  # (methods, images): the same draws for every row
    lows, highs = metrics.bootstrap_interval(rows)
    assert lows.shape == highs.shape == (3,)
    assert (lows[0], highs[0]) == (lows[2], highs[2]) == metrics.bootstrap_interval(hits)
    np.testing.assert_allclose([lows[1], highs[1]], [1 - highs[0], 1 - lows[0]])
    columns_low, _ = metrics.bootstrap_interval(rows.T, axis=0)
    np.testing.assert_allclose(columns_low, lows)


def test_bootstrap_interval_bad_input():
    with pytest.raises(ValueError, match="at least two values"):
        metrics.bootstrap_interval([0.5])
    with pytest.raises(ValueError, match="at least two values"):
        metrics.bootstrap_interval(0.5)
    with pytest.raises(ValueError, match="NaN"):
        metrics.bootstrap_interval([0.5, np.nan])
    with pytest.raises(ValueError, match="confidence"):
        metrics.bootstrap_interval([0.1, 0.2], confidence=95)
    with pytest.raises(ValueError, match="resamples"):
        metrics.bootstrap_interval([0.1, 0.2], resamples=0)
    with pytest.raises(TypeError, match="numbers or bools"):
        metrics.bootstrap_interval(["a", "b"])
