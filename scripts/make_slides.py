"""Export the notebooks to reveal.js slide decks for a seminar, rendered offline: `make slides`.

    python scripts/make_slides.py                       # every notebook -> build/slides/
    python scripts/make_slides.py notebooks/03_grad_cam/03_grad_cam_pytorch.ipynb --out /tmp/slides

The notebook files are never written. Each is read, given slide breaks in memory, and exported with
nbconvert's SlidesExporter:

* a new slide at the title cell and at every `##` heading, a sub-slide (reveal.js's vertical
  continuation, "down arrow") at every `###` heading and wherever the running height of a slide
  would pass what fits on the 960 x 700 reveal.js canvas; a markdown cell taller than a slide is
  split at blank lines (never inside a formula, a code block or a <details> block);
* the Colab badge line and the Colab-only setup cell are left out (nothing to show in a seminar);
  so are stderr streams (framework log lines) and the `# NBVAL_...` markers in code;
* code cells are not fragments: the speaker shows code and result together, as the reader sees them;
* cells already carrying metadata.slideshow keep the author's choice;
* each deck ends with a slide holding its notebook's Korean summary, the `## NN` section of
  docs/korean/summaries.md (a notebook without a section gets none), and the full run adds a glossary
  deck, korean/glossary.slides.html, made from the tables of docs/korean/glossary.md.

reveal.js comes from the `sphinx-revealjs` package (reveal.js 5, MIT) and require.js, jQuery and
MathJax 2 from `nbclassic` (BSD); both are copied once into <out>/_static/, so the folder is
self-contained: open <out>/index.html in a browser, no network needed, or copy the folder to a laptop.
"""
from __future__ import annotations

import argparse
import base64
import copy
import html
import math
import re
import shutil
import struct
import sys
import unicodedata
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "slides"
KOREAN = ROOT / "docs" / "korean"          # the seminar kit: summaries.md and glossary.md

# The canvas nbconvert's reveal template uses (960 x 700) and the font sizes it sets (20 px text, 19 px code).
CANVAS_HEIGHT = 640        # px available for content, margins taken off
TEXT_LINE = 30             # px per rendered line of markdown
CODE_LINE = 25             # px per line of code or text output
HEADING = 70               # px for a ## or ### heading
CELL_GAP = 20              # px of padding per cell
TEXT_CHARS = 85            # characters per rendered markdown line at 20 px on 960 px
IMAGE_WIDTH = 900          # px an image may take before it is scaled down
IMAGE_MAX_HEIGHT = 560     # px; taller figures are scaled down by the CSS below
EXTRA_CSS = f"""<style type="text/css">
.reveal .jp-OutputArea-output img {{ max-height: {IMAGE_MAX_HEIGHT}px; width: auto; }}
.reveal details > summary {{ cursor: pointer; color: #2a76dd; }}
</style>
"""
DISPLAY_MATH = 60          # px per $$ ... $$ block
OUTPUT_LINES_SHOWN = 18    # a longer text output scrolls (reveal_scroll) and counts as this many lines
SKIP_CODE = re.compile(r'["\']google\.colab["\']\s+in\s+sys\.modules')
BADGE = re.compile(r"^\s*\[!\[Open In Colab\]\([^)]*\)\]\([^)]*\)\s*$")
LIST_ITEM = re.compile(r"^(?:[-*+]|\d+[.)])\s")
HEADING_LINE = re.compile(r"^#{1,3} ")
NBVAL_MARKER = re.compile(r"^\s*#\s*NBVAL_[A-Z_]+\s*$")
SECTION = re.compile(r"^## ", re.MULTILINE)
NUMBERED = re.compile(r"## (\d{2})\b")
TABLE_ROW = re.compile(r"^\s*\|")


# ------------------------------------------------------------------------------------------ heights

def png_size(data: str) -> tuple[int, int] | None:
    """(width, height) of a base64 PNG from its header, without decoding the whole image."""
    try:
        head = base64.b64decode(data.replace("\n", "")[:48])
    except ValueError:
        return None
    if head[:8] != b"\x89PNG\r\n\x1a\n":
        return None
    return struct.unpack(">II", head[16:24])


def text_width(text: str) -> int:
    """Rendered width in Latin characters: a Hangul or other wide character takes about two."""
    return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in text)


def image_height(width: int, height: int) -> float:
    return height * min(1.0, IMAGE_WIDTH / max(width, 1))


def markdown_height(text: str) -> float:
    """Estimated px; a <details> block counts as its closed summary line, as it first appears."""
    height, in_math, details = float(CELL_GAP), False, 0
    for line in text.splitlines():
        stripped = line.strip()
        opened = details > 0
        details += stripped.count("<details") - stripped.count("</details>")
        if opened or (details > 0 and "<summary" not in stripped):
            continue
        if stripped.startswith("$$"):
            if not in_math:
                height += DISPLAY_MATH
            in_math = not in_math if stripped.count("$$") == 1 else in_math
            continue
        if in_math:
            continue
        if re.match(r"#{1,3} ", stripped):
            height += HEADING
        elif stripped:
            height += TEXT_LINE * math.ceil(text_width(stripped) / TEXT_CHARS)
        else:
            height += TEXT_LINE / 2
    return height


def output_height(output: dict) -> float:
    if output.get("output_type") == "stream":
        return CODE_LINE * min(OUTPUT_LINES_SHOWN, "".join(output.get("text", "")).count("\n") + 1)
    data = output.get("data", {})
    if "image/png" in data:
        size = png_size(data["image/png"])
        return min(IMAGE_MAX_HEIGHT, image_height(*size)) if size else IMAGE_MAX_HEIGHT
    if "text/html" in data:
        return CODE_LINE * min(OUTPUT_LINES_SHOWN, "".join(data["text/html"]).count("<tr") + 2)
    if "text/plain" in data:
        return CODE_LINE * min(OUTPUT_LINES_SHOWN, "".join(data["text/plain"]).count("\n") + 1)
    if output.get("output_type") == "error":
        return CODE_LINE * OUTPUT_LINES_SHOWN
    return 0.0


def cell_height(cell: dict) -> float:
    if cell["cell_type"] == "markdown":
        return markdown_height(cell["source"])
    if cell["cell_type"] == "code":
        return CELL_GAP + CODE_LINE * len(cell["source"].splitlines()) + sum(map(output_height, cell.get("outputs", [])))
    return CELL_GAP + TEXT_LINE * len(cell["source"].splitlines())


# ------------------------------------------------------------------------------------------ the breaks

def split_markdown(text: str, budget: float = CANVAS_HEIGHT) -> list[str]:
    """Split markdown taller than a slide at blank lines outside formulas, code and <details> blocks."""
    if markdown_height(text) <= budget:
        return [text]
    blocks, current, in_math, in_fence, details = [], [], False, False, 0
    for line in text.splitlines(keepends=True):
        stripped = line.strip()
        outside = not (in_math or in_fence or details > 0)
        # a block may start at a list item or a heading; it ends at a blank line
        if outside and current and current[-1].strip() and LIST_ITEM.match(line):
            blocks.append("".join(current))
            current = []
        current.append(line)
        if stripped.startswith("```"):
            in_fence = not in_fence
        if stripped.count("$$") % 2 == 1:
            in_math = not in_math
        details += stripped.count("<details") - stripped.count("</details>")
        if not stripped and not (in_math or in_fence or details > 0):
            blocks.append("".join(current))
            current = []
    if current:
        blocks.append("".join(current))
    chunks, chunk = [], ""
    for block in blocks:
        heading_only = all(HEADING_LINE.match(l) or not l.strip() for l in chunk.splitlines())
        if chunk.strip() and not heading_only and markdown_height(chunk + block) > budget:
            chunks.append(chunk)
            chunk = ""
        chunk += block
    if chunk.strip():
        chunks.append(chunk)
    return [c.rstrip("\n") for c in chunks] or [text]


def split_at_headings(text: str) -> list[str]:
    """Markdown cut before every #, ## or ### heading that is not its first line (outside code blocks)."""
    pieces, current, in_fence = [], [], False
    for line in text.splitlines(keepends=True):
        if line.strip().startswith("```"):
            in_fence = not in_fence
        if not in_fence and HEADING_LINE.match(line) and "".join(current).strip():
            pieces.append("".join(current).rstrip("\n"))
            current = []
        current.append(line)
    pieces.append("".join(current).rstrip("\n"))
    return [p for p in pieces if p.strip()] or [text]


DETAILS = re.compile(r"<details>\s*(<summary>.*?</summary>)(.*?)</details>", re.DOTALL)


def details_as_html(match: re.Match) -> str:
    """A <details> block as one raw HTML block (no blank line), so the exporter keeps it closed.

    Jupyter renders markdown between <details> tags; nbconvert's markdown ends the HTML block at the
    first blank line and would show the solutions open. Math is left as $...$ for MathJax.
    """
    from nbconvert.filters.markdown_mistune import markdown2html_mistune
    inner = markdown2html_mistune(match.group(2).strip("\n"))
    inner = "\n".join(line for line in inner.splitlines() if line.strip())
    return f"<details>{match.group(1)}\n{inner}\n</details>"


def prepare(nb: nbformat.NotebookNode, summary: str | None = None) -> nbformat.NotebookNode:
    """A copy of `nb` with metadata.slideshow.slide_type set on every cell and seminar clutter removed.

    `summary`, markdown (a notebook's section of docs/korean/summaries.md), becomes the last slide.
    """
    nb = copy.deepcopy(nb)
    if summary:
        nb.cells.append(summary_cell(summary))
    cells = []
    for index, cell in enumerate(nb.cells):
        if cell.cell_type == "markdown":
            if index == 0:
                cell.source = "\n".join(line for line in cell.source.splitlines() if not BADGE.match(line)).lstrip("\n")
            cell.source = DETAILS.sub(details_as_html, cell.source)
            pieces = [chunk for piece in split_at_headings(cell.source) for chunk in split_markdown(piece)]
            for number, piece in enumerate(pieces):
                part = copy.deepcopy(cell)
                part.source = piece
                if number:
                    part["id"] = f"{cell.get('id', 'cell')}-{number}"[:64]
                    part.metadata = nbformat.from_dict({})  # a heading starts a slide, else the height decides
                cells.append(part)
        elif cell.cell_type == "code":
            if SKIP_CODE.search(cell.source):
                cell.metadata.setdefault("slideshow", {"slide_type": "skip"})
            cell.source = "\n".join(line for line in cell.source.splitlines() if not NBVAL_MARKER.match(line))
            cell.outputs = [o for o in cell.get("outputs", []) if not (o.get("output_type") == "stream"
                                                                          and o.get("name") == "stderr")]
            cells.append(cell)
        else:
            cells.append(cell)
    nb.cells = cells

    used = CANVAS_HEIGHT  # forces a slide at the first shown cell
    for cell in nb.cells:
        chosen = cell.metadata.get("slideshow", {}).get("slide_type")
        if chosen in ("skip", "notes"):
            continue
        height = cell_height(cell)
        first_line = cell.source.lstrip().split("\n", 1)[0] if cell.cell_type == "markdown" else ""
        if chosen:
            kind = chosen
        elif first_line.startswith(("# ", "## ")):
            kind = "slide"
        elif first_line.startswith("### "):
            kind = "subslide"
        elif used + height > CANVAS_HEIGHT and used > 0:
            kind = "subslide"  # the section goes on below: reveal.js's vertical continuation
        else:
            kind = "-"
        if kind in ("slide", "subslide"):
            used = 0.0
        used += height
        cell.metadata["slideshow"] = {"slide_type": kind}
    return nb


# ------------------------------------------------------------------------------------------ the Korean kit

def sections(text: str) -> list[str]:
    """Markdown cut before every `## ` heading (the text before the first one is the first piece)."""
    starts = [0] + [m.start() for m in SECTION.finditer(text) if m.start() > 0]
    return [text[a:b].strip() for a, b in zip(starts, starts[1:] + [len(text)]) if text[a:b].strip()]


def korean_summaries(path: Path = KOREAN / "summaries.md") -> dict[str, str]:
    """{"03": that notebook's section, heading included} from every `## NN ...` section of summaries.md."""
    if not path.exists():
        return {}
    found = {}
    for section in sections(path.read_text(encoding="utf-8")):
        number = NUMBERED.match(section)
        if number:
            found[number.group(1)] = section
    return found


def notebook_number(notebook: Path) -> str | None:
    match = re.match(r"(\d{2})_", notebook.stem)
    return match.group(1) if match else None


def summary_cell(summary: str) -> nbformat.NotebookNode:
    """The summary as a markdown cell whose `##` heading says what it is: `## 한국어 요약 · 03 · Grad-CAM`.

    Its first `###` heading becomes bold text, so that the title shares a slide with the first part.
    """
    source = re.sub(r"^## ", "## 한국어 요약 · ", summary.strip(), count=1)
    source = re.sub(r"^### (.+)$", r"**\1**", source, count=1, flags=re.MULTILINE)
    cell = nbformat.v4.new_markdown_cell(source)
    cell["id"] = "korean-summary"
    return cell


def split_table(piece: str, budget: float = CANVAS_HEIGHT) -> list[str]:
    """A section whose table is taller than a slide, as chunks that each repeat the table's header rows."""
    lines = piece.splitlines()
    rows = [i for i, line in enumerate(lines) if TABLE_ROW.match(line)]
    if len(rows) < 3 or markdown_height(piece) <= budget:
        return [piece]
    before, header = "\n".join(lines[:rows[0]]), lines[rows[0]:rows[0] + 2]
    body, after = lines[rows[0] + 2:rows[-1] + 1], "\n".join(lines[rows[-1] + 1:]).strip()
    chunks, current, lead = [], [], before
    for row in body:
        if current and markdown_height("\n".join([lead, *header, *current, row])) > budget:
            chunks.append("\n".join([lead, *header, *current]).strip())
            current, lead = [], ""
        current.append(row)
    chunks.append("\n".join([lead, *header, *current]).strip())
    if after:
        chunks.append(after)
    return chunks


def glossary_notebook(path: Path = KOREAN / "glossary.md") -> nbformat.NotebookNode:
    """The glossary as a notebook in memory: a slide per `##` section, its table continued on sub-slides."""
    cells = []
    for section in sections(path.read_text(encoding="utf-8")):
        for number, chunk in enumerate(split_table(section)):
            cell = nbformat.v4.new_markdown_cell(chunk)
            cell["id"] = f"glossary-{len(cells)}"
            if number:
                cell.metadata["slideshow"] = {"slide_type": "subslide"}
            cells.append(cell)
    return nbformat.v4.new_notebook(cells=cells, metadata={"language_info": {"name": "markdown"}})


# ------------------------------------------------------------------------------------------ assets and export

def asset_sources() -> dict[str, Path]:
    """Where the installed packages keep the files the decks load: {name under _static: source}."""
    try:
        import sphinx_revealjs
        import nbclassic
    except ImportError as error:
        raise SystemExit(f"make_slides: {error.name} is missing; install the slides extra: "
                         'pip install -e ".[slides]" (sphinx-revealjs ships reveal.js, nbclassic require.js and MathJax)')
    reveal = Path(sphinx_revealjs.__file__).parent / "_static" / "revealjs"
    components = Path(nbclassic.__file__).parent / "static" / "components"
    return {
        "reveal.js/dist": reveal / "dist",
        "reveal.js/plugin/notes": reveal / "plugin" / "notes",
        "reveal.js/LICENSE": reveal / "LICENSE",
        "require.js": components / "requirejs" / "require.js",
        "jquery.min.js": components / "jquery" / "jquery.min.js",
        "MathJax": components / "MathJax",
    }


def copy_assets(out: Path) -> Path:
    static = out / "_static"
    for name, source in asset_sources().items():
        target = static / name
        if target.exists():
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        if source.is_dir():
            shutil.copytree(source, target)
        else:
            shutil.copy2(source, target)
    stub = static / "mermaid-stub.mjs"  # the template imports mermaid; no notebook uses it, and no CDN is reached
    if not stub.exists():
        stub.write_text("export default { initialize() {} };\n")
    return static


def exporter_for(static_url: str):
    from nbconvert import SlidesExporter
    exporter = SlidesExporter()
    exporter.reveal_url_prefix = f"{static_url}/reveal.js"
    exporter.require_js_url = f"{static_url}/require.js"
    exporter.jquery_url = f"{static_url}/jquery.min.js"
    exporter.mathjax_url = f"{static_url}/MathJax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe"
    exporter.mermaid_js_url = f"{static_url}/mermaid-stub.mjs"
    exporter.reveal_theme = "simple"
    exporter.reveal_transition = "fade"
    exporter.reveal_number = "c/t"
    exporter.reveal_scroll = True          # a slide that still overflows scrolls instead of being cut
    exporter.exclude_input_prompt = True   # no In [3]: columns on a projector
    exporter.exclude_output_prompt = True
    exporter.embed_images = True           # markdown images travel inside the HTML
    return exporter


def export(notebook: Path, out: Path, root: Path = ROOT, summaries: dict[str, str] | None = None) -> Path:
    """Write one deck to out/<topic>/<name>.slides.html and return its path.

    `summaries` ({"03": markdown}; default: docs/korean/summaries.md) gives the deck its last slide.
    """
    nb = nbformat.read(notebook, as_version=4)
    summaries = korean_summaries() if summaries is None else summaries
    try:
        relative = notebook.resolve().relative_to((root / "notebooks").resolve())
    except ValueError:
        relative = Path(notebook.parent.name) / notebook.name
    target = out / relative.with_suffix(".slides.html")
    target.parent.mkdir(parents=True, exist_ok=True)
    static_url = Path("../" * (len(relative.parts) - 1) + "_static").as_posix()
    exporter = exporter_for(static_url)
    body, _ = exporter.from_notebook_node(prepare(nb, summaries.get(notebook_number(notebook))), resources={
        "metadata": {"name": notebook.stem, "path": str(notebook.parent)}})
    target.write_text(body.replace("</head>", EXTRA_CSS + "</head>", 1), encoding="utf-8")
    return target


def export_glossary(out: Path, glossary: Path = KOREAN / "glossary.md") -> Path:
    """Write the glossary deck to out/korean/glossary.slides.html and return its path."""
    target = out / "korean" / "glossary.slides.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    body, _ = exporter_for("../_static").from_notebook_node(prepare(glossary_notebook(glossary)), resources={
        "metadata": {"name": "glossary", "path": str(glossary.parent)}})
    target.write_text(body.replace("</head>", EXTRA_CSS + "</head>", 1), encoding="utf-8")
    return target


def write_index(out: Path, decks: list[Path]) -> Path:
    items = "\n".join(f'<li><a href="{d.relative_to(out).as_posix()}">{html.escape(d.name.removesuffix(".slides.html"))}</a></li>'
                      for d in sorted(decks))
    index = out / "index.html"
    index.write_text(f"<!DOCTYPE html>\n<html lang=\"en\"><meta charset=\"utf-8\"><title>Slides</title>\n"
                     f"<h1>Seeing what a CNN looks at: slides</h1>\n<ul>\n{items}\n</ul>\n"
                     "<p>Arrows or space to move; <kbd>s</kbd> opens the speaker view; <kbd>Esc</kbd> the overview.</p>\n"
                     "</html>\n", encoding="utf-8")
    return index


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("notebooks", nargs="*", type=Path, help="default: every notebook under notebooks/")
    parser.add_argument("--out", type=Path, default=OUT, help=f"the build folder (default: {OUT.relative_to(ROOT)})")
    args = parser.parse_args(argv)
    notebooks = args.notebooks or sorted(p for p in (ROOT / "notebooks").glob("*/*.ipynb")
                                         if ".ipynb_checkpoints" not in p.parts)
    if not notebooks:
        print("make_slides: no notebooks found", file=sys.stderr)
        return 1
    copy_assets(args.out)
    decks, summaries = [], korean_summaries()
    for notebook in notebooks:
        deck = export(notebook, args.out, summaries=summaries)
        decks.append(deck)
        print(deck)
    if not args.notebooks:
        if (KOREAN / "glossary.md").exists():
            decks.append(export_glossary(args.out))
            print(decks[-1])
        print(write_index(args.out, decks))
    return 0


if __name__ == "__main__":
    sys.exit(main())
