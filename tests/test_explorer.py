"""The interactive explorer (utils/explorer.py) and xt.cam_parts: its cache, its widget, its inputs."""
import io
import subprocess
import sys
import warnings
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import utils
from utils import cli, contract
from utils.explorer import (MAX_UPLOAD_BYTES, MAX_UPLOAD_PIXELS, Explorer, MapCache, decode_image_bytes, decode_upload,
                            render)

ROOT = Path(__file__).resolve().parents[1]
RUNS_THE_MODEL = {"cam", "cam_parts", "grad_cam", "saliency", "smooth_grad", "guided_backprop", "guided_grad_cam",
                  "predict", "probabilities"}


class CountingBackend:
    """The backend `xt` with a count of the calls that run the model, by name."""

    def __init__(self, xt):
        self._xt = xt
        self.calls = Counter()

    def __getattr__(self, name):
        attribute = getattr(self._xt, name)
        if name not in RUNS_THE_MODEL:
            return attribute

        def counted(*args, **kwargs):
            self.calls[name] += 1
            return attribute(*args, **kwargs)
        return counted

    @property
    def total(self) -> int:
        return sum(self.calls.values())


@pytest.fixture
def model(embedded_model):
    return embedded_model


def png_bytes(image: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="PNG")
    return buffer.getvalue()


def test_importing_the_explorer_loads_no_framework_and_no_widgets():
    code = ("import sys, utils.explorer; "
            "print(sorted(m for m in ('torch', 'tensorflow', 'keras', 'ipywidgets') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_cam_parts_give_cam_and_the_logits(xt, model):
    x = xt.preprocess([utils.cat_and_coffee(), utils.sample_image("chelsea")], model)
    features, weight, bias = xt.cam_parts(model, x)
    assert features.shape == (2, 1280, 7, 7) and weight.shape == (1000, 1280) and bias.shape == (1000,)
    assert features.dtype == weight.dtype == bias.dtype == np.float32
    for target in (285, 967):
        raw = xt.cam(model, x, target, normalize=False, upsample=False)
        np.testing.assert_allclose(np.einsum("k,bkhw->bhw", weight[target], features), raw, atol=1e-4)
    logits = features.mean(axis=(2, 3)) @ weight.T + bias  # GAP -> linear, from the parts alone
    probs = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs / probs.sum(1, keepdims=True), xt.probabilities(model, x), atol=1e-5)


def test_cam_parts_reject_a_layer_without_a_cam_head(xt, model):
    x = xt.preprocess(utils.cat_and_coffee(), model)
    with pytest.raises(ValueError, match="use grad_cam"):
        xt.cam_parts(model, x, layer=xt.feature_layers(model)[-3])


def test_cache_serves_new_classes_without_running_the_model(xt, model):
    backend = CountingBackend(xt)
    cache = MapCache(backend, model)
    cache.set_image(utils.cat_and_coffee())
    assert backend.calls == {"probabilities": 1}
    top = [int(c) for c in cache.top()]
    assert top[:2] == [285, 967]  # Egyptian cat, espresso
    x = xt.preprocess(cache.pixels, model)

    cache.heatmap("cam", top[0])
    assert backend.calls["cam_parts"] == 1
    for target in (top[1], 3, 999):  # any class, in the top-5 or not: one einsum each
        np.testing.assert_allclose(cache.heatmap("cam", target), xt.cam(model, x, target)[0], atol=1e-4)
    assert backend.total == 2

    cache.heatmap("grad_cam", top[0])  # one batched call for the top-5
    assert backend.calls["grad_cam"] == 1
    for target in top:
        np.testing.assert_allclose(cache.heatmap("grad_cam", target), xt.grad_cam(model, x, target)[0], atol=1e-4)
    assert backend.total == 3
    cache.heatmap("grad_cam", 3)  # outside the top-5: one more call, then cached
    cache.heatmap("grad_cam", 3)
    assert backend.total == 4

    cache.set_image(utils.sample_image("coffee"))  # a new image forgets the old maps
    cache.heatmap("cam", 967)
    assert backend.total == 6


def test_explorer_renders_and_class_or_threshold_changes_reuse_the_cache(xt, model):
    backend = CountingBackend(xt)
    explorer = Explorer(backend, model, images={"cat_and_coffee": utils.cat_and_coffee()})
    assert explorer.picture.shape == (224, 224, 3) and explorer.picture.dtype == np.uint8
    assert explorer.view.value[:8] == b"\x89PNG\r\n\x1a\n"
    assert "Egyptian cat" in explorer.status.value
    x0, y0, x1, y1 = explorer.box
    assert x1 > x0 and y1 > y0 and tuple(explorer.picture[y0, (x0 + x1) // 2]) == (0, 255, 0)  # the box is drawn
    assert backend.calls == {"probabilities": 1, "cam_parts": 1}

    for method in ("cam", "grad_cam"):
        explorer.set_method(method)
        calls = backend.total
        before = explorer.picture.copy()
        explorer.set_class(967)  # espresso, in the top-5
        assert not np.array_equal(explorer.picture, before)
        explorer.threshold.value = 0.5
        explorer.alpha.value = 0.3
        assert backend.total == calls, f"{method}: a class or threshold change ran the model"
        assert "no model run" in explorer.status.value
        np.testing.assert_allclose(explorer.heat, getattr(xt, method)(model, xt.preprocess(explorer.cache.pixels,
                                                                                           model), 967)[0], atol=1e-4)
        explorer.set_class(285)
        explorer.threshold.value = 0.2
    assert backend.calls["grad_cam"] == 1


@pytest.mark.parametrize("xt", ["torch"], indirect=True)  # the methods have their own tests; here only their use
def test_explorer_other_methods_and_layers(xt, model):
    explorer = Explorer(xt, model, images={"chelsea": utils.sample_image("chelsea")})
    explorer.n.value = 5
    for method in ("saliency", "smooth_grad", "guided_backprop", "guided_grad_cam"):
        explorer.set_method(method)
        assert explorer.picture.shape == (224, 224, 3) and explorer.box is not None
        assert explorer.alpha.disabled == (method in ("guided_backprop", "guided_grad_cam"))  # not blended
    assert explorer.layer_choice.disabled is False  # guided_grad_cam uses the layer
    layer = xt.feature_layers(model)[-3]
    explorer.set_layer(layer)
    explorer.set_method("grad_cam")
    np.testing.assert_allclose(explorer.heat, xt.grad_cam(model, xt.preprocess(explorer.cache.pixels, model), 285,
                                                          layer)[0], atol=1e-4)
    explorer.set_method("cam")  # CAM takes the layer too (the table says so), and only GAP's input is valid
    assert "CAM needs a model that ends in global average pooling" in explorer.status.value
    explorer.set_layer(xt.feature_layers(model)[-1])
    assert "cam for" in explorer.status.value and explorer.box is not None


def test_explorer_class_by_name_and_bad_input(xt, model):
    explorer = Explorer(xt, model, images={"cat_and_coffee": utils.cat_and_coffee()})
    explorer.set_class("tabby")
    assert explorer.target == utils.class_index("tabby")
    with pytest.raises(ValueError, match=r"unknown class name 'tabbby cat'; did you mean .*'tabby'"):
        explorer.set_class("tabbby cat")
    with pytest.raises(ValueError, match="out of range"):
        explorer.set_class(1000)
    with pytest.raises(ValueError, match="unknown method"):
        explorer.set_method("gradcam")
    with pytest.raises(ValueError, match="unknown layer"):
        explorer.set_layer("nope")
    with pytest.raises(ValueError, match="unknown image"):
        explorer.set_image("dog")
    explorer.class_name.value = "tabbby cat"  # typed in the widget: the error goes to the status line
    assert "did you mean" in explorer.status.value and explorer.target == utils.class_index("tabby")
    explorer.class_name.value = "espresso"
    assert explorer.target == 967 and "espresso" in explorer.status.value


def test_uploads_decode_in_both_ipywidgets_formats():
    image = utils.sample_image("coffee")[:64, :80]
    data = png_bytes(image)
    version_7 = {"cup.png": {"metadata": {"name": "cup.png", "type": "image/png", "size": len(data)},
                             "content": data}}
    version_8 = ({"name": "cup.png", "type": "image/png", "size": len(data), "content": memoryview(data),
                  "last_modified": 0},)
    for value in (version_7, version_8):
        (name, decoded), = decode_upload(value)
        assert name == "cup.png"
        np.testing.assert_array_equal(decoded, image)
    assert decode_upload(()) == [] and decode_upload({}) == []
    with pytest.raises(ValueError, match="uploaded file 'notes.txt'"):
        decode_image_bytes(b"not an image", "notes.txt")
    with pytest.raises(ValueError, match="empty"):
        decode_image_bytes(b"", "empty.png")
    with pytest.raises(TypeError, match="FileUpload value"):
        decode_upload("cup.png")


@pytest.mark.parametrize("xt", ["torch"], indirect=True)  # the widget logic is framework-free: one backend is enough
def test_explorer_shows_an_upload(xt, model):
    explorer = Explorer(xt, model, images={"chelsea": utils.sample_image("chelsea")})
    data = png_bytes(utils.sample_image("coffee"))
    explorer._on_upload({"new": ({"name": "cup.png", "content": memoryview(data)},)})
    assert explorer.image_choice.value == "cup.png" and explorer.image_choice.options == ("chelsea", "cup.png")
    assert "espresso" in explorer.status.value
    explorer._on_upload({"new": {"bad.png": {"metadata": {}, "content": b"junk"}}})
    assert "could not read an image" in explorer.status.value and explorer.image_choice.value == "cup.png"


EMPTY_UPLOAD_ADVICE = ("arrived empty", "ipywidgets 7 on Colab", "about 1 MB or more", "below 1 MB",
                       'explorer.add_image("my photo", utils.load_image(')


def upload_values(name: str, content, size: int) -> tuple[dict, tuple]:
    """The same file as a FileUpload value of ipywidgets 7 (a dict) and of ipywidgets 8 (a tuple)."""
    version_7 = {name: {"metadata": {"name": name, "type": "image/jpeg", "size": size}, "content": bytes(content)}}
    version_8 = ({"name": name, "type": "image/jpeg", "size": size, "content": memoryview(bytes(content)),
                  "last_modified": 0},)
    return version_7, version_8


def large_png(width: int, height: int) -> bytes:
    """A 1-bit PNG of width x height pixels: a few kilobytes, however many pixels it has."""
    buffer = io.BytesIO()
    Image.new("1", (width, height)).save(buffer, format="PNG")
    return buffer.getvalue()


def test_an_upload_that_arrived_empty_says_why_and_what_to_do():
    for value in upload_values("holiday.jpg", b"", 2_500_000):  # Colab sent the name and size, not the bytes
        with pytest.raises(ValueError) as raised:
            decode_upload(value)
        message = str(raised.value)
        assert "'holiday.jpg'" in message and "2.4 MB" in message
        for advice in EMPTY_UPLOAD_ADVICE:
            assert advice in message
    good = png_bytes(utils.sample_image("coffee")[:32, :32])
    mixed = ({"name": "ok.png", "content": memoryview(good)}, {"name": "big.jpg", "content": memoryview(b"")})
    with pytest.raises(ValueError, match="'big.jpg' arrived empty"):  # no file is returned, not even the good one
        decode_upload(mixed)
    with pytest.raises(ValueError, match="arrived empty"):
        decode_image_bytes(memoryview(b""), "empty.png")


def test_a_too_large_upload_is_refused_clearly():
    with pytest.raises(ValueError, match=r"'huge.jpg' is 21\.0 MB; the explorer takes files up to 20 MB"):
        decode_image_bytes(b"\xff\xd8" + bytes(MAX_UPLOAD_BYTES + 2**20 - 2), "huge.jpg")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # not even PIL's DecompressionBombWarning
        with pytest.raises(ValueError, match=r"'wide.png' is too large \(8000 x 7000 pixels\).* 50 megapixels"):
            decode_image_bytes(large_png(8000, 7000), "wide.png")
        with pytest.raises(ValueError, match=r"'bomb.png' is too large; .* 50 megapixels") as raised:
            decode_image_bytes(large_png(20000, 10000), "bomb.png")  # PIL refuses to open it: the same message
    assert type(raised.value) is ValueError and 8000 * 7000 > MAX_UPLOAD_PIXELS
    assert decode_image_bytes(large_png(300, 200), "small.png").shape == (200, 300, 3)  # under the limits: read
    with pytest.raises(ValueError, match="could not read an image from the uploaded file 'cut.png'"):
        decode_image_bytes(large_png(300, 200)[:60], "cut.png")  # a damaged file: our message, not PIL's error


def _html_text(text: str) -> str:
    """`text` as the status line (HTML) shows it."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def explorer_state(explorer) -> tuple:
    return (list(explorer.images), explorer.image_choice.value, explorer.image_choice.options, explorer.target,
            explorer.picture.copy(), explorer.cache.pixels.copy(), explorer.cache.model_calls)


def assert_same_state(before: tuple, after: tuple) -> None:
    for was, now in zip(before, after, strict=True):
        if isinstance(was, np.ndarray):
            np.testing.assert_array_equal(was, now)
        else:
            assert was == now


@pytest.mark.parametrize("xt", ["torch"], indirect=True)  # the widget logic is framework-free: one backend is enough
def test_explorer_explains_an_empty_or_too_large_upload(xt, model):
    explorer = Explorer(xt, model, images={"chelsea": utils.sample_image("chelsea")})
    before = explorer_state(explorer)
    cases = [(upload_values("holiday.jpg", b"", 1_800_000), EMPTY_UPLOAD_ADVICE + ("'holiday.jpg'",)),
             (upload_values("scan.png", b"\x89PNG" + bytes(MAX_UPLOAD_BYTES), MAX_UPLOAD_BYTES + 4), ("20 MB",)),
             (upload_values("wide.png", large_png(8000, 7000), 9_000), ("too large", "50 megapixels"))]
    for values, expected in cases:
        for value in values:  # ipywidgets 7 and 8
            explorer.status.value = ""
            explorer._on_upload({"new": value})
            for text in expected:
                assert _html_text(text) in explorer.status.value
            assert_same_state(before, explorer_state(explorer))


def file_upload_7():
    """ipywidgets 7.7's FileUpload (Colab's) as the explorer sees it: the button counts the files it sent in
    `_counter`, and the widget's own observer then sets `value`, a dict, from `metadata` and `data`."""
    import ipywidgets
    import traitlets

    class FileUpload7(ipywidgets.FileUpload):
        value = traitlets.Dict()
        _counter = traitlets.Int()
        metadata = traitlets.List()
        data = traitlets.List()

        @traitlets.observe("_counter")
        def _on_counter(self, change):
            self.value = {m["name"]: {"metadata": m, "content": c} for m, c in zip(self.metadata, self.data)}

        def send(self, metadata: list, data: list) -> None:  # what the browser does after a file is chosen
            self.metadata, self.data = metadata, data
            self._counter += len(metadata) or 1

    return FileUpload7


@pytest.mark.parametrize("xt", ["torch"], indirect=True)
def test_explorer_on_ipywidgets_7_says_when_no_file_reached_the_kernel(xt, model, monkeypatch):
    import ipywidgets

    monkeypatch.setattr(ipywidgets, "FileUpload", file_upload_7())
    explorer = Explorer(xt, model, images={"chelsea": utils.sample_image("chelsea")})
    before = explorer_state(explorer)
    explorer.upload.send([], [])  # the button counted a file, nothing arrived: `value` stays {}, no change event
    assert explorer.upload.value == {}
    for text in EMPTY_UPLOAD_ADVICE:
        assert _html_text(text) in explorer.status.value
    assert_same_state(before, explorer_state(explorer))

    explorer.status.value = ""
    explorer.upload.send([{"name": "big.jpg", "size": 3_000_000}], [b""])  # the name arrived, the bytes did not
    assert "'big.jpg' arrived empty (its size was given as 2.9 MB)" in explorer.status.value
    assert_same_state(before, explorer_state(explorer))

    data = png_bytes(utils.sample_image("coffee"))
    explorer.upload.send([{"name": "cup.png", "size": len(data)}], [data])  # a small file works as before
    assert explorer.image_choice.value == "cup.png" and "espresso" in explorer.status.value
    assert "arrived empty" not in explorer.status.value


def test_render_draws_overlays_boxes_and_signed_maps():
    pixels = np.zeros((32, 32, 3), np.uint8)
    heat = np.zeros((32, 32), np.float32)
    heat[8:16, 4:20] = 1
    picture, box = render(pixels, heat, "grad_cam", alpha=0.5, threshold=0.5)
    assert tuple(box) == (4, 8, 20, 16)
    assert tuple(picture[8, 10]) == (0, 255, 0) and tuple(picture[12, 10]) != (0, 255, 0)
    assert render(pixels, heat, "grad_cam", threshold=None)[1] is None
    signed = np.full((32, 32, 3), 0.5, np.float32)
    picture, box = render(pixels, signed, "guided_backprop", threshold=None)
    assert box is None and (picture == 128).all()  # zero gradient is mid-grey
    signed[8:16, 4:20] = (1.0, 0.5, 0.0)  # +max in red, -max in blue
    picture, box = render(pixels, signed, "guided_backprop", threshold=0.5)
    assert tuple(box) == (4, 8, 20, 16) and tuple(picture[12, 10]) == (255, 128, 0)


def test_explorer_and_command_line_draw_a_map_the_same_way():
    """One display function (utils.plotting.render_map): pixel-level maps clipped at the 99th percentile,
    signed maps around mid-grey, a box on every map."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
    heavy_tailed = (rng.random((48, 40)) ** 8).astype(np.float32)
    for method, heat in [("saliency", heavy_tailed), ("grad_cam", heavy_tailed),
                         ("guided_grad_cam", rng.random((48, 40, 3)).astype(np.float32))]:
        explorer_picture, explorer_box = render(pixels, heat, method, alpha=0.4, threshold=0.3)
        cli_picture, cli_box = cli.render(pixels, heat, contract.method(method).cli_name, 0.3, 0.4)
        np.testing.assert_array_equal(explorer_picture, cli_picture)
        assert tuple(explorer_box) == tuple(cli_box)
    clipped, _ = render(pixels, heavy_tailed, "saliency", alpha=1.0, threshold=None)
    unclipped, _ = render(pixels, heavy_tailed, "grad_cam", alpha=1.0, threshold=None)
    assert clipped.mean() != unclipped.mean(), "saliency is clipped at its 99th percentile, Grad-CAM is not"
