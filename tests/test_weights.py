"""The framework-free reader of the embedded weights against torch.load."""
import pickle

import numpy as np
import pytest
import torch

from utils import weights


def test_numpy_reader_matches_torch_load():
    path = weights.efficientnet_lite0_path()
    ours = weights.read_torch_state_dict(path)
    reference = torch.load(path, map_location="cpu", weights_only=True)
    assert list(ours) == list(reference)
    for name, tensor in reference.items():
        assert ours[name].dtype == tensor.numpy().dtype, name
        np.testing.assert_array_equal(ours[name], tensor.numpy(), err_msg=name)


def test_embedded_weights_are_checked_and_read_only():
    state = weights.efficientnet_lite0_state_dict()
    assert weights.sha256(weights.efficientnet_lite0_path()) == weights.EFFICIENTNET_LITE0_SHA256
    assert state["_fc.weight"].shape == (1000, 1280)
    with pytest.raises(ValueError):
        state["_fc.bias"][0] = 1.0


def test_reader_rejects_other_files(tmp_path):
    modern = tmp_path / "modern.pt"
    torch.save({"w": torch.ones(2)}, modern)  # zip format since torch 1.6
    with pytest.raises((ValueError, pickle.UnpicklingError)):
        weights.read_torch_state_dict(modern)
    legacy_with_code = tmp_path / "legacy.pt"
    torch.save({"w": torch.ones(2), "f": np.zeros(1)}, legacy_with_code, _use_new_zipfile_serialization=False)
    with pytest.raises(pickle.UnpicklingError, match="unexpected object"):
        weights.read_torch_state_dict(legacy_with_code)


def test_reader_handles_views_and_dtypes(tmp_path):
    base = torch.arange(24, dtype=torch.float64).reshape(4, 6)
    state = {"t": base.t(), "slice": base[1:, 2:], "long": torch.arange(5), "scalar": torch.tensor(3)}
    path = tmp_path / "views.pt"
    torch.save(state, path, _use_new_zipfile_serialization=False)
    ours = weights.read_torch_state_dict(path)
    for name, tensor in state.items():
        np.testing.assert_array_equal(ours[name], tensor.numpy(), err_msg=name)


def test_corrupt_weights_file_gets_a_clear_error(tmp_path, monkeypatch):
    fake = tmp_path / "efficientnet-lite0.pth"
    fake.write_bytes(b"not a model")
    monkeypatch.setattr(weights, "efficientnet_lite0_path", lambda: fake)
    weights.efficientnet_lite0_state_dict.cache_clear()
    try:
        with pytest.raises(ValueError, match="expected .*reinstall"):
            weights.efficientnet_lite0_state_dict()
    finally:
        weights.efficientnet_lite0_state_dict.cache_clear()
