"""Colab: every badge and setup cell agrees with utils.REPO_URL, and scripts/set_repo_url.py rewrites them surgically."""
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import utils

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("set_repo_url", ROOT / "scripts" / "set_repo_url.py")
set_repo_url = importlib.util.module_from_spec(spec)
spec.loader.exec_module(set_repo_url)

NOTEBOOKS = set_repo_url.notebooks(ROOT)
# What Colab's runtime ships (DESIGN.md sec. 7, from its published package list): the setup cell must not
# reinstall or upgrade these, and everything else the core needs it must name itself.
COLAB_PREINSTALLED = {"numpy", "matplotlib", "scikit-image", "scipy", "pillow", "ipywidgets", "ipykernel", "ipython",
                      "torch", "torchvision", "tensorflow", "keras"}
NEVER_ON_COLAB = {"torch", "torchvision", "tensorflow", "tensorflow-cpu", "keras", "ipywidgets", "ipykernel", "ipython"}


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def setup_cell(path: Path) -> str:
    code = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    return "".join(code[0]["source"])


def test_every_badge_and_setup_cell_agrees_with_repo_url():
    assert NOTEBOOKS, "no notebooks found"
    assert set_repo_url.current_url(ROOT) == utils.REPO_URL
    disagreements = set_repo_url.check(ROOT)
    assert disagreements == [], "run `python scripts/set_repo_url.py` to fix:\n" + "\n".join(disagreements)


def test_repository_url_in_pyproject():
    assert tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["urls"]["Repository"] == utils.REPO_URL


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_installs_only_what_colab_lacks(path):
    cell = setup_cell(path)
    assert 'if "google.colab" in sys.modules:' in cell, "does nothing outside Colab"
    assert f'"{utils.REPO_URL}"' in cell, "clones this repository"
    pip = cell[cell.index('"pip", "install"'):]
    pip = pip[:pip.index(")")]
    arguments = re.findall(r'"([^"]+)"', pip)
    assert "--no-deps" in arguments, "keeps Colab's torch, TensorFlow and ipywidgets"
    named = {requirement_name(a): a for a in arguments if not a.startswith("-") and a not in ("pip", "install")}
    assert not set(named) & NEVER_ON_COLAB, "never (re)install what Colab ships"
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    for requirement in core:
        name = requirement_name(requirement)
        if name not in COLAB_PREINSTALLED:
            assert named.get(name) == requirement, f"the setup cell must install {requirement!r} (Colab lacks it)"


def copy_project(tmp_path: Path, notebooks: dict[str, Path]) -> Path:
    """A minimal project in tmp_path: utils/__init__.py, pyproject.toml and the given notebooks."""
    (tmp_path / "utils").mkdir()
    shutil.copy(ROOT / "utils" / "__init__.py", tmp_path / "utils" / "__init__.py")
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    for relative, source in notebooks.items():
        (tmp_path / relative).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, tmp_path / relative)
    return tmp_path


def differing_lines(a: bytes, b: bytes) -> list[tuple[str, str]]:
    a_lines, b_lines = a.decode().split("\n"), b.decode().split("\n")
    assert len(a_lines) == len(b_lines), "the rewrite added or removed lines"
    return [(x, y) for x, y in zip(a_lines, b_lines) if x != y]


def test_rewrite_changes_only_the_urls_and_is_idempotent(tmp_path):
    pytorch = next(p for p in NOTEBOOKS if p.stem.endswith("_pytorch"))
    tensorflow = pytorch.with_name(pytorch.name.replace("_pytorch", "_tensorflow"))
    paths = {p.relative_to(ROOT).as_posix(): p for p in (pytorch, tensorflow)}
    root = copy_project(tmp_path, paths)
    old, new = utils.REPO_URL, "https://github.com/someone-else/their-fork"
    originals = {relative: (root / relative).read_bytes() for relative in paths}

    changes, problems = set_repo_url.sync(root, new + ".git")  # the script normalises the pasted URL
    assert problems == []
    assert len(changes) == 1 + 1 + 2 * len(paths)  # utils, pyproject, and a badge and a clone line per notebook
    assert set_repo_url.current_url(root) == new
    assert f'Repository = "{new}"' in (root / "pyproject.toml").read_text()
    assert set_repo_url.check(root) == []

    for relative, before in originals.items():
        after = (root / relative).read_bytes()
        lines = differing_lines(before, after)
        assert len(lines) == 2, lines  # the badge line and the clone line, nothing else
        for was, now in lines:
            assert was.replace(old.removeprefix("https://github.com/"), new.removeprefix("https://github.com/")) == now
        nb_before, nb_after = json.loads(before), json.loads(after)
        for cell_before, cell_after in zip(nb_before["cells"], nb_after["cells"], strict=True):
            assert cell_before.get("outputs") == cell_after.get("outputs")
            assert cell_before.get("execution_count") == cell_after.get("execution_count")
            assert cell_before["metadata"] == cell_after["metadata"]
        assert nb_before["metadata"] == nb_after["metadata"]
        assert f"{new.replace('https://github.com/', set_repo_url.COLAB)}/blob/main/{relative}" in "".join(
            nb_after["cells"][0]["source"])

    rewritten = {relative: (root / relative).read_bytes() for relative in paths}
    assert set_repo_url.sync(root) == ([], [])  # idempotent: a second run changes nothing
    assert all((root / relative).read_bytes() == data for relative, data in rewritten.items())

    set_repo_url.sync(root, old)  # and back: byte-identical to the originals
    assert all((root / relative).read_bytes() == data for relative, data in originals.items())


def test_check_reports_a_moved_notebook_and_the_script_fixes_it(tmp_path):
    source = NOTEBOOKS[0]
    moved = "notebooks/99_moved/99_moved_pytorch.ipynb"
    root = copy_project(tmp_path, {moved: source})
    before = (root / moved).read_bytes()

    cli = [sys.executable, str(ROOT / "scripts" / "set_repo_url.py"), "--root", str(root)]
    result = subprocess.run(cli + ["--check"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert f"{moved}: badge" in result.stdout
    assert (root / moved).read_bytes() == before, "--check writes nothing"

    result = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert f"/blob/main/{moved})" in (root / moved).read_text()
    assert subprocess.run(cli + ["--check"], capture_output=True, timeout=60).returncode == 0


@pytest.mark.parametrize("url", ["https://gitlab.com/a/b", "https://github.com/only-owner", "github.com/a/b/c", ""])
def test_rejects_what_is_not_a_github_repository(url):
    with pytest.raises(set_repo_url.RepoUrlError):
        set_repo_url.normalise(url)


@pytest.mark.parametrize("url", ["https://github.com/a/b", "https://github.com/a/b/", "https://github.com/a/b.git",
                                 "github.com/a/b", "http://www.github.com/a/b"])
def test_accepts_the_usual_forms(url):
    assert set_repo_url.normalise(url) == "https://github.com/a/b"
