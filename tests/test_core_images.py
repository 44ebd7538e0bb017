"""Framework-free core: sample photos, image validation, resizing, file loading, label names."""

import ast
import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import skimage.data
from PIL import Image
from skimage.transform import resize

from utils import images, labels
from utils.images import (
    SAMPLE_NAMES,
    as_rgb_uint8,
    cat_and_coffee,
    load_image,
    prepare_images,
    sample_image,
    sample_images,
)
from utils.labels import class_index, imagenet_classes

REPO_ROOT = Path(__file__).resolve().parents[1]


def random_image(height, width, channels=3, seed=0):
    shape = (height, width) if channels is None else (height, width, channels)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


# --- sample photos -----------------------------------------------------------------------


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_sample_image_is_rgb_uint8_and_equals_the_skimage_photo(name):
    image = sample_image(name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    np.testing.assert_array_equal(image, getattr(skimage.data, name)())


def test_sample_image_rejects_an_unknown_name_and_lists_the_known_ones():
    with pytest.raises(ValueError, match="unknown sample image 'dog'.*chelsea.*rocket"):
        sample_image("dog")


def test_sample_images_returns_every_sample_by_name():
    photos = sample_images()
    assert tuple(photos) == SAMPLE_NAMES
    np.testing.assert_array_equal(photos["coffee"], skimage.data.coffee())


@pytest.mark.parametrize("size", [224, 101])
def test_cat_and_coffee_halves_are_the_resized_crops(size):
    composite = cat_and_coffee(size)
    assert composite.shape == (size, size, 3) and composite.dtype == np.uint8

    def expected_half(photo, x0, width):
        crop = photo[:, x0 : x0 + photo.shape[0] // 2]
        assert crop.shape[1] * 2 == photo.shape[0], "the crop must lie inside the photo with aspect 1:2"
        return resize(crop, (size, width), order=1, mode="edge", anti_aliasing=True, preserve_range=True)

    left = expected_half(skimage.data.chelsea(), images.CAT_CROP_X0, size // 2)
    right = expected_half(skimage.data.coffee(), images.COFFEE_CROP_X0, size - size // 2)
    assert np.abs(composite[:, : size // 2] - left).max() <= 0.5 + 1e-9
    assert np.abs(composite[:, size // 2 :] - right).max() <= 0.5 + 1e-9


# --- as_rgb_uint8 --------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(10, 12), (10, 12, 1)])
def test_as_rgb_uint8_repeats_grey_into_three_equal_channels(shape):
    grey = random_image(10, 12, channels=None).reshape(shape)
    rgb = as_rgb_uint8(grey)
    assert rgb.shape == (10, 12, 3) and rgb.dtype == np.uint8
    for channel in range(3):
        np.testing.assert_array_equal(rgb[..., channel], grey.reshape(10, 12))


def test_as_rgb_uint8_keeps_rgb_unchanged():
    rgb = random_image(9, 11)
    np.testing.assert_array_equal(as_rgb_uint8(rgb), rgb)


def test_as_rgb_uint8_composites_rgba_over_white():
    rgba = np.zeros((8, 8, 4), np.uint8)
    rgba[..., :3] = (200, 10, 0)
    rgba[:, :4, 3] = 255  # opaque: keeps its colour
    rgba[:, 4:6, 3] = 0  # transparent: white
    rgba[:, 6:, 3] = 51  # 20% opaque: 0.2 * colour + 0.8 * 255
    rgb = as_rgb_uint8(rgba)
    assert rgb.shape == (8, 8, 3)
    assert (rgb[:, :4] == (200, 10, 0)).all()
    assert (rgb[:, 4:6] == 255).all()
    assert (rgb[:, 6:] == (244, 206, 204)).all()


@pytest.mark.parametrize(
    "bad, error, message",
    [
        ([[0, 1], [2, 3]], TypeError, "expected a numpy array.*got list"),
        ("chelsea.png", TypeError, "expected a numpy array.*got str"),
        (memoryview(bytes(192)), TypeError, "expected a numpy array.*got memoryview"),
        (np.zeros(64, np.uint8), ValueError, r"one image of shape.*got shape \(64,\)"),
        (np.zeros((2, 8, 8, 3), np.uint8), ValueError, "one image.*prepare_images"),
        (np.zeros((8, 8, 2), np.uint8), ValueError, "1, 3 or 4 channels"),
        (np.zeros((3, 16, 16), np.uint8), ValueError, "channels-first"),
        (np.zeros((16, 16, 3), np.float64), TypeError, r"got float64.*\(img \* 255\)\.round\(\)\.astype"),
        (np.zeros((16, 16, 3), np.uint16), TypeError, "expected dtype uint8, got uint16"),
        (np.zeros((16, 16), bool), TypeError, "boolean"),
        (np.zeros((0, 16, 3), np.uint8), ValueError, "empty"),
        (np.zeros((4, 4, 3), np.uint8), ValueError, "4x4 pixels.*at least 8"),
        (np.zeros((7, 100), np.uint8), ValueError, "7x100 pixels.*at least 8"),
    ],
)
def test_as_rgb_uint8_rejects_bad_input_with_a_clear_message(bad, error, message):
    with pytest.raises(error, match=message):
        as_rgb_uint8(bad)


# --- prepare_images ------------------------------------------------------------------------


def test_prepare_images_resizes_a_list_of_mixed_sizes_and_kinds():
    mixed = [random_image(30, 50), random_image(224, 224, channels=None), random_image(9, 300, 4)]
    batch = prepare_images(mixed)
    assert batch.shape == (3, 224, 224, 3) and batch.dtype == np.uint8


def test_prepare_images_accepts_one_image_a_tuple_and_a_4d_batch():
    image = random_image(40, 60)
    assert prepare_images(image, size=32).shape == (1, 32, 32, 3)
    assert prepare_images(image[..., 0], size=32).shape == (1, 32, 32, 3)
    assert prepare_images((image, image), size=32).shape == (2, 32, 32, 3)
    stacked = prepare_images(np.stack([image, image[::-1]]), size=32)
    np.testing.assert_array_equal(stacked[0], prepare_images(image, size=32)[0])
    assert not np.array_equal(stacked[0], stacked[1])


def test_prepare_images_leaves_an_image_of_the_right_size_untouched():
    image = random_image(64, 64)
    np.testing.assert_array_equal(prepare_images(image, size=64)[0], image)


def test_prepare_images_keeps_the_0_255_range_and_rounds():
    image = np.full((50, 70, 3), 200, np.uint8)
    image[:, :35] = 17
    batch = prepare_images(image, size=20)
    assert batch[0, :, 0].tolist() == [[17] * 3] * 20  # uniform areas keep their exact values
    assert batch[0, :, -1].tolist() == [[200] * 3] * 20
    assert len(np.unique(batch[0, 0, :, 0])) > 2  # bilinear and anti-aliased: a blended edge


@pytest.mark.parametrize("empty", [[], (), np.zeros((0, 16, 16, 3), np.uint8)])
def test_prepare_images_rejects_an_empty_batch(empty):
    with pytest.raises(ValueError, match="empty batch"):
        prepare_images(empty)


def test_prepare_images_rejects_a_bad_member_a_bad_container_and_a_bad_size():
    with pytest.raises(TypeError, match="got float32"):
        prepare_images([random_image(16, 16), np.zeros((16, 16, 3), np.float32)])
    with pytest.raises(TypeError, match="got dict"):
        prepare_images({"cat": random_image(16, 16)})
    with pytest.raises(ValueError, match=r"or a batch \(B, H, W, C\), got shape \(1, 2, 16, 16, 3\)"):
        prepare_images(np.zeros((1, 2, 16, 16, 3), np.uint8))
    with pytest.raises(ValueError, match="size must be an integer of at least 8"):
        prepare_images(random_image(16, 16), size=4)


# --- load_image ----------------------------------------------------------------------------


def test_load_image_reads_a_png_exactly_from_str_and_path(tmp_path):
    image = random_image(20, 30)
    Image.fromarray(image).save(tmp_path / "image.png")
    np.testing.assert_array_equal(load_image(tmp_path / "image.png"), image)
    np.testing.assert_array_equal(load_image(str(tmp_path / "image.png")), image)


def test_load_image_reads_a_jpeg_close_to_the_original(tmp_path):
    image = sample_image("coffee")[:64, :96]
    Image.fromarray(image).save(tmp_path / "image.jpg", quality=95)
    loaded = load_image(tmp_path / "image.jpg")
    assert loaded.shape == image.shape and loaded.dtype == np.uint8
    assert np.abs(loaded.astype(int) - image).mean() < 4


def test_load_image_converts_grey_palette_and_rgba(tmp_path):
    grey = random_image(16, 16, channels=None)
    Image.fromarray(grey).save(tmp_path / "grey.png")
    np.testing.assert_array_equal(load_image(tmp_path / "grey.png"), np.repeat(grey[..., None], 3, axis=2))

    Image.fromarray(random_image(16, 16)).convert("P").save(tmp_path / "palette.png")
    assert load_image(tmp_path / "palette.png").shape == (16, 16, 3)

    rgba = np.zeros((16, 16, 4), np.uint8)
    rgba[..., 0] = 255
    rgba[:8, :, 3] = 255
    Image.fromarray(rgba).save(tmp_path / "rgba.png")
    loaded = load_image(tmp_path / "rgba.png")
    assert (loaded[:8] == (255, 0, 0)).all() and (loaded[8:] == 255).all()


def test_load_image_scales_16_bit_grey_to_8_bit(tmp_path):
    deep = np.zeros((16, 16), np.uint16)
    deep[:, 4:8], deep[:, 8:] = 257 * 100, 65535
    Image.fromarray(deep).save(tmp_path / "deep.png")
    loaded = load_image(tmp_path / "deep.png")
    assert loaded[0, :, 0].tolist() == [0] * 4 + [100] * 4 + [255] * 8


def test_load_image_reports_missing_corrupt_text_directory_and_bad_type(tmp_path):
    with pytest.raises(FileNotFoundError, match="no image file at .*missing.png"):
        load_image(tmp_path / "missing.png")
    Image.fromarray(random_image(32, 32)).save(tmp_path / "whole.png")
    (tmp_path / "corrupt.png").write_bytes((tmp_path / "whole.png").read_bytes()[:120])
    with pytest.raises(ValueError, match="could not read an image from .*corrupt.png"):
        load_image(tmp_path / "corrupt.png")
    (tmp_path / "notes.txt").write_text("not an image\n")
    with pytest.raises(ValueError, match="could not read an image from .*notes.txt"):
        load_image(tmp_path / "notes.txt")
    with pytest.raises(IsADirectoryError, match="is a directory"):
        load_image(tmp_path)
    with pytest.raises(TypeError, match="expected a file path"):
        load_image(random_image(8, 8))


# --- ImageNet labels -----------------------------------------------------------------------


def test_imagenet_classes_has_1000_names_in_model_order():
    names = imagenet_classes()
    assert len(names) == 1000
    assert names[285] == "Egyptian cat" and names[967] == "espresso"
    assert all(name and name == name.strip() for name in names)


def test_imagenet_classes_match_torchvision():
    # Read torchvision's list from its source instead of importing it: fast, and torchvision
    # must never be imported after tensorflow in one process (ARCHITECTURE.md, "Import order").
    spec = importlib.util.find_spec("torchvision")
    if spec is None:
        pytest.skip("torchvision is not installed")
    source = Path(spec.submodule_search_locations[0], "models", "_meta.py").read_text(encoding="utf-8")
    assignment = next(
        node for node in ast.parse(source).body
        if isinstance(node, ast.Assign) and node.targets[0].id == "_IMAGENET_CATEGORIES"
    )
    assert ast.literal_eval(assignment.value) == imagenet_classes()


@pytest.fixture
def fresh_label_cache():
    labels.imagenet_classes.cache_clear()
    yield
    labels.imagenet_classes.cache_clear()


def test_imagenet_classes_explains_a_missing_or_damaged_file(tmp_path, monkeypatch, fresh_label_cache):
    monkeypatch.setattr(labels, "IMAGENET_CLASSES_FILE", tmp_path / "imagenet_classes.txt")
    with pytest.raises(FileNotFoundError, match="imagenet_classes.txt is missing.*git checkout"):
        imagenet_classes()
    (tmp_path / "imagenet_classes.txt").write_text("tench\ngoldfish\n", encoding="utf-8")
    with pytest.raises(ValueError, match="has 2 lines, expected 1000"):
        imagenet_classes()


def test_class_index_ignores_case_but_prefers_an_exact_match():
    assert class_index("Egyptian cat") == 285
    assert class_index("EGYPTIAN CAT") == 285
    assert class_index("Espresso") == 967
    assert (class_index("Cardigan"), class_index("cardigan")) == (264, 474)  # corgi, sweater


def test_class_index_rejects_ambiguous_unknown_and_non_string_names():
    with pytest.raises(ValueError, match="several classes.*'Cardigan' \\(264\\).*'cardigan' \\(474\\)"):
        class_index("CARDIGAN")
    with pytest.raises(ValueError, match="unknown class name 'egyptain cat'; did you mean.*'Egyptian cat'"):
        class_index("egyptain cat")
    with pytest.raises(TypeError, match="expected a class name"):
        class_index(285)


def test_class_index_searches_a_given_list():
    assert class_index("ring", ["circle", "Ring"]) == 1
    with pytest.raises(ValueError, match="unknown class name 'cat'"):
        class_index("cat", ["circle", "ring"])


# --- the core loads no framework ------------------------------------------------------------


def test_importing_the_core_loads_neither_framework_nor_pyplot():
    script = (
        "import sys\n"
        "import utils.images, utils.labels, utils.shapes, utils.localization, utils.plotting\n"
        "print(sorted(m for m in ('torch', 'tensorflow', 'matplotlib.pyplot') if m in sys.modules))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=REPO_ROOT
    )
    assert done.stdout.strip() == "[]"
