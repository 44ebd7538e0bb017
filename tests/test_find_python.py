"""scripts/find_python.sh, which picks the Python the Makefile creates .venv with (3.10-3.13), on stand-in
interpreters: shell scripts that print a version. Nothing here creates a virtual environment."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "find_python.sh"
SH = shutil.which("sh")
pytestmark = pytest.mark.skipif(SH is None, reason="needs a POSIX sh (scripts/find_python.sh is one)")


def fake_python(folder: Path, name: str, version: str) -> Path:
    """An executable that answers the script's version question like Python `version` would."""
    path = folder / name
    path.write_text(f"#!/bin/sh\necho {version}\n")
    path.chmod(0o755)
    return path


def find_python(requested, path_dir: Path) -> subprocess.CompletedProcess:
    """The script with PATH holding only `path_dir`, so that the machine's own Pythons stay out of it."""
    return subprocess.run([SH, str(SCRIPT), str(requested)], capture_output=True, text=True, timeout=30,
                          env={"PATH": str(path_dir)})


def test_a_supported_python_is_taken_as_it_is(tmp_path):
    requested = fake_python(tmp_path, "python3", "3.11")
    fake_python(tmp_path, "python3.13", "3.13")
    result = find_python(requested, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(requested) and result.stderr == ""


@pytest.mark.parametrize("version", ["3.9", "3.14"])
def test_an_unsupported_python_gives_way_to_the_newest_supported_one_on_path(tmp_path, version):
    requested = fake_python(tmp_path, "python3", version)
    for supported in ("3.10", "3.12"):
        fake_python(tmp_path, f"python{supported}", supported)
    result = find_python(requested, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == str(tmp_path / "python3.12")
    assert "is not Python 3.10-3.13; using python3.12" in result.stderr


@pytest.mark.parametrize("version", ["3.9", "3.14", None])
def test_no_supported_python_stops_with_the_range_and_what_to_do(tmp_path, version):
    requested = fake_python(tmp_path, "python3", version) if version else tmp_path / "missing-python"
    fake_python(tmp_path, "python3.9", "3.9")
    result = find_python(requested, tmp_path)
    assert result.returncode == 1 and result.stdout == ""
    assert "needs Python 3.10-3.13" in result.stderr
    assert (f"is Python {version}" if version else "is not found") in result.stderr
    assert "make PYTHON=/path/to/python3.12" in result.stderr


def test_the_running_interpreter_is_accepted(tmp_path):
    """The real version question, asked of the Python running the tests (a supported one)."""
    result = find_python(sys.executable, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == sys.executable


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
@pytest.mark.parametrize("supported_on_path", [True, False])
def test_the_makefile_creates_the_venv_with_the_python_the_script_picks(tmp_path, supported_on_path):
    """`make -n` expands the venv rule (running the script) but runs nothing: no venv is built."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    old = fake_python(bin_dir, "python3", "3.9")
    if supported_on_path:
        fake_python(bin_dir, "python3.13", "3.13")
    result = subprocess.run([shutil.which("make"), "-n", "test", f"PYTHON={old}", f"VENV={tmp_path / 'venv'}"],
                            cwd=ROOT, capture_output=True, text=True, timeout=60, env={"PATH": str(bin_dir)})
    assert not (tmp_path / "venv").exists()
    if supported_on_path:
        assert result.returncode == 0, result.stderr
        assert f"{bin_dir / 'python3.13'} -m venv {tmp_path / 'venv'}" in result.stdout
    else:
        assert result.returncode != 0
        assert "needs Python 3.10-3.13" in result.stderr and "-m venv" not in result.stdout
