"""Heatmap overlays, boxes and figure grids (matplotlib only; pyplot is imported on first use)."""

from __future__ import annotations

import math

import matplotlib
import numpy as np
import skimage.transform

from . import contract
from .images import as_rgb_uint8

FIGURE_DPI = 90
BOX_COLOUR = (0, 255, 0)  # lime, as draw_box


def _as_float_rgb(image) -> np.ndarray:
    """An image as HxWx3 float32 in [0, 1]: uint8 images go through `as_rgb_uint8`."""
    if isinstance(image, np.ndarray) and image.dtype.kind == "f":
        if image.ndim != 3 or image.shape[2] != 3:
            raise ValueError(f"expected a float image of shape (H, W, 3), got shape {image.shape}")
        if not (np.isfinite(image).all() and image.min() >= 0 and image.max() <= 1):
            raise ValueError("a float image must hold finite values in [0, 1]; pass uint8 pixels otherwise")
        return image.astype(np.float32)
    return as_rgb_uint8(image).astype(np.float32) / 255


def resize_map(values, shape) -> np.ndarray:
    """(h, w) or (h, w, C) values resized to (H, W) = `shape`: bilinear on pixel centres, edge values held
    at the border, as torch's and TF's resizing. float32; returned as it is when the size already fits."""
    values = np.asarray(values, dtype=np.float32)
    if values.shape[:2] == tuple(shape):
        return values
    return skimage.transform.resize(values, tuple(shape), order=1, mode="edge").astype(np.float32)


def _font(size: int):
    from PIL import ImageFont

    try:
        return ImageFont.load_default(size=size)  # Pillow >= 10.1 with FreeType: a scalable font
    except (TypeError, OSError, ImportError):
        return ImageFont.load_default()


def draw_box_pixels(picture: np.ndarray, box, label: str | None = None) -> np.ndarray:
    """Draw a half-open (x0, y0, x1, y1) box into an (H, W, 3) picture; returns uint8 pixels.

    The lime outline lies inside the box (its pixels are the box's border pixels), the label sits
    on a lime band above the box, or inside it at the top when there is no room above. An empty
    box draws nothing. Pixels, not a matplotlib figure, so the file has the image's exact size.
    """
    from PIL import Image, ImageDraw

    pixels = np.asarray(picture)
    if pixels.dtype != np.uint8:
        pixels = (np.clip(pixels, 0, 1) * 255).round().astype(np.uint8)
    x0, y0, x1, y1 = (int(v) for v in box)
    if x1 <= x0 or y1 <= y0:
        return pixels
    canvas = Image.fromarray(pixels)
    draw = ImageDraw.Draw(canvas)
    height, width = pixels.shape[:2]
    line = max(1, round(min(height, width) / 150))
    draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=BOX_COLOUR, width=line)
    if label:
        font = _font(max(8, min(height, width) // 28))
        left, top, right, bottom = draw.textbbox((0, 0), label, font=font)
        text_w, text_h = right - left + 4, bottom - top + 4
        ty = y0 - text_h if y0 - text_h >= 0 else y0
        tx = min(max(x0, 0), max(width - text_w, 0))
        draw.rectangle([tx, ty, tx + text_w - 1, ty + text_h - 1], fill=BOX_COLOUR)
        draw.text((tx + 2 - left, ty + 2 - top), label, fill=(0, 0, 0), font=font)
    return np.asarray(canvas)


def overlay(image, heatmap, alpha: float = 0.5, cmap: str = "jet") -> np.ndarray:
    """Blend a colour-mapped heatmap onto an image: (1 - alpha) * image + alpha * colour.

    The heatmap (h, w) is resized bilinearly to the image when their sizes differ; NaN becomes
    0 and values are clipped to [0, 1] (no wrap-around, no renormalisation). Returns (H, W, 3)
    float32 in [0, 1].
    """
    picture = _as_float_rgb(image)
    heat = np.asarray(heatmap, dtype=np.float32)
    if heat.ndim != 2 or heat.size == 0:
        raise ValueError(f"expected one heatmap of shape (h, w), got shape {heat.shape}")
    if not 0 <= alpha <= 1:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    heat = resize_map(np.clip(np.nan_to_num(heat, nan=0.0), 0, 1), picture.shape[:2])
    colour = matplotlib.colormaps[cmap](heat)[..., :3]
    return ((1 - alpha) * picture + alpha * colour).astype(np.float32)


def display_scale(magnitude: np.ndarray, method: str) -> float:
    """The value a map's magnitude is divided by for display: for pixel-level methods (input gradients,
    heavy-tailed) the DISPLAY_CLIP_PERCENTILE-th percentile, else the maximum; 1 for an all-zero map."""
    row = contract.method(method)
    magnitude = np.asarray(magnitude, dtype=np.float32)
    scale = float(np.percentile(magnitude, row.clip_percentile)) if row.clip_percentile else 0.0
    scale = scale if scale > 0 else float(magnitude.max())
    return scale if scale > 0 else 1.0


def for_display(values, method: str) -> np.ndarray:
    """A map's values in [0, 1] as the course shows them (the command line, the explorer and the notebooks).

    (h, w): divided by display_scale (the 99th percentile for pixel-level methods, else the maximum) and
    clipped. (h, w, 3) signed values centred at zero (raw gradients, or 2m - 1 of a backend's 0.5-centred
    output): 0.5 + g / (2 scale) with the scale of the magnitude max_c |g|, clipped, so zero is mid-grey.
    """
    values = np.nan_to_num(np.asarray(values, dtype=np.float32), nan=0.0)
    if values.ndim == 3:
        scale = display_scale(np.abs(values).max(axis=-1), method)
        return np.clip(0.5 + values / (2 * scale), 0, 1)
    return np.clip(values / display_scale(values, method), 0, 1)


def method_picture(image, heatmap, method: str, alpha: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """How the course draws a method's map over an image, the same in the command line and the explorer.

    `heatmap` is one image's map as the backend returns it (normalised): (h, w) in [0, 1], or (h, w, 3)
    signed RGB with 0.5 = zero for the Guided methods. Scaled by for_display (the table of methods in
    utils.contract says which maps are pixel-level), heatmaps are blended onto the image in the jet
    colour map and signed maps are shown as they are (mid-grey = zero). Returns the (H, W, 3) float
    picture at the image's size and the (H, W) map in [0, 1] that the box comes from (for signed maps:
    the magnitude).
    """
    size = _as_float_rgb(image).shape[:2]
    heatmap = np.asarray(heatmap, dtype=np.float32)
    if contract.method(method).output == contract.SIGNED_RGB:
        picture = for_display(2 * heatmap - 1, method)
        return resize_map(picture, size).clip(0, 1), resize_map(np.abs(2 * picture - 1).max(axis=-1), size).clip(0, 1)
    heat = resize_map(for_display(heatmap, method), size).clip(0, 1)
    return overlay(image, heat, alpha=alpha), heat


def render_map(image, heatmap, method: str, threshold: float | None = 0.2, alpha: float = 0.5,
               label: str | None = None) -> tuple[np.ndarray, tuple | None]:
    """method_picture as (H, W, 3) uint8 pixels with the CAM paper's box drawn in lime (the largest
    region above `threshold` x max, utils.box_from_heatmap), labelled with `label`; and the box.
    threshold=None: no box (None returned)."""
    from .localization import box_from_heatmap

    picture, box_map = method_picture(image, heatmap, method, alpha)
    if threshold is None:
        return (picture * 255).round().astype(np.uint8), None
    box = box_from_heatmap(box_map, threshold)
    return draw_box_pixels(picture, box, label), box


def show_map(ax, image, heatmap, method: str, title=None, alpha: float = 0.5, threshold: float | None = None,
             true_box=None):
    """Show one method's map on a matplotlib axis as method_picture draws it; `threshold` adds its box."""
    from .localization import box_from_heatmap

    picture, box_map = method_picture(image, heatmap, method, alpha)
    box = box_from_heatmap(box_map, threshold) if threshold is not None else None
    return show_heatmap(ax, picture, title=title, box=box, true_box=true_box)


def draw_box(ax, box, color="lime", label=None, linewidth=2, linestyle="-"):
    """Draw a half-open (x0, y0, x1, y1) pixel box on an imshow axis; returns the Rectangle.

    imshow puts pixel centres at integers, so the box's edges lie at x0 - 0.5 and x1 - 0.5.
    """
    from matplotlib.patches import Rectangle

    box = np.asarray(box)
    if box.shape != (4,):
        raise ValueError(f"expected one box (x0, y0, x1, y1), got shape {box.shape}")
    x0, y0, x1, y1 = box.tolist()
    rectangle = Rectangle(
        (x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0,
        fill=False, edgecolor=color, linewidth=linewidth, linestyle=linestyle,
    )
    ax.add_patch(rectangle)
    if label is not None:
        ax.text(x0 - 0.5, y0 - 0.5, label, color="black", backgroundcolor=color, fontsize=8, va="bottom")
    return rectangle


def show_heatmap(ax, image, heatmap=None, title=None, alpha=0.5, cmap="jet", box=None, true_box=None):
    """Show an image, or its overlay with `heatmap`, with a predicted (lime) and a true (red dashed) box."""
    picture = _as_float_rgb(image) if heatmap is None else overlay(image, heatmap, alpha, cmap)
    ax.imshow(picture)
    ax.axis("off")
    if title is not None:
        ax.set_title(title, fontsize=9)
    if true_box is not None:
        draw_box(ax, true_box, color="red", linestyle="--")
    if box is not None:
        draw_box(ax, box, color="lime")
    return ax


def _per_image(values, count: int, name: str) -> list:
    """`values` as a list with one entry per image, or Nones when it is None."""
    if values is None:
        return [None] * count
    if len(values) != count:
        raise ValueError(f"{name} has {len(values)} entries but there are {count} images")
    return list(values)


def show_grid(
    images, heatmaps=None, titles=None, ncols=4, boxes=None, true_boxes=None, alpha=0.5, cmap="jet", size=2.5
):
    """A grid of images (B, H, W, 3) or a list, with optional heatmaps, titles and boxes; returns the Figure.

    `size` is each panel's side in inches; axes left over in the last row are hidden.
    """
    import matplotlib.pyplot as plt

    count = len(images)
    if count == 0:
        raise ValueError("no images to show")
    if ncols < 1:
        raise ValueError(f"ncols must be at least 1, got {ncols}")
    per_image = [
        _per_image(heatmaps, count, "heatmaps"),
        _per_image(titles, count, "titles"),
        _per_image(boxes, count, "boxes"),
        _per_image(true_boxes, count, "true_boxes"),
    ]
    ncols = min(ncols, count)
    nrows = math.ceil(count / ncols)
    figure, axes = plt.subplots(
        nrows, ncols, figsize=(size * ncols, size * nrows), dpi=FIGURE_DPI, squeeze=False
    )
    try:
        for ax, image, heatmap, title, box, true_box in zip(axes.flat, images, *per_image):
            show_heatmap(ax, image, heatmap, title, alpha, cmap, box, true_box)
    except Exception:
        plt.close(figure)  # no half-drawn figure left for the next plt.show()
        raise
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    figure.tight_layout()
    return figure


def show_predictions(images, names, probs, titles=None):
    """Each image beside a bar chart of its top-k class names and probabilities; returns the Figure.

    names: one list of k class names per image; probs: (B, k) probabilities, best first.
    """
    import matplotlib.pyplot as plt

    probs = np.asarray(probs, dtype=np.float64)
    count = len(images)
    if count == 0 or probs.ndim != 2 or len(probs) != count or len(names) != count:
        raise ValueError(
            f"need one row of names and probs per image: {count} images, "
            f"{len(names)} name lists, probs of shape {probs.shape}"
        )
    if any(len(top_names) != probs.shape[1] for top_names in names):
        raise ValueError(f"each image needs {probs.shape[1]} class names, one per probability")
    titles = _per_image(titles, count, "titles")
    figure, axes = plt.subplots(
        count, 2, figsize=(7, 2.2 * count), dpi=FIGURE_DPI, squeeze=False, width_ratios=[1, 1.6]
    )
    try:
        for (image_ax, bar_ax), image, top_names, top_probs, title in zip(axes, images, names, probs, titles):
            show_heatmap(image_ax, image, title=title)
            rows = np.arange(len(top_probs))
            bar_ax.barh(rows, top_probs, color="tab:blue")
            bar_ax.set_yticks(rows, labels=list(top_names), fontsize=8)
            bar_ax.invert_yaxis()  # best class on top
            bar_ax.set_xlim(0, 1)
            bar_ax.set_xlabel("probability", fontsize=8)
            for row, p in zip(rows, top_probs):
                bar_ax.text(min(p, 0.8) + 0.02, row, f"{p:.2f}", va="center", fontsize=8)
    except Exception:
        plt.close(figure)
        raise
    figure.tight_layout()
    return figure
