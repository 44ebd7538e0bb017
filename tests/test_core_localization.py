"""Boxes from heatmaps, IoU and the CAM paper's localization accuracy (Zhou et al. 2016, sec. 3)."""

import warnings

import numpy as np
import pytest

from utils.localization import box_from_heatmap, iou, localization_accuracy, mass_fraction
from utils.shapes import make_shapes

# --- box_from_heatmap ----------------------------------------------------------------------


def test_a_single_blob_gives_its_half_open_box():
    heatmap = np.zeros((20, 30))
    heatmap[4:9, 10:17] = 1.0  # rows 4..8, columns 10..16
    box = box_from_heatmap(heatmap)
    assert box.dtype == np.int64 and box.tolist() == [10, 4, 17, 9]
    assert box_from_heatmap(np.pad(np.ones((1, 1)), ((3, 5), (7, 2)))).tolist() == [7, 3, 8, 4]  # one pixel


def test_the_largest_component_wins_not_the_hottest():
    heatmap = np.zeros((32, 32))
    heatmap[2:5, 2:5] = 1.0  # small and hot: 9 pixels
    heatmap[15:25, 10:30] = 0.5  # large and warm: 200 pixels, above 20% of the max
    assert box_from_heatmap(heatmap).tolist() == [10, 15, 30, 25]


def test_equal_components_resolve_to_the_first_in_raster_order():
    heatmap = np.zeros((16, 16))
    heatmap[10:13, 1:4] = 1.0
    heatmap[2:5, 9:12] = 1.0
    assert box_from_heatmap(heatmap).tolist() == [9, 2, 12, 5]


def test_the_threshold_is_relative_to_the_maximum_and_changes_the_box():
    heatmap = np.zeros((30, 30))
    heatmap[5:25, 5:25] = 0.3  # a halo at 30% of the peak
    heatmap[10:15, 12:18] = 1.0  # the core
    assert box_from_heatmap(heatmap, threshold=0.2).tolist() == [5, 5, 25, 25]
    assert box_from_heatmap(heatmap, threshold=0.5).tolist() == [12, 10, 18, 15]
    assert box_from_heatmap(heatmap * 7.5, threshold=0.5).tolist() == [12, 10, 18, 15]  # scale-free


def test_diagonal_neighbours_are_connected():
    heatmap = np.zeros((10, 10))
    heatmap[2, 2] = heatmap[3, 3] = heatmap[4, 4] = 1.0  # touching only at corners (8-connectivity)
    heatmap[8, 0] = heatmap[8, 1] = 1.0
    assert box_from_heatmap(heatmap).tolist() == [2, 2, 5, 5]


def test_a_batch_gives_one_box_per_map():
    maps = np.zeros((3, 12, 12))
    maps[0, 1:3, 1:3] = 1
    maps[1, 5:11, 6:8] = 2
    boxes = box_from_heatmap(maps)
    assert boxes.shape == (3, 4) and boxes.dtype == np.int64
    assert boxes.tolist() == [[1, 1, 3, 3], [6, 5, 8, 11], [0, 0, 0, 0]]


def test_maps_without_a_positive_value_give_the_empty_box():
    assert box_from_heatmap(np.zeros((8, 8))).tolist() == [0, 0, 0, 0]
    assert box_from_heatmap(-np.ones((8, 8))).tolist() == [0, 0, 0, 0]


@pytest.mark.parametrize(
    "heatmap, threshold, message",
    [
        (np.full((8, 8), np.nan), 0.2, "NaN or infinite"),
        (np.pad([[np.inf]], 3), 0.2, "NaN or infinite"),
        (np.ones(8), 0.2, r"shape \(H, W\) or \(B, H, W\), got shape \(8,\)"),
        (np.ones((1, 1, 8, 8)), 0.2, r"got shape \(1, 1, 8, 8\)"),
        (np.ones((8, 8)), 1.5, r"threshold must be in \[0, 1\]"),
        (np.ones((8, 8)), -0.1, r"threshold must be in \[0, 1\]"),
    ],
)
def test_box_from_heatmap_rejects_bad_input(heatmap, threshold, message):
    with pytest.raises(ValueError, match=message):
        box_from_heatmap(heatmap, threshold)


def test_masks_used_as_heatmaps_recover_the_true_boxes():
    data = make_shapes(50, seed=4)
    boxes = box_from_heatmap(data.masks.astype(np.float32))
    np.testing.assert_array_equal(boxes, data.boxes)
    assert localization_accuracy(boxes, data.boxes) == 1.0


# --- iou -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ([0, 0, 10, 10], [0, 0, 10, 10], 1.0),  # identical
        ([0, 0, 2, 2], [5, 5, 8, 8], 0.0),  # disjoint
        ([0, 0, 2, 2], [2, 0, 4, 2], 0.0),  # sharing an edge: half-open boxes do not overlap
        ([0, 0, 2, 2], [1, 0, 3, 2], 1 / 3),  # half of each: 2 / (4 + 4 - 2)
        ([0, 0, 4, 4], [1, 1, 3, 3], 0.25),  # one inside the other
        ([0, 0, 4, 2], [0, 0, 2, 2], 0.5),
    ],
)
def test_iou_of_hand_computed_pairs(a, b, expected):
    assert iou(a, b) == pytest.approx(expected)
    assert iou(b, a) == pytest.approx(expected)
    assert isinstance(iou(a, b), float)


def test_iou_of_empty_boxes_is_zero_without_a_division_warning():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert iou([0, 0, 0, 0], [0, 0, 0, 0]) == 0.0
        assert iou([3, 3, 3, 9], [0, 0, 10, 10]) == 0.0


def test_iou_broadcasts_to_a_pairwise_matrix():
    a = np.array([[0, 0, 2, 2], [1, 0, 3, 2], [0, 0, 4, 4]])
    b = np.array([[0, 0, 2, 2], [10, 10, 12, 12]])
    matrix = iou(a[:, None, :], b[None, :, :])
    assert matrix.shape == (3, 2)
    expected = [[iou(box_a, box_b) for box_b in b] for box_a in a]
    np.testing.assert_allclose(matrix, expected)
    np.testing.assert_allclose(matrix[:, 0], [1, 1 / 3, 0.25])


def test_iou_rejects_boxes_without_four_coordinates():
    with pytest.raises(ValueError, match="last axis of 4"):
        iou([0, 0, 1], [0, 0, 1, 1])


# --- localization_accuracy -----------------------------------------------------------------

PRED = np.array([[0, 0, 10, 10], [0, 0, 2, 2], [0, 0, 4, 2], [0, 0, 2, 2]])
TRUE = np.array([[0, 0, 10, 10], [1, 0, 3, 2], [0, 0, 2, 2], [5, 5, 8, 8]])  # IoU 1, 1/3, 0.5, 0


def test_accuracy_counts_iou_at_or_above_the_threshold():
    assert localization_accuracy(PRED, TRUE) == 0.5  # 1 and 0.5 count, 1/3 and 0 do not
    assert localization_accuracy(PRED, TRUE, iou_threshold=0.3) == 0.75
    assert localization_accuracy(PRED, TRUE, iou_threshold=1.0) == 0.25


def test_top1_localization_also_needs_the_class_right():
    correct = np.array([False, True, True, True])
    assert localization_accuracy(PRED, TRUE, correct=correct) == 0.25  # only the IoU-0.5 box is a hit
    assert localization_accuracy(PRED, TRUE, correct=np.ones(4, bool)) == 0.5


@pytest.mark.parametrize(
    "pred, true, kwargs, message",
    [
        (PRED[:3], TRUE, {}, r"same shape \(N, 4\).*\(3, 4\) and \(4, 4\)"),
        (PRED[:, :3], TRUE[:, :3], {}, r"same shape \(N, 4\)"),
        (PRED[:0], TRUE[:0], {}, "no boxes"),
        (PRED, TRUE, {"iou_threshold": 2}, r"iou_threshold must be in \[0, 1\]"),
        (PRED, TRUE, {"correct": np.ones(3, bool)}, r"bool array of shape \(4,\)"),
        (PRED, TRUE, {"correct": np.ones(4)}, "bool array.*got float64"),
    ],
)
def test_localization_accuracy_rejects_mismatched_input(pred, true, kwargs, message):
    with pytest.raises(ValueError, match=message):
        localization_accuracy(pred, true, **kwargs)


# --- mass_fraction -------------------------------------------------------------------------


def test_mass_fraction_with_a_mask_and_with_a_box():
    heatmap = np.zeros((4, 8))
    heatmap[:, :4] = 3.0  # three quarters of the mass on the left half
    heatmap[:, 4:] = 1.0
    left = np.zeros((4, 8), bool)
    left[:, :4] = True
    assert mass_fraction(heatmap, left) == pytest.approx(0.75)
    assert mass_fraction(heatmap, ~left) == pytest.approx(0.25)
    assert mass_fraction(heatmap, [0, 0, 4, 4]) == pytest.approx(0.75)
    assert mass_fraction(heatmap, [6, 0, 100, 100]) == pytest.approx(2 / 16)  # clipped to the map
    assert mass_fraction(heatmap, [0, 0, 0, 0]) == 0.0


@pytest.mark.parametrize(
    "heatmap, region, message",
    [
        (-np.ones((4, 4)), [0, 0, 2, 2], "non-negative"),
        (np.full((4, 4), np.nan), [0, 0, 2, 2], "finite"),
        (np.zeros((4, 4)), [0, 0, 2, 2], "zero everywhere"),
        (np.ones((4, 4)), np.ones((4, 5), bool), r"bool mask of shape \(4, 4\) or a box"),
        (np.ones((4, 4)), np.ones((4, 4)), "bool mask"),
        (np.ones((2, 4, 4)), [0, 0, 2, 2], r"one heatmap of shape \(H, W\)"),
    ],
)
def test_mass_fraction_rejects_bad_input(heatmap, region, message):
    with pytest.raises(ValueError, match=message):
        mass_fraction(heatmap, region)


def test_box_from_heatmap_matches_a_per_map_labelling_on_speckle_and_blobs():
    # The batch is labelled in one call; each map's box must be what labelling that map alone gives
    # (largest 8-connected region, ties to the first in raster order), across many small regions.
    import scipy.ndimage
    import skimage.measure

    def reference(heatmap, threshold):
        if heatmap.max() <= 0:
            return (0, 0, 0, 0)
        regions = skimage.measure.label(heatmap >= threshold * heatmap.max(), connectivity=2)
        rows, columns = np.nonzero(regions == np.bincount(regions.ravel())[1:].argmax() + 1)
        return columns.min(), rows.min(), columns.max() + 1, rows.max() + 1

    rng = np.random.default_rng(0)
    maps = np.concatenate([rng.random((20, 16, 16)) ** 4, scipy.ndimage.gaussian_filter(rng.random((20, 16, 16)), (0, 2, 2)),
                           np.zeros((2, 16, 16)), np.eye(16)[None]])
    for threshold in (0.0, 0.3, 0.6, 1.0):
        expected = np.array([reference(m, threshold) for m in maps])
        np.testing.assert_array_equal(box_from_heatmap(maps, threshold), expected)
