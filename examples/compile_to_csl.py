"""Compile a PyFlame graph to a CSL program for the Cerebras WSE.

Writes layout.csl, the PE program, run.py (the host script), cslc command lines and a
manifest to an output directory, validates the program and checks the fabric simulator's
result against the CPU executor. Without the Cerebras SDK nothing runs on hardware.

Run: python examples/compile_to_csl.py [output_dir]
"""

from __future__ import annotations

import sys
import tempfile

import pyflame as pf


def main(output_dir: str) -> bool:
    """Compiles softmax(relu(a @ b)) on a 2x2 PE grid; returns True when it checks out."""
    grid = pf.MeshLayout.grid(2, 2)
    a = pf.randn([16, 16], layout=grid)
    b = pf.randn([16, 16], layout=grid)
    options = pf.CodeGenOptions()
    options.output_dir = output_dir
    options.target = "wse3"
    result = pf.compile_to_csl(pf.softmax(pf.relu(a @ b), dim=-1), options)
    if not result.success:
        print("generation failed:", result.error_message)
        return False
    print("files:", *sorted(f.rsplit("/", 1)[-1] for f in result.generated_files))
    print("validator findings:", pf.csl.validate(output_dir) or "none")
    print("simulator vs CPU, max abs difference:", result.sim_max_abs_error)
    print(
        "performance model:", {k: result.estimate[k] for k in ("cycles",) if k in result.estimate}
    )
    return result.sim_max_abs_error is not None and result.sim_max_abs_error < 1e-4


if __name__ == "__main__":
    ok = main(sys.argv[1] if len(sys.argv) > 1 else tempfile.mkdtemp(prefix="pyflame_csl_"))
    sys.exit(0 if ok else 1)
