"""Overlays, boxes and figures (matplotlib with the non-interactive Agg backend)."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

import utils.plotting  # noqa: E402
from utils import plotting  # noqa: E402
from utils.plotting import draw_box, overlay, show_grid, show_heatmap, show_predictions  # noqa: E402

JET = matplotlib.colormaps["jet"]


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def make_image(height=16, width=24, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def make_heatmap(height=16, width=24, seed=1):
    return np.random.default_rng(seed).random((height, width))


# --- overlay -------------------------------------------------------------------------------


def test_overlay_returns_float32_rgb_in_the_unit_range():
    blended = overlay(make_image(), make_heatmap())
    assert blended.shape == (16, 24, 3) and blended.dtype == np.float32
    assert blended.min() >= 0 and blended.max() <= 1


def test_overlay_blends_with_alpha():
    image, heatmap = make_image(), make_heatmap()
    np.testing.assert_allclose(overlay(image, heatmap, alpha=0), image / 255, atol=1e-6)
    np.testing.assert_allclose(overlay(image, heatmap, alpha=1), JET(heatmap)[..., :3], atol=1e-6)
    halfway = 0.5 * image / 255 + 0.5 * JET(heatmap)[..., :3]
    np.testing.assert_allclose(overlay(image, heatmap, alpha=0.5), halfway, atol=1e-6)


@pytest.mark.parametrize("shape", [(16, 24), (4, 6)])  # at image size, and upsampled
def test_overlay_clips_instead_of_wrapping_around(shape):
    heatmap = 3 * make_heatmap(*shape) - 1  # values from -1 to 2
    assert heatmap.min() < 0 and heatmap.max() > 1
    clipped = np.clip(heatmap, 0, 1)
    np.testing.assert_array_equal(overlay(make_image(), heatmap), overlay(make_image(), clipped))
    hot = overlay(make_image(), np.full(shape, 300.0), alpha=1)
    np.testing.assert_allclose(hot, np.broadcast_to(JET(1.0)[:3], hot.shape), atol=1e-6)  # hot, not wrapped


def test_overlay_treats_nan_as_zero():
    heatmap = make_heatmap()
    heatmap[3:7, 5:9] = np.nan
    zeroed = np.nan_to_num(heatmap, nan=0.0)
    np.testing.assert_array_equal(overlay(make_image(), heatmap), overlay(make_image(), zeroed))


def test_overlay_upsamples_a_small_heatmap_bilinearly():
    small = np.array([[0.0, 1.0], [0.0, 1.0]])
    colour = overlay(make_image(8, 8), small, alpha=1)
    np.testing.assert_allclose(colour[:, 0], np.broadcast_to(JET(0.0)[:3], (8, 3)), atol=1e-6)
    np.testing.assert_allclose(colour[:, -1], np.broadcast_to(JET(1.0)[:3], (8, 3)), atol=1e-6)
    distinct_columns = {tuple(np.round(colour[0, column], 4)) for column in range(8)}
    assert len(distinct_columns) >= 4  # nearest-neighbour upsampling would give 2
    constant = overlay(make_image(), np.full((3, 5), 0.3), alpha=1)
    np.testing.assert_allclose(constant, np.broadcast_to(JET(0.3)[:3], constant.shape), atol=1e-6)


def test_overlay_accepts_a_float_image_in_the_unit_range():
    image, heatmap = make_image(), make_heatmap()
    np.testing.assert_allclose(overlay(image / 255, heatmap), overlay(image, heatmap), atol=1e-6)


@pytest.mark.parametrize(
    "image, heatmap, alpha, message",
    [
        (make_image(), np.ones((2, 16, 24)), 0.5, r"one heatmap of shape \(h, w\)"),
        (make_image(), np.ones((0, 5)), 0.5, r"one heatmap of shape \(h, w\)"),
        (make_image(), make_heatmap(), 1.5, r"alpha must be in \[0, 1\]"),
        (make_image() / 255 * 2, make_heatmap(), 0.5, r"finite values in \[0, 1\]"),
        (np.ones((16, 24), np.float32), make_heatmap(), 0.5, r"float image of shape \(H, W, 3\)"),
        (make_image()[..., :2], make_heatmap(), 0.5, "1, 3 or 4 channels"),
    ],
)
def test_overlay_rejects_bad_input(image, heatmap, alpha, message):
    with pytest.raises(ValueError, match=message):
        overlay(image, heatmap, alpha)


# --- boxes and single axes ------------------------------------------------------------------


def test_draw_box_puts_the_edges_between_pixels():
    _, ax = plt.subplots()
    ax.imshow(make_image())
    rectangle = draw_box(ax, (2, 3, 10, 7), label="cat")
    assert rectangle.get_xy() == (1.5, 2.5)
    assert (rectangle.get_width(), rectangle.get_height()) == (8, 4)
    assert rectangle in ax.patches and [text.get_text() for text in ax.texts] == ["cat"]
    with pytest.raises(ValueError, match="one box"):
        draw_box(ax, (0, 0, 1))


def test_show_heatmap_shows_the_overlay_and_both_boxes():
    _, ax = plt.subplots()
    image, heatmap = make_image(), make_heatmap()
    show_heatmap(ax, image, heatmap, title="CAM", box=(1, 1, 5, 5), true_box=(2, 2, 6, 6))
    np.testing.assert_allclose(ax.images[0].get_array(), overlay(image, heatmap))
    assert ax.get_title() == "CAM" and not ax.axison
    assert [patch.get_linestyle() for patch in ax.patches] == ["--", "-"]  # true box dashed, predicted solid


def test_show_heatmap_without_a_heatmap_shows_the_image():
    _, ax = plt.subplots()
    image = make_image()
    show_heatmap(ax, image)
    np.testing.assert_allclose(ax.images[0].get_array(), image / 255, atol=1e-6)
    assert not ax.patches


# --- figures -------------------------------------------------------------------------------


def test_show_grid_hides_the_unused_axes():
    figure = show_grid(np.stack([make_image(seed=i) for i in range(5)]), ncols=4, titles=list("abcde"))
    assert isinstance(figure, Figure)
    visible = [ax for ax in figure.axes if ax.get_visible()]
    assert len(figure.axes) == 8 and len(visible) == 5
    assert [ax.get_title() for ax in visible] == list("abcde")
    assert 80 <= figure.dpi <= 100
    assert tuple(figure.get_size_inches()) == pytest.approx((4 * 2.5, 2 * 2.5))


def test_show_grid_overlays_heatmaps_and_draws_boxes_on_mixed_sizes():
    images = [make_image(16, 24), make_image(10, 10)]
    heatmaps = [make_heatmap(4, 6), make_heatmap(4, 4)]
    boxes, true_boxes = [(0, 0, 4, 4), (1, 1, 3, 3)], [(0, 0, 5, 5), None]
    figure = show_grid(images, heatmaps, boxes=boxes, true_boxes=true_boxes, ncols=5)
    assert len(figure.axes) == 2  # ncols shrinks to the number of images
    for ax, image, heatmap in zip(figure.axes, images, heatmaps):
        np.testing.assert_allclose(ax.images[0].get_array(), overlay(image, heatmap))
    assert [len(ax.patches) for ax in figure.axes] == [2, 1]


def test_show_grid_rejects_mismatched_lengths():
    with pytest.raises(ValueError, match="titles has 1 entries but there are 2 images"):
        show_grid([make_image(), make_image()], titles=["one"])
    with pytest.raises(ValueError, match="no images"):
        show_grid([])


def test_show_grid_leaves_no_half_drawn_figure_behind():
    with pytest.raises(TypeError, match="expected dtype uint8, got int64"):
        show_grid([make_image(), np.zeros((16, 16, 3), np.int64)])
    assert plt.get_fignums() == []


def test_show_predictions_pairs_each_image_with_its_bar_chart():
    names = [["Egyptian cat", "tabby", "tiger cat"], ["espresso", "cup", "eggnog"]]
    probs = np.array([[0.7, 0.2, 0.05], [0.9, 0.05, 0.01]])
    figure = show_predictions([make_image(), make_image(seed=2)], names, probs, titles=["cat", "coffee"])
    assert isinstance(figure, Figure) and len(figure.axes) == 4
    bars = figure.axes[1]
    assert [label.get_text() for label in bars.get_yticklabels()] == names[0]
    assert [patch.get_width() for patch in bars.patches] == pytest.approx(probs[0])
    assert figure.axes[2].get_title() == "coffee"
    with pytest.raises(ValueError, match="one row of names and probs per image"):
        show_predictions([make_image()], names, probs)
    with pytest.raises(ValueError, match="each image needs 3 class names"):
        show_predictions([make_image(), make_image()], [names[0], names[1][:2]], probs)


def test_draw_box_pixels_outlines_the_box_inside_its_border():
    picture = np.zeros((60, 80, 3), np.uint8)
    drawn = utils.plotting.draw_box_pixels(picture, (10, 20, 30, 40))
    lime = np.all(drawn == utils.plotting.BOX_COLOUR, axis=-1)
    assert lime[20, 10:30].all() and lime[39, 10:30].all() and lime[20:40, 10].all() and lime[20:40, 29].all()
    assert not lime[21:39, 11:29].any() and not lime[:, 30:].any() and not lime[40:].any()
    assert not picture.any(), "the input is not modified"
    assert not utils.plotting.draw_box_pixels(picture, (5, 5, 5, 9)).any(), "an empty box draws nothing"
    labelled = np.all(utils.plotting.draw_box_pixels(picture, (10, 30, 70, 50), "cat") == (0, 255, 0), axis=-1)
    assert labelled[:30, 10:30].any(), "the label's band sits above the box"


def test_resize_map_is_bilinear_on_pixel_centres():
    values = np.array([[0.0, 1.0]], np.float32)
    resized = utils.plotting.resize_map(values, (1, 4))
    np.testing.assert_allclose(resized, [[0.0, 0.25, 0.75, 1.0]], atol=1e-6)
    assert resized.dtype == np.float32 and utils.plotting.resize_map(values, (1, 2)).shape == (1, 2)


def test_for_display_clips_pixel_maps_at_the_99th_percentile_and_centres_signed_maps():
    values = np.linspace(0, 1, 10_000, dtype=np.float32).reshape(100, 100) ** 4
    shown = plotting.for_display(values, "saliency")
    assert shown.max() == 1 and (shown == 1).mean() == pytest.approx(0.01, abs=0.002)  # the top 1% clipped
    np.testing.assert_allclose(plotting.for_display(values, "grad_cam"), values / values.max())  # not pixel-level
    signed = np.zeros((4, 4, 3), np.float32)
    signed[0, 0] = (2.0, -2.0, 0.0)
    rgb = plotting.for_display(signed, "guided_grad_cam")
    assert rgb[1, 1].tolist() == [0.5, 0.5, 0.5] and rgb[0, 0].tolist() == [1.0, 0.0, 0.5]


def test_show_map_draws_what_method_picture_draws():
    import matplotlib.pyplot as plt

    rng = np.random.default_rng(0)
    image = rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)
    heat = rng.random((30, 40)).astype(np.float32) ** 6
    figure, ax = plt.subplots()
    try:
        plotting.show_map(ax, image, heat, "smooth_grad", threshold=0.3)
        np.testing.assert_allclose(ax.images[0].get_array(), plotting.method_picture(image, heat, "smooth_grad")[0])
        assert len(ax.patches) == 1  # the box
    finally:
        plt.close(figure)
