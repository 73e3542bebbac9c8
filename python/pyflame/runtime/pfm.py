"""The ``.pfm`` model format: a runtime :class:`Graph` plus its weights in one mmap-able file.

Layout (all integers little-endian)::

    offset 0   magic      b"PFM\\0"                      4 bytes
    offset 4   version    uint32 (currently 1)           4 bytes
    offset 8   meta_len   uint64: bytes of JSON metadata 8 bytes
    offset 16  metadata   UTF-8 JSON (graph name, opset, metadata, inputs, outputs,
                          value_info, nodes with attributes, tensor table)
    padding    zero bytes up to the next multiple of 64
    data       the weights blob: every tensor starts at a multiple of 64 bytes (relative
               to the start of the blob, itself 64-byte aligned in the file)

Each tensor table entry is ``{"name", "dtype", "shape", "offset", "nbytes"}`` with `offset`
relative to the blob. Initializers are listed under ``"initializers"`` (name -> tensor
index); tensor-valued node attributes (e.g. ``Constant.value``) are stored in the same
table and referenced from the attribute as ``{"t": "tensor", "v": index}``.

:func:`load_pfm` memory-maps the file and returns read-only NumPy views over the mapping
(no copy of the weights). Files are treated as untrusted: magic, version, JSON structure,
dtypes, shapes, offsets and sizes are all checked against the file length, and any problem
raises :class:`InvalidModelError` (or :class:`UnsupportedFormatError` for a wrong magic or
version) with a message naming what is wrong.

Example:
    >>> import os, tempfile
    >>> import numpy as np
    >>> from pyflame.runtime.graph import Graph
    >>> g = Graph("g"); g.add_input("x", [None, 2], np.float32)
    >>> g.add_initializer("w", np.eye(2, dtype=np.float32))
    >>> _ = g.add_node("mm", "MatMul", ["x", "w"], ["y"]); g.add_output("y", [None, 2], np.float32)
    >>> path = os.path.join(tempfile.mkdtemp(), "m.pfm")
    >>> save_pfm(g, path)
    >>> g2 = load_pfm(path)
    >>> g2.initializers["w"].tolist(), [n.op_type for n in g2.nodes]
    ([[1.0, 0.0], [0.0, 1.0]], ['MatMul'])
"""

from __future__ import annotations

import io
import json
import math
import mmap
import os
import struct
from typing import Any, Dict, List, Optional, Tuple, Union

import numpy as np

from .errors import InvalidModelError, UnsupportedFormatError
from .graph import Graph, Node
from .types import TensorInfo

MAGIC = b"PFM\0"
VERSION = 1
ALIGNMENT = 64
_HEADER = struct.Struct("<4sIQ")
_MAX_META = 1 << 30

# Whitelisted element types (stored little-endian).
_DTYPES: Dict[str, np.dtype] = {
    "float32": np.dtype("<f4"),
    "float16": np.dtype("<f2"),
    "float64": np.dtype("<f8"),
    "int64": np.dtype("<i8"),
    "int32": np.dtype("<i4"),
    "int16": np.dtype("<i2"),
    "int8": np.dtype("i1"),
    "uint8": np.dtype("u1"),
    "uint16": np.dtype("<u2"),
    "uint32": np.dtype("<u4"),
    "uint64": np.dtype("<u8"),
    "bool": np.dtype("?"),
}

PathLike = Union[str, "os.PathLike[str]", Any]


def _align(n: int) -> int:
    return (n + ALIGNMENT - 1) // ALIGNMENT * ALIGNMENT


def _dtype_name(dt: Any, what: str) -> str:
    d = np.dtype(dt)
    for k, v in _DTYPES.items():
        if v.kind == d.kind and v.itemsize == d.itemsize:
            return k
    raise InvalidModelError(f"cannot save {what}: dtype {d} is not supported by .pfm")


# ----------------------------------------------------------------------------- saving
class _Writer:
    def __init__(self) -> None:
        self.table: List[Dict[str, Any]] = []
        self.arrays: List[np.ndarray] = []
        self.size = 0

    def add(self, name: str, value: Any) -> int:
        a = np.asarray(value)
        dname = _dtype_name(a.dtype, f"tensor {name!r}")
        a = np.asarray(a, dtype=_DTYPES[dname])  # tobytes() writes C order
        offset = _align(self.size)
        self.table.append(
            {
                "name": name,
                "dtype": dname,
                "shape": [int(d) for d in a.shape],
                "offset": offset,
                "nbytes": int(a.nbytes),
            }
        )
        self.arrays.append(a)
        self.size = offset + a.nbytes
        return len(self.table) - 1


def _enc_attr(w: _Writer, node: str, key: str, v: Any) -> Dict[str, Any]:
    if isinstance(v, np.ndarray):
        return {"t": "tensor", "v": w.add(f"{node}.{key}", v)}
    if isinstance(v, (bool, np.bool_)):
        return {"t": "bool", "v": bool(v)}
    if isinstance(v, (int, np.integer)):
        return {"t": "int", "v": int(v)}
    if isinstance(v, (float, np.floating)):
        return {"t": "float", "v": _enc_float(float(v))}
    if isinstance(v, str):
        return {"t": "str", "v": v}
    if isinstance(v, bytes):
        return {"t": "bytes", "v": v.hex()}
    if v is None:
        return {"t": "none"}
    if isinstance(v, (list, tuple)):
        return {"t": "list", "v": [_enc_attr(w, node, f"{key}.{i}", x) for i, x in enumerate(v)]}
    raise InvalidModelError(
        f"cannot save attribute {key!r} of node {node!r}: {type(v).__name__} is not supported"
    )


def _enc_float(f: float) -> Any:
    return f if math.isfinite(f) else repr(f)  # 'inf', '-inf', 'nan' kept as strings


def _enc_info(t: TensorInfo) -> Dict[str, Any]:
    return {
        "name": t.name,
        "dtype": None if t.dtype is None else _dtype_name(t.dtype, f"tensor info {t.name!r}"),
        "shape": None if t.shape is None else list(t.shape),
    }


def save_pfm(graph_or_session: Any, path: PathLike) -> None:
    """Writes a runtime Graph (or an InferenceSession's optimized graph) to a ``.pfm`` file.

    Raises InvalidModelError when the graph holds a dtype or attribute the format cannot store.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from pyflame.runtime.graph import Graph
        >>> g = Graph("relu"); g.add_input("x", [3], np.float32)
        >>> _ = g.add_node("r", "Relu", ["x"], ["y"]); g.add_output("y", [3], np.float32)
        >>> p = os.path.join(tempfile.mkdtemp(), "relu.pfm"); save_pfm(g, p)
        >>> open(p, "rb").read(4)
        b'PFM\\x00'
    """
    graph = graph_or_session if isinstance(graph_or_session, Graph) else None
    if graph is None:
        graph = getattr(graph_or_session, "graph", None)
    if not isinstance(graph, Graph):
        raise TypeError(
            f"save_pfm needs a Graph or an InferenceSession, got {type(graph_or_session).__name__}"
        )
    w = _Writer()
    inits = {name: w.add(name, value) for name, value in graph.initializers.items()}
    nodes = [
        {
            "name": n.name,
            "op_type": n.op_type,
            "domain": n.domain,
            "inputs": list(n.inputs),
            "outputs": list(n.outputs),
            "attrs": {k: _enc_attr(w, n.name, k, v) for k, v in n.attrs.items()},
        }
        for n in graph.nodes
    ]
    meta = {
        "format": "pfm",
        "name": graph.name,
        "opset": int(graph.opset),
        "metadata": {str(k): str(v) for k, v in graph.metadata.items()},
        "inputs": [_enc_info(t) for t in graph.inputs],
        "outputs": [_enc_info(t) for t in graph.outputs],
        "value_info": [_enc_info(t) for t in graph.value_info.values()],
        "nodes": nodes,
        "initializers": inits,
        "tensors": w.table,
    }
    blob_meta = json.dumps(meta, separators=(",", ":"), allow_nan=False).encode("utf-8")
    data_start = _align(_HEADER.size + len(blob_meta))
    if hasattr(path, "write"):
        _write(path, blob_meta, data_start, w)
        return
    with open(os.fspath(path), "wb") as f:
        _write(f, blob_meta, data_start, w)


def _write(f: Any, blob_meta: bytes, data_start: int, w: _Writer) -> None:
    f.write(_HEADER.pack(MAGIC, VERSION, len(blob_meta)))
    f.write(blob_meta)
    f.write(b"\0" * (data_start - _HEADER.size - len(blob_meta)))
    pos = 0
    for entry, a in zip(w.table, w.arrays):
        f.write(b"\0" * (entry["offset"] - pos))
        f.write(a.tobytes())
        pos = entry["offset"] + a.nbytes
    f.write(b"\0" * (_align(pos) - pos))  # the file ends on an aligned boundary


# ----------------------------------------------------------------------------- loading
def _bad(msg: str) -> InvalidModelError:
    return InvalidModelError(f"invalid .pfm file: {msg}")


def _get(d: Any, key: str, typ: Any, where: str) -> Any:
    if not isinstance(d, dict) or key not in d:
        raise _bad(f"{where}: missing field {key!r}")
    v = d[key]
    if not isinstance(v, typ) or (typ is int and isinstance(v, bool)):
        raise _bad(f"{where}: field {key!r} has the wrong type {type(v).__name__}")
    return v


def _str_list(v: Any, where: str) -> List[str]:
    if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
        raise _bad(f"{where} must be a list of strings")
    return list(v)


def _dec_dtype(v: Any, where: str) -> np.dtype:
    if not isinstance(v, str) or v not in _DTYPES:
        raise _bad(f"{where}: unknown dtype {v!r} (known: {', '.join(_DTYPES)})")
    return _DTYPES[v]


def _dec_info(d: Any, where: str) -> TensorInfo:
    name = _get(d, "name", str, where)
    dt = d.get("dtype")
    dtype = None if dt is None else _dec_dtype(dt, f"{where} {name!r}")
    shape = d.get("shape")
    if shape is not None:
        if not isinstance(shape, list) or not all(
            x is None or isinstance(x, str) or (isinstance(x, int) and not isinstance(x, bool))
            for x in shape
        ):
            raise _bad(f"{where} {name!r}: shape must be a list of ints, strings or nulls")
        shape = list(shape)
    return TensorInfo(name, dtype, shape)


def _dec_tensor(e: Any, i: int, buf: Any, data_start: int, file_len: int) -> Tuple[str, np.ndarray]:
    where = f"tensor #{i}"
    name = _get(e, "name", str, where)
    where = f"tensor #{i} ({name!r})"
    dtype = _dec_dtype(e.get("dtype") if isinstance(e, dict) else None, where)
    shape = _get(e, "shape", list, where)
    if not all(isinstance(x, int) and not isinstance(x, bool) and x >= 0 for x in shape):
        raise _bad(f"{where}: shape {shape} must be non-negative ints")
    if len(shape) > 32:
        raise _bad(f"{where}: rank {len(shape)} is too large")
    offset = _get(e, "offset", int, where)
    nbytes = _get(e, "nbytes", int, where)
    count = 1
    for d in shape:
        count *= d
    if count * dtype.itemsize != nbytes:
        raise _bad(
            f"{where}: nbytes {nbytes} does not match shape {shape} x {dtype.itemsize} bytes"
        )
    if offset < 0 or offset % ALIGNMENT:
        raise _bad(f"{where}: offset {offset} is negative or not {ALIGNMENT}-byte aligned")
    if data_start + offset + nbytes > file_len:
        raise _bad(
            f"{where}: bytes [{data_start + offset}, {data_start + offset + nbytes}) lie beyond "
            f"the end of the file ({file_len} bytes; truncated?)"
        )
    if buf is None or count == 0:
        arr = np.zeros(shape, dtype)
    else:
        arr = np.frombuffer(buf, dtype=dtype, count=count, offset=data_start + offset)
        arr = arr.reshape(shape)
    return name, arr


def _dec_attr(v: Any, tensors: List[np.ndarray], where: str, depth: int = 0) -> Any:
    t = v.get("t") if isinstance(v, dict) else None
    if depth > 16:
        raise _bad(f"{where}: attribute nesting too deep")
    if t == "none":
        return None
    if t == "list":
        items = _get(v, "v", list, where)
        return [_dec_attr(x, tensors, where, depth + 1) for x in items]
    if t == "tensor":
        idx = _get(v, "v", int, where)
        if not 0 <= idx < len(tensors):
            raise _bad(f"{where}: tensor index {idx} out of range")
        return tensors[idx]
    if t == "bool":
        return bool(_get(v, "v", bool, where))
    if t == "int":
        return _get(v, "v", int, where)
    if t == "float":
        x = v.get("v")
        if isinstance(x, str) and x in ("inf", "-inf", "nan"):
            return float(x)
        if isinstance(x, (int, float)) and not isinstance(x, bool):
            return float(x)
        raise _bad(f"{where}: bad float value {x!r}")
    if t == "str":
        return _get(v, "v", str, where)
    if t == "bytes":
        try:
            return bytes.fromhex(_get(v, "v", str, where))
        except ValueError as e:
            raise _bad(f"{where}: bad bytes value") from e
    raise _bad(f"{where}: unknown attribute kind {t!r}")


def _read_header(f: Any, file_len: int) -> Tuple[Dict[str, Any], int]:
    head = f.read(_HEADER.size)
    if len(head) < 4 or head[:4] != MAGIC:
        raise UnsupportedFormatError(f"not a .pfm file: magic {head[:4]!r} (expected {MAGIC!r})")
    if len(head) < _HEADER.size:
        raise _bad(f"truncated header ({file_len} bytes)")
    _, version, meta_len = _HEADER.unpack(head)
    if version != VERSION:
        raise UnsupportedFormatError(
            f".pfm version {version} is not supported (this build reads version {VERSION})"
        )
    if meta_len > _MAX_META or _HEADER.size + meta_len > file_len:
        raise _bad(f"metadata length {meta_len} exceeds the file ({file_len} bytes; truncated?)")
    raw = f.read(meta_len)
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise _bad(f"corrupt JSON metadata ({e})") from e
    if not isinstance(meta, dict):
        raise _bad("metadata is not a JSON object")
    return meta, _align(_HEADER.size + meta_len)


def load_pfm(path: PathLike, mmap_weights: bool = True) -> Graph:
    """Reads a ``.pfm`` file into a runtime Graph; weights are read-only views of an mmap.

    With ``mmap_weights=False`` the weights are copied into memory and the file is closed.
    Raises UnsupportedFormatError for a wrong magic or version and InvalidModelError for any
    corrupt, truncated or inconsistent content.

    Example:
        >>> import os, tempfile
        >>> import numpy as np
        >>> from pyflame.runtime.graph import Graph
        >>> g = Graph("g"); g.add_input("x", [2], np.float32)
        >>> g.add_initializer("b", np.array([1, 2], np.float32))
        >>> _ = g.add_node("a", "Add", ["x", "b"], ["y"]); g.add_output("y", [2], np.float32)
        >>> p = os.path.join(tempfile.mkdtemp(), "g.pfm"); save_pfm(g, p)
        >>> load_pfm(p).initializers["b"].flags.writeable
        False
    """
    p = os.fspath(path)
    if not os.path.isfile(p):
        raise InvalidModelError(f"model file not found: {p}")
    with open(p, "rb") as f:
        file_len = os.fstat(f.fileno()).st_size
        meta, data_start = _read_header(f, file_len)
        entries = _get(meta, "tensors", list, "metadata")
        buf: Optional[Any] = None
        if entries and file_len > 0:
            if mmap_weights:
                buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
            else:
                f.seek(0)
                buf = f.read()
        tensors: List[np.ndarray] = []
        for i, e in enumerate(entries):
            tensors.append(_dec_tensor(e, i, buf, data_start, file_len)[1])
        if not mmap_weights:
            tensors = [np.array(t, copy=True) for t in tensors]
    return _build_graph(meta, entries, tensors)


def loads_pfm(data: Union[bytes, bytearray, memoryview]) -> Graph:
    """Reads ``.pfm`` content from memory (weights are views of `data`, not copies).

    Example:
        >>> import numpy as np
        >>> from pyflame.runtime.graph import Graph
        >>> g = Graph("g"); g.add_input("x", [1], np.float32)
        >>> _ = g.add_node("n", "Neg", ["x"], ["y"]); g.add_output("y", [1], np.float32)
        >>> loads_pfm(dumps_pfm(g)).nodes[0].op_type
        'Neg'
    """
    buf = bytes(data)
    meta, data_start = _read_header(io.BytesIO(buf), len(buf))
    entries = _get(meta, "tensors", list, "metadata")
    tensors = [_dec_tensor(e, i, buf, data_start, len(buf))[1] for i, e in enumerate(entries)]
    return _build_graph(meta, entries, tensors)


def dumps_pfm(graph_or_session: Any) -> bytes:
    """The ``.pfm`` bytes of a Graph or InferenceSession (see :func:`save_pfm`).

    Example:
        >>> from pyflame.runtime.graph import Graph
        >>> dumps_pfm(Graph("empty"))[:4]
        b'PFM\\x00'
    """
    out = io.BytesIO()
    save_pfm(graph_or_session, out)
    return out.getvalue()


def _build_graph(meta: Dict[str, Any], entries: List[Any], tensors: List[np.ndarray]) -> Graph:
    g = Graph(_get(meta, "name", str, "metadata"))
    g.opset = _get(meta, "opset", int, "metadata")
    md = meta.get("metadata", {})
    if not isinstance(md, dict) or not all(isinstance(v, str) for v in md.values()):
        raise _bad("'metadata' must map strings to strings")
    g.metadata = dict(md)
    g.inputs = [_dec_info(d, "input") for d in _get(meta, "inputs", list, "metadata")]
    g.outputs = [_dec_info(d, "output") for d in _get(meta, "outputs", list, "metadata")]
    for d in meta.get("value_info", []) if isinstance(meta.get("value_info"), list) else []:
        info = _dec_info(d, "value_info")
        g.value_info[info.name] = info
    inits = _get(meta, "initializers", dict, "metadata")
    for name, idx in inits.items():
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(tensors):
            raise _bad(f"initializer {name!r}: tensor index {idx!r} out of range")
        g.initializers[name] = tensors[idx]
    for i, nd in enumerate(_get(meta, "nodes", list, "metadata")):
        where = f"node #{i}"
        name = _get(nd, "name", str, where)
        where = f"node #{i} ({name!r})"
        attrs_raw = _get(nd, "attrs", dict, where)
        attrs = {
            str(k): _dec_attr(v, tensors, f"{where} attribute {k!r}") for k, v in attrs_raw.items()
        }
        g.nodes.append(
            Node(
                name,
                _get(nd, "op_type", str, where),
                _str_list(nd.get("inputs"), f"{where} inputs"),
                _str_list(nd.get("outputs"), f"{where} outputs"),
                attrs,
                _get(nd, "domain", str, where),
            )
        )
    return g


__all__ = ["ALIGNMENT", "MAGIC", "VERSION", "dumps_pfm", "load_pfm", "loads_pfm", "save_pfm"]
