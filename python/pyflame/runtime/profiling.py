"""Chrome-trace profiling (``chrome://tracing`` / Perfetto JSON), like ONNX Runtime's.

With profiling on, each node's tensor ops are evaluated right after the node is built so
per-node wall times are real; this disables cross-node fusion for profiled runs.

Example:
    >>> p = Profiler("demo")
    >>> p.add_event("model_loading", "Session", 0.0, 0.001)
    >>> p.events[0]["ph"]
    'X'
"""

from __future__ import annotations

import json
import os
import threading
import time
from typing import Any, Dict, List, Optional


class Profiler:
    """Collects complete ("X") events and writes them as a Chrome trace JSON array."""

    def __init__(self, prefix: str = "pyflame_rt_profile") -> None:
        self.prefix = prefix
        self.events: List[Dict[str, Any]] = []
        self._t0 = time.perf_counter()
        self._pid = os.getpid()
        self.start_ns = time.time_ns()

    def add_event(
        self, name: str, cat: str, start: float, end: float, args: Optional[Dict[str, Any]] = None
    ) -> None:
        """Records an event; `start`/`end` are ``time.perf_counter()`` values."""
        self.events.append(
            {
                "cat": cat,
                "pid": self._pid,
                "tid": threading.get_ident() % 1_000_000,
                "dur": max(int((end - start) * 1e6), 0),
                "ts": int((start - self._t0) * 1e6),
                "ph": "X",
                "name": name,
                "args": dict(args or {}),
            }
        )

    def write(self, path: Optional[str] = None) -> str:
        """Writes the trace and returns its path."""
        if path is None:
            stamp = time.strftime("%Y-%m-%d_%H-%M-%S")
            path = f"{self.prefix}_{stamp}_{os.getpid()}.json"
        with open(path, "w", encoding="utf-8") as f:
            json.dump(self.events, f)
        return path
