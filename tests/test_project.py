"""The project as a whole: dependency lists, import hygiene and order, notebook conventions."""
import json
import re
import subprocess
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli
    import tomli as tomllib
from pathlib import Path

import pytest
import yaml

import utils

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted(p for p in (ROOT / "notebooks").glob("*/*.ipynb") if ".ipynb_checkpoints" not in p.parts)


def run_python(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=300)


def test_environment_yml_lists_the_pyproject_dependencies():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = set(project["dependencies"])
    for extra in extras["all"][0].split("[")[1].rstrip("]").split(","):
        wanted |= set(extras[extra])
    pip_part = next(d["pip"] for d in yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"]
                    if isinstance(d, dict))
    assert set(pip_part) - {"-e ."} == wanted
    assert "-e ." in pip_part


def test_import_utils_loads_no_framework():
    result = run_python("import sys, utils; import utils.weights, utils.models, utils.contract, utils.runtime; "
                        "print(sorted(m for m in ('torch', 'tensorflow', 'keras') if m in sys.modules))")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_torch_after_tensorflow_fails_clearly_instead_of_crashing():
    result = run_python("import tensorflow\nimport utils.torch")
    assert result.returncode == 1, f"exit {result.returncode} (139 is the segfault)"
    assert "import utils.torch (or torch and torchvision) before tensorflow" in result.stderr


def test_torch_then_tensorflow_backend_in_one_process():
    result = run_python("import utils.torch, utils.tensorflow, torchvision; print('both')")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "both"


def notebook_cells(path: Path) -> list[dict]:
    return json.loads(path.read_text())["cells"]


def source(cell: dict) -> str:
    return "".join(cell["source"])


def test_there_are_notebooks_and_every_one_has_its_twin():
    assert NOTEBOOKS, "no notebooks found"
    for path in NOTEBOOKS:
        framework = "pytorch" if path.stem.endswith("_pytorch") else "tensorflow"
        assert path.stem.endswith(("_pytorch", "_tensorflow")), path.name
        twin = path.with_name(path.name.replace(framework, {"pytorch": "tensorflow", "tensorflow": "pytorch"}[framework]))
        assert twin.exists(), f"{path.name} has no twin {twin.name}"


def headings(path: Path) -> list[str]:
    found = []
    for cell in notebook_cells(path):
        if cell["cell_type"] == "markdown":
            found += [line.strip() for line in source(cell).splitlines() if re.match(r"#{2,3} ", line)]
    return found


@pytest.mark.parametrize("path", [p for p in NOTEBOOKS if p.stem.endswith("_pytorch")], ids=lambda p: p.parent.name)
def test_twins_share_one_skeleton(path):
    twin = path.with_name(path.name.replace("_pytorch", "_tensorflow"))
    assert headings(path) == headings(twin)
    assert len(headings(path)) >= 4


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_conventions(path):
    cells = notebook_cells(path)
    relative = path.relative_to(ROOT).as_posix()
    badge = utils.REPO_URL.replace("https://github.com/", "https://colab.research.google.com/github/")
    assert f"{badge}/blob/main/{relative}" in source(cells[0]), "the first cell has a Colab badge for this file"
    code = [c for c in cells if c["cell_type"] == "code"]
    assert code and all(c["execution_count"] is not None for c in code), "committed executed (restart and run all)"
    assert "google.colab" in source(code[0]), "the first code cell is the Colab-only setup"
    imports = source(code[1])
    if "torch" in imports and "tensorflow" in imports:
        assert imports.index("torch") < imports.index("tensorflow")
    assert "seed_everything(0)" in "".join(source(c) for c in code[1:3])
    text = "\n".join(source(c) for c in cells if c["cell_type"] == "markdown")
    assert "## Summary" in text and "## Exercises" in text and "<details>" in text


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_figure_is_stored_in_the_notebook(path):
    """A cell that shows a figure keeps it: executed with a non-inline matplotlib backend (Agg), a notebook
    would be committed without its pictures, and GitHub, Colab and the slides would show none."""
    missing = []
    for index, cell in enumerate(notebook_cells(path)):
        if cell["cell_type"] != "code" or "if RUN_ONLINE:" in source(cell):  # online cells are skipped offline
            continue
        lines = [line for line in source(cell).splitlines() if not line.lstrip().startswith("#")]
        if any("plt.show()" in line for line in lines):
            images = [out for out in cell.get("outputs", []) if "image/png" in out.get("data", {})]
            if not images:
                missing.append(index)
    assert not missing, f"cells {missing} call plt.show() but store no image: execute with the inline backend"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_numbered_section_opens_with_its_key_idea(path):
    """A seminar presents a section by one sentence: every `## N.` heading is followed, before the first
    code cell, by a line that starts with **Key idea.**"""
    missing, open_heading = [], None
    for cell in notebook_cells(path):
        if cell["cell_type"] != "markdown":
            if open_heading:
                missing.append(open_heading)
            open_heading = None
            continue
        for line in source(cell).splitlines():
            if re.match(r"## \d+\.", line):
                if open_heading:
                    missing.append(open_heading)
                open_heading = line.strip()
            elif open_heading and line.strip().startswith("**Key idea.**"):
                open_heading = None
    missing += [open_heading] if open_heading else []
    assert not missing, f"sections without a **Key idea.** line: {missing}"


BUILD_IT = [p for p in NOTEBOOKS if p.parent.name[:2] in {"01", "02", "03", "04", "05", "06", "10"}]


@pytest.mark.parametrize("path", BUILD_IT, ids=lambda p: p.name)
def test_build_it_exercise_has_a_stub_a_checker_and_a_hidden_solution_that_passes(path):
    """The reader's stub calls a checker of utils.exercises; the solution's cell is hidden and asserts the
    checker's verdict, so nbval checks the solution."""
    code = [c for c in notebook_cells(path) if c["cell_type"] == "code"]
    checked = [c for c in code if "exercises.check_" in source(c)]
    hidden = [c for c in checked if c.get("metadata", {}).get("jupyter", {}).get("source_hidden")]
    assert len(checked) > len(hidden) >= 1, "a visible stub with its checker call, and a hidden solution"
    assert all("@title Solution" in source(c) and "assert" in source(c) for c in hidden)
    for cell in hidden:
        text = "".join("".join(out.get("text", "")) for out in cell.get("outputs", []))
        assert "Right:" in text and "Not yet" not in text, "the stored solution passes its checker"
