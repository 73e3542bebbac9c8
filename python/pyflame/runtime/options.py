"""SessionOptions, RunOptions and OptLevel (with ONNX Runtime's names as aliases).

Example:
    >>> from pyflame.runtime.options import OptLevel, SessionOptions
    >>> o = SessionOptions()
    >>> o.graph_optimization_level = OptLevel.ORT_ENABLE_BASIC
    >>> o.optimization_level is OptLevel.BASIC, o.validate()
    (True, [])
"""

from __future__ import annotations

import enum
from typing import Dict, List, Optional

_LOG_LEVELS = ("verbose", "debug", "info", "warning", "error", "fatal")
_DEVICES = ("cpu", "wse", "wse2", "wse3")
_ORT_SEVERITY = {0: "verbose", 1: "info", 2: "warning", 3: "error", 4: "fatal"}
#: ONNX Runtime's session config key for intra-op thread spinning.
ALLOW_SPINNING = "session.intra_op.allow_spinning"


def _set_entry(config: Dict[str, str], kind: str, key: str, value: str) -> None:
    """Stores a string config entry of a session or run (ONNX Runtime's entries are str)."""
    if not isinstance(key, str) or not isinstance(value, str):
        raise TypeError(
            f"{kind} config entries are strings, got {type(key).__name__} key and "
            f"{type(value).__name__} value"
        )
    config[key] = value


def _get_entry(config: Dict[str, str], kind: str, key: str) -> str:
    """A stored config entry; KeyError naming the key when it was never set."""
    try:
        return config[key]
    except KeyError:
        raise KeyError(f"{kind} config entry {key!r} is not set") from None


class OptLevel(enum.IntEnum):
    """Graph optimization levels; ORT's GraphOptimizationLevel names are aliases.

    Example:
        >>> OptLevel.ORT_ENABLE_ALL is OptLevel.ALL
        True
    """

    NONE = 0
    BASIC = 1
    EXTENDED = 2
    ALL = 3
    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_ALL = 3

    @classmethod
    def coerce(cls, value: object) -> OptLevel:
        """Accepts an OptLevel, an int (ORT's 99 means ALL) or a name.

        Example:
            >>> OptLevel.coerce("extended"), OptLevel.coerce(99)
            (<OptLevel.EXTENDED: 2>, <OptLevel.ALL: 3>)
        """
        if isinstance(value, OptLevel):
            return value
        if isinstance(value, str):
            try:
                return cls[value.upper()]
            except KeyError:
                raise ValueError(f"unknown optimization level {value!r}") from None
        if isinstance(value, int) and not isinstance(value, bool):
            if value == 99:
                return cls.ALL
            if 0 <= value <= 3:
                return cls(value)
        # ORT's own enum (or anything with a .name we know) maps by name
        name = getattr(value, "name", None)
        if isinstance(name, str) and name.upper() in cls.__members__:
            return cls[name.upper()]
        raise ValueError(f"unknown optimization level {value!r}")


GraphOptimizationLevel = OptLevel


class ExecutionMode(enum.IntEnum):
    """ORT's ExecutionMode (the executor is always sequential at graph level).

    Example:
        >>> ExecutionMode.ORT_SEQUENTIAL
        <ExecutionMode.ORT_SEQUENTIAL: 0>
    """

    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


class SessionOptions:
    """Session configuration (spec names; ORT's names are aliases).

    `num_threads` (ORT: `intra_op_num_threads`) > 0 gives the session its own pool of that
    many worker threads, and every evaluation of the session runs on it; 0 uses the
    process-wide pool (one thread per core). `execution_mode` "parallel" (ORT_PARALLEL) is
    accepted and equivalent to "sequential": operators run one after another in the fused
    order, each parallel over the session's threads, so results are identical;
    `inter_op_num_threads` is accepted and has no effect for the same reason.

    Example:
        >>> o = SessionOptions()
        >>> o.num_threads = -1
        >>> o.validate()
        ['num_threads must be >= 0 (0 = auto), got -1']
    """

    def __init__(self) -> None:
        self.device: str = "cpu"
        self.num_threads: int = 0
        self.enable_profiling: bool = False
        self.profile_file_prefix: str = "pyflame_rt_profile"
        self.execution_mode: str = "sequential"
        self._optimization_level: OptLevel = OptLevel.EXTENDED
        self.verbose_optimization: bool = False
        self.log_level: str = "warning"
        self.skip_passes: List[str] = []
        self.inter_op_num_threads: int = 0
        # Accepted for ONNX Runtime compatibility; memory planning is always on and there
        # is no arena to turn off, so they change nothing.
        self.enable_mem_pattern: bool = True
        self.enable_cpu_mem_arena: bool = True
        self.use_deterministic_compute: bool = False
        # When set, the optimized graph is written there at session creation (`.pfm` only).
        self.optimized_model_filepath: str = ""
        # Accepted for ONNX Runtime compatibility and change nothing: `num_threads` > 0
        # already gives a session its own pool, memory reuse is always on, and log
        # identifiers are not used.
        self.use_per_session_threads: bool = True
        self.enable_mem_reuse: bool = True
        self.logid: str = ""
        self.log_verbosity_level: int = 0
        self._config: Dict[str, str] = {}
        self._dim_overrides: Dict[str, int] = {}

    def add_free_dimension_override_by_name(self, dim_name: str, dim_value: int) -> None:
        """Fixes the symbolic input dimension `dim_name` (e.g. "batch") to `dim_value` for
        sessions made with these options (ONNX Runtime's API): the inputs then report and
        require that size.

        Example:
            >>> o = SessionOptions()
            >>> o.add_free_dimension_override_by_name("batch", 1)
            >>> o.free_dimension_overrides
            {'batch': 1}
        """
        if not isinstance(dim_name, str) or not dim_name:
            raise TypeError(f"dim_name must be a non-empty str, got {dim_name!r}")
        if isinstance(dim_value, bool) or not isinstance(dim_value, int) or dim_value < 0:
            raise ValueError(f"dim_value must be an int >= 0, got {dim_value!r}")
        self._dim_overrides[dim_name] = dim_value

    @property
    def free_dimension_overrides(self) -> Dict[str, int]:
        """The symbolic dimensions fixed by `add_free_dimension_override_by_name`."""
        return dict(self._dim_overrides)

    def add_session_config_entry(self, key: str, value: str) -> None:
        """Sets a string configuration entry (ONNX Runtime's API). Honoured:
        ``session.intra_op.allow_spinning`` ("0" lets the session's worker threads sleep as
        soon as a recorded run is done instead of spinning for the next one; the first runs
        of a new input signature, which trace the model, still use the process-wide setting
        of ``pyflame.set_worker_spin_us``; default "1"). Other keys are stored and can be
        read back.

        Example:
            >>> o = SessionOptions()
            >>> o.add_session_config_entry("session.intra_op.allow_spinning", "0")
            >>> o.get_session_config_entry("session.intra_op.allow_spinning"), o.allow_spinning
            ('0', False)
        """
        if key == ALLOW_SPINNING and isinstance(value, str) and value not in ("0", "1"):
            raise ValueError(f"{ALLOW_SPINNING} must be '0' or '1', got {value!r}")
        _set_entry(self._config, "session", key, value)

    def get_session_config_entry(self, key: str) -> str:
        """The value set for `key` by `add_session_config_entry` (KeyError when unset)."""
        return _get_entry(self._config, "session", key)

    @property
    def allow_spinning(self) -> bool:
        """Whether worker threads spin for the next run after one is done (see
        ``pyflame.set_worker_spin_us``); ``session.intra_op.allow_spinning``."""
        return self._config.get(ALLOW_SPINNING, "1") != "0"

    @property
    def optimization_level(self) -> OptLevel:
        """The graph optimization level (default EXTENDED)."""
        return self._optimization_level

    @optimization_level.setter
    def optimization_level(self, value: object) -> None:
        self._optimization_level = OptLevel.coerce(value)

    # ---- ORT aliases
    @property
    def graph_optimization_level(self) -> OptLevel:
        """Alias of `optimization_level` (ONNX Runtime's name)."""
        return self._optimization_level

    @graph_optimization_level.setter
    def graph_optimization_level(self, value: object) -> None:
        self._optimization_level = OptLevel.coerce(value)

    @property
    def intra_op_num_threads(self) -> int:
        """Alias of `num_threads` (ONNX Runtime's name)."""
        return self.num_threads

    @intra_op_num_threads.setter
    def intra_op_num_threads(self, value: int) -> None:
        self.num_threads = value

    @property
    def log_severity_level(self) -> int:
        """ORT's numeric severity (0 verbose .. 4 fatal), mapped onto `log_level`."""
        inv = {v: k for k, v in _ORT_SEVERITY.items()}
        return inv.get(self.log_level, 2)

    @log_severity_level.setter
    def log_severity_level(self, value: int) -> None:
        self.log_level = _ORT_SEVERITY.get(int(value), "warning")

    def validate(self) -> List[str]:
        """Returns a list of problems (empty when the options are valid)."""
        errors = []
        if self.device not in _DEVICES:
            errors.append(f"device must be one of {_DEVICES}, got {self.device!r}")
        elif self.device != "cpu":
            errors.append(f"device {self.device!r} is not available in this build (only 'cpu')")
        if not isinstance(self.num_threads, int) or self.num_threads < 0:
            errors.append(f"num_threads must be >= 0 (0 = auto), got {self.num_threads!r}")
        mode = self.execution_mode
        if isinstance(mode, ExecutionMode):
            mode = "sequential" if mode == ExecutionMode.ORT_SEQUENTIAL else "parallel"
        if mode not in ("sequential", "parallel"):
            errors.append(f"execution_mode must be 'sequential' or 'parallel', got {mode!r}")
        if self.log_level not in _LOG_LEVELS:
            errors.append(f"log_level must be one of {_LOG_LEVELS}, got {self.log_level!r}")
        return errors


class RunOptions:
    """Per-run configuration: tag, log_level, timeout_ms (0 = none).

    Example:
        >>> r = RunOptions()
        >>> r.tag = "batch_1"
        >>> r.timeout_ms
        0
    """

    def __init__(self) -> None:
        self.tag: str = ""
        self.log_level: Optional[str] = None
        self.timeout_ms: int = 0
        self.terminate: bool = False
        self.logid: str = ""
        self.log_verbosity_level: int = 0
        self._config: Dict[str, str] = {}

    def add_run_config_entry(self, key: str, value: str) -> None:
        """Stores a string configuration entry (ONNX Runtime's API; no key changes a run).

        Example:
            >>> r = RunOptions()
            >>> r.add_run_config_entry("memory.enable_memory_arena_shrinkage", "cpu:0")
            >>> r.get_run_config_entry("memory.enable_memory_arena_shrinkage")
            'cpu:0'
        """
        _set_entry(self._config, "run", key, value)

    def get_run_config_entry(self, key: str) -> str:
        """The value set for `key` by `add_run_config_entry` (KeyError when unset)."""
        return _get_entry(self._config, "run", key)

    @property
    def log_severity_level(self) -> int:
        """ORT's numeric severity (0 verbose .. 4 fatal), mapped onto `log_level`."""
        inv = {v: k for k, v in _ORT_SEVERITY.items()}
        return inv.get(self.log_level or "warning", 2)

    @log_severity_level.setter
    def log_severity_level(self, value: int) -> None:
        self.log_level = _ORT_SEVERITY.get(int(value), "warning")

    @property
    def run_tag(self) -> str:
        """Alias of `tag` (ONNX Runtime's name)."""
        return self.tag

    @run_tag.setter
    def run_tag(self, value: str) -> None:
        self.tag = value
