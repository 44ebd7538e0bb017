"""The synthetic shapes-on-clutter data set."""

import numpy as np
import pytest

from utils.localization import LocalizationDataset
from utils.shapes import SHAPE_CLASSES, make_shapes

N, SIZE = 300, 64


@pytest.fixture(scope="module")
def data():
    return make_shapes(N, size=SIZE, seed=0)


def test_arrays_have_the_documented_shapes_and_dtypes(data):
    assert isinstance(data, LocalizationDataset) and len(data) == N
    assert data.images.shape == (N, SIZE, SIZE, 3) and data.images.dtype == np.uint8
    assert data.labels.shape == (N,) and data.labels.dtype == np.int64
    assert data.boxes.shape == (N, 4) and data.boxes.dtype == np.int64
    assert data.masks.shape == (N, SIZE, SIZE) and data.masks.dtype == bool
    assert data.class_names == SHAPE_CLASSES


def test_same_seed_gives_identical_arrays_and_another_seed_differs(data):
    again, other = make_shapes(N, size=SIZE, seed=0), make_shapes(N, size=SIZE, seed=1)
    for name in ("images", "labels", "boxes", "masks"):
        np.testing.assert_array_equal(getattr(again, name), getattr(data, name))
        assert not np.array_equal(getattr(other, name), getattr(data, name)), name


def test_classes_are_all_present_and_balanced(data):
    counts = np.bincount(data.labels, minlength=len(SHAPE_CLASSES))
    assert len(counts) == len(SHAPE_CLASSES)
    assert counts.max() - counts.min() <= 1
    assert len(set(data.labels[:20].tolist())) > 1  # shuffled, not in blocks


def test_boxes_are_the_tight_half_open_boxes_of_the_masks(data):
    index = np.arange(N)
    x0, y0, x1, y1 = data.boxes.T
    assert ((0 <= x0) & (x0 < x1) & (x1 <= SIZE) & (0 <= y0) & (y0 < y1) & (y1 <= SIZE)).all()
    rows, columns = data.masks.any(axis=2), data.masks.any(axis=1)  # (N, S): rows/columns with the object
    assert rows[index, y0].all() and rows[index, y1 - 1].all()  # touches the top and bottom edges
    assert columns[index, x0].all() and columns[index, x1 - 1].all()  # and the left and right ones
    inside = np.zeros_like(data.masks)
    for i, (a, b, c, d) in enumerate(data.boxes):
        inside[i, b:d, a:c] = True
    assert not (data.masks & ~inside).any()


def test_targets_are_whole_and_sized_by_the_scale_bounds(data):
    width, height = data.boxes[:, 2] - data.boxes[:, 0], data.boxes[:, 3] - data.boxes[:, 1]
    # Every shape fills a square of side scale * size; one cut by the border would not be square.
    assert np.abs(width - height).max() <= 1
    assert width.min() >= 0.25 * SIZE - 1 and width.max() <= 0.5 * SIZE + 1


@pytest.mark.parametrize(
    "name, fill, probes",
    # The share of its box that the ideal figure covers, and whether it covers three probe
    # points of the box: its centre, near its top-left corner, near its bottom-left corner.
    [
        ("circle", np.pi / 4, (True, False, False)),
        ("square", 1.0, (True, True, True)),
        ("triangle", 0.5, (True, False, True)),
        ("cross", 5 / 9, (True, False, False)),
        ("ring", np.pi / 4 * (1 - 0.55**2), (False, False, False)),
    ],
)
def test_each_class_draws_its_own_shape(data, name, fill, probes):
    of_class = np.flatnonzero(data.labels == SHAPE_CLASSES.index(name))
    x0, y0, x1, y1 = data.boxes[of_class].T
    width, height = x1 - x0, y1 - y0
    fills = data.masks[of_class].sum(axis=(1, 2)) / (width * height)
    assert abs(np.median(fills) - fill) < 0.04
    for (across, down), expected in zip([(0.5, 0.5), (0.1, 0.1), (0.1, 0.9)], probes):
        covered = data.masks[of_class, y0 + (down * height).astype(int), x0 + (across * width).astype(int)]
        assert (covered == expected).all(), (across, down)


def test_the_target_is_one_colour_on_top_of_the_clutter(data):
    for image, mask in zip(data.images, data.masks):
        pixels = image[mask]
        assert (pixels == pixels[0]).all()


def test_clutter_changes_only_pixels_outside_the_target(data):
    clean = make_shapes(N, size=SIZE, seed=0, distractors=0)
    np.testing.assert_array_equal(clean.labels, data.labels)
    np.testing.assert_array_equal(clean.masks, data.masks)
    changed = (clean.images != data.images).any(axis=-1)
    assert changed.any() and not (changed & data.masks).any()


def test_the_background_is_textured_and_differs_between_images():
    clean = make_shapes(20, size=SIZE, seed=5, distractors=0)
    background = [image[~mask] for image, mask in zip(clean.images, clean.masks)]
    distinct_colours = [len(np.unique(pixels, axis=0)) for pixels in background]
    assert min(distinct_colours) > 10  # smooth noise and stripes, not a flat fill
    mean_colours = np.array([pixels.mean(axis=0) for pixels in background])
    assert mean_colours.std(axis=0).min() > 5  # each image draws its own colours


def test_the_target_stands_out_from_its_surroundings(data):
    grown = data.masks.copy()  # the mask grown by two pixels, minus the mask: a thin outline
    for shift in (-2, -1, 1, 2):
        grown |= np.roll(data.masks, shift, axis=1) | np.roll(data.masks, shift, axis=2)
    outline = grown & ~data.masks
    images = data.images.astype(float)
    contrast = [np.abs(im[m].mean(0) - im[o].mean(0)).max() for im, m, o in zip(images, data.masks, outline)]
    assert np.median(contrast) > 60


def test_small_images_and_other_scales_work():
    small = make_shapes(10, size=16, seed=3, min_scale=0.5, max_scale=1.0)
    assert small.images.shape == (10, 16, 16, 3) and small.masks.any(axis=(1, 2)).all()
    side = small.boxes[:, 2] - small.boxes[:, 0]
    assert side.min() >= 7


@pytest.mark.parametrize(
    "arguments, message",
    [
        (dict(n=0), "n must be an integer >= 1"),
        (dict(n=2.5), "n must be an integer >= 1"),
        (dict(size=8), "size must be an integer >= 16"),
        (dict(distractors=-1), "distractors must be an integer >= 0"),
        (dict(min_scale=0.0), "0 < min_scale <= max_scale <= 1"),
        (dict(max_scale=1.5), "0 < min_scale <= max_scale <= 1"),
        (dict(min_scale=0.6, max_scale=0.4), "0 < min_scale <= max_scale <= 1"),
        (dict(size=16, min_scale=0.1), "min_scale \\* size >= 4"),
        (dict(instances=0), "instances must be an integer >= 1"),
        (dict(instances=3, max_scale=0.4), "3 instances of up to 0.4 of the side do not fit"),
    ],
)
def test_bad_arguments_raise_a_clear_error(arguments, message):
    with pytest.raises(ValueError, match=message):
        make_shapes(**{"n": 4, **arguments})


def test_several_instances_of_the_class_lie_apart_each_a_whole_shape():
    single = make_shapes(40, size=SIZE, seed=5)
    assert single.instance_masks is None
    data = make_shapes(40, size=SIZE, seed=5, instances=3, min_scale=0.15, max_scale=0.3)
    assert data.instance_masks.shape == (40, 3, SIZE, SIZE) and data.instance_masks.dtype == bool
    np.testing.assert_array_equal(data.masks, data.instance_masks.any(axis=1))
    np.testing.assert_array_equal(data.labels, single.labels)  # the same classes, drawn first
    for copies in data.instance_masks:
        boxes = [np.argwhere(mask) for mask in copies]
        assert all(len(box) >= 4 for box in boxes)  # each copy is drawn
        assert copies.sum(axis=0).max() == 1  # no pixel belongs to two copies
        for a in range(3):
            for b in range(a + 1, 3):  # their bounding squares are apart: a gap of at least one pixel
                (ya0, xa0), (ya1, xa1) = boxes[a].min(0), boxes[a].max(0)
                (yb0, xb0), (yb1, xb1) = boxes[b].min(0), boxes[b].max(0)
                assert xa1 < xb0 or xb1 < xa0 or ya1 < yb0 or yb1 < ya0
    again = make_shapes(40, size=SIZE, seed=5, instances=3, min_scale=0.15, max_scale=0.3)
    np.testing.assert_array_equal(again.images, data.images)


def test_the_shortcut_mark_names_a_class_with_the_asked_agreement():
    plain = make_shapes(500, size=SIZE, seed=7)
    cued = make_shapes(500, size=SIZE, seed=7, cue="corner")
    assert plain.cue_labels is None and plain.cue_masks is None
    np.testing.assert_array_equal(cued.labels, plain.labels)
    np.testing.assert_array_equal(cued.masks, plain.masks)  # the same targets, on top of the mark
    np.testing.assert_array_equal(cued.cue_labels, cued.labels)  # agreement 1: a perfect shortcut
    outside = ~cued.cue_masks & ~np.broadcast_to(np.pad(np.ones((8, 8), bool), ((0, 56), (0, 56))), cued.masks.shape)
    np.testing.assert_array_equal(cued.images[outside], plain.images[outside])  # only the corner changed
    assert not (cued.cue_masks & cued.masks).any() and cued.cue_masks.sum(axis=(1, 2)).min() > 0
    from utils.shapes import CUE_COLOURS
    visible = cued.cue_masks[0]
    np.testing.assert_array_equal(cued.images[0][visible],
                                  np.broadcast_to(np.round(CUE_COLOURS[cued.labels[0]] * 255), (visible.sum(), 3)))
    shuffled = make_shapes(500, size=SIZE, seed=7, cue="corner", cue_agreement=0.2)
    agreement = (shuffled.cue_labels == shuffled.labels).mean()
    assert 0.13 < agreement < 0.27  # about 1 in 5: the mark says nothing about the class
    lying = make_shapes(100, size=SIZE, seed=7, cue="corner", cue_agreement=0.0)
    assert (lying.cue_labels != lying.labels).all()
    again = make_shapes(500, size=SIZE, seed=7, cue="corner", cue_agreement=0.2)
    np.testing.assert_array_equal(again.cue_labels, shuffled.cue_labels)  # deterministic for a seed
    np.testing.assert_array_equal(again.images, shuffled.images)
    with pytest.raises(ValueError, match="cue must be None or one of 'corner'"):
        make_shapes(4, cue="stripes")
    with pytest.raises(ValueError, match="cue_agreement is a probability"):
        make_shapes(4, cue="corner", cue_agreement=1.5)
