"""Safe checkpoint reading: tensors and plain configuration, never code.

NVlabs StyleGAN pickles (stylegan2-ada-pytorch, stylegan3, and community models
trained with them) store each network as a `torch_utils.persistence` object: the
source text of the module that defined it plus a call that would execute that
source while unpickling. `read_nvlabs_pickle` reads them with a restricted unpickler
that resolves only a fixed list of globals, each to a function of this module that
builds plain data: tensors from their storages, numpy arrays of numeric dtypes,
dicts, lists, numbers and strings. A persistent object becomes a `NetworkRecord`
(class name, constructor arguments, tensors, plain attributes, children); its source
text is kept only as a digest and never executed. Any other global is refused with a
`GeneratorError` naming the file and the global.

Plain state dicts load with `torch.load(weights_only=True)` (.pt, .pth, .ckpt) or
with safetensors (.safetensors).
"""

from __future__ import annotations

import collections
import hashlib
import io
import json
import pickle
import warnings
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from runtime.errors import GeneratorError

PICKLE_SUFFIXES = (".pkl", ".pickle")
TORCH_SUFFIXES = (".pt", ".pth", ".ckpt", ".bin")
SAFETENSORS_SUFFIXES = (".safetensors",)
EXPECTED = (
    "an NVlabs StyleGAN pickle (.pkl) or a state dict "
    "(.pt, .pth with tensors only, or .safetensors)"
)

# torch.nn.Module bookkeeping that a record does not need to keep.
_MODULE_INTERNALS = frozenset({"_parameters", "_buffers", "_modules", "_init_args", "_init_kwargs"})


@dataclass
class NetworkRecord:
    """One `torch_utils.persistence` object from an NVlabs pickle, as plain data.

    Attributes:
        class_name: the upstream class, e.g. "Generator", "SynthesisLayer".
        init_args: positional constructor arguments.
        init_kwargs: keyword constructor arguments (plain data).
        tensors: parameters and buffers by name (None where upstream registered None).
        attrs: the object's other plain attributes (numbers, strings, arrays, lists).
        children: sub-networks by attribute name.
        source_sha256: digest of the module source the pickle carried (never run).
        version: the persistence format version.
    """

    class_name: str
    init_args: tuple[Any, ...] = ()
    init_kwargs: dict[str, Any] = field(default_factory=dict)
    tensors: dict[str, torch.Tensor | None] = field(default_factory=dict)
    attrs: dict[str, Any] = field(default_factory=dict)
    children: dict[str, NetworkRecord | None] = field(default_factory=dict)
    source_sha256: str = ""
    version: int = 0

    def state_dict(self, prefix: str = "") -> dict[str, torch.Tensor]:
        """Every tensor under this record, named as torch's `state_dict()` names them.

        Thread: any.
        """
        out = {prefix + k: v for k, v in self.tensors.items() if v is not None}
        for name, child in self.children.items():
            if child is not None:
                out.update(child.state_dict(f"{prefix}{name}."))
        return out

    def find(self, dotted: str) -> NetworkRecord:
        """The descendant record at a dotted path ("synthesis.b4.conv1").

        Raises:
            KeyError: no such child.
        Thread: any.
        """
        record = self
        for part in dotted.split("."):
            child = record.children.get(part)
            if child is None:
                raise KeyError(dotted)
            record = child
        return record


@dataclass(frozen=True)
class StateDictFile:
    """A plain state dict read from a .pt/.pth/.safetensors file.

    Attributes:
        tensors: tensors by name (the top-level dict, or the one under "G_ema" or
            "state_dict" when the file nests it).
        init_kwargs: the network's constructor arguments when the file stores them
            (a plain "init_kwargs" dict beside the tensors, or safetensors metadata
            "init_kwargs" as JSON); empty otherwise.
    """

    tensors: dict[str, torch.Tensor]
    init_kwargs: dict[str, Any]


def check_file(path: Path) -> None:
    """Raise a clear error when the weights file is absent or unreadable.

    Raises:
        GeneratorError: naming the file and what was expected.
    Thread: any.
    """
    if not path.exists():
        raise GeneratorError(f"{path}: weights file not found; expected {EXPECTED}")
    if not path.is_file():
        raise GeneratorError(f"{path}: is not a file; expected {EXPECTED}")


def read_nvlabs_pickle(path: Path) -> dict[str, Any]:
    """Read an NVlabs pickle without executing anything stored in it.

    Args:
        path: the .pkl file.
    Returns:
        The pickle's top-level data with every network as a `NetworkRecord`
        (training snapshots are dicts with "G", "D", "G_ema", ...).
    Raises:
        GeneratorError: the file is missing, truncated, not a pickle, or asks for a
            global outside the allowed list (the message names it).
    Thread: any.
    """
    check_file(path)
    with open(path, "rb") as f:
        head = f.read(4)
        f.seek(0)
        if head.startswith(b"PK"):
            raise GeneratorError(
                f"{path}: is a torch.save archive, not an NVlabs pickle; "
                "rename it to .pt to load it as a state dict"
            )
        unpickler = _RestrictedUnpickler(f, path)
        try:
            with warnings.catch_warnings():
                # Upstream pickles carry TypedStorage objects; torch warns that the
                # class is deprecated each time one is rebuilt.
                warnings.simplefilter("ignore", UserWarning)
                data = unpickler.load()
        except GeneratorError:
            raise
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, RuntimeError) as exc:
            raise GeneratorError(
                f"{path}: corrupt or truncated pickle ({type(exc).__name__}: {exc}); "
                f"expected {EXPECTED}"
            ) from None
        except (AttributeError, IndexError, KeyError, MemoryError, OverflowError) as exc:
            raise GeneratorError(
                f"{path}: malformed pickle ({type(exc).__name__}: {exc}); expected {EXPECTED}"
            ) from None
    _check_plain(data, path)
    return data


def read_state_dict(path: Path) -> StateDictFile:
    """Read a plain state dict: torch files with weights_only=True, or safetensors.

    Args:
        path: a .pt/.pth/.ckpt/.bin or .safetensors file.
    Returns:
        Its tensors and any stored constructor arguments.
    Raises:
        GeneratorError: missing, corrupt, holds objects other than tensors and plain
            data, or holds no tensors.
    Thread: any.
    """
    check_file(path)
    if path.suffix.lower() in SAFETENSORS_SUFFIXES:
        return _read_safetensors(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise GeneratorError(
            f"{path}: refused: the file holds objects other than tensors and plain data "
            f"({first}); expected a state dict of tensors"
        ) from None
    except (RuntimeError, EOFError, ValueError, zipfile.BadZipFile, OSError) as exc:
        raise GeneratorError(
            f"{path}: corrupt or not a torch checkpoint ({type(exc).__name__}: {exc}); "
            f"expected {EXPECTED}"
        ) from None
    if not isinstance(data, dict):
        raise GeneratorError(
            f"{path}: holds a {type(data).__name__}, expected a dict of tensors (a state dict)"
        )
    init_kwargs = data.get("init_kwargs", {})
    for key in ("G_ema", "state_dict"):
        if isinstance(data.get(key), dict):
            data = data[key]
            init_kwargs = data.get("init_kwargs", init_kwargs)
            break
    tensors = {k: v for k, v in data.items() if isinstance(v, torch.Tensor)}
    if not tensors:
        raise GeneratorError(f"{path}: holds no tensors; expected a state dict")
    if not isinstance(init_kwargs, dict):
        raise GeneratorError(f"{path}: 'init_kwargs' must be a dict, got {type(init_kwargs)}")
    return StateDictFile(tensors, init_kwargs)


def _read_safetensors(path: Path) -> StateDictFile:
    try:
        from safetensors import SafetensorError, safe_open
    except ImportError as exc:  # pragma: no cover - safetensors comes with open_clip
        raise GeneratorError(f"{path}: the safetensors package is not installed") from exc
    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise GeneratorError(
            f"{path}: corrupt safetensors file ({type(exc).__name__}: {exc}); "
            "expected a safetensors state dict"
        ) from None
    if not tensors:
        raise GeneratorError(f"{path}: holds no tensors; expected a state dict")
    init_kwargs: dict[str, Any] = {}
    if "init_kwargs" in meta:
        try:
            init_kwargs = json.loads(meta["init_kwargs"])
        except json.JSONDecodeError as exc:
            raise GeneratorError(f"{path}: metadata 'init_kwargs' is not JSON: {exc}") from None
        if not isinstance(init_kwargs, dict):
            raise GeneratorError(f"{path}: metadata 'init_kwargs' must be a JSON object")
    return StateDictFile(tensors, init_kwargs)


def save_safetensors(
    path: Path, tensors: dict[str, torch.Tensor], init_kwargs: dict[str, Any]
) -> None:
    """Write a state dict with its constructor arguments (JSON metadata).

    A converted pickle loads without any unpickling at all.

    Raises:
        GeneratorError: the file cannot be written.
    Thread: any.
    """
    from safetensors.torch import save_file

    try:
        save_file(
            {k: v.detach().contiguous().cpu() for k, v in tensors.items()},
            str(path),
            metadata={"init_kwargs": json.dumps(init_kwargs, default=_json_default)},
        )
    except OSError as exc:
        raise GeneratorError(f"{path}: cannot write ({exc.strerror})") from None


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


# ---- the restricted unpickler --------------------------------------------------------


class _PlainDict(dict):
    """Stands in for dnnlib.EasyDict: a dict, nothing more."""


class _NdarrayToken:
    """Stands in for numpy.ndarray as the subtype argument of `_reconstruct`."""


def _persistent_record(meta: Any) -> NetworkRecord:
    if not isinstance(meta, dict) or meta.get("type") != "class":
        raise pickle.UnpicklingError("persistent object without class metadata")
    state = meta.get("state")
    class_name = meta.get("class_name")
    if not isinstance(state, dict) or not isinstance(class_name, str):
        raise pickle.UnpicklingError(f"persistent object '{class_name}' has no state dict")
    source = meta.get("module_src", "")
    digest = hashlib.sha256(source.encode("utf-8", "replace")).hexdigest() if source else ""
    tensors: dict[str, torch.Tensor | None] = {}
    for group in ("_parameters", "_buffers"):
        for name, value in (state.get(group) or {}).items():
            if value is not None and not isinstance(value, torch.Tensor):
                raise pickle.UnpicklingError(f"{class_name}.{name} is not a tensor")
            tensors[name] = value
    children: dict[str, NetworkRecord | None] = {}
    for name, child in (state.get("_modules") or {}).items():
        if child is not None and not isinstance(child, NetworkRecord):
            raise pickle.UnpicklingError(f"{class_name}.{name} is not a network")
        children[name] = child
    attrs = {
        k: _plain_value(v)
        for k, v in state.items()
        if k not in _MODULE_INTERNALS and not k.startswith("_") and k != "training"
    }
    return NetworkRecord(
        class_name=class_name,
        init_args=tuple(_plain_value(v) for v in state.get("_init_args", ()) or ()),
        init_kwargs={k: _plain_value(v) for k, v in (state.get("_init_kwargs") or {}).items()},
        tensors=tensors,
        attrs=attrs,
        children=children,
        source_sha256=digest,
        version=int(meta.get("version", 0)),
    )


def _plain_value(value: Any) -> Any:
    """numpy scalars to Python numbers, EasyDicts to dicts, recursively."""
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, dict):
        return {k: _plain_value(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain_value(v) for v in value]
    if isinstance(value, tuple):
        return tuple(_plain_value(v) for v in value)
    return value


def _rebuild_tensor(
    storage: Any, storage_offset: int, size: tuple[int, ...], stride: tuple[int, ...]
) -> torch.Tensor:
    if not isinstance(storage, torch.TypedStorage | torch.UntypedStorage):
        raise pickle.UnpicklingError("tensor without a torch storage")
    dtype = storage.dtype if isinstance(storage, torch.TypedStorage) else torch.uint8
    untyped = storage.untyped() if isinstance(storage, torch.TypedStorage) else storage
    t = torch.empty((0,), dtype=dtype)
    t.set_(untyped, int(storage_offset), tuple(size), tuple(stride))
    return t


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> torch.Tensor:
    return _rebuild_tensor(storage, storage_offset, size, stride)


def _rebuild_tensor_v3(
    storage: Any,
    storage_offset: int,
    size: tuple[int, ...],
    stride: tuple[int, ...],
    requires_grad: bool,
    backward_hooks: Any,
    dtype: torch.dtype,
    metadata: Any = None,
) -> torch.Tensor:
    if not isinstance(storage, torch.UntypedStorage) or not isinstance(dtype, torch.dtype):
        raise pickle.UnpicklingError("tensor without an untyped storage and dtype")
    t = torch.empty((0,), dtype=dtype)
    t.set_(storage, int(storage_offset), tuple(size), tuple(stride))
    return t


def _rebuild_parameter(data: Any, requires_grad: bool = False, *_hooks_and_state: Any) -> Any:
    if not isinstance(data, torch.Tensor):
        raise pickle.UnpicklingError("parameter without a tensor")
    return data


def _load_storage_bytes(data: Any) -> Any:
    if not isinstance(data, bytes | bytearray):
        raise pickle.UnpicklingError("storage without bytes")
    # The bytes are a torch.save archive of one storage; torch's own restricted
    # loader reads it.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


def _numpy_dtype(obj: Any, align: bool = False, copy: bool = False) -> np.dtype:
    dtype = np.dtype(obj, align=align, copy=copy) if isinstance(obj, str) else None
    if dtype is None or dtype.hasobject:
        raise pickle.UnpicklingError(f"numpy dtype {obj!r} is not a plain numeric dtype")
    return dtype


def _numpy_scalar(dtype: Any, data: Any = None) -> Any:
    if not isinstance(dtype, np.dtype) or dtype.hasobject or not isinstance(data, bytes):
        raise pickle.UnpicklingError("numpy scalar that is not plain numeric data")
    return np.frombuffer(data, dtype=dtype, count=1)[0]


def _numpy_reconstruct(subtype: Any, shape: Any, dtype_code: Any) -> np.ndarray:
    if subtype is not _NdarrayToken:
        raise pickle.UnpicklingError("numpy array of a subclass")
    return np.ndarray.__new__(np.ndarray, (0,), dtype=np.uint8)


def _codecs_encode(text: Any, encoding: str = "utf-8") -> bytes:
    # Protocol-2 pickles spell bytes as _codecs.encode(str, 'latin1').
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
        raise pickle.UnpicklingError("unexpected _codecs.encode call")
    return text.encode("latin1")


def _torch_dtypes() -> dict[tuple[str, str], Any]:
    names = ("float16", "float32", "float64", "bfloat16", "int8", "int16", "int32", "int64")
    names += ("uint8", "bool", "half", "float", "double", "long", "int")
    return {("torch", n): getattr(torch, n) for n in names}


_ALLOWED: dict[tuple[str, str], Callable[..., Any] | type | Any] = {
    ("torch_utils.persistence", "_reconstruct_persistent_obj"): _persistent_record,
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("builtins", "set"): set,
    ("builtins", "frozenset"): frozenset,
    ("_codecs", "encode"): _codecs_encode,
    ("dnnlib.util", "EasyDict"): _PlainDict,
    ("dnnlib", "EasyDict"): _PlainDict,
    ("torch._utils", "_rebuild_tensor"): _rebuild_tensor,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_tensor_v3"): _rebuild_tensor_v3,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("torch._utils", "_rebuild_parameter_with_state"): _rebuild_parameter,
    ("torch.storage", "_load_from_bytes"): _load_storage_bytes,
    ("numpy", "dtype"): _numpy_dtype,
    ("numpy", "ndarray"): _NdarrayToken,
    ("numpy.core.multiarray", "scalar"): _numpy_scalar,
    ("numpy._core.multiarray", "scalar"): _numpy_scalar,
    ("numpy.core.multiarray", "_reconstruct"): _numpy_reconstruct,
    ("numpy._core.multiarray", "_reconstruct"): _numpy_reconstruct,
    **_torch_dtypes(),
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Resolves only the globals in `_ALLOWED`, each to a plain-data builder."""

    def __init__(self, file: io.BufferedReader, path: Path) -> None:
        super().__init__(file)
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        """The plain-data builder for an allowed global; GeneratorError otherwise."""
        found = _ALLOWED.get((module, name))
        if found is not None:
            return found
        hint = ""
        if module.startswith("dnnlib.tflib"):
            hint = (
                " (a TensorFlow-era StyleGAN pickle: convert it to a PyTorch pickle with "
                "NVlabs' legacy.py first)"
            )
        raise GeneratorError(
            f"{self.path}: refused to load: the pickle asks for the global "
            f"'{module}.{name}', which is not plain data and could run code{hint}; "
            "only tensors, numpy arrays and plain configuration are read"
        )

    def persistent_load(self, pid: Any) -> Any:
        """NVlabs pickles have no persistent ids: refuse any."""
        raise GeneratorError(
            f"{self.path}: refused to load: the pickle uses persistent id {str(pid)[:40]!r}; "
            f"expected {EXPECTED}"
        )


def _check_plain(value: Any, path: Path, depth: int = 0) -> None:
    """Reject object arrays and anything that is not plain data (defence in depth)."""
    if depth > 200:
        raise GeneratorError(f"{path}: nested too deeply to be a checkpoint")
    if isinstance(value, NetworkRecord):
        for child in value.children.values():
            if child is not None:
                _check_plain(child, path, depth + 1)
        _check_plain(value.attrs, path, depth + 1)
        _check_plain(value.init_kwargs, path, depth + 1)
        _check_plain(list(value.init_args), path, depth + 1)
        return
    if isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise GeneratorError(f"{path}: holds a numpy object array; refused")
        return
    if isinstance(value, dict):
        for k, v in value.items():
            _check_plain(k, path, depth + 1)
            _check_plain(v, path, depth + 1)
        return
    if isinstance(value, list | tuple | set | frozenset):
        for v in value:
            _check_plain(v, path, depth + 1)
        return
    plain = (str, bytes, int, float, bool, complex, type(None), torch.Tensor, np.generic)
    if not isinstance(value, plain) and not isinstance(value, torch.dtype):
        raise GeneratorError(f"{path}: holds a {type(value).__name__}, which is not plain data")
