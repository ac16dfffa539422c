"""Read a PyTorch ``torch.save`` state dict into NumPy arrays without importing torch.

Why: the only ImageNet-pretrained encoder weights installable offline ship as a ``.pth`` file, and
torch is a multi-gigabyte dependency we do not want at run time. ``torch.save`` output is a pickle,
and unpickling arbitrary files runs arbitrary code, so the unpickler here resolves *only* the
handful of globals a tensor state dict needs (tensor/parameter rebuild functions, storage types,
``OrderedDict``) to our own harmless stand-ins, and refuses everything else with
``UnsafePickleError``.

Both container formats are supported:

* the zip format (torch >= 1.6): ``<name>/data.pkl`` plus one raw file per storage under
  ``<name>/data/<key>``;
* the legacy format (torch < 1.6): five concatenated pieces - magic-number pickle, protocol-version
  pickle, system-info pickle, the object pickle, a pickle listing storage keys - followed by, for each
  key, an int64 element count and the raw little-endian bytes.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from dataclasses import dataclass, field
from typing import Any, BinaryIO

import numpy as np

__all__ = ["UnsafePickleError", "TorchFileError", "load_torch_state_dict"]

LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001


class TorchFileError(ValueError):
    """The file is not a readable ``torch.save`` state dict."""


class UnsafePickleError(TorchFileError):
    """The pickle references a global that a plain tensor state dict never needs."""


# Storage class name -> NumPy dtype. ``BFloat16Storage`` is read as raw uint16 and widened later.
STORAGE_DTYPES: dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "HalfStorage": np.dtype("<f2"),
    "DoubleStorage": np.dtype("<f8"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
    "BFloat16Storage": np.dtype("<u2"),
}


@dataclass(frozen=True)
class StorageType:
    """Stand-in for ``torch.FloatStorage`` & co.: only remembers the element type."""

    name: str

    @property
    def dtype(self) -> np.dtype:
        return STORAGE_DTYPES[self.name]


@dataclass
class StorageRef:
    """A storage named by the pickle; its bytes are attached after unpickling (legacy format)."""

    key: str
    storage_type: StorageType
    numel: int
    view_offset: int = 0  # legacy storage views: element offset into the root storage
    view_numel: int | None = None
    root: StorageRef | None = None  # legacy storage views read the bytes of their root storage
    data: np.ndarray | None = field(default=None, repr=False)

    def elements(self) -> np.ndarray:
        """The elements this storage covers (a slice of the root's for a legacy view)."""
        data = self.root.data if self.root is not None else self.data
        if data is None:
            raise TorchFileError(f"storage {self.key!r} has no data in the file")
        if self.root is None:
            return data
        return data[self.view_offset : self.view_offset + (self.view_numel or 0)]


@dataclass
class TensorRef:
    """A tensor described by the pickle, materialised once the storage bytes are known."""

    storage: StorageRef
    storage_offset: int
    size: tuple[int, ...]
    stride: tuple[int, ...]

    def to_numpy(self) -> np.ndarray:
        flat = self.storage.elements()[self.storage_offset :]
        if not self.size:
            array = flat[:1].reshape(())
        else:
            needed = 1 + sum((dim - 1) * step for dim, step in zip(self.size, self.stride) if dim > 0)
            if any(dim == 0 for dim in self.size):
                needed = 0
            if needed > flat.size:
                raise TorchFileError(
                    f"tensor of size {self.size} with stride {self.stride} overruns its storage "
                    f"({flat.size} elements)"
                )
            itemsize = flat.itemsize
            array = np.lib.stride_tricks.as_strided(
                flat,
                shape=self.size,
                strides=tuple(step * itemsize for step in self.stride),
                writeable=False,
            )
        array = np.array(array, copy=True)  # own, contiguous memory
        if self.storage.storage_type.name == "BFloat16Storage":
            array = (array.astype(np.uint32) << 16).view(np.float32)
        return array


def rebuild_tensor(storage: StorageRef, storage_offset: int, size: Any, stride: Any, *unused: Any) -> TensorRef:
    """Stand-in for ``torch._utils._rebuild_tensor`` / ``_rebuild_tensor_v2``."""
    if not isinstance(storage, StorageRef):
        raise TorchFileError("tensor rebuild did not receive a storage")
    return TensorRef(storage, int(storage_offset), tuple(int(d) for d in size), tuple(int(s) for s in stride))


def rebuild_parameter(data: TensorRef, *unused: Any) -> TensorRef:
    """Stand-in for ``torch._utils._rebuild_parameter``: a parameter is just its tensor here."""
    return data


SAFE_GLOBALS: dict[tuple[str, str], Any] = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor"): rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): rebuild_tensor,
    ("torch._utils", "_rebuild_parameter"): rebuild_parameter,
    **{("torch", name): StorageType(name) for name in STORAGE_DTYPES},
}


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that maps the allowed torch globals to stand-ins and refuses all others."""

    def __init__(self, file: BinaryIO, storages: dict[str, StorageRef], zip_format: bool) -> None:
        super().__init__(file)
        self.storages = storages
        self.zip_format = zip_format

    def find_class(self, module: str, name: str) -> Any:
        try:
            return SAFE_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: only tensor/storage rebuild globals are "
                "allowed in a weights file"
            ) from None

    def persistent_load(self, pid: Any) -> StorageRef:
        if not isinstance(pid, tuple) or not pid or pid[0] != "storage":
            raise UnsafePickleError(f"unsupported persistent id in weights file: {pid!r}")
        if self.zip_format:
            _, storage_type, key, _location, numel = pid[:5]
            view_metadata = None
        else:
            _, storage_type, key, _location, numel, view_metadata = pid
        if not isinstance(storage_type, StorageType):
            raise UnsafePickleError(f"unsupported storage type in weights file: {storage_type!r}")
        key = str(key)
        root = self.storages.get(key)
        if root is None:
            root = StorageRef(key, storage_type, int(numel))
            self.storages[key] = root
        if view_metadata is None:
            return root
        # Legacy storage view: (view_key, offset, view_size) into the root storage.
        view_key, offset, view_size = view_metadata
        return StorageRef(str(view_key), storage_type, int(view_size), int(offset), int(view_size), root=root)


def materialise(obj: Any) -> Any:
    """Replace every ``TensorRef`` inside dicts/lists/tuples with a NumPy array."""
    if isinstance(obj, TensorRef):
        return obj.to_numpy()
    if isinstance(obj, dict):
        return {key: materialise(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(materialise(value) for value in obj)
    return obj


def _read_legacy(file: BinaryIO) -> Any:
    def load_plain(what: str) -> Any:
        try:
            return RestrictedUnpickler(file, {}, zip_format=False).load()
        except UnsafePickleError:
            raise
        except Exception as error:
            raise TorchFileError(f"cannot read {what} of legacy torch file: {error}") from error

    magic = load_plain("magic number")
    if magic != LEGACY_MAGIC_NUMBER:
        raise TorchFileError("not a torch.save file (bad magic number)")
    protocol = load_plain("protocol version")
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise TorchFileError(f"unsupported legacy torch protocol version {protocol!r}")
    system_info = load_plain("system info")
    little_endian = bool(system_info.get("little_endian", True)) if isinstance(system_info, dict) else True

    storages: dict[str, StorageRef] = {}
    try:
        result = RestrictedUnpickler(file, storages, zip_format=False).load()
        storage_keys = RestrictedUnpickler(file, {}, zip_format=False).load()
    except UnsafePickleError:
        raise
    except Exception as error:
        raise TorchFileError(f"cannot read legacy torch file: {error}") from error

    for key in storage_keys:
        storage = storages.get(str(key))
        if storage is None:
            raise TorchFileError(f"legacy torch file lists unknown storage {key!r}")
        header = file.read(8)
        if len(header) != 8:
            raise TorchFileError("legacy torch file is truncated (storage header)")
        (numel,) = struct.unpack("<q" if little_endian else ">q", header)
        dtype = storage.storage_type.dtype
        raw = file.read(numel * dtype.itemsize)
        if len(raw) != numel * dtype.itemsize:
            raise TorchFileError("legacy torch file is truncated (storage data)")
        array = np.frombuffer(raw, dtype=dtype if little_endian else dtype.newbyteorder(">"))
        storage.data = array.astype(dtype, copy=False)
    return result


def _read_zip(archive: zipfile.ZipFile) -> Any:
    pickle_names = [name for name in archive.namelist() if name.endswith("data.pkl")]
    if len(pickle_names) != 1:
        raise TorchFileError("zip file is not a torch.save archive (no single data.pkl)")
    prefix = pickle_names[0][: -len("data.pkl")]
    storages: dict[str, StorageRef] = {}
    with archive.open(pickle_names[0]) as handle:
        try:
            result = RestrictedUnpickler(io.BytesIO(handle.read()), storages, zip_format=True).load()
        except UnsafePickleError:
            raise
        except Exception as error:
            raise TorchFileError(f"cannot read torch archive: {error}") from error
    for key, storage in storages.items():
        try:
            raw = archive.read(f"{prefix}data/{key}")
        except KeyError:
            raise TorchFileError(f"torch archive lacks storage data/{key}") from None
        storage.data = np.frombuffer(raw, dtype=storage.storage_type.dtype)
    return result


def load_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Return the tensors of a ``torch.save``-d state dict as ``{name: ndarray}``.

    A checkpoint that wraps the state dict (``{"state_dict": {...}}`` or ``{"model": {...}}``) is
    unwrapped. Non-tensor entries are dropped. Raises ``UnsafePickleError`` for pickles that
    reference anything but tensor rebuild globals, and ``TorchFileError`` for unreadable files.
    """
    path = os.fspath(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            result = _read_zip(archive)
    else:
        with open(path, "rb") as file:
            result = _read_legacy(file)
    if isinstance(result, dict):
        for wrapper_key in ("state_dict", "model"):
            inner = result.get(wrapper_key)
            if isinstance(inner, dict) and not any(isinstance(v, TensorRef) for v in result.values()):
                result = inner
                break
    if not isinstance(result, dict):
        raise TorchFileError(f"torch file holds a {type(result).__name__}, not a state dict")
    arrays = materialise(result)
    return {str(name): value for name, value in arrays.items() if isinstance(value, np.ndarray)}
