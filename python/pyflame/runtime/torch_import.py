"""PyTorch ``.pt``/``.pth`` state-dict import without torch and without running file code.

PyTorch's zip checkpoints hold ``<prefix>/data.pkl`` (a pickle of the state dict whose
tensors refer to storages through persistent ids
``('storage', storage_type, key, location, numel)``) and the raw little-endian storage bytes
under ``<prefix>/data/<key>``. This module unpickles ``data.pkl`` with a *restricted*
unpickler: :meth:`_RestrictedUnpickler.find_class` only resolves the handful of globals
needed to rebuild tensors and containers (``torch._utils._rebuild_tensor_v2``,
``torch._utils._rebuild_parameter``, ``collections.OrderedDict`` and the typed storage
classes such as ``torch.FloatStorage``), each mapped to a local, side-effect-free
implementation. Any other global (``os.system``, ``builtins.eval``, ...) raises
:class:`UnsafeCheckpointError` naming it; nothing from the file is ever executed.
Tensors become NumPy arrays honouring dtype, shape, strides and storage offset, with every
view bounds-checked against its storage. bfloat16 tensors are widened to float32 (NumPy has
no bfloat16). The legacy non-zip format (``_use_new_zipfile_serialization=False``) and
TorchScript archives are rejected with :class:`UnsupportedFormatError`.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.torch_import import load_pytorch_state_dict
    >>> sd = load_pytorch_state_dict("linear.pt")  # doctest: +SKIP
    >>> {k: v.shape for k, v in sd.items()}  # doctest: +SKIP
    {'weight': (2, 3), 'bias': (2,)}
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import time
import zipfile
from typing import Any, Callable, Dict, List, Mapping, Optional, Tuple, Union

import numpy as np

from .errors import InvalidModelError, UnsupportedFormatError
from .graph import Graph

PathLike = Union[str, "os.PathLike[str]"]

# torch storage class name -> (NumPy dtype of the stored little-endian bytes, element size)
_STORAGE_DTYPES: Dict[str, np.dtype] = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "BFloat16Storage": np.dtype("<u2"),  # raw bits, widened to float32 after the view
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}
_COMMON_KEYS = ("state_dict", "model_state_dict", "model")


class UnsafeCheckpointError(InvalidModelError):
    """The checkpoint's pickle references a global that is not on the allow-list."""


def _bad(msg: str) -> InvalidModelError:
    return InvalidModelError(f"invalid PyTorch checkpoint: {msg}")


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` etc.: only carries the element dtype."""

    __slots__ = ("name", "dtype")

    def __init__(self, name: str) -> None:
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    def __setstate__(self, state: Any) -> None:
        raise _bad(f"unexpected state for storage type {self.name}")


class _Storage:
    """A typed storage loaded from ``data/<key>``: a flat read-only NumPy array."""

    __slots__ = ("key", "type", "array")

    def __init__(self, key: str, stype: _StorageType, array: np.ndarray) -> None:
        self.key, self.type, self.array = key, stype, array

    def __setstate__(self, state: Any) -> None:
        raise _bad(f"unexpected state for storage {self.key!r}")


class _TensorRef:
    """The result of a rebuild call, turned into an ndarray once unpickling finishes."""

    __slots__ = ("array", "bf16")

    def __init__(self, array: np.ndarray, bf16: bool) -> None:
        self.array, self.bf16 = array, bf16

    def __setstate__(self, state: Any) -> None:
        raise _bad("unexpected object state applied to a tensor")

    def to_numpy(self) -> np.ndarray:
        if self.bf16:
            return (self.array.astype(np.uint32) << 16).view(np.float32)
        return self.array


def _int_seq(v: Any, what: str) -> Tuple[int, ...]:
    if not isinstance(v, (tuple, list)) or not all(
        isinstance(x, int) and not isinstance(x, bool) for x in v
    ):
        raise _bad(f"tensor {what} must be a tuple of ints, got {v!r}")
    return tuple(v)


def _rebuild_tensor_v2(
    storage: Any,
    storage_offset: Any,
    size: Any,
    stride: Any,
    requires_grad: Any = False,
    backward_hooks: Any = None,
    metadata: Any = None,
) -> _TensorRef:
    """Safe version of ``torch._utils._rebuild_tensor_v2``: a bounds-checked strided view."""
    if not isinstance(storage, _Storage):
        raise _bad(f"tensor storage is a {type(storage).__name__}, not a storage")
    shape = _int_seq(size, "size")
    strides = _int_seq(stride, "stride")
    if not isinstance(storage_offset, int) or isinstance(storage_offset, bool):
        raise _bad(f"storage offset {storage_offset!r} is not an int")
    if len(shape) != len(strides):
        raise _bad(f"size {shape} and stride {strides} have different ranks")
    if any(d < 0 for d in shape) or any(s < 0 for s in strides) or storage_offset < 0:
        raise _bad(f"negative size/stride/offset: size {shape} stride {strides}")
    arr = storage.array
    bf16 = storage.type.name == "BFloat16Storage"
    if 0 in shape:
        return _TensorRef(np.zeros(shape, arr.dtype), bf16)
    last = storage_offset + sum((d - 1) * s for d, s in zip(shape, strides))
    if last >= arr.size:
        raise _bad(
            f"tensor view (offset {storage_offset}, size {shape}, stride {strides}) reaches "
            f"element {last} of storage {storage.key!r} which has {arr.size} elements"
        )
    count = int(np.prod(shape, dtype=object))
    if count > 64 * arr.size + (1 << 20):
        raise _bad(f"tensor of size {shape} is implausibly large for its storage {storage.key!r}")
    item = arr.itemsize
    view = np.lib.stride_tricks.as_strided(
        arr[storage_offset:],
        shape=shape,
        strides=tuple(s * item for s in strides),
        writeable=False,
    )
    return _TensorRef(np.array(view, copy=True), bf16)


def _rebuild_parameter(data: Any, requires_grad: Any = False, backward_hooks: Any = None) -> Any:
    """Safe version of ``torch._utils._rebuild_parameter``: the parameter's tensor."""
    if not isinstance(data, _TensorRef):
        raise _bad(f"parameter data is a {type(data).__name__}, not a tensor")
    return data


_ALLOWED: Dict[Tuple[str, str], Any] = {
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    ("collections", "OrderedDict"): collections.OrderedDict,
}
for _name in _STORAGE_DTYPES:
    _ALLOWED[("torch", _name)] = _StorageType(_name)


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler resolving only allow-listed globals; storages come from the zip archive."""

    def __init__(
        self, data: bytes, load_storage: Callable[[str, _StorageType, int], _Storage]
    ) -> None:
        super().__init__(io.BytesIO(data))
        self._load_storage = load_storage
        self._storages: Dict[str, _Storage] = {}

    def find_class(self, module: str, name: str) -> Any:
        try:
            return _ALLOWED[(module, name)]
        except (KeyError, TypeError):
            raise UnsafeCheckpointError(
                f"refusing to load PyTorch checkpoint: it references the global "
                f"'{module}.{name}', which is not on the allow-list of tensor/container "
                "types (nothing from the file was executed)"
            ) from None

    def persistent_load(self, pid: Any) -> Any:
        if not isinstance(pid, tuple) or len(pid) != 5 or pid[0] != "storage":
            raise _bad(f"unsupported persistent id {pid!r:.100}")
        _, stype, key, _location, numel = pid
        if not isinstance(stype, _StorageType):
            raise _bad(f"unknown storage type {stype!r:.100}")
        if not isinstance(key, str) or not isinstance(numel, int) or numel < 0:
            raise _bad(f"bad storage reference {pid!r:.100}")
        if key not in self._storages:
            self._storages[key] = self._load_storage(key, stype, numel)
        st = self._storages[key]
        if st.type is not stype:
            raise _bad(f"storage {key!r} is used with two dtypes")
        return st


def _open_zip(path: PathLike) -> zipfile.ZipFile:
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise InvalidModelError(f"checkpoint file not found: {p}")
    with open(p, "rb") as f:
        head = f.read(4)
    if head[:2] != b"PK":
        if head[:2] in (b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"):
            raise UnsupportedFormatError(
                f"{p}: legacy (non-zip) PyTorch checkpoint format is not supported; re-save it "
                "with a recent torch.save (zip format, the default since PyTorch 1.6)"
            )
        raise UnsupportedFormatError(f"{p}: not a PyTorch zip checkpoint (magic {head!r})")
    try:
        return zipfile.ZipFile(p)
    except Exception as e:  # noqa: BLE001 - any failure to parse the zip directory
        raise _bad(f"{p}: corrupt zip archive ({type(e).__name__}: {e})") from e


def _read_archive(zf: zipfile.ZipFile, path: str) -> Any:
    names = zf.namelist()
    pkls = [n for n in names if n.endswith("/data.pkl") and n.count("/") == 1]
    if len(pkls) != 1:
        if any(n.endswith("/constants.pkl") or "/code/" in n for n in names):
            raise UnsupportedFormatError(
                f"{path}: this is a TorchScript archive, not a state dict; export the model "
                "to ONNX instead"
            )
        raise _bad(f"{path}: expected exactly one '<prefix>/data.pkl' entry, found {pkls}")
    prefix = pkls[0][: -len("data.pkl")]
    big_endian = False
    if prefix + "byteorder" in names:
        order = zf.read(prefix + "byteorder").strip()
        if order not in (b"little", b"big"):
            raise _bad(f"{path}: unknown byteorder {order!r:.40}")
        big_endian = order == b"big"
    file_size = os.path.getsize(path)

    def load_storage(key: str, stype: _StorageType, numel: int) -> _Storage:
        entry = f"{prefix}data/{key}"
        try:
            info = zf.getinfo(entry)
        except KeyError:
            raise _bad(f"{path}: storage {key!r} is missing ({entry})") from None
        need = numel * stype.dtype.itemsize
        if info.file_size < need:
            raise _bad(
                f"{path}: storage {key!r} has {info.file_size} bytes but {numel} "
                f"{stype.name} elements need {need}"
            )
        if need > 64 * max(file_size, 1) + (1 << 20):
            raise _bad(f"{path}: storage {key!r} claims an implausible size ({need} bytes)")
        with zf.open(info) as fh:
            raw = fh.read(need)
        if len(raw) < need:
            raise _bad(f"{path}: storage {key!r} is truncated")
        dt = stype.dtype.newbyteorder(">") if big_endian else stype.dtype
        arr = np.frombuffer(raw, dtype=dt, count=numel)
        if big_endian:
            arr = arr.astype(stype.dtype)
        return _Storage(key, stype, arr)

    try:
        data = zf.read(pkls[0])
    except Exception as e:  # noqa: BLE001 - damaged zip entry
        raise _bad(f"{path}: cannot read data.pkl ({type(e).__name__}: {e})") from e
    try:
        obj = _RestrictedUnpickler(data, load_storage).load()
    except (InvalidModelError, UnsupportedFormatError):
        raise
    except Exception as e:  # noqa: BLE001 - any malformed pickle is an invalid model
        raise _bad(f"{path}: corrupt data.pkl ({type(e).__name__}: {e})") from e
    return _finish(obj)


def _finish(obj: Any, depth: int = 0) -> Any:
    """Replaces every _TensorRef by its ndarray in plain containers."""
    if depth > 100:
        raise _bad("object nesting too deep")
    if isinstance(obj, _TensorRef):
        return obj.to_numpy()
    if isinstance(obj, (_Storage, _StorageType)):
        raise _bad("a bare storage object appears outside a tensor")
    if isinstance(obj, dict):
        out = type(obj)() if isinstance(obj, collections.OrderedDict) else {}
        for k, v in obj.items():
            out[k] = _finish(v, depth + 1)
        return out
    if isinstance(obj, list):
        return [_finish(v, depth + 1) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_finish(v, depth + 1) for v in obj)
    return obj


def load_pytorch_checkpoint(path: PathLike) -> Any:
    """The whole unpickled checkpoint (tensors as NumPy arrays, containers as dict/list/tuple).

    Example:
        >>> ckpt = load_pytorch_checkpoint("checkpoint.pt")  # doctest: +SKIP
        >>> sorted(ckpt)  # doctest: +SKIP
        ['epoch', 'model_state_dict']
    """
    p = os.fspath(path)
    with _open_zip(p) as zf:
        try:
            return _read_archive(zf, p)
        except (InvalidModelError, UnsupportedFormatError):
            raise
        except Exception as e:  # noqa: BLE001 - zip/zlib errors of a damaged file
            raise _bad(f"{p}: corrupt archive ({type(e).__name__}: {e})") from e


def load_pytorch_state_dict(
    path: PathLike, state_dict_key: Optional[str] = None
) -> Dict[str, np.ndarray]:
    """Reads a PyTorch ``.pt``/``.pth`` state dict as ``{name: numpy array}`` (torch-free).

    `state_dict_key` selects the state dict inside a checkpoint dict (for example
    ``"model_state_dict"``). Without it, the top-level dict is used when it holds only
    tensors, else the first of ``state_dict``, ``model_state_dict``, ``model`` that does.

    Raises UnsafeCheckpointError (an InvalidModelError) for a pickle that references a
    non-allow-listed global, InvalidModelError for corrupt files or a missing key, and
    UnsupportedFormatError for legacy or TorchScript files.

    Example:
        >>> sd = load_pytorch_state_dict("mlp.pth")  # doctest: +SKIP
        >>> sd["fc1.weight"].dtype  # doctest: +SKIP
        dtype('float32')
    """
    obj = load_pytorch_checkpoint(path)
    if not isinstance(obj, dict):
        raise _bad(f"{os.fspath(path)}: top-level object is a {type(obj).__name__}, not a dict")

    def tensors_only(d: Any) -> bool:
        return isinstance(d, dict) and all(isinstance(v, np.ndarray) for v in d.values())

    if state_dict_key is not None:
        if state_dict_key not in obj:
            raise InvalidModelError(
                f"state_dict_key {state_dict_key!r} not in the checkpoint; its keys are "
                f"{sorted(map(str, obj))}"
            )
        sd = obj[state_dict_key]
    elif tensors_only(obj):
        sd = obj
    else:
        sd = next((obj[k] for k in _COMMON_KEYS if k in obj and tensors_only(obj[k])), obj)
    if not isinstance(sd, dict):
        raise InvalidModelError(
            f"state_dict_key {state_dict_key!r} selects a {type(sd).__name__}, "
            "not a dict of tensors"
        )
    bad = [str(k) for k, v in sd.items() if not isinstance(v, np.ndarray) or not isinstance(k, str)]
    if bad:
        raise InvalidModelError(
            f"entries {bad[:8]} of the state dict are not named tensors; pass state_dict_key "
            f"to select the state dict inside the checkpoint (keys: {sorted(map(str, sd))[:8]})"
        )
    return dict(sd)


def from_pytorch(
    path: PathLike,
    model_definer: Callable[[], Any],
    state_dict_key: Optional[str] = None,
    strict: bool = True,
) -> Any:
    """Builds a pyflame.nn model with `model_definer()` and loads the checkpoint's weights.

    Example:
        >>> from pyflame import nn
        >>> model = from_pytorch(  # doctest: +SKIP
        ...     "mlp.pt", lambda: nn.Sequential(nn.Linear(4, 8), nn.ReLU(), nn.Linear(8, 2)))
    """
    sd = load_pytorch_state_dict(path, state_dict_key)
    model = model_definer()
    if not hasattr(model, "load_state_dict"):
        raise TypeError(
            f"model_definer must return a pyflame.nn.Module, got {type(model).__name__}"
        )
    model.load_state_dict(sd, strict=strict)
    return model


class PyTorchImporter:
    """The spec's ``import_module.PyTorchImporter``: state dict + a graph-defining function.

    ``import_model(path, define, state_dict_key=None)`` calls ``define(graph, weights)`` with
    an empty runtime :class:`Graph` and the ``{name: ndarray}`` state dict, validates the
    graph and returns an ImportResult (``success``/``graph`` or ``error``/``exception``).

    Example:
        >>> def define(graph, weights):  # doctest: +SKIP
        ...     graph.add_input("x", [None, 3], np.float32)
        ...     graph.add_initializer("w", weights["weight"].T.copy())
        ...     graph.add_node("mm", "MatMul", ["x", "w"], ["y"])
        ...     graph.add_output("y", [None, 2], np.float32)
        >>> result = PyTorchImporter().import_model("linear.pt", define)  # doctest: +SKIP
        >>> result.success  # doctest: +SKIP
        True
    """

    def import_model(
        self,
        path: PathLike,
        model_definer: Callable[[Graph, Mapping[str, np.ndarray]], Any],
        state_dict_key: Optional[str] = None,
    ) -> Any:
        """Imports `path` into a Graph built by `model_definer(graph, weights)`."""
        from .onnx_import.importer import ImportResult, ImportStats

        t0 = time.perf_counter()
        result = ImportResult(stats=ImportStats())
        try:
            weights = load_pytorch_state_dict(path, state_dict_key)
            graph = Graph(os.path.splitext(os.path.basename(os.fspath(path)))[0] or "graph")
            ret = model_definer(graph, weights)
            if isinstance(ret, Graph):
                graph = ret
            graph.validate()
        except Exception as e:  # noqa: BLE001 - reported through ImportResult
            result.error, result.exception = f"{type(e).__name__}: {e}", e
            return result
        result.success, result.graph = True, graph
        st = result.stats
        st.node_count, st.initializer_count = len(graph.nodes), len(graph.initializers)
        st.parameter_count = int(sum(a.size for a in graph.initializers.values()))
        st.import_time_ms = (time.perf_counter() - t0) * 1e3
        return result


__all__: List[str] = [
    "PyTorchImporter",
    "UnsafeCheckpointError",
    "from_pytorch",
    "load_pytorch_checkpoint",
    "load_pytorch_state_dict",
]
