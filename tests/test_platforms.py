"""pyproject's platform markers and Python range, evaluated offline for every supported laptop.

`make check-platforms` (scripts/check_platforms.py) resolves the real index for each platform; these tests
only read pyproject.toml, so they run everywhere in milliseconds.
"""
import importlib.util
import itertools
import sys
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the test extra installs tomli
    import tomli as tomllib

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
TENSORFLOWS = {"tensorflow", "tensorflow-cpu"}

# What each supported platform reports to PEP 508 markers, and whether tensorflow-cpu 2.21.0 has a wheel for
# it: tensorflow-cpu ships manylinux_2_27_x86_64 and win_amd64 only; tensorflow adds manylinux_2_27_aarch64
# and macosx_12_0_arm64 (all cp310-cp313).
LINUX = {"sys_platform": "linux", "platform_system": "Linux", "os_name": "posix"}
SUPPORTED = {
    "x86_64-unknown-linux-gnu": ({**LINUX, "platform_machine": "x86_64"}, True),
    "aarch64-unknown-linux-gnu": ({**LINUX, "platform_machine": "aarch64"}, False),
    "aarch64-apple-darwin": ({"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix",
                              "platform_machine": "arm64"}, False),
    "x86_64-pc-windows-msvc": ({"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt",
                                "platform_machine": "AMD64"}, True),
}
# Unsupported (torch 2.14.1 has no wheel there), but the markers still must not pick two TensorFlows or none.
OTHERS = {
    "Intel Mac": {"sys_platform": "darwin", "platform_system": "Darwin", "os_name": "posix", "platform_machine": "x86_64"},
    "Windows on ARM": {"sys_platform": "win32", "platform_system": "Windows", "os_name": "nt", "platform_machine": "ARM64"},
    "Linux ppc64le": {**LINUX, "platform_machine": "ppc64le"},
}
PYTHONS = ("3.10", "3.11", "3.12", "3.13")


def environment(platform: dict, python: str) -> dict:
    return {**platform, "python_version": python, "python_full_version": f"{python}.0",
            "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}


def installed_by_all() -> list[Requirement]:
    """`pip install -e ".[all]"`: the core dependencies and those of every extra that `all` names."""
    extras = Requirement(EXTRAS["all"][0]).extras
    assert extras >= {"torch", "tensorflow"}
    return [Requirement(r) for r in PROJECT["dependencies"] + [r for extra in sorted(extras) for r in EXTRAS[extra]]]


def applying(platform: dict, python: str, names: set[str]) -> list[Requirement]:
    env = environment(platform, python)
    return [r for r in installed_by_all() if r.name in names and (r.marker is None or r.marker.evaluate(env))]


@pytest.mark.parametrize("target,python", list(itertools.product(SUPPORTED, PYTHONS)))
def test_exactly_one_tensorflow_and_cpu_only_where_its_wheel_exists(target, python):
    platform, has_cpu_wheel = SUPPORTED[target]
    found = applying(platform, python, TENSORFLOWS)
    assert [r.name for r in found] == ["tensorflow-cpu" if has_cpu_wheel else "tensorflow"]
    assert str(found[0].specifier) == "==2.21.0"


@pytest.mark.parametrize("name", sorted(OTHERS))
def test_markers_are_complements_on_other_platforms_too(name):
    assert len(applying(OTHERS[name], "3.12", TENSORFLOWS)) == 1


@pytest.mark.parametrize("target", SUPPORTED)
def test_torch_and_keras_apply_on_every_platform(target):
    found = {r.name: str(r.specifier) for r in applying(SUPPORTED[target][0], "3.12", {"torch", "torchvision", "keras"})}
    assert found == {"torch": "==2.14.1", "torchvision": "==0.29.1", "keras": ">=3.10"}


def test_both_tensorflow_pins_are_the_same_release():
    pins = {r.name: str(r.specifier) for r in installed_by_all() if r.name in TENSORFLOWS}
    assert pins == {"tensorflow": "==2.21.0", "tensorflow-cpu": "==2.21.0"}


def test_requires_python_is_the_range_tensorflow_has_wheels_for():
    allowed = SpecifierSet(PROJECT["requires-python"])
    assert [v for v in ("3.9.18", "3.10.0", "3.11.9", "3.12.0", "3.13.7", "3.14.0") if v in allowed] == \
        ["3.10.0", "3.11.9", "3.12.0", "3.13.7"]


def load_check_platforms():
    spec = importlib.util.spec_from_file_location("check_platforms", ROOT / "scripts" / "check_platforms.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["check_platforms"] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def test_check_platforms_resolves_the_matrix_these_tests_assume():
    script = load_check_platforms()
    assert list(script.PLATFORMS) == list(SUPPORTED)
    assert script.PYTHONS == PYTHONS
    assert script.REFUSED_PYTHON not in SpecifierSet(PROJECT["requires-python"])
    # torch 2.14.1's macOS wheels are macosx_14_0_arm64: uv's default deployment target would find none.
    assert float(script.PLATFORMS["aarch64-apple-darwin"]["MACOSX_DEPLOYMENT_TARGET"]) >= 14


def test_check_platforms_reads_uv_output():
    script = load_check_platforms()
    pins = script.parse_pins("absl-py==2.5.1\ntensorflow_cpu==2.21.0\nTorch==2.14.1\ntorchvision==0.29.1\nkeras==3.15.1\n")
    assert pins["tensorflow-cpu"] == "2.21.0" and pins["torch"] == "2.14.1"
    assert script.missing_frameworks(pins) == []
    del pins["tensorflow-cpu"], pins["torch"]
    assert script.missing_frameworks(pins) == ["torch", "tensorflow or tensorflow-cpu"]
    stderr = ("  × No solution found when resolving dependencies:\n"
              "error: No solution found when resolving dependencies\n"
              "  cause: Because torch==2.14.1 has no wheels with a matching platform tag (e.g., `macosx_13_0_arm64`)"
              " and seeing-cnns depends on torch{sys_platform == 'darwin'}==2.14.1, we can conclude that your"
              " requirements are unsatisfiable.\n\nhint: Wheels are available for `torch` (v2.14.1) on ...\n")
    reason = script.uv_reason(stderr)
    assert reason.startswith("cause: Because torch==2.14.1 has no wheels") and "hint: Wheels are available" in reason
    assert "depends on torch==2.14.1" in reason  # the marker in braces is dropped


def test_uv_comes_from_its_own_extra_not_from_all():
    assert [Requirement(r).name for r in EXTRAS["platforms"]] == ["uv"]
    assert "platforms" not in Requirement(EXTRAS["all"][0]).extras
