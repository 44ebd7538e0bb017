"""Prove, from one Linux machine, that `pip install -e ".[all]"` works on every laptop the course supports.

pip evaluates environment markers (`sys_platform`, `platform_machine`) for the machine it runs on, even with
`pip download --platform`, so it cannot answer "what would a Mac install?". uv can: `uv pip compile
--python-platform TARGET --python-version V` resolves pyproject.toml as that platform's pip would, reading only
the packages' metadata from the index (no wheel is downloaded). For each platform x Python this script runs

  1. uv pip compile pyproject.toml --extra all --python-platform T --python-version V   (the resolution)
  2. a check that the result holds torch, torchvision, keras and one TensorFlow (tensorflow-cpu or tensorflow)
  3. uv pip compile <those pins> --no-deps --only-binary :all:   (every pinned release has a wheel for T:
     nothing would be compiled on a student's laptop; from uv's cache, so it takes a second)

and prints one line each: `resolved N packages` or `FAILED` with uv's reason. Then Python 3.14 must be
refused: `uv pip compile` ignores the project's own requires-python, so pip's check is the one used
(`pip install --dry-run --no-deps --python-version 3.14 .`, which reads the built metadata); uv's resolution
for 3.14 is printed beside it, for the reason behind the cap. The exit code is 1 if anything failed.

    python scripts/check_platforms.py            # the whole matrix, 8 resolutions at a time
    python scripts/check_platforms.py --jobs 4 --python 3.12 --platform aarch64-apple-darwin

uv comes from pyproject's `platforms` extra (`make check-platforms` installs it); it does not read pip's
configuration (pip.conf, PIP_* variables, constraint files): it asks PyPI, or UV_INDEX_URL where that is set.
A package that ships only a pure-Python sdist would fail step 3 and would have to be left out of it here.
"""
from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

# uv's target triples for the supported laptops, and the macOS they need (torch 2.14.1's wheels are macosx_14_0).
PLATFORMS = {
    "x86_64-unknown-linux-gnu": {},
    "aarch64-unknown-linux-gnu": {},
    "aarch64-apple-darwin": {"MACOSX_DEPLOYMENT_TARGET": "14.0"},
    "x86_64-pc-windows-msvc": {},
}
PYTHONS = ("3.10", "3.11", "3.12", "3.13")
REFUSED_PYTHON = "3.14"
# What the resolved list must hold on every platform: each name, and one of each tuple.
REQUIRED = ("torch", "torchvision", "keras", ("tensorflow", "tensorflow-cpu"))

TIMEOUT = 300  # seconds for one uv or pip call (a resolution takes 5-20 s)
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)")


@dataclass
class Result:
    label: str
    ok: bool
    message: str
    seconds: float = 0.0


def uv_command() -> list[str]:
    """The uv binary: the one the `uv` package installed beside this Python, else one on PATH."""
    try:
        from uv import find_uv_bin  # the PyPI package `uv`
        return [find_uv_bin()]
    except (ImportError, FileNotFoundError):
        found = shutil.which("uv")
        if found:
            return [found]
    sys.exit('check_platforms: uv is not installed: pip install -e ".[platforms]" (or `make check-platforms`)')


def parse_pins(text: str) -> dict[str, str]:
    """`name==version` lines of a uv pip compile output, by normalized name."""
    pins = {}
    for line in text.splitlines():
        match = PIN.match(line.strip())
        if match:
            pins[re.sub(r"[-_.]+", "-", match.group(1)).lower()] = match.group(2)
    return pins


def missing_frameworks(pins: dict[str, str]) -> list[str]:
    """The entries of REQUIRED that the resolution lacks ("tensorflow or tensorflow-cpu" for a tuple)."""
    missing = []
    for need in REQUIRED:
        names = need if isinstance(need, tuple) else (need,)
        if not any(name in pins for name in names):
            missing.append(" or ".join(names))
    return missing


def uv_reason(stderr: str) -> str:
    """uv's explanation of a failed resolution, on one line: its `cause:` and `hint:` text, else its last line."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    keep = []
    for line in lines:
        if line.startswith(("cause:", "hint:", "error:")) or (keep and not line.startswith("warning:")):
            keep.append(line)
    text = " ".join(keep or lines[-1:]) or "no output"
    text = re.sub(r"\{[^{}]*\}", "", text)  # the requirement's marker, repeated at each mention
    return re.sub(r"^error: No solution found when resolving dependencies ", "", text)


def uv_compile(uv: list[str], target: str, python: str, args: list[str], stdin: str | None = None,
               offline: bool = False) -> subprocess.CompletedProcess:
    # --python: this interpreter runs any build uv needs; without it uv looks for a Python of the target's
    # version on the machine (pyenv shims make that take seconds) and would try to download one.
    env = {**os.environ, "UV_PYTHON_DOWNLOADS": "never", **PLATFORMS[target]}
    command = [*uv, "pip", "compile", *args, "--python", sys.executable,
               "--python-platform", target, "--python-version", python,
               "--no-header", "--no-annotate", "--quiet", "--color", "never"]
    if offline:
        command.append("--offline")
    return subprocess.run(command, input=stdin, capture_output=True, text=True, cwd=ROOT, env=env, timeout=TIMEOUT)


def timed(label: str, check, *args) -> Result:
    """Run check(*args) -> (ok, message) as one line of the report, however it ends."""
    start = time.monotonic()
    try:
        ok, message = check(*args)
    except subprocess.TimeoutExpired as error:
        ok, message = False, f"FAILED: {error.cmd[0]} {error.cmd[1:3]} took over {error.timeout} s"
    except OSError as error:
        ok, message = False, f"FAILED: {error}"
    return Result(label, ok, message, time.monotonic() - start)


def check_one(uv: list[str], target: str, python: str) -> tuple[bool, str]:
    resolved = uv_compile(uv, target, python, ["pyproject.toml", "--extra", "all"])
    if resolved.returncode != 0:
        return False, f"FAILED: {uv_reason(resolved.stderr)}"
    pins = parse_pins(resolved.stdout)
    missing = missing_frameworks(pins)
    if missing:
        return False, f"FAILED: resolved {len(pins)} packages without {', '.join(missing)}"
    # Every pinned release has a wheel for this platform. Offline first (uv's cache has the metadata).
    wheels_only = ["-", "--no-deps", "--only-binary", ":all:"]
    wheels = uv_compile(uv, target, python, wheels_only, stdin=resolved.stdout, offline=True)
    if wheels.returncode != 0:
        wheels = uv_compile(uv, target, python, wheels_only, stdin=resolved.stdout)
    if wheels.returncode != 0:
        return False, f"FAILED: resolved {len(pins)} packages, but not all as wheels: {uv_reason(wheels.stderr)}"
    tensorflow = "tensorflow-cpu" if "tensorflow-cpu" in pins else "tensorflow"
    return True, (f"resolved {len(pins)} packages, all wheels: {tensorflow} {pins[tensorflow]}, "
                  f"torch {pins['torch']}, torchvision {pins['torchvision']}, keras {pins['keras']}")


def check_refused(uv: list[str], python: str) -> tuple[bool, str]:
    """pip must refuse the project on `python` (requires-python); uv's resolution says why the cap is there."""
    with tempfile.TemporaryDirectory() as target:
        pip = subprocess.run([sys.executable, "-m", "pip", "install", "--dry-run", "--no-deps", "--quiet",
                              "--disable-pip-version-check", "--python-version", python, "--target", target, "."],
                             capture_output=True, text=True, cwd=ROOT, timeout=TIMEOUT)
    refusal = next((line.strip() for line in pip.stderr.splitlines() if "requires a different Python" in line), "")
    uv_result = uv_compile(uv, "x86_64-unknown-linux-gnu", python, ["pyproject.toml", "--extra", "all"])
    uv_says = (f"uv (Linux x86_64): {uv_reason(uv_result.stderr)}" if uv_result.returncode
               else "uv resolves it on Linux x86_64: the cap could be lifted")
    if pip.returncode != 0 and refusal:
        return True, f"refused, as it should be. pip: {refusal.removeprefix('ERROR: ')}. {uv_says}"
    detail = "pip would install it" if pip.returncode == 0 else f"pip failed otherwise: {uv_reason(pip.stderr)}"
    return False, f"FAILED: not refused by requires-python ({detail})"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=8, help="resolutions run at once (default 8; they mostly wait)")
    parser.add_argument("--platform", action="append", choices=sorted(PLATFORMS), help="only this target (repeatable)")
    parser.add_argument("--python", action="append", choices=PYTHONS, help="only this Python (repeatable)")
    args = parser.parse_args(argv)
    uv = uv_command()
    version = subprocess.run([*uv, "--version"], capture_output=True, text=True).stdout.strip()
    cases = [(t, p) for t in args.platform or PLATFORMS for p in args.python or PYTHONS]
    print(f"check_platforms: pip install -e \".[all]\" on {len(cases)} platform x Python, with {version}", flush=True)
    start = time.monotonic()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        futures = [pool.submit(timed, f"{t:<27} Python {p}", check_one, uv, t, p) for t, p in cases]
        refused = pool.submit(timed, f"{'requires-python':<27} Python {REFUSED_PYTHON}", check_refused, uv,
                              REFUSED_PYTHON)
        results = []
        for future in [*futures, refused]:
            result = future.result()
            results.append(result)
            print(f"{result.label}  {result.seconds:4.0f} s  {result.message}", flush=True)
    failed = [r for r in results if not r.ok]
    print(f"check_platforms: {len(results) - len(failed)} of {len(results)} passed, {len(failed)} failed, "
          f"in {time.monotonic() - start:.0f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
