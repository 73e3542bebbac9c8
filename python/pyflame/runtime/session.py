"""InferenceSession: ONNX Runtime's API over the pyflame executor.

Example:
    >>> import numpy as np
    >>> from pyflame.runtime.graph import Graph
    >>> g = Graph("double"); g.add_input("x", ["N", 2], np.float32)
    >>> g.add_initializer("two", np.array(2, np.float32))
    >>> _ = g.add_node("m", "Mul", ["x", "two"], ["y"]); g.add_output("y", ["N", 2], np.float32)
    >>> sess = InferenceSession(g)
    >>> sess.run(None, {"x": np.ones((1, 2), np.float32)})[0].tolist()
    [[2.0, 2.0]]
"""

from __future__ import annotations

import dataclasses
import logging
import os
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from .errors import (
    DTypeMismatchError,
    InputError,
    InvalidModelError,
    ShapeMismatchError,
    UnsupportedFormatError,
    ValidationError,
)
from .executor import Executor
from .graph import Graph
from .onnx_import.importer import ImportOptions, ONNXImporter
from .options import OptLevel, RunOptions, SessionOptions
from .pfm import load_pfm, loads_pfm
from .profiling import Profiler
from .types import NodeArg, TensorInfo, onnx_type_string

logger = logging.getLogger("pyflame_rt")
_PROVIDERS = ["CPUExecutionProvider"]
_LEVELS = {
    "verbose": logging.DEBUG,
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
    "fatal": logging.CRITICAL,
}


@dataclass
class ModelMetadata:
    """ORT's ModelMetadata: producer, graph name, version and custom properties."""

    producer_name: str = ""
    producer_version: str = ""
    graph_name: str = ""
    domain: str = ""
    description: str = ""
    graph_description: str = ""
    version: int = 0
    custom_metadata_map: Dict[str, str] = field(default_factory=dict)


def get_available_providers() -> List[str]:
    """Execution providers of this build (ORT-compatible name).

    Example:
        >>> get_available_providers()
        ['CPUExecutionProvider']
    """
    return list(_PROVIDERS)


def get_device() -> str:
    """ORT's ``get_device()``: always "CPU" in this build."""
    return "CPU"


def get_all_providers() -> List[str]:
    """Every execution provider this package knows: the same as
    `get_available_providers()`, since this build has only the CPU one."""
    return get_available_providers()


def get_version_string() -> str:
    """The package version (ONNX Runtime's ``get_version_string()``)."""
    from . import __version__

    return __version__


def set_default_logger_severity(level: int) -> None:
    """Sets the runtime's log level from ONNX Runtime's severity (0 verbose .. 4 fatal).

    Example:
        >>> set_default_logger_severity(3)
    """
    names = {0: logging.DEBUG, 1: logging.INFO, 2: logging.WARNING, 3: logging.ERROR}
    if isinstance(level, bool) or not isinstance(level, int) or not 0 <= level <= 4:
        raise InputError(f"logger severity must be an int in 0..4, got {level!r}")
    logger.setLevel(names.get(level, logging.CRITICAL))


def set_seed(seed: int) -> None:
    """Seeds the random operators (ONNX Runtime's ``set_seed``); same as
    ``pyflame.manual_seed``."""
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise InputError(f"seed must be an int, got {seed!r}")
    import pyflame

    pyflame.manual_seed(seed)


def _override_free_dimensions(graph: Graph, overrides: Dict[str, int]) -> None:
    """Replaces the symbolic input dims named in `overrides` by their sizes (the graph is
    the session's own copy)."""
    if not overrides:
        return
    graph.inputs = [
        dataclasses.replace(
            info,
            shape=None
            if info.shape is None
            else [overrides.get(d, d) if isinstance(d, str) else d for d in info.shape],
        )
        for info in graph.inputs
    ]


def _load_graph(source: Any) -> Graph:
    if isinstance(source, Graph):
        return source.copy()
    if isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
        if data[:4] == b"PFM\0":
            return loads_pfm(data)
        return ONNXImporter().import_or_raise(data, ImportOptions()).graph  # type: ignore[return-value]
    if isinstance(source, (str, os.PathLike)):
        path = os.fspath(source)
        ext = os.path.splitext(path)[1].lower()
        if not os.path.isfile(path):
            raise InvalidModelError(f"model file not found: {path}")
        if ext == ".pfm":
            return load_pfm(path)
        if ext in (".pt", ".pth"):
            raise UnsupportedFormatError(
                "PyTorch state dicts hold no graph: use load_pytorch_state_dict / "
                "PyTorchImporter with a model definer, or export the model to ONNX"
            )
        if ext not in (".onnx", ".ort"):
            with open(path, "rb") as f:
                head = f.read(4)
            if head == b"PFM\0":
                return load_pfm(path)
        return ONNXImporter().import_or_raise(path, ImportOptions()).graph  # type: ignore[return-value]
    if type(source).__name__ == "ModelProto":
        return ONNXImporter().import_or_raise(source, ImportOptions()).graph  # type: ignore[return-value]
    raise UnsupportedFormatError(
        f"cannot create a session from {type(source).__name__}: pass a path, bytes or a Graph"
    )


class InferenceSession:
    """Loads, optimizes and runs a model (ONNX Runtime's InferenceSession API).

    `path_or_bytes` is a path to an ``.onnx`` or ``.pfm`` file, the model bytes (ONNX or
    ``.pfm``), an ONNX ModelProto, or a runtime :class:`Graph`. `sess_options` (alias
    `options`) is a SessionOptions.
    """

    def __init__(
        self,
        path_or_bytes: Any,
        sess_options: Optional[SessionOptions] = None,
        providers: Optional[Sequence[Any]] = None,
        provider_options: Any = None,
        options: Optional[SessionOptions] = None,
        **kwargs: Any,
    ) -> None:
        t0 = time.perf_counter()
        self._options = sess_options or options or SessionOptions()
        errors = self._options.validate()
        if errors:
            raise InputError("invalid SessionOptions: " + "; ".join(errors))
        logger.setLevel(_LEVELS.get(self._options.log_level, logging.WARNING))
        self._providers = self._check_providers(providers)
        self._profiler = (
            Profiler(self._options.profile_file_prefix) if self._options.enable_profiling else None
        )
        graph = _load_graph(path_or_bytes)
        _override_free_dimensions(graph, self._options.free_dimension_overrides)
        graph.validate()
        self._original_node_count = len(graph.nodes)
        self.optimization_result = None
        level = self._options.optimization_level
        if level > OptLevel.NONE:
            from .passes import PassManager, PassManagerConfig

            cfg = PassManagerConfig(
                opt_level=level,
                verbose=self._options.verbose_optimization,
                skip_passes=list(self._options.skip_passes),
            )
            pm = PassManager.create_default(level, cfg)
            self.optimization_result = pm.run_until_fixed_point(graph)
        self._graph = graph
        self._executor = Executor(
            graph,
            num_threads=self._options.num_threads,
            keep_awake=self._options.allow_spinning,
        )
        if self._options.optimized_model_filepath:
            self._write_optimized_model(self._options.optimized_model_filepath)
        # (output names, feed signature) -> what a recorded run needs (see `_run_recorded`).
        self._recorded_runs: Dict[Any, Any] = {}
        self._inputs = [NodeArg(i) for i in graph.inputs]
        self._outputs = [NodeArg(self._output_info(o)) for o in graph.outputs]
        md = graph.metadata
        try:
            version = int(md.get("version", "0") or 0)
        except ValueError:
            version = 0
        self._meta = ModelMetadata(
            producer_name=md.get("producer_name", ""),
            producer_version=md.get("producer_version", ""),
            graph_name=graph.name,
            domain=md.get("domain", ""),
            description=md.get("description", ""),
            graph_description=md.get("graph_description", ""),
            version=version,
            custom_metadata_map={k[7:]: v for k, v in md.items() if k.startswith("custom:")},
        )
        self.session_creation_ms = (time.perf_counter() - t0) * 1e3
        if self._profiler is not None:
            self._profiler.add_event(
                "model_loading_and_optimization", "Session", t0, time.perf_counter()
            )

    def _output_info(self, o: TensorInfo) -> TensorInfo:
        return o

    @staticmethod
    def _check_providers(providers: Optional[Sequence[Any]]) -> List[str]:
        if not providers:
            return list(_PROVIDERS)
        names = [p[0] if isinstance(p, (tuple, list)) else p for p in providers]
        unknown = [n for n in names if n not in _PROVIDERS]
        if unknown and not any(n in _PROVIDERS for n in names):
            raise InputError(
                f"unavailable execution provider(s) {unknown}; available: {_PROVIDERS}"
            )
        return [n for n in names if n in _PROVIDERS]

    # ----------------------------------------------------------------- metadata
    def get_inputs(self) -> List[NodeArg]:
        """Input descriptors (name, shape with None/symbolic dims, type)."""
        return list(self._inputs)

    def get_outputs(self) -> List[NodeArg]:
        """Output descriptors."""
        return list(self._outputs)

    def get_overridable_initializers(self) -> List[NodeArg]:
        """Always empty: initializers are constants (folded by the optimizer)."""
        return []

    def get_modelmeta(self) -> ModelMetadata:
        """Model metadata (producer, graph name, version, custom properties)."""
        return self._meta

    def get_providers(self) -> List[str]:
        """Execution providers used by this session."""
        return list(self._providers)

    def get_provider_options(self) -> Dict[str, Dict[str, str]]:
        """Options of each provider (ONNX Runtime's API; the CPU provider has none)."""
        return {p: {} for p in self._providers}

    def set_providers(
        self, providers: Optional[Sequence[Any]] = None, provider_options: Any = None
    ) -> None:
        """Re-selects the execution providers (ONNX Runtime's API): only
        "CPUExecutionProvider" exists, so this validates the names and changes nothing
        else; InputError when none of them is available."""
        self._providers = self._check_providers(providers)

    def disable_fallback(self) -> None:
        """ONNX Runtime's API: there is no provider to fall back from (CPU only)."""

    def enable_fallback(self) -> None:
        """ONNX Runtime's API: there is no provider to fall back from (CPU only)."""

    def run_async(
        self,
        output_names: Optional[Sequence[str]],
        input_feed: Mapping[str, Any],
        callback: Any,
        user_data: Any,
        run_options: Optional[RunOptions] = None,
    ) -> None:
        """Runs on a new thread and calls ``callback(outputs, user_data, error)`` when done
        (ONNX Runtime's API: `error` is "" on success, the message otherwise, with `outputs`
        then empty). The run releases the interpreter lock while it computes."""
        if not callable(callback):
            raise InputError("run_async needs a callable callback(outputs, user_data, error)")
        names = None if output_names is None else list(output_names)
        feed = dict(input_feed)

        def work() -> None:
            try:
                outputs = self.run(names, feed, run_options)
            except Exception as e:  # noqa: BLE001 - reported to the callback, as ORT does
                callback([], user_data, f"{type(e).__name__}: {e}")
                return
            callback(outputs, user_data, "")

        threading.Thread(target=work, name="pyflame_rt.run_async", daemon=True).start()

    def get_session_options(self) -> SessionOptions:
        """The SessionOptions this session was created with."""
        return self._options

    @property
    def graph(self) -> Graph:
        """The optimized graph that runs."""
        return self._graph

    # ----------------------------------------------------------------- running
    def _check_feed(self, feed: Mapping[str, Any]) -> Dict[str, np.ndarray]:
        if not isinstance(feed, Mapping):
            raise InputError(
                f"input_feed must be a dict of name -> numpy array, got {type(feed).__name__}"
            )
        expected = {i.name: i for i in self._graph.inputs}
        unknown = [k for k in feed if k not in expected]
        if unknown:
            raise InputError(f"unknown input name(s) {unknown}; the model expects {list(expected)}")
        missing = [k for k in expected if k not in feed]
        if missing:
            raise InputError(f"missing input(s) {missing}; the model expects {list(expected)}")
        out: Dict[str, np.ndarray] = {}
        sym: Dict[str, int] = {}
        for name, info in expected.items():
            v = feed[name]
            if not isinstance(v, np.ndarray):
                try:
                    v = np.asarray(v)
                except Exception as e:  # noqa: BLE001
                    raise InputError(f"input {name!r} is not array-like: {e}") from e
            if info.dtype is not None and v.dtype != info.dtype:
                raise DTypeMismatchError(
                    f"input {name!r} expects {onnx_type_string(info.dtype)} but got "
                    f"{onnx_type_string(v.dtype)}"
                )
            if info.shape is not None:
                if v.ndim != len(info.shape):
                    raise ShapeMismatchError(
                        f"input {name!r} expects rank {len(info.shape)} shape {info.shape} but "
                        f"got shape {list(v.shape)}"
                    )
                for d, (want, got) in enumerate(zip(info.shape, v.shape)):
                    if isinstance(want, int) and want != got:
                        raise ShapeMismatchError(
                            f"input {name!r} expects shape {info.shape} but got {list(v.shape)} "
                            f"(dim {d}: expected {want}, got {got})"
                        )
                    if isinstance(want, str):
                        if sym.setdefault(want, got) != got:
                            raise ShapeMismatchError(
                                f"input {name!r}: symbolic dim {want!r} is {got} here but "
                                f"{sym[want]} in another input"
                            )
            out[name] = v
        return out

    def run(
        self,
        output_names: Optional[Sequence[str]],
        input_feed: Mapping[str, Any],
        run_options: Optional[RunOptions] = None,
    ) -> List[np.ndarray]:
        """Runs the model; returns NumPy arrays in the order of `output_names` (None = all).

        Raises InputError for unknown/missing names, ShapeMismatchError/DTypeMismatchError
        for inputs that do not match the model, BackendError when execution fails.
        """
        # Read once: `output_names` may be a one-shot iterator.
        requested = None if output_names is None else list(output_names)
        key = None
        if run_options is None and self._profiler is None:
            key = self._recorded_key(requested, input_feed)
            try:
                entry = self._recorded_runs.get(key) if key is not None else None
            except TypeError:  # unhashable output names: the checked path reports them
                entry = key = None
            if entry is not None:
                return self._run_recorded(entry, input_feed)
        t0 = time.perf_counter()
        all_names = [o.name for o in self._graph.outputs]
        names = list(all_names) if not requested else requested
        bad = [n for n in names if n not in all_names]
        if bad:
            raise InputError(f"unknown output name(s) {bad}; the model has {all_names}")
        feeds = self._check_feed(input_feed)
        ro = run_options or RunOptions()
        deadline = t0 + ro.timeout_ms / 1e3 if ro.timeout_ms and ro.timeout_ms > 0 else None
        events: Optional[list] = [] if self._profiler is not None else None
        result = self._executor.run(names, feeds, deadline=deadline, profile=events)
        if key is not None and events is None:
            # The feeds passed the checks above: runs with the same signature can skip them.
            entry = self._executor.recorded_run(tuple(names), feeds)
            if entry is not None:
                if len(self._recorded_runs) >= 64:
                    self._recorded_runs.clear()
                self._recorded_runs[key] = entry
        if self._profiler is not None and events is not None:
            for node, s, e in events:
                self._profiler.add_event(
                    f"{node.name}_kernel_time",
                    "Node",
                    s,
                    e,
                    {"op_name": node.op_type, "provider": "CPUExecutionProvider", "tag": ro.tag},
                )
            self._profiler.add_event(
                "model_run", "Session", t0, time.perf_counter(), {"tag": ro.tag}
            )
        return result

    def _write_optimized_model(self, path: str) -> None:
        """Writes the optimized graph to `path` (SessionOptions.optimized_model_filepath)."""
        if not str(path).lower().endswith(".pfm"):
            raise NotImplementedError(
                f"optimized_model_filepath {path!r}: only the .pfm format can be written "
                "(writing optimized ONNX models is not supported); use a path ending in .pfm"
            )
        from .pfm import save_pfm

        save_pfm(self._graph, path)

    @staticmethod
    def _recorded_key(output_names: Optional[List[Any]], input_feed: Any) -> Any:
        """The requested outputs and the feed's (name, shape, dtype) signature; None when a
        feed value is not a NumPy array (the checked path converts it)."""
        if type(input_feed) is not dict:
            return None
        signature = []
        for name, value in input_feed.items():
            if type(value) is not np.ndarray:
                return None
            signature.append((name, value.shape, value.dtype))
        names = None if not output_names else tuple(output_names)
        return names, tuple(signature)

    def _run_recorded(self, entry: Any, input_feed: Dict[str, np.ndarray]) -> List[np.ndarray]:
        """A run whose outputs and feed signature were checked and recorded before: the
        feeds go straight to the recorded graph."""
        recorded, index = entry
        values = self._executor.evaluate_recorded(recorded, input_feed)
        return [values[i] for i in index]

    def run_with_ort_values(self, *args: Any, **kwargs: Any) -> Any:
        """Not implemented: OrtValue I/O binding has no equivalent here."""
        raise NotImplementedError("run_with_ort_values/IOBinding are not supported; use run()")

    def end_profiling(self) -> str:
        """Writes the Chrome trace and returns its file name ('' when profiling is off)."""
        if self._profiler is None:
            return ""
        path = self._profiler.write()
        self._profiler = Profiler(self._options.profile_file_prefix)
        return path

    def get_profiling_start_time_ns(self) -> int:
        """Profiling start time in ns since the epoch (0 when profiling is off)."""
        return self._profiler.start_ns if self._profiler is not None else 0


__all__ = [
    "InferenceSession",
    "ModelMetadata",
    "get_all_providers",
    "get_available_providers",
    "get_device",
    "get_version_string",
    "set_default_logger_severity",
    "set_seed",
    "ValidationError",
]
