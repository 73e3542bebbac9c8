"""ONNX model import (through the ``onnx`` package) into the runtime Graph IR.

Example:
    >>> import numpy as np, onnx
    >>> from onnx import helper, TensorProto
    >>> g = helper.make_graph([helper.make_node("Relu", ["x"], ["y"])], "g",
    ...     [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])],
    ...     [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])])
    >>> res = ONNXImporter().import_model(helper.make_model(g).SerializeToString())
    >>> res.success, res.graph.inputs[0].shape
    (True, ['N', 4])
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional, Union

import numpy as np

from ..errors import InvalidModelError, PyFlameRTError, UnsupportedFormatError
from ..graph import Graph
from ..types import TensorInfo
from .registry import check_supported

ModelSource = Union[str, "os.PathLike[str]", bytes, Any]


@dataclass
class ImportOptions:
    """Import configuration.

    Example:
        >>> ImportOptions().infer_shapes
        True
    """

    validate: bool = True
    infer_shapes: bool = True
    optimize: bool = False
    check_operators: bool = True
    check_model: bool = False


@dataclass
class ImportStats:
    """Counts and timings of one import."""

    node_count: int = 0
    initializer_count: int = 0
    parameter_count: int = 0
    import_time_ms: float = 0.0
    opset: int = 0
    warnings: List[str] = field(default_factory=list)


@dataclass
class ImportResult:
    """Outcome of an import: `graph` when `success`, else `error` (and the `exception`)."""

    success: bool = False
    graph: Optional[Graph] = None
    error: str = ""
    stats: ImportStats = field(default_factory=ImportStats)
    exception: Optional[BaseException] = None


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise UnsupportedFormatError(
            "ONNX import needs the 'onnx' package: pip install 'pyflame[onnx]'"
        ) from e
    return onnx


def load_model_proto(source: ModelSource) -> Any:
    """Parses an ONNX ModelProto from a path, bytes or an existing ModelProto.

    Raises InvalidModelError for unreadable/corrupt data.

    Example:
        >>> load_model_proto(b"not a model")
        Traceback (most recent call last):
        ...
        pyflame.runtime.errors.InvalidModelError: cannot parse ONNX model: ...
    """
    onnx = _onnx()
    if isinstance(source, onnx.ModelProto):
        return source
    try:
        if isinstance(source, (bytes, bytearray, memoryview)):
            model = onnx.load_from_string(bytes(source))
        else:
            path = os.fspath(source)
            if not os.path.isfile(path):
                raise InvalidModelError(f"model file not found: {path}")
            model = onnx.load(path)
    except PyFlameRTError:
        raise
    except Exception as e:  # noqa: BLE001 - protobuf raises many types on bad data
        raise InvalidModelError(f"cannot parse ONNX model: {type(e).__name__}: {e}") from e
    if not model.HasField("graph") or (not model.graph.node and not model.graph.output):
        raise InvalidModelError("cannot parse ONNX model: no graph in the data")
    return model


def _attr_value(onnx: Any, a: Any) -> Any:
    from onnx import numpy_helper

    t = a.type
    A = onnx.AttributeProto
    if t == A.FLOAT:
        return float(a.f)
    if t == A.INT:
        return int(a.i)
    if t == A.STRING:
        return a.s.decode("utf-8", "replace")
    if t == A.TENSOR:
        return numpy_helper.to_array(a.t)
    if t == A.FLOATS:
        return [float(v) for v in a.floats]
    if t == A.INTS:
        return [int(v) for v in a.ints]
    if t == A.STRINGS:
        return [s.decode("utf-8", "replace") for s in a.strings]
    if t == A.GRAPH:
        return _convert_subgraph(onnx, a.g)
    if t == A.GRAPHS:
        return [_convert_subgraph(onnx, g) for g in a.graphs]
    if t == A.SPARSE_TENSOR:
        raise InvalidModelError(f"sparse tensor attribute {a.name!r} is not supported")
    return None


#: attribute holding how many of a control-flow node's inputs are its declared ONNX inputs;
#: the rest are the outer-scope values its subgraphs read (appended at import, so passes and
#: the executor's liveness see them as uses)
NUM_DECLARED_INPUTS = "_num_declared_inputs"


def _convert_subgraph(onnx: Any, gp: Any) -> Graph:
    """A subgraph attribute (If branches, Loop/Scan bodies) as a runtime Graph."""
    sub = ONNXImporter._convert_graph(onnx, _GraphModel(gp), 0, ImportStats())
    sub.opset = 0  # set from the parent at the end of the import
    return sub


class _GraphModel:
    """Adapts a GraphProto to the ModelProto fields `_convert_graph` reads."""

    def __init__(self, gp: Any) -> None:
        self.graph = gp
        self.producer_name = self.producer_version = self.domain = self.doc_string = ""
        self.model_version = 0
        self.metadata_props: List[Any] = []


def _outer_names(g: Graph) -> List[str]:
    """Names a subgraph reads that it does not define (values of the enclosing scopes)."""
    defined = {i.name for i in g.inputs} | set(g.initializers)
    outer: List[str] = []
    for n in g.nodes:
        for i in n.inputs:
            if i and i not in defined and i not in outer:
                outer.append(i)
        defined.update(o for o in n.outputs if o)
    return outer


def _set_opset(g: Graph, opset: int) -> None:
    for n in g.nodes:
        for v in n.attrs.values():
            for sub in v if isinstance(v, list) else [v]:
                if isinstance(sub, Graph):
                    sub.opset = opset
                    _set_opset(sub, opset)


def _tensor_info(onnx: Any, vi: Any) -> TensorInfo:
    from onnx import helper

    tt = vi.type.tensor_type if vi.type.HasField("tensor_type") else None
    if tt is None:
        return TensorInfo(vi.name, None, None)
    try:
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tt.elem_type)) if tt.elem_type else None
    except Exception:  # noqa: BLE001 - unusual element types keep an unknown dtype
        dtype = None
    if not tt.HasField("shape"):
        return TensorInfo(vi.name, dtype, None)
    dims: List[Any] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            dims.append(d.dim_param)
        else:
            dims.append(None)
    return TensorInfo(vi.name, dtype, dims)


#: initializers up to this many elements stay in the model given to shape inference (shape
#: tensors, axes, small constants whose values the inference may need)
_SHAPE_INFERENCE_KEEP = 1024


def _without_weights(onnx: Any, model: Any) -> Any:
    """A copy of `model` for shape inference with the large initializers turned into graph
    inputs of the same type and shape: inference needs their shapes, not their bytes, and
    serializing the weights into the inference (and parsing them back) dominated session
    creation time and peak memory."""
    from onnx import helper

    src = model.graph
    m = onnx.ModelProto()
    m.ir_version = model.ir_version
    m.opset_import.extend(model.opset_import)
    m.functions.extend(model.functions)
    g = m.graph
    g.name = src.name
    g.node.extend(src.node)
    g.input.extend(src.input)
    g.output.extend(src.output)
    g.value_info.extend(src.value_info)
    declared = {vi.name for vi in src.input}
    for init in src.initializer:
        numel = 1
        for d in init.dims:
            numel *= int(d)
        if numel <= _SHAPE_INFERENCE_KEEP or init.data_location == onnx.TensorProto.EXTERNAL:
            g.initializer.append(init)
        elif init.name not in declared:
            g.input.append(helper.make_tensor_value_info(init.name, init.data_type, init.dims))
    return m


class ONNXImporter:
    """Converts ONNX models to the runtime Graph IR.

    Example:
        >>> ONNXImporter().import_model(b"junk").success
        False
    """

    def import_model(
        self, source: ModelSource, options: Optional[ImportOptions] = None
    ) -> ImportResult:
        """Imports `source` (path, bytes or ModelProto); errors are reported in the result."""
        try:
            return self.import_or_raise(source, options)
        except PyFlameRTError as e:
            return ImportResult(success=False, error=str(e), exception=e)

    def import_or_raise(
        self, source: ModelSource, options: Optional[ImportOptions] = None
    ) -> ImportResult:
        """Like import_model but raises the runtime's exceptions."""
        opts = options or ImportOptions()
        t0 = time.perf_counter()
        onnx = _onnx()
        model = load_model_proto(source)
        stats = ImportStats()
        if opts.check_model:
            try:
                onnx.checker.check_model(model)
            except Exception as e:  # noqa: BLE001
                raise InvalidModelError(f"onnx.checker rejected the model: {e}") from e
        opset = 1
        for imp in model.opset_import:
            if imp.domain in ("", "ai.onnx"):
                opset = int(imp.version)
        stats.opset = opset
        shapes = model
        if opts.infer_shapes:
            try:
                shapes = onnx.shape_inference.infer_shapes(_without_weights(onnx, model))
            except Exception as e:  # noqa: BLE001 - inference is best effort
                stats.warnings.append(f"ONNX shape inference failed: {e}")
        graph = self._convert_graph(onnx, model, opset, stats, shapes.graph)
        if opts.validate:
            graph.validate()
        if opts.check_operators:
            check_supported(graph.nodes)
        if opts.optimize:
            from ..options import OptLevel
            from ..passes import PassManager

            PassManager.create_default(OptLevel.BASIC).run_until_fixed_point(graph)
        stats.node_count = len(graph.nodes)
        stats.initializer_count = len(graph.initializers)
        stats.parameter_count = int(sum(a.size for a in graph.initializers.values()))
        stats.import_time_ms = (time.perf_counter() - t0) * 1e3
        return ImportResult(success=True, graph=graph, stats=stats)

    @staticmethod
    def _convert_graph(
        onnx: Any, model: Any, opset: int, stats: ImportStats, shapes: Any = None
    ) -> Graph:
        """`model` gives nodes and weights; `shapes` (a GraphProto, default model.graph)
        gives the output types and value_info (the result of shape inference)."""
        from onnx import numpy_helper

        g = model.graph
        shapes = g if shapes is None else shapes
        graph = Graph(g.name or "graph")
        graph.opset = opset
        graph.metadata = {
            "producer_name": model.producer_name,
            "producer_version": model.producer_version,
            "domain": model.domain,
            "description": model.doc_string,
            "graph_description": g.doc_string,
            "version": str(model.model_version),
        }
        for p in model.metadata_props:
            graph.metadata.setdefault("custom:" + p.key, p.value)
        for init in g.initializer:
            try:
                graph.initializers[init.name] = numpy_helper.to_array(init)
            except Exception as e:  # noqa: BLE001 - external data missing, bad sizes, ...
                raise InvalidModelError(f"cannot read initializer {init.name!r}: {e}") from e
        if g.sparse_initializer:
            raise InvalidModelError("sparse initializers are not supported")
        for vi in g.input:
            if vi.name not in graph.initializers:
                graph.inputs.append(_tensor_info(onnx, vi))
        inferred_out = {vi.name: vi for vi in shapes.output}
        for vi in g.output:
            graph.outputs.append(_tensor_info(onnx, inferred_out.get(vi.name, vi)))
        for vi in shapes.value_info:
            graph.value_info[vi.name] = _tensor_info(onnx, vi)
        used: Dict[str, int] = {}
        for i, n in enumerate(g.node):
            name = n.name or f"{n.op_type}_{i}"
            if name in used:
                name = f"{name}_{i}"
            used[name] = i
            attrs = {a.name: _attr_value(onnx, a) for a in n.attribute}
            inputs = list(n.input)
            subs = [
                g
                for v in attrs.values()
                for g in (v if isinstance(v, list) else [v])
                if isinstance(g, Graph)
            ]
            if subs:
                attrs[NUM_DECLARED_INPUTS] = len(inputs)
                for sub in subs:
                    inputs += [o for o in _outer_names(sub) if o not in inputs]
            if (
                n.op_type == "Constant"
                and n.domain in ("", "ai.onnx")
                and "value" in attrs
                and len(n.output) == 1
            ):
                graph.initializers[n.output[0]] = np.asarray(attrs["value"])
                continue
            graph.add_node(name, n.op_type, inputs, list(n.output), attrs, n.domain)
        if opset:
            _set_opset(graph, opset)
        return graph


def from_onnx(source: ModelSource, sess_options: Any = None, providers: Any = None) -> Any:
    """Imports an ONNX model and returns an InferenceSession (the spec's quick path).

    Example:
        >>> from_onnx(b"junk")
        Traceback (most recent call last):
        ...
        pyflame.runtime.errors.InvalidModelError: cannot parse ONNX model: ...
    """
    from ..session import InferenceSession

    return InferenceSession(source, sess_options=sess_options, providers=providers)
