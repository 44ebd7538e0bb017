"""Colab: every badge and setup cell agrees with utils.REPO_URL, and scripts/set_repo_url.py rewrites them surgically."""
import importlib.util
import json
import re
import shutil
import subprocess
import sys
try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli
    import tomli as tomllib
from pathlib import Path

import pytest

import utils

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("set_repo_url", ROOT / "scripts" / "set_repo_url.py")
set_repo_url = importlib.util.module_from_spec(spec)
spec.loader.exec_module(set_repo_url)

NOTEBOOKS = set_repo_url.notebooks(ROOT)
NEVER_ON_COLAB = {"torch", "torchvision", "tensorflow", "tensorflow-cpu", "keras", "ipywidgets", "ipykernel", "ipython"}


def requirement_name(requirement: str) -> str:
    return re.split(r"[<>=!~\[; ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


# What Colab's runtime ships, from its published package list (also `make test-colab`'s versions): the setup
# cell must not reinstall or upgrade these, and everything else the core needs it must name itself.
COLAB_RUNTIME = [line.strip() for line in (ROOT / "tests" / "colab_runtime.txt").read_text().splitlines()
                 if line.strip() and not line.lstrip().startswith("#")]
COLAB_PREINSTALLED = {requirement_name(requirement) for requirement in COLAB_RUNTIME}


def setup_cell(path: Path) -> str:
    code = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"] if c["cell_type"] == "code"]
    return "".join(code[0]["source"])


def test_colab_runtime_pins_exact_versions_of_what_the_setup_cell_relies_on():
    for requirement in COLAB_RUNTIME:
        assert re.fullmatch(r"[a-z0-9-]+==\d+(\.\d+)+", requirement), f"{requirement!r}: pin as name==version"
    assert len(COLAB_PREINSTALLED) == len(COLAB_RUNTIME), "a package is pinned twice"
    assert NEVER_ON_COLAB - {"tensorflow-cpu"} <= COLAB_PREINSTALLED


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


# ---------------------------------------------------------------------------------------------- running the setup cell

PYTORCH_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem.endswith("_pytorch")]
TENSORFLOW_NOTEBOOKS = [p for p in NOTEBOOKS if p.stem.endswith("_tensorflow")]


def run_setup_cell(path: Path, monkeypatch, *, on_colab=True, clone_exists=False, pull_fails=False,
                   tensorflow_installed=True, commands: list | None = None) -> list[list[str]]:
    """Run the notebook's setup cell here as Colab would, with git and pip faked: the commands it ran
    (appended to `commands` as they run, so they are known when the cell raises)."""
    import os
    import types

    cell = setup_cell(path)
    repo = re.search(r'repo = "([^"]+)"', cell).group(1)
    commands = [] if commands is None else commands

    def fake_run(command, *args, **kwargs):
        commands.append([str(part) for part in command])
        failed = pull_fails and "pull" in command
        if failed and kwargs.get("check"):
            raise subprocess.CalledProcessError(1, command)
        return subprocess.CompletedProcess(command, 1 if failed else 0)

    real_exists, real_find_spec = os.path.exists, importlib.util.find_spec
    with monkeypatch.context() as patch:
        patch.setattr(subprocess, "run", fake_run)
        patch.setattr(os.path, "exists", lambda p: clone_exists if str(p) == repo else real_exists(p))
        patch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "tensorflow" and not
                      tensorflow_installed else real_find_spec(name, *a))
        patch.setattr(sys, "path", list(sys.path))
        if on_colab:
            patch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))
        else:
            patch.delitem(sys.modules, "google.colab", raising=False)
        exec(compile(cell, str(path), "exec"), {"__name__": "__main__"})
    return commands


def is_pip_install(command: list[str]) -> bool:
    return command[1:4] == ["-m", "pip", "install"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_clones_once_then_updates_the_clone(path, monkeypatch, capsys):
    first = run_setup_cell(path, monkeypatch, clone_exists=False)
    assert first[0][:2] == ["git", "clone"] and utils.REPO_URL in first[0]
    assert not any("pull" in command for command in first) and is_pip_install(first[-1])

    again = run_setup_cell(path, monkeypatch, clone_exists=True)  # a second run, or a runtime that kept /content
    assert not any("clone" in command for command in again), "an existing clone is updated, not kept as it was"
    assert again[0][:2] == ["git", "-C"] and again[0][3:5] == ["pull", "--ff-only"]
    assert is_pip_install(again[-1])
    assert capsys.readouterr().out == ""

    diverged = run_setup_cell(path, monkeypatch, clone_exists=True, pull_fails=True)  # no crash: a warning
    assert "pull" in diverged[0] and is_pip_install(diverged[-1])
    assert "Warning: could not update" in capsys.readouterr().out


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_setup_cell_does_nothing_outside_colab(path, monkeypatch, capsys):
    assert run_setup_cell(path, monkeypatch, on_colab=False) == []
    assert capsys.readouterr().out == ""


@pytest.mark.parametrize("path", TENSORFLOW_NOTEBOOKS, ids=lambda p: p.name)
def test_tensorflow_twins_stop_at_the_setup_cell_without_tensorflow(path, monkeypatch):
    for on_colab in (True, False):  # e.g. a Colab TPU runtime, or a PyTorch-only environment
        commands = []
        with pytest.raises(RuntimeError, match=r"needs TensorFlow.*Runtime > Change runtime type.*PyTorch twin"):
            run_setup_cell(path, monkeypatch, on_colab=on_colab, tensorflow_installed=False, commands=commands)
        assert commands == [], "it stops before cloning or installing anything"
    assert "import tensorflow" not in setup_cell(path), "looked up, not imported: utils.tensorflow quiets its log"


@pytest.mark.parametrize("path", PYTORCH_NOTEBOOKS, ids=lambda p: p.name)
def test_pytorch_twins_run_without_tensorflow(path, monkeypatch):
    commands = run_setup_cell(path, monkeypatch, tensorflow_installed=False)
    assert is_pip_install(commands[-1])
    assert 'find_spec("tensorflow")' not in setup_cell(path), "the PyTorch twins do not need TensorFlow"


def test_setup_cells_are_one_cell_per_framework_and_differ_only_by_the_tensorflow_check():
    pytorch = {setup_cell(p) for p in PYTORCH_NOTEBOOKS}
    tensorflow = {setup_cell(p) for p in TENSORFLOW_NOTEBOOKS}
    assert len(pytorch) == 1 and len(tensorflow) == 1, "copy the setup cell to every notebook of the framework"
    (pytorch,), (tensorflow,) = pytorch, tensorflow
    pytorch_lines, tensorflow_lines = pytorch.splitlines(), tensorflow.splitlines()
    extra = [line for line in tensorflow_lines if line not in pytorch_lines]
    assert [line for line in tensorflow_lines if line in pytorch_lines] == pytorch_lines
    assert 'find_spec("tensorflow") is None' in "\n".join(extra) and "raise RuntimeError" in "\n".join(extra)
    assert tensorflow_lines.index(extra[0]) < tensorflow_lines.index('if "google.colab" in sys.modules:')
