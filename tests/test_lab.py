"""`make lab` serves JupyterLab on notebooks/: the Makefile's own recipe, started here as root or not and
without a display, answers on loopback, prints the URL to open and lists the course's folders."""
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
MAKE = shutil.which("make")
STAMP = ".venv/.installed"  # the Makefile's $(STAMP)
STARTUP_TIMEOUT_S = 90
pytestmark = pytest.mark.skipif(MAKE is None, reason="needs make (`make lab` is what this tests)")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def headless_env(**extra: str) -> dict[str, str]:
    """This environment as a machine without a display or a browser sees it."""
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "BROWSER")}
    return {**env, **extra}


def make_lab(*args: str) -> list[str]:
    """`make lab` with this test run's interpreter's jupyter, never (re)building .venv (`-o` the stamp)."""
    return [MAKE, "-o", STAMP, "lab", f"BIN={Path(sys.executable).parent}", *args]


def stop(server: subprocess.Popen) -> None:
    """SIGTERM to make and the jupyter it started (the new session's process group), SIGKILL to any of
    them still there after 20 s."""
    group = server.pid
    os.killpg(group, signal.SIGTERM)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        server.poll()  # reaps make, which would otherwise stay in the group as a zombie
        try:
            os.killpg(group, 0)
        except ProcessLookupError:
            return
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    server.wait()


def get(url: str) -> tuple[int, str]:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.status, response.read().decode()


def test_make_lab_adds_allow_root_for_root_only_and_no_browser_without_a_display():
    def flags(env):
        result = subprocess.run(make_lab("-n"), cwd=ROOT, env=env, capture_output=True, text=True,
                                timeout=60)
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    headless = flags(headless_env())
    assert ("--allow-root" in headless) == (os.geteuid() == 0)
    assert ("--no-browser" in headless) == (sys.platform != "darwin")
    assert "--no-browser" not in flags(headless_env(DISPLAY=":0"))


def test_make_lab_serves_the_notebooks_and_prints_the_url(tmp_path):
    port, token = free_port(), secrets.token_hex(16)
    lab_args = ["--ServerApp.ip=127.0.0.1", f"--ServerApp.port={port}", "--ServerApp.port_retries=0",
                f"--ServerApp.token={token}"]
    if sys.platform == "darwin":
        lab_args.append("--no-browser")  # a Mac always has a browser, and this test must not open it
    env = headless_env(JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"))
    log = tmp_path / "lab.log"
    base = f"http://127.0.0.1:{port}"
    with open(log, "w") as out:
        server = subprocess.Popen(make_lab(f"LAB_ARGS={' '.join(lab_args)}"), cwd=ROOT, env=env,
                                  stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            assert server.poll() is None, f"make lab exited with {server.returncode}:\n{log.read_text()}"
            assert time.monotonic() < deadline, f"no answer in {STARTUP_TIMEOUT_S} s:\n{log.read_text()}"
            try:
                status, page = get(f"{base}/lab?token={token}")
                break
            except urllib.error.HTTPError:
                raise  # an answer, and a wrong one
            except (urllib.error.URLError, ConnectionError):  # not listening yet
                time.sleep(0.5)

        assert status == 200 and "<title>JupyterLab</title>" in page

        status, listing = get(f"{base}/api/contents?token={token}")
        assert status == 200
        served = {item["name"] for item in json.loads(listing)["content"] if item["type"] == "directory"}
        topics = {p.name for p in (ROOT / "notebooks").iterdir() if p.is_dir() and re.fullmatch(r"\d\d_\w+", p.name)}
        assert "00_tour" in topics and topics <= served, f"served {sorted(served)}, on disk {sorted(topics)}"

        printed = log.read_text()
        assert f"{base}/lab" in printed, f"no URL to open in the output:\n{printed}"
        assert "No web browser found" not in printed, printed
    finally:
        stop(server)
