"""The one table of methods (utils.contract.METHODS) and the twin backends that implement it.

Adding a method is two backend functions and one row: these tests fail when a backend lacks a function
the table names, when the command line or the explorer keeps a list of its own, and when the two
backends' methods.py or models.py stop reading side by side (same functions in the same order).
"""
import ast
import importlib.util
import inspect
from pathlib import Path

import pytest

from utils import cli, contract, explorer

ROOT = Path(__file__).resolve().parents[1]

# What only one framework needs; every other top-level name must exist in both files, in the same order.
FRAMEWORK_ONLY = {
    "methods.py": {
        "torch": {"_Layers", "_main_feature_layers", "_signature", "_layers", "_GuidedReLU", "_GuidedMode"},
        "tensorflow": {"_num_classes", "_logits", "_all_layers", "_find_layer", "_static_shape", "_static_feature_layers",
                       "_run_and_record_shapes", "_check_feature_shape", "_patched", "_output_layer",
                       "_without_softmax", "_structure", "_compiled", "_function", "_build_logits", "_last_dense",
                       "_build_cam_parts", "_build_features", "_build_layer_gradients", "_build_input_gradients",
                       "_build_masked_scores", "_noisy_copies_graph"},
    },
    "models.py": {
        "torch": {"SameConv2d", "MBConv", "EfficientNetLite0", "SmallCNN"},
        "tensorflow": {"_small_conv", "_clone", "_layer_groups"},
    },
}


def top_level_functions(framework: str, module: str) -> list[str]:
    tree = ast.parse((ROOT / "utils" / framework / module).read_text())
    return [node.name for node in tree.body if isinstance(node, (ast.FunctionDef, ast.ClassDef))]


@pytest.mark.parametrize("module", ["methods.py", "models.py"])
def test_the_twin_backends_define_the_same_functions_in_the_same_order(module):
    shared = {}
    for framework in ("torch", "tensorflow"):
        names = top_level_functions(framework, module)
        only = FRAMEWORK_ONLY[module][framework]
        assert only <= set(names), f"{framework}/{module} no longer defines {sorted(only - set(names))}"
        shared[framework] = [name for name in names if name not in only]
    assert shared["torch"] == shared["tensorflow"], (
        f"utils/torch/{module} and utils/tensorflow/{module} differ: give a role the same name in both, in the "
        "same place, or list a framework's own helper in FRAMEWORK_ONLY")


def test_the_table_names_each_method_once_with_a_known_output():
    names = [row.name for row in contract.METHODS]
    assert len(set(names)) == len(names) and len({row.cli_name for row in contract.METHODS}) == len(names)
    assert all(row.output in (contract.HEATMAP, contract.SIGNED_RGB) for row in contract.METHODS)
    assert set(contract.DOCS) == set(names) | set(contract.METHOD_HELPERS)
    for row in contract.METHODS:
        assert contract.method(row.name) is row and contract.method(row.cli_name) is row
        assert contract.method(row.title) is row
    with pytest.raises(ValueError, match="unknown method 'gradcam'; choose one of cam, grad_cam"):
        contract.method("gradcam")


def test_every_method_of_the_table_is_in_the_backend_with_the_shared_contract(xt):
    methods = importlib_methods(xt)
    public = [name for name in top_level_functions(xt.FRAMEWORK, "methods.py") if not name.startswith("_")]
    assert public == ["feature_layers", "cam", "cam_parts", "layer_gradients", *contract.METHOD_NAMES[1:]]  # the table's order
    assert set(public) == set(contract.METHOD_NAMES) | set(contract.METHOD_HELPERS)
    for row in contract.METHODS:
        function = getattr(xt, row.name, None)
        assert callable(function) and row.name in xt.__all__, f"{xt.FRAMEWORK} lacks {row.name}"
        assert function is getattr(methods, row.name)
        assert function.__doc__.startswith(contract.DOCS[row.name]), f"{row.name}: docstring not the shared one"
        parameters = list(inspect.signature(function).parameters)
        assert parameters[:3] == ["model", "x", "target"] and "normalize" in parameters
        assert ("layer" in parameters) == (row.takes_layer or row.name == "smooth_grad")


def importlib_methods(xt):
    import importlib

    return importlib.import_module(f"{xt.__name__}.methods")


def test_both_backends_give_each_method_the_same_signature():
    if importlib.util.find_spec("torch") is None:
        pytest.skip("PyTorch is not installed (the `make test-colab` lane runs without it)")
    import utils.torch.methods as torch_methods  # torch before tensorflow (the root conftest imported it first)
    import utils.tensorflow.methods as tf_methods

    for name in contract.METHOD_NAMES + contract.METHOD_HELPERS:
        ours, theirs = (inspect.signature(getattr(module, name)) for module in (torch_methods, tf_methods))
        assert [(p.name, p.default) for p in ours.parameters.values()] == \
               [(p.name, p.default) for p in theirs.parameters.values()], name


def test_the_command_line_and_the_explorer_read_the_table():
    assert cli.METHODS == tuple(row.cli_name for row in contract.METHODS)
    assert cli.parse_methods(["all"]) == list(cli.METHODS)
    assert cli.parse_methods(["Grad-CAM,grad_cam", "smooth-grad"]) == ["grad-cam", "smoothgrad"]
    assert cli.LAYER_METHODS == tuple(row.cli_name for row in contract.METHODS if row.takes_layer)
    assert explorer.METHODS == contract.METHOD_NAMES
