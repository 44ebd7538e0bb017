"""Sample photos, image validation and the one place where model input pixels are made.

Both backends call `prepare_images`, so PyTorch and TensorFlow see identical uint8 pixels.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import skimage.data
import skimage.transform
from PIL import Image, ImageOps, UnidentifiedImageError

SAMPLE_NAMES = ("chelsea", "coffee", "astronaut", "rocket")

MIN_SIDE = 8
"""Smallest height and width (pixels) an input image may have."""

# Crops for `cat_and_coffee`, chosen by looking at the photos. Each keeps the full height and
# has width = height / 2. Chelsea (300x451): the cat's face does not fit in 150 columns, so the
# crop x = 165..315 keeps the nose, the mouth, most of the left eye and part of the right one.
# Coffee (400x600): the cup spans about x = 172..410, so x = 190..390 keeps the crema, most of
# the cup, its handle, and the saucer below.
CAT_CROP_X0 = 165
COFFEE_CROP_X0 = 190

_FLOAT_HINT = "for a float image in [0, 1] use (img * 255).round().astype(np.uint8)"


def sample_image(name: str) -> np.ndarray:
    """Return the scikit-image sample photo `name` as an HxWx3 uint8 array."""
    if name not in SAMPLE_NAMES:
        raise ValueError(f"unknown sample image {name!r}; choose one of {SAMPLE_NAMES}")
    return as_rgb_uint8(getattr(skimage.data, name)())


def sample_images() -> dict[str, np.ndarray]:
    """Return all sample photos, keyed by name."""
    return {name: sample_image(name) for name in SAMPLE_NAMES}


def _crop_half_width(image: np.ndarray, x0: int) -> np.ndarray:
    """Full-height crop of width height // 2 starting at column x0."""
    height = image.shape[0]
    return image[:, x0 : x0 + height // 2]


def cat_and_coffee(size: int = 224) -> np.ndarray:
    """A size x size composite: the cat (chelsea) on the left, the espresso (coffee) on the right.

    With one object per half, CAM for "Egyptian cat" should fall on the left half and CAM for
    "espresso" on the right (class-discriminative maps, Zhou et al. 2016). Crops: see
    `CAT_CROP_X0` and `COFFEE_CROP_X0`.
    """
    size = _check_size(size)
    halves = [
        _crop_half_width(sample_image("chelsea"), CAT_CROP_X0),
        _crop_half_width(sample_image("coffee"), COFFEE_CROP_X0),
    ]
    widths = (size // 2, size - size // 2)
    return np.concatenate(
        [_resize_uint8(half, (size, width)) for half, width in zip(halves, widths)], axis=1
    )


def as_rgb_uint8(image: np.ndarray) -> np.ndarray:
    """Validate one image and return it as HxWx3 uint8.

    Accepts HxW and HxWx1 (grey, repeated to 3 channels), HxWx3, and HxWx4 (RGBA, composited
    over white with its alpha). Raises TypeError for a wrong type or dtype and ValueError for a
    wrong shape.
    """
    if not isinstance(image, np.ndarray):
        raise TypeError(
            f"expected a numpy array of shape (H, W), (H, W, 1), (H, W, 3) or (H, W, 4), "
            f"got {type(image).__name__}; convert it with np.asarray(...) first"
        )
    if image.ndim not in (2, 3):
        raise ValueError(
            f"expected one image of shape (H, W) or (H, W, C), got shape {image.shape}; "
            "for a batch, pass a list or a (B, H, W, C) array to prepare_images"
        )
    if image.ndim == 3 and image.shape[2] not in (1, 3, 4):
        raise ValueError(
            f"expected 1, 3 or 4 channels in the last axis, got shape {image.shape}; "
            "channels-first images (C, H, W) need np.moveaxis(img, 0, -1)"
        )
    if image.size == 0:
        raise ValueError(f"the image is empty (shape {image.shape}); check how it was loaded or cropped")
    if image.dtype == bool:
        raise TypeError("got a boolean array; turn a mask into an image with mask.astype(np.uint8) * 255")
    if image.dtype != np.uint8:
        raise TypeError(f"expected dtype uint8, got {image.dtype}; {_FLOAT_HINT}")
    if min(image.shape[:2]) < MIN_SIDE:
        raise ValueError(
            f"the image is {image.shape[0]}x{image.shape[1]} pixels; "
            f"height and width must be at least {MIN_SIDE}"
        )
    if image.ndim == 2:
        image = image[:, :, None]
    if image.shape[2] == 1:
        return np.repeat(image, 3, axis=2)
    if image.shape[2] == 4:
        alpha = image[:, :, 3:].astype(np.float32) / 255
        over_white = image[:, :, :3] * alpha + 255 * (1 - alpha)
        return over_white.round().astype(np.uint8)
    return image


def prepare_images(images, size: int = 224) -> np.ndarray:
    """Validate and resize image(s) to a (B, size, size, 3) uint8 batch.

    `images` is one image (2-D or 3-D array), a list/tuple of images (sizes may differ) or a
    (B, H, W, C) array; each is checked by `as_rgb_uint8`. Resizing is bilinear, anti-aliased
    when shrinking, with edge pixels repeated past the border; the result is rounded to uint8.
    """
    size = _check_size(size)
    if isinstance(images, np.ndarray) and images.ndim not in (2, 3, 4):
        raise ValueError(
            f"expected one image (H, W) or (H, W, C), or a batch (B, H, W, C), got shape {images.shape}"
        )
    if isinstance(images, np.ndarray) and images.ndim in (2, 3):
        images = [images]
    elif not isinstance(images, (list, tuple, np.ndarray)):
        raise TypeError(
            f"expected an image, a list of images or a (B, H, W, C) array, "
            f"got {type(images).__name__}"
        )
    if len(images) == 0:
        raise ValueError("empty batch: pass at least one image")
    return np.stack([_resize_uint8(as_rgb_uint8(image), (size, size)) for image in images])


def load_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image file as HxWx3 uint8 (grey, palette, RGBA over white and 16-bit handled)."""
    if not isinstance(path, (str, os.PathLike)):
        raise TypeError(f"expected a file path (str or pathlib.Path), got {type(path).__name__}")
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no image file at {path}")
    if path.is_dir():
        raise IsADirectoryError(f"{path} is a directory; pass the path of one image file")
    try:
        with Image.open(path) as opened:
            opened.load()
            picture = ImageOps.exif_transpose(opened)
    except (UnidentifiedImageError, OSError, SyntaxError) as error:
        raise ValueError(f"could not read an image from {path}: {error}") from error
    if picture.mode.startswith("I"):  # 16-bit (or 32-bit integer) grey: scale 0..65535 to 0..255
        grey = np.asarray(picture, dtype=np.float64) / 257
        return as_rgb_uint8(grey.clip(0, 255).round().astype(np.uint8))
    has_alpha = picture.mode in ("RGBA", "LA", "PA") or "transparency" in picture.info
    return as_rgb_uint8(np.asarray(picture.convert("RGBA" if has_alpha else "RGB")))


def _check_size(size: int) -> int:
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < MIN_SIDE:
        raise ValueError(f"size must be an integer of at least {MIN_SIDE}, got {size!r}")
    return int(size)


def _resize_uint8(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """Bilinear, anti-aliased resize of an HxWx3 uint8 image, rounded back to uint8."""
    if image.shape[:2] == tuple(shape):
        return image.copy()
    resized = skimage.transform.resize(
        image, shape, order=1, mode="edge", anti_aliasing=True, preserve_range=True
    )
    return resized.round().clip(0, 255).astype(np.uint8)
