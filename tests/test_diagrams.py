"""The course's diagrams: scripts/make_diagrams.py draws them, figures/ stores them, notebooks show them."""
import importlib.util
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from utils import diagrams

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "make_diagrams.py"
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("**/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
SHOW = re.compile(r"""show_diagram\(\s*(?:name\s*=\s*)?["']([^"']+)["']""")


def load_script():
    spec = importlib.util.spec_from_file_location("make_diagrams", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


make_diagrams = load_script()
NAMES = sorted(make_diagrams.DIAGRAMS)


def names_used_in_notebooks() -> dict[str, list[str]]:
    used = {}
    for path in NOTEBOOKS:
        for cell in json.loads(path.read_text())["cells"]:
            text = "".join(cell["source"]) if isinstance(cell["source"], list) else cell["source"]
            for name in SHOW.findall(text):
                used.setdefault(name, []).append(path.name)
    return used


def test_the_script_defines_the_course_diagrams():
    assert {"flatten_vs_gap", "cam_pipeline", "grad_cam_pipeline", "relu_backward_rules",
            "guided_grad_cam", "cam_family"} <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_every_diagram_is_stored_as_a_sensible_png(name):
    path = diagrams.diagram_path(name)
    assert path == ROOT / "figures" / f"{name}.png"
    with Image.open(path) as image:
        image.verify()
    with Image.open(path) as image:
        assert image.format == "PNG"
        width, height = image.size
        # drawn at about 150 dpi, 8-12 inches wide: sharp at 720 px and on slides, not huge
        assert 1000 <= width <= 2000 and 400 <= height <= 1600, image.size
        corner = image.convert("RGB").getpixel((1, 1))
        assert corner == (255, 255, 255), f"background {corner} is not white"


def test_every_png_in_figures_is_drawn_by_the_script():
    stored = {p.stem for p in (ROOT / "figures").glob("*.png")}
    assert stored <= set(NAMES), f"{sorted(stored - set(NAMES))} are not drawn by {SCRIPT.name}"


def test_every_diagram_a_notebook_shows_exists():
    missing = {name: where for name, where in names_used_in_notebooks().items() if name not in NAMES}
    assert not missing, f"notebooks show diagrams that scripts/make_diagrams.py does not draw: {missing}"


def test_an_unknown_name_lists_the_diagrams():
    with pytest.raises(ValueError) as error:
        diagrams.show_diagram("no_such_diagram")
    message = str(error.value)
    assert "no_such_diagram" in message
    assert all(name in message for name in NAMES)
    with pytest.raises(ValueError, match="grad_cam_pipeline"):
        make_diagrams.write("no_such_diagram")


def test_show_diagram_displays_the_png():
    image = diagrams.show_diagram("cam_pipeline", width=500)
    assert image.width == 500
    assert image.data == diagrams.diagram_path("cam_pipeline").read_bytes()


def test_the_script_draws_every_diagram_into_a_folder(tmp_path):
    assert make_diagrams.main(["--out", str(tmp_path)]) == 0
    for name in NAMES:
        with Image.open(tmp_path / f"{name}.png") as fresh, Image.open(diagrams.diagram_path(name)) as stored:
            # a stored figure of another size was drawn by an older script: run it again
            assert fresh.size == stored.size, (name, "figures/ is stale: python scripts/make_diagrams.py")


def test_the_command_line_draws_one_diagram(tmp_path):
    result = subprocess.run([sys.executable, str(SCRIPT), "--only", "relu_backward_rules", "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["relu_backward_rules.png"]


def test_the_relu_example_follows_the_three_rules():
    x, g = make_diagrams.RELU_X, make_diagrams.RELU_G
    assert (x != 0).all() and (g != 0).all()  # no ties: every cell is clearly kept or zeroed
    kept = {name: keep for name, _, keep in make_diagrams.relu_rules(x, g)}
    assert (kept["backpropagation"] == (x > 0)).all()
    assert (kept["deconvnet"] == (g > 0)).all()
    assert (kept["guided backpropagation"] == (kept["backpropagation"] & kept["deconvnet"])).all()
    # the example shows every case: each sign of x with each sign of g
    for sx in (1, -1):
        for sg in (1, -1):
            assert ((sx * x > 0) & (sg * g > 0)).any()


def test_the_cam_family_example_follows_the_definitions():
    A, g = make_diagrams.FAMILY_A, make_diagrams.FAMILY_G
    weights = make_diagrams.family_weights(A, g)
    assert weights["Grad-CAM"] == pytest.approx(sum(g.ravel()) / g.size)
    # a_ij = g^2 / (2 g^2 + sum(A) g^3) = 1 / (2 + sum(A) g) where g != 0
    assert weights["Grad-CAM++"] == pytest.approx(sum(v / (2 + A.sum() * v) for v in g.ravel() if v > 0))
    assert (weights["LayerCAM"] == g.clip(min=0)).all()
    assert (weights["HiResCAM"] == g).all()
