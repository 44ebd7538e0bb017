"""Test-wide setup (at the root, so `pytest notebooks/NN_x` gets it too): threads and import order first,
then nbval's output comparison."""
import os

# Two pytest-xdist workers share the 2-core CI machine: one thread each, set before any framework
# loads. Notebook kernels started by nbval inherit these variables.
os.environ.setdefault("COURSE_THREADS", "1")
for _var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "TF_NUM_INTRAOP_THREADS", "TF_NUM_INTEROP_THREADS"):
    os.environ.setdefault(_var, os.environ["COURSE_THREADS"])
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("MPLBACKEND", "Agg")

import importlib  # noqa: E402
import importlib.util  # noqa: E402

# torch and torchvision before tensorflow, always, where torch is installed (the other order segfaults).
# `make test-colab` runs without torch: only what needs none, and the xt fixture skips its torch case.
HAS_TORCH = importlib.util.find_spec("torch") is not None
if HAS_TORCH:
    import torch  # noqa: E402,F401
    import torchvision  # noqa: E402,F401

import pytest  # noqa: E402


def _without_stderr(outputs):
    return [out for out in outputs if not (out.get("output_type") == "stream" and out.get("name") == "stderr")]


def pytest_collection_modifyitems(items):
    """Leave stderr out of nbval's comparison: TensorFlow logs reach it in Jupyter, not under pytest."""
    for item in items:
        if hasattr(item, "compare_outputs") and hasattr(item, "cell"):
            compare = item.compare_outputs
            item.compare_outputs = lambda test, ref, skip_compare=None, _compare=compare: _compare(
                _without_stderr(test), _without_stderr(ref), skip_compare)


def pytest_report_header():
    """Which float kernels and how many threads this run uses (`make test-other-cpu` changes both)."""
    kernels = [f"{name}={os.environ[name]}" for name in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY", "TF_ENABLE_ONEDNN_OPTS")
               if name in os.environ]
    if HAS_TORCH:
        kernels.append(f"ATen runs {torch.backends.cpu.get_cpu_capability()}")
    return f"threads per process: {os.environ['COURSE_THREADS']}; CPU kernels: {', '.join(kernels) or 'the default'}"


def pytest_terminal_summary(terminalreporter):
    """Print the figures tests record with `record_property("figure", ...)` (parity, timings)."""
    lines = [value for report in terminalreporter.stats.get("passed", [])
             for key, value in getattr(report, "user_properties", []) if key == "figure"]
    if lines:
        terminalreporter.section("measured figures")
        for line in sorted(lines):
            terminalreporter.write_line(line)


@pytest.fixture(params=["torch", "tensorflow"])
def xt(request):
    """Each backend in turn (the torch one is imported first, above)."""
    if request.param == "torch" and not HAS_TORCH:
        pytest.skip("PyTorch is not installed (the `make test-colab` lane runs without it)")
    return importlib.import_module(f"utils.{request.param}")


_EMBEDDED_MODELS = {}


def _embedded(backend):
    if backend.FRAMEWORK not in _EMBEDDED_MODELS:
        _EMBEDDED_MODELS[backend.FRAMEWORK] = backend.load_model("efficientnet_lite0")
    return _EMBEDDED_MODELS[backend.FRAMEWORK]


@pytest.fixture
def embedded_model(xt):
    """The backend's embedded EfficientNet-Lite0, loaded once per test process and shared between
    tests: the methods leave a model as they found it (tests check that), so sharing is safe."""
    return _embedded(xt)


@pytest.fixture(scope="session")
def embedded_models():
    """{backend module: its embedded model} for both backends, from the same cache, for parity tests."""
    if not HAS_TORCH:
        pytest.skip("PyTorch is not installed (the `make test-colab` lane runs without it)")
    backends = [importlib.import_module(f"utils.{name}") for name in ("torch", "tensorflow")]
    return {backend: _embedded(backend) for backend in backends}
