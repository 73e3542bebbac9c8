"""CSL code generation for the Cerebras WSE-2/WSE-3.

A graph is lowered to a PE-level program plan (placement from each tensor's MeshLayout,
routes and colors, per-PE memory), printed as CSL (``layout.csl``, ``pe_program.csl``), a
host script (``run.py``), ``commands_wse2.sh`` / ``commands_wse3.sh``, ``manifest.json`` and a
README. Every generated program is checked by a static validator and, by default, executed by
a fabric simulator whose results are compared with PyFlame's CPU executor.

Example:
    >>> import pyflame as pf
    >>> a = pf.randn([16, 16], layout=pf.MeshLayout.grid(2, 2))
    >>> b = pf.randn([16, 16], layout=pf.MeshLayout.grid(2, 2))
    >>> opts = pf.CodeGenOptions()
    >>> opts.output_dir = "/tmp/pyflame_csl_doc"
    >>> result = pf.compile_to_csl(pf.relu(a @ b), opts)
    >>> result.success, "layout.csl" in result.sources
    (True, True)
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple, Union

from . import _core

__all__ = [
    "CodeGenOptions",
    "CodeGenResult",
    "CSLCodeGenerator",
    "compile_to_csl",
    "estimate_memory",
    "simulate",
    "validate",
]

_TEXT_SUFFIXES = (".csl", ".py", ".sh", ".json", ".md")


class CodeGenOptions:
    """Configuration for CSL code generation.

    Attributes:
        output_dir: where files are written (``"./pyflame_csl_output"``).
        target: ``"wse2"`` or ``"wse3"`` (both command files are always written; this one is
            recorded in the manifest).
        optimize: run the optimization passes. Today that is liveness-based buffer reuse:
            temporaries with the same PE rectangle and tile size whose live ranges do not
            overlap share one array, so larger programs fit in the 48 KB per PE. Outputs are
            the same either way (the simulator executes the optimized plan).
        generate_debug_info: annotate every buffer with its size and distribution.
        emit_comments: name the graph op of every phase in the PE program.
        fabric_width / fabric_height: ``--fabric-dims`` (0 = smallest fabric that fits memcpy,
            or the machine's dims when ``runtime_address`` is set).
        runtime_address: ``IP:port`` of a CS system for ``run.py``; defaults to the
            ``CEREBRAS_RUNTIME_ADDRESS`` environment variable.
        channels: memcpy I/O channels (1..16).
        simulate: run the fabric simulator (needed for ``CodeGenResult.estimate``).
        use_cache: reuse ``output_dir`` when it already holds the program for the same graph
            and options.

    Example:
        >>> opts = CodeGenOptions()
        >>> opts.target = "wse3"
        >>> opts.target
        'wse3'
    """

    def __init__(self) -> None:
        self.output_dir: str = "./pyflame_csl_output"
        self.target: str = "wse2"
        self.optimize: bool = True
        self.generate_debug_info: bool = False
        self.emit_comments: bool = True
        self.fabric_width: int = 0
        self.fabric_height: int = 0
        self.runtime_address: str = os.environ.get("CEREBRAS_RUNTIME_ADDRESS", "")
        self.channels: int = 1
        self.simulate: bool = True
        self.use_cache: bool = True

    def _as_dict(self) -> Dict[str, Any]:
        if self.target not in ("wse2", "wse3"):
            raise ValueError(f"target must be 'wse2' or 'wse3', got {self.target!r}")
        return {
            "target": self.target,
            "emit_comments": bool(self.emit_comments),
            "fabric_width": int(self.fabric_width),
            "fabric_height": int(self.fabric_height),
            "runtime_address": str(self.runtime_address or ""),
            "channels": int(self.channels),
            "simulate": bool(self.simulate),
            "generate_debug_info": bool(self.generate_debug_info),
            "optimize": bool(self.optimize),
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"CodeGenOptions({fields})"


class CodeGenResult:
    """Result of code generation.

    Attributes:
        success: whether a program was generated (and passed the validator).
        output_dir: directory the files were written to.
        generated_files: paths of the written files.
        error_message: why generation failed (unsupported ops are listed one per line).
        sources: file name -> text of every generated text file.
        estimate: performance estimate from the simulator (cycles, device/io/total seconds,
            flops, ...), or None when simulation was off or generation failed.
        warnings: validator warnings.
        cached: True when the files were reused from ``output_dir``.
        sim_max_abs_error: largest difference between simulator and CPU executor outputs.

    Example:
        >>> r = CodeGenResult(success=False, error_message="no outputs")
        >>> r.success, r.error_message
        (False, 'no outputs')
    """

    def __init__(
        self,
        success: bool = False,
        output_dir: str = "",
        generated_files: Optional[List[str]] = None,
        error_message: str = "",
        sources: Optional[Dict[str, str]] = None,
        estimate: Optional[Dict[str, Any]] = None,
        warnings: Optional[List[str]] = None,
        cached: bool = False,
        sim_max_abs_error: Optional[float] = None,
    ) -> None:
        self.success = success
        self.output_dir = output_dir
        self.generated_files = generated_files or []
        self.error_message = error_message
        self.sources = sources or {}
        self.estimate = estimate
        self.warnings = warnings or []
        self.cached = cached
        self.sim_max_abs_error = sim_max_abs_error

    def __repr__(self) -> str:
        if not self.success:
            return f"CodeGenResult(success=False, error_message={self.error_message!r})"
        return (
            f"CodeGenResult(success=True, output_dir={self.output_dir!r}, "
            f"files={len(self.generated_files)}, cached={self.cached})"
        )


def _graph_of(graph: Any) -> Any:
    if isinstance(graph, _core.Tensor):
        return _core.get_graph(graph)
    if isinstance(graph, _core.Graph):
        return graph
    raise TypeError(f"expected a pyflame Graph or Tensor, got {type(graph).__name__}")


def _read_cached(out_dir: str, key: str) -> Optional[CodeGenResult]:
    manifest_path = os.path.join(out_dir, "manifest.json")
    try:
        with open(manifest_path, encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError):
        return None
    if manifest.get("cache_key") != key:
        return None
    names = sorted(os.listdir(out_dir))
    sources = {}
    for n in names:
        if n.endswith(_TEXT_SUFFIXES):
            with open(os.path.join(out_dir, n), encoding="utf-8") as f:
                sources[n] = f.read()
    needed = ("layout.csl", "pe_program.csl", "run.py", "commands_wse2.sh", "commands_wse3.sh")
    if any(n not in sources for n in needed):
        return None
    return CodeGenResult(
        success=True,
        output_dir=out_dir,
        generated_files=[os.path.join(out_dir, n) for n in names],
        sources=sources,
        estimate=manifest.get("estimate"),
        cached=True,
    )


class CSLCodeGenerator:
    """Generates CSL programs from PyFlame graphs.

    Example:
        >>> import pyflame as pf
        >>> x = pf.randn([8, 8])
        >>> opts = pf.CodeGenOptions()
        >>> opts.output_dir = "/tmp/pyflame_csl_doc2"
        >>> result = pf.CSLCodeGenerator().generate(pf.get_graph(pf.exp(x)), opts)
        >>> result.success
        True
    """

    def generate(self, graph: Any, options: Optional[CodeGenOptions] = None) -> CodeGenResult:
        """Generates the program for ``graph`` (a ``pf.Graph``, or a Tensor) into
        ``options.output_dir``. Unsupported ops give ``success=False`` with every offending
        op listed in ``error_message``; nothing is written then.
        """
        options = options or CodeGenOptions()
        out_dir = os.path.abspath(options.output_dir)
        try:
            g = _graph_of(graph)
            opts = options._as_dict()
            if options.use_cache:
                key = _core._csl_cache_key(g, opts)
                cached = _read_cached(out_dir, key)
                if cached is not None:
                    return cached
            gen = _core._csl_generate(g, opts)
        except (NotImplementedError, ValueError, TypeError) as e:
            return CodeGenResult(success=False, output_dir=out_dir, error_message=str(e))
        os.makedirs(out_dir, exist_ok=True)
        files = []
        for name, text in sorted(gen["sources"].items()):
            path = os.path.join(out_dir, name)
            with open(path, "w", encoding="utf-8", newline="\n") as f:
                f.write(text)
            if name.endswith(".sh") or name == "run.py":
                os.chmod(path, 0o755)
            files.append(path)
        for name, data in sorted(gen["binaries"].items()):
            path = os.path.join(out_dir, name)
            with open(path, "wb") as f:
                f.write(data)
            files.append(path)
        return CodeGenResult(
            success=True,
            output_dir=out_dir,
            generated_files=sorted(files),
            sources=dict(gen["sources"]),
            estimate=gen["estimate"],
            warnings=list(gen["warnings"]),
            sim_max_abs_error=gen["sim_max_abs_error"],
        )


def compile_to_csl(tensor: Any, options: Optional[CodeGenOptions] = None) -> CodeGenResult:
    """Compiles the graph that computes ``tensor`` to CSL.

    Example:
        >>> import pyflame as pf
        >>> opts = pf.CodeGenOptions()
        >>> opts.output_dir = "/tmp/pyflame_csl_doc3"
        >>> pf.compile_to_csl(pf.relu(pf.randn([4, 4])), opts).success
        True
    """
    return CSLCodeGenerator().generate(_graph_of(tensor), options)


def estimate_memory(graph: Any, optimize: bool = True) -> Dict[str, Any]:
    """Per-PE memory of the lowered graph on its busiest PE: ``parameter_bytes`` (leaves
    that require grad), ``input_bytes``, ``activation_bytes``, ``peak_bytes`` (buffers are
    static arrays, so the peak is their sum), ``fits_in_sram`` (peak plus a code allowance
    within 48 KB), ``peak_pe`` and ``rectangle``. With ``optimize`` (the default, as in
    ``CodeGenOptions``) temporaries with disjoint live ranges share arrays first. Raises
    NotImplementedError for graphs with ops that cannot be lowered.

    Example:
        >>> import pyflame as pf
        >>> m = pf.estimate_memory(pf.randn([64, 64]) * 2.0)
        >>> m["fits_in_sram"], m["input_bytes"]
        (True, 16384)
    """
    return dict(_core._csl_estimate_memory(_graph_of(graph), bool(optimize)))


def simulate(graph: Any, options: Optional[CodeGenOptions] = None) -> Dict[str, Any]:
    """Runs the fabric simulator and performance model without rendering or validating (for
    programs that do not fit in SRAM yet). Returns the estimate dict.

    Example:
        >>> import pyflame as pf
        >>> est = pf.csl.simulate(pf.randn([8, 8]) @ pf.randn([8, 8]))
        >>> est["cycles"] > 0
        True
    """
    options = options or CodeGenOptions()
    return dict(_core._csl_simulate(_graph_of(graph), options._as_dict()))


def validate(directory: Union[str, os.PathLike]) -> List[Tuple[str, str, str, str]]:
    """Runs the static validator on a program directory. Returns (rule, severity, file,
    message) tuples; an empty list means the program is clean.

    Example:
        >>> import pyflame as pf
        >>> opts = pf.CodeGenOptions()
        >>> opts.output_dir = "/tmp/pyflame_csl_doc4"
        >>> _ = pf.compile_to_csl(pf.randn([4, 4]) + 1.0, opts)
        >>> pf.csl.validate(opts.output_dir)
        []
    """
    return [tuple(f) for f in _core._csl_validate_dir(os.fspath(directory))]
