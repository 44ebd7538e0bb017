"""An interactive explorer: pick an image, a method, a class, a layer; see the map, its overlay and its box.

One explorer for both frameworks, the backend passed in (framework-free; ipywidgets is imported
only when a widget is built):

    from utils import torch as xt               # or: from utils import tensorflow as xt
    from utils.explorer import Explorer
    explorer = Explorer(xt, xt.load_model("efficientnet_lite0"))
    explorer                                    # the last expression of a cell shows the widget

Fast by caching (`MapCache`, usable without widgets): per image it keeps the input batch and the
class probabilities; for CAM the feature map f and the classifier's weights W, so that any class's
map is one einsum, M_c = sum_k W[c, k] f_k (Zhou et al. 2016, eq. 2); for Grad-CAM the raw maps at
the layer's resolution, computed for the top-5 classes in one batched call when an image or layer is
first shown (the gradient depends on the class, so a class outside the top-5 costs one more call);
for every method the final maps it has shown. A change of the class (within what is cached), the
overlay's alpha or the box threshold only redraws: no model call.
"""
from __future__ import annotations

import io
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from . import contract
from .images import SAMPLE_NAMES, as_rgb_uint8, cat_and_coffee, load_image, prepare_images, sample_image
from .labels import class_index, imagenet_classes
from .models import EFFICIENTNET_LITE0_INPUT
from .plotting import FIGURE_DPI, render_map, resize_map

METHODS = contract.METHOD_NAMES  # the one table of methods (utils.contract) says which take a layer, how each is drawn
TOP = 5
SMOOTH_GRAD_SEED = 0

__all__ = ["Explorer", "MAX_UPLOAD_BYTES", "MAX_UPLOAD_PIXELS", "MapCache", "METHODS", "decode_image_bytes",
           "decode_upload", "default_images", "empty_upload_message", "explore", "render"]


def default_images() -> dict[str, np.ndarray]:
    """The composite cat-and-coffee photo, then the sample photos, keyed by name."""
    return {"cat_and_coffee": cat_and_coffee(), **{name: sample_image(name) for name in SAMPLE_NAMES}}


# ---------------------------------------------------------------------------------------------
# Uploaded files


# Limits on an uploaded file: the model sees 224 x 224 pixels, so a larger file only costs time and memory.
MAX_UPLOAD_BYTES = 20 * 2**20  # 20 MB
MAX_UPLOAD_PIXELS = 50_000_000  # 50 megapixels: more than a phone photo (PIL itself warns from about 89)
_FROM_CODE = ("or copy the file to the runtime (on Colab: the Files panel on the left) and add it from code: "
              "explorer.add_image(\"my photo\", utils.load_image(\"/content/photo.jpg\"))")


def _megabytes(size: int) -> str:
    return f"{size / 2**20:.1f} MB"


def empty_upload_message(name: str | None = None, size: int | None = None) -> str:
    """What to tell the reader when an upload reaches the kernel without its bytes (or without the file)."""
    what = "The uploaded file" if name is None else f"The uploaded file {name!r}"
    sent = f" (its size was given as {_megabytes(size)})" if size else ""
    return (f"{what} arrived empty{sent}. This is a known limit of the upload button of ipywidgets 7 on Colab: "
            "a file of about 1 MB or more arrives empty. Resize or compress the image below 1 MB and upload it "
            f"again, {_FROM_CODE}.")


def decode_image_bytes(data, name: str = "upload") -> np.ndarray:
    """The bytes of an image file (PNG, JPEG, ...) as HxWx3 uint8, decoded like utils.load_image.

    An empty file, a file over MAX_UPLOAD_BYTES, an image over MAX_UPLOAD_PIXELS and anything that is not
    an image raise ValueError with a message for the reader (never an error from inside PIL).
    """
    from PIL import Image

    data = bytes(data)
    if not data:
        raise ValueError(empty_upload_message(name))
    if len(data) > MAX_UPLOAD_BYTES:
        raise ValueError(f"the uploaded file {name!r} is {_megabytes(len(data))}; the explorer takes files up to "
                         f"{MAX_UPLOAD_BYTES // 2**20} MB: resize or compress the image (the model sees "
                         "224 x 224 pixels anyway)")
    unreadable = f"could not read an image from the uploaded file {name!r}; upload a PNG or JPEG photo"
    try:  # the header only: the size is known before the pixels are decoded
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as opened:
                width, height = opened.size
    except Image.DecompressionBombError:
        width = height = None
    except Exception as error:  # PIL raises many kinds on a file that is not an image
        raise ValueError(unreadable) from error
    if width is None or width * height > MAX_UPLOAD_PIXELS:
        size = "" if width is None else f" ({width} x {height} pixels)"
        raise ValueError(f"the uploaded image {name!r} is too large{size}; the explorer takes images up to "
                         f"{MAX_UPLOAD_PIXELS / 1e6:.0f} megapixels: resize it (the model sees 224 x 224 pixels "
                         "anyway)")
    handle, path = tempfile.mkstemp(suffix=Path(name).suffix or ".img")
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
        try:
            return load_image(path)
        except Exception as error:  # load_image's ValueError, or what PIL raises on a damaged file
            raise ValueError(unreadable) from error
    finally:
        os.remove(path)


def decode_upload(value) -> list[tuple[str, np.ndarray]]:
    """(name, image) for each file in a FileUpload's `value`, in either ipywidgets format.

    ipywidgets 7 (Colab): a dict {filename: {"metadata": {...}, "content": bytes}}.
    ipywidgets 8: a tuple of dicts {"name": ..., "type": ..., "size": ..., "content": memoryview, ...}.
    A file that arrived empty (Colab's ipywidgets 7 with a file of about 1 MB or more) raises ValueError
    with what to do instead; so does any file that cannot be read, and then no file is returned.
    """
    if isinstance(value, dict):  # ipywidgets 7
        files = [(str(name), entry.get("content", b""), (entry.get("metadata") or {}).get("size"))
                 for name, entry in value.items()]
    elif isinstance(value, (tuple, list)):  # ipywidgets 8
        files = [(str(entry.get("name", f"upload {i}")), entry.get("content", b""), entry.get("size"))
                 for i, entry in enumerate(value)]
    else:
        raise TypeError(f"expected a FileUpload value (a dict in ipywidgets 7, a tuple in 8), got {type(value).__name__}")
    for name, content, size in files:
        if not content:  # b"", an empty memoryview or None
            raise ValueError(empty_upload_message(name, size if isinstance(size, int) else None))
    return [(name, decode_image_bytes(content, name)) for name, content, _ in files]


# ---------------------------------------------------------------------------------------------
# The cache: the model runs only when what is asked for is not known yet


def _normalise(heat: np.ndarray) -> np.ndarray:
    """(m - min) / (max - min); a constant map becomes zeros (the backends' convention)."""
    low, high = float(heat.min()), float(heat.max())
    return (heat - low) / (high - low) if high > low else np.zeros_like(heat)


class MapCache:
    """The maps of one image, computed through the backend `xt` and kept.

    `model_calls` counts the backend calls that run the model; `heatmap(method, target, ...)`
    returns a map at input resolution, normalised as the backend's method returns it.
    """

    def __init__(self, xt, model, preprocessing=None):
        self.xt, self.model = xt, model
        self.preprocessing = preprocessing or getattr(model, "preprocessing", EFFICIENTNET_LITE0_INPUT)
        self.model_calls = 0
        self.pixels = None  # (H, W, 3) uint8: what the model sees
        self.probs = None  # (classes,) softmax probabilities
        self._x = None
        self._cam_parts: dict = {}  # layer -> (features (K, h, w), weight (classes, K))
        self._grad_cam_raw: dict[tuple, np.ndarray] = {}  # (layer, class) -> (h, w)
        self._maps: dict[tuple, np.ndarray] = {}

    def _call(self, function, *args, **kwargs):
        self.model_calls += 1
        return function(self.model, *args, **kwargs)

    def set_image(self, image) -> None:
        """A new image: forget the old maps, run the model once for the class probabilities."""
        self.pixels = prepare_images(as_rgb_uint8(image), self.preprocessing.size)[0]
        self._x = self.xt.preprocess(self.pixels, self.model)
        self._cam_parts, self._grad_cam_raw, self._maps = {}, {}, {}
        self.probs = self._call(self.xt.probabilities, self._x)[0]

    @property
    def num_classes(self) -> int:
        return len(self.probs)

    def top(self, k: int = TOP) -> np.ndarray:
        """The k most probable classes of the current image, best first."""
        return np.argsort(-self.probs, kind="stable")[:k]

    def _check(self, method: str, target: int) -> tuple[contract.Method, int]:
        if self.pixels is None:
            raise RuntimeError("no image yet: call set_image(image) first")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        return contract.method(method), int(contract.check_targets(int(target), 1, self.num_classes)[0])

    def raw_map(self, method: str, target: int, layer: str | None = None) -> np.ndarray:
        """CAM or Grad-CAM of class `target` at the layer's resolution, not normalised (h, w)."""
        _, target = self._check(method, target)
        if method == "cam":
            if layer not in self._cam_parts:
                features, weight, _ = self._call(self.xt.cam_parts, self._x, layer)
                self._cam_parts[layer] = features[0], weight
            features, weight = self._cam_parts[layer]
            return np.einsum("k,khw->hw", weight[target], features)
        if method == "grad_cam":
            if (layer, target) not in self._grad_cam_raw:
                self._grad_cams(layer, target)
            return self._grad_cam_raw[layer, target]
        raise ValueError(f"raw maps are kept for cam and grad_cam, not {method!r}")

    def _grad_cams(self, layer: str | None, target: int) -> None:
        """Grad-CAM of `target` and of the top-5 classes not yet known, in one batched call."""
        classes = [target] + [int(c) for c in self.top() if (layer, int(c)) not in self._grad_cam_raw and c != target]
        batch = self.xt.preprocess([self.pixels] * len(classes), self.model)
        maps = self._call(self.xt.grad_cam, batch, classes, layer, normalize=False, upsample=False)
        for c, raw in zip(classes, maps):
            self._grad_cam_raw[layer, c] = raw

    def heatmap(self, method: str, target: int, layer: str | None = None,
                sigma: float = contract.SMOOTH_GRAD_DEFAULT_SIGMA, n: int = contract.SMOOTH_GRAD_DEFAULT_N) -> np.ndarray:
        """The map of `method` for class `target`: (H, W) in [0, 1], or (H, W, 3) for the guided methods."""
        row, target = self._check(method, target)
        layer = layer if row.takes_layer else None
        key = (method, target, layer) + ((float(sigma), int(n)) if method == "smooth_grad" else ())
        if key not in self._maps:
            if method in ("cam", "grad_cam"):
                heat = _normalise(resize_map(self.raw_map(method, target, layer), self.pixels.shape[:2]))
            elif method == "smooth_grad":
                heat = self._call(self.xt.smooth_grad, self._x, target, n=int(n), sigma=float(sigma),
                                  seed=SMOOTH_GRAD_SEED)[0]
            else:  # any other method of the table, with the layer when it takes one
                options = ({"layer": layer} if row.takes_layer else {}) | dict(row.explorer_settings)
                heat = self._call(getattr(self.xt, method), self._x, target, **options)[0]
            self._maps[key] = heat.astype(np.float32)
        return self._maps[key]


# ---------------------------------------------------------------------------------------------
# Drawing (numpy only: fast enough to redraw on every slider move)


def render(pixels: np.ndarray, heat: np.ndarray, method: str, alpha: float = 0.5,
           threshold: float | None = 0.2) -> tuple[np.ndarray, tuple | None]:
    """The picture an explorer shows, (H, W, 3) uint8, and its box (None when threshold is None): the
    course's one way of drawing a method's map (utils.plotting.render_map), as the command line does."""
    return render_map(pixels, heat, method, threshold, alpha)


def _png(picture: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(picture).save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


# ---------------------------------------------------------------------------------------------
# The widget


def _class_names(model, count: int) -> list[str]:
    names = getattr(model, "class_names", None)
    if names is not None:
        return list(names)
    return imagenet_classes() if count == 1000 else [str(i) for i in range(count)]


class Explorer:
    """The interactive explorer (ipywidgets 7.7 and 8): image, method, class, layer, alpha, box threshold,
    SmoothGrad's sigma and n. `images`: a dict name -> HxWx3 uint8 image (default: `default_images()`).

    Headless use works too: the setters (`set_image`, `set_method`, `set_class`, `set_layer`) change
    the controls, every change redraws; `picture` is the last drawn image, `cache.model_calls` counts
    the model runs and `last_update_ms` times the last redraw.
    """

    def __init__(self, xt, model, images: dict | None = None, method: str = "cam", scale: float = 2.0):
        import ipywidgets as widgets

        self.xt, self.model = xt, model
        self.cache = MapCache(xt, model)
        self.images = dict(default_images() if images is None else images)
        if not self.images:
            raise ValueError("no images to explore: pass a dict name -> image, or None for the sample photos")
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self.picture, self.box, self.heat = None, None, None
        self.last_update_ms = float("nan")
        self._busy = False
        layers = list(xt.feature_layers(model))
        style = {"description_width": "80px"}
        wide = widgets.Layout(width="340px")
        self.image_choice = widgets.Dropdown(options=list(self.images), description="image", style=style, layout=wide)
        self.upload = widgets.FileUpload(accept="image/*", multiple=False, description="upload")
        self.method_choice = widgets.Dropdown(options=list(METHODS), value=method, description="method",
                                              style=style, layout=wide)
        self.class_choice = widgets.Dropdown(options=[], description="class", style=style, layout=wide)
        self.class_name = widgets.Combobox(placeholder="any ImageNet class, e.g. tabby", description="by name",
                                           ensure_option=False, continuous_update=False, style=style, layout=wide)
        self.layer_choice = widgets.Dropdown(options=layers, value=layers[-1] if layers else None,
                                             description="layer", style=style, layout=wide)
        self.alpha = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="alpha",
                                         continuous_update=False, style=style, layout=wide)
        self.threshold = widgets.FloatSlider(value=0.2, min=0.0, max=1.0, step=0.05, description="box at",
                                             continuous_update=False, style=style, layout=wide)
        self.sigma = widgets.FloatSlider(value=contract.SMOOTH_GRAD_DEFAULT_SIGMA, min=0.05, max=0.5, step=0.05,
                                         description="sigma", continuous_update=False, style=style, layout=wide)
        self.n = widgets.IntSlider(value=contract.SMOOTH_GRAD_DEFAULT_N, min=5, max=100, step=5, description="n",
                                   continuous_update=False, style=style, layout=wide)
        self.view = widgets.Image(format="png", width=int(scale * self.cache.preprocessing.size))
        self.status = widgets.HTML()
        controls = widgets.VBox([self.image_choice, self.upload, self.method_choice, self.class_choice,
                                 self.class_name, self.layer_choice, self.alpha, self.threshold, self.sigma, self.n])
        self.widget = widgets.VBox([widgets.HBox([controls, self.view]), self.status])
        self.image_choice.observe(self._on_image, names="value")
        self.upload.observe(self._on_upload, names="value")
        if "_counter" in self.upload.trait_names():  # ipywidgets 7: it counts every file the button sent
            self.upload.observe(self._on_upload_counter, names="_counter")
        self.class_name.observe(self._on_class_name, names="value")
        for control in (self.method_choice, self.class_choice, self.layer_choice, self.alpha, self.threshold,
                        self.sigma, self.n):
            control.observe(self._on_change, names="value")
        self._new_image()

    def _ipython_display_(self):
        from IPython.display import display

        display(self.widget)

    # -- setters (headless use and tests) --

    def set_image(self, name_or_image) -> None:
        """Show the image called `name` (a key of `images`), or add an HxWx3 uint8 array and show it."""
        if isinstance(name_or_image, str):
            if name_or_image not in self.images:
                raise ValueError(f"unknown image {name_or_image!r}; choose one of {', '.join(self.images)}")
            self.image_choice.value = name_or_image
        else:
            self.add_image(f"image {len(self.images)}", name_or_image)

    def add_image(self, name: str, image) -> None:
        self.images[name] = as_rgb_uint8(image)
        self._busy = True  # ipywidgets 7 resets a Dropdown's value when its options change
        try:
            self.image_choice.options = list(self.images)
            self.image_choice.value = name
        finally:
            self._busy = False
        self._new_image()

    def set_method(self, method: str) -> None:
        if method not in METHODS:
            raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
        self.method_choice.value = method

    def set_layer(self, layer: str) -> None:
        if layer not in self.layer_choice.options:
            raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(self.layer_choice.options)}")
        self.layer_choice.value = layer

    def set_class(self, target) -> None:
        """Explain class `target`: an index, or a class name (unknown names raise with suggestions)."""
        names = _class_names(self.model, self.cache.num_classes)
        index = class_index(target, names) if isinstance(target, str) else int(target)
        index = int(contract.check_targets(index, 1, self.cache.num_classes)[0])
        if index not in [value for _, value in self.class_choice.options]:
            self._busy = True
            try:
                self.class_choice.options = list(self.class_choice.options) + [(self._label(index), index)]
            finally:
                self._busy = False
        if self.class_choice.value == index:
            self.update()
        else:
            self.class_choice.value = index

    @property
    def target(self) -> int:
        return int(self.class_choice.value)

    # -- observers --

    def _label(self, index: int) -> str:
        names = _class_names(self.model, self.cache.num_classes)
        return f"{names[index]} ({self.cache.probs[index]:.2f})"

    def _new_image(self) -> None:
        self.cache.set_image(self.images[self.image_choice.value])
        top = [int(c) for c in self.cache.top()]
        self._busy = True
        try:
            self.class_choice.options = [(self._label(c), c) for c in top]
            self.class_choice.value = top[0]
        finally:
            self._busy = False
        self.update()

    def _on_image(self, change) -> None:
        if not self._busy:
            self._guarded(self._new_image)

    def _on_upload(self, change) -> None:
        def add():
            for name, image in decode_upload(change["new"]):  # all decoded (or an error) before any is added
                self.add_image(name, image)
        self._guarded(add)

    def _on_upload_counter(self, change) -> None:
        """ipywidgets 7 (Colab): the button sent a file but none reached the kernel, so `value` did not change
        (it is set before this runs); say why instead of doing nothing."""
        if change["new"] and not self.upload.value:
            self._show_error(empty_upload_message())

    def _on_class_name(self, change) -> None:
        if change["new"]:
            self._guarded(lambda: self.set_class(change["new"]))

    def _on_change(self, change) -> None:
        if not self._busy:
            self._guarded(self.update)

    def _guarded(self, action) -> None:
        """Run an action from a control; show its error in the status line instead of losing it."""
        try:
            action()
        except (ValueError, TypeError, RuntimeError) as error:
            self._show_error(str(error))

    def _show_error(self, message: str) -> None:
        """A message in red in the status line under the picture; the explorer's state stays as it was."""
        self.status.value = f"<span style='color:#b00'>{_escape(message)}</span>"

    # -- drawing --

    def update(self) -> None:
        """Compute (or fetch) the current map and redraw."""
        start, calls = time.perf_counter(), self.cache.model_calls
        method = self.method_choice.value
        row = contract.method(method)
        self.layer_choice.disabled = not row.takes_layer
        self.sigma.disabled = self.n.disabled = method != "smooth_grad"
        self.alpha.disabled = row.output == contract.SIGNED_RGB  # shown as they are, not blended
        self.heat = self.cache.heatmap(method, self.target, self.layer_choice.value, self.sigma.value, self.n.value)
        self.picture, self.box = render(self.cache.pixels, self.heat, method, self.alpha.value, self.threshold.value)
        self.view.value = _png(self.picture)
        self.last_update_ms = (time.perf_counter() - start) * 1e3
        runs = self.cache.model_calls - calls
        where = f"layer {self.layer_choice.value}" if row.takes_layer else "the input"
        box = "" if self.box is None else f", box {tuple(int(v) for v in self.box)} at {self.threshold.value:.2f} x max"
        settings = "".join(f", {name}={value}" for name, value in row.explorer_settings)  # lighter than the defaults
        self.status.value = _escape(
            f"{method} for {self._label(self.target)} at {where}{settings}{box}; {self.last_update_ms:.0f} ms, "
            + (f"{runs} model run{'s' if runs > 1 else ''}" if runs else "from the cache, no model run"))

    def figure(self, size: float = 3.5):
        """The current view as a matplotlib Figure (for static notebooks: widgets do not show on GitHub)."""
        import matplotlib.pyplot as plt

        figure, ax = plt.subplots(figsize=(size, size), dpi=FIGURE_DPI)
        ax.imshow(self.picture)
        ax.axis("off")
        names = _class_names(self.model, self.cache.num_classes)
        ax.set_title(f"{self.method_choice.value}: {names[self.target]}", fontsize=9)
        figure.tight_layout()
        return figure


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def explore(xt, model, images: dict | None = None, **options) -> Explorer:
    """Build an Explorer (see its docstring); the last expression of a notebook cell shows it."""
    return Explorer(xt, model, images, **options)
