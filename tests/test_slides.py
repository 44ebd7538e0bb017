"""Seminar slides: scripts/make_slides.py gives slide breaks in memory, and a deck renders offline in headless Chromium."""
import importlib.util
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import nbformat
import pytest
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("make_slides", ROOT / "scripts" / "make_slides.py")
make_slides = importlib.util.module_from_spec(spec)
spec.loader.exec_module(make_slides)

NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)
CHROMIUM = next((shutil.which(name) for name in ("chromium", "chromium-browser", "google-chrome") if shutil.which(name)), None)


@pytest.mark.parametrize("path", NOTEBOOKS[:2], ids=lambda p: p.name)
def test_slide_breaks_in_memory(path):
    before = path.read_bytes()
    nb = nbformat.read(path, as_version=4)
    slides = make_slides.prepare(nb)
    assert path.read_bytes() == before and "slideshow" not in json.dumps([c.metadata for c in nb.cells]), \
        "the notebook (file and node) is left alone"
    kinds = [c.metadata["slideshow"]["slide_type"] for c in slides.cells]
    assert set(kinds) <= {"slide", "subslide", "-", "fragment", "skip", "notes"}
    assert kinds[0] == "slide"
    shown = [c for c in slides.cells if c.metadata["slideshow"]["slide_type"] != "skip"]
    sections = [c for c in shown if c.cell_type == "markdown" and c.source.startswith("## ")]
    assert len(sections) >= 4 and all(c.metadata["slideshow"]["slide_type"] == "slide" for c in sections)
    setup = next(c for c in slides.cells if c.cell_type == "code")
    assert "google.colab" in setup.source and setup.metadata["slideshow"]["slide_type"] == "skip"
    assert "colab-badge" not in slides.cells[0].source
    assert not any("NBVAL_" in c.source for c in slides.cells if c.cell_type == "code")
    # no slide taller than the canvas unless one cell alone is
    height = 0.0
    for cell in shown:
        if cell.metadata["slideshow"]["slide_type"] in ("slide", "subslide"):
            height = 0.0
        height += make_slides.cell_height(cell)
        assert height <= make_slides.CANVAS_HEIGHT or cell.metadata["slideshow"]["slide_type"] in ("slide", "subslide")


def test_a_long_markdown_cell_is_split_outside_formulas_and_details():
    paragraph = "A sentence that takes a good part of a rendered line on the slide. " * 3
    text = "\n\n".join(["## Heading", *[paragraph] * 12, "$$\na = b\n\nc = d\n$$",
                        "<details><summary>S</summary>\n\n1. x\n\n2. y\n</details>"])
    pieces = make_slides.split_markdown(text)
    assert len(pieces) > 1 and "".join(pieces).split() == text.split()
    assert pieces[0].startswith("## Heading\n\n" + paragraph[:20])
    assert all(p.count("$$") % 2 == 0 and p.count("<details") == p.count("</details>") for p in pieces)


def run_chromium(args: list[str], profile: Path) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                           "--hide-scrollbars", "--no-first-run", f"--user-data-dir={profile}",
                           "--window-size=1280,720", "--virtual-time-budget=8000", *args],
                          capture_output=True, text=True, timeout=60)


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's `chromium`; "
                                             "apt-get install chromium), so the slide deck cannot be rendered")
def test_a_deck_renders_offline_in_headless_chromium(tmp_path):
    notebook = NOTEBOOKS[0]
    deck = make_slides.export(notebook, tmp_path / "slides")
    make_slides.copy_assets(tmp_path / "slides")
    html = deck.read_text()
    assert "unpkg.com" not in html and "cdnjs" not in html, "offline: no CDN"
    assert 'data-slide-type="slide"' in html or "<section" in html

    # reveal.js started (it marks its div "ready" and adds the slide number) from the local copy alone
    dom = run_chromium(["--dump-dom", deck.as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert re.search(r'<div class="reveal\b[^"]*\bready\b', dom.stdout), \
        "reveal.js did not start: is reveal_url_prefix pointing at the local copy?"
    assert "slide-number" in dom.stdout

    png = tmp_path / "slide.png"
    shot = run_chromium([f"--screenshot={png}", deck.as_uri()], tmp_path / "profile-shot")
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    assert pixels.shape[:2] == (720, 1280)
    background = np.median(pixels.reshape(-1, 3), axis=0)
    ink = np.abs(pixels - background).sum(axis=2) > 60
    assert ink.mean() > 0.01, f"only {ink.mean():.2%} of the pixels differ from the background"
    assert ink.mean() < 0.6, "mostly not background: a blank or error page?"
    # the title (an h1 at the top left of the centred slide) is dark ink on the left half of the upper half
    title = ink[100:360, 100:700]
    assert title.mean() > 0.03, f"no title text where the first slide's heading should be ({title.mean():.2%})"


# ------------------------------------------------------------------------------------------ the Korean kit

SUMMARIES = make_slides.korean_summaries()
GLOSSARY = ROOT / "docs" / "korean" / "glossary.md"


def glossary_rows(text: str) -> list[list[str]]:
    """The term rows of every table in the glossary (header and separator rows left out)."""
    rows = [[cell.strip() for cell in line.strip().strip("|").split("|")]
            for line in text.splitlines() if line.lstrip().startswith("|")]
    return [row for row in rows if row[0] != "English" and not set("".join(row)) <= set("-: ")]


def test_every_notebook_has_a_korean_summary():
    numbers = {make_slides.notebook_number(p) for p in NOTEBOOKS}
    assert numbers <= set(SUMMARIES), f"docs/korean/summaries.md has no section for {sorted(numbers - set(SUMMARIES))}"
    for number, section in SUMMARIES.items():
        assert section.startswith(f"## {number} ") and "### 핵심 아이디어" in section, number


@pytest.mark.parametrize("path", NOTEBOOKS[:2], ids=lambda p: p.name)
def test_a_deck_ends_with_its_korean_summary(path):
    nb = nbformat.read(path, as_version=4)
    number = make_slides.notebook_number(path)
    assert not any("한국어 요약" in c.source for c in make_slides.prepare(nb).cells), "no summary unless given one"
    slides = make_slides.prepare(nb, SUMMARIES[number])
    shown = [c for c in slides.cells if c.metadata["slideshow"]["slide_type"] != "skip"]
    start = max(i for i, c in enumerate(shown) if c.source.startswith(f"## 한국어 요약 · {number} "))
    summary = shown[start:]
    assert summary[0].metadata["slideshow"]["slide_type"] == "slide" and summary[0].cell_type == "markdown"
    assert all(c.metadata["slideshow"]["slide_type"] in ("subslide", "-") for c in summary[1:])
    text = "\n".join(c.source for c in summary)
    bullets = [line for line in SUMMARIES[number].splitlines() if line.startswith("- ")]
    assert bullets and all(line in text for line in bullets), "every bullet of the section is on the slides"
    height = 0.0
    for cell in summary:
        if cell.metadata["slideshow"]["slide_type"] in ("slide", "subslide"):
            height = 0.0
        height += make_slides.cell_height(cell)
        assert height <= make_slides.CANVAS_HEIGHT


def test_a_deck_made_in_memory_carries_the_korean_summary(tmp_path):
    notebook = NOTEBOOKS[0]
    number = make_slides.notebook_number(notebook)
    html = make_slides.export(notebook, tmp_path / "with", summaries=SUMMARIES).read_text()
    assert f"한국어 요약 · {number}" in html and "핵심 아이디어" in html and "측정한 것" in html
    without = make_slides.export(notebook, tmp_path / "without", summaries={}).read_text()
    assert "한국어 요약" not in without, "a notebook without a section gets no summary slide"


def test_the_glossary_covers_the_course():
    rows = glossary_rows(GLOSSARY.read_text(encoding="utf-8"))
    assert len(rows) >= 50 and all(len(row) == 3 and all(row) for row in rows), "English | 한국어 | 뜻, all filled"
    english = [row[0] for row in rows]
    assert len(set(english)) == len(english), "each term once"
    for term in ("global average pooling", "saliency map", "receptive field", "logit", "softmax", "ReLU6",
                 "pointing game", "deletion curve", "insertion curve", "AUC", "IoU", "rank correlation",
                 "bootstrap confidence interval", "data randomisation test", "smooth random baseline",
                 "completeness", "shattered gradients", "counterfactual", "shortcut learning", "cue",
                 "normalisation mismatch", "in-place ReLU", "nested model", "Grad-CAM", "SmoothGrad"):
        assert any(term in e for e in english), term


def test_the_glossary_deck_keeps_every_row_and_fits_its_slides():
    slides = make_slides.prepare(make_slides.glossary_notebook(GLOSSARY))
    kinds = [c.metadata["slideshow"]["slide_type"] for c in slides.cells]
    assert kinds[0] == "slide" and set(kinds) <= {"slide", "subslide", "-"}
    sections = [c for c in slides.cells if c.source.startswith("## ")]
    assert len(sections) >= 5 and all(c.metadata["slideshow"]["slide_type"] == "slide" for c in sections)
    assert glossary_rows("\n".join(c.source for c in slides.cells)) == glossary_rows(GLOSSARY.read_text(encoding="utf-8"))
    for cell in slides.cells:
        if "|" in cell.source:
            assert "| English | 한국어 | 뜻 |" in cell.source, "a continued table repeats its header"
        assert make_slides.cell_height(cell) <= make_slides.CANVAS_HEIGHT


@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed, so the glossary deck cannot be rendered")
def test_the_glossary_deck_renders_offline_in_headless_chromium(tmp_path):
    deck = make_slides.export_glossary(tmp_path / "slides", GLOSSARY)
    make_slides.copy_assets(tmp_path / "slides")
    html = deck.read_text()
    assert "unpkg.com" not in html and "cdnjs" not in html and "전역 평균 풀링" in html
    dom = run_chromium(["--dump-dom", deck.as_uri()], tmp_path / "profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert re.search(r'<div class="reveal\b[^"]*\bready\b', dom.stdout) and "slide-number" in dom.stdout
    assert "<table" in dom.stdout
    png = tmp_path / "slide.png"
    shot = run_chromium([f"--screenshot={png}", deck.as_uri() + "#/1"], tmp_path / "profile-shot")
    assert shot.returncode == 0 and png.exists(), shot.stderr[-2000:]
    pixels = np.asarray(Image.open(png).convert("RGB"), dtype=np.int16)
    ink = np.abs(pixels - np.median(pixels.reshape(-1, 3), axis=0)).sum(axis=2) > 60
    assert 0.01 < ink.mean() < 0.6, f"{ink.mean():.2%} of the pixels differ from the background"
