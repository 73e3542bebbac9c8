"""The `pyflame` command line.

Example:
    $ pyflame quickstart
"""

from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def csl_validate(directory: str) -> int:
    """Runs the CSL static validator on a generated program directory and prints every
    finding. Returns 0 when there are no errors (warnings are allowed), 1 otherwise.

    Example:
        >>> csl_validate("./pyflame_csl_output")  # doctest: +SKIP
        OK: no findings
        0
    """
    from .csl import validate

    try:
        findings = validate(directory)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    errors = 0
    for rule, severity, file, message in findings:
        errors += severity == "error"
        print(f"{rule} {severity} [{file}]: {message}")
    if not findings:
        print("OK: no findings")
    else:
        print(f"{errors} error(s), {len(findings) - errors} warning(s)")
    return 1 if errors else 0


def main(argv: Optional[Sequence[str]] = None) -> int:
    """Entry point of the `pyflame` command."""
    parser = argparse.ArgumentParser(prog="pyflame", description="PyFlame command line")
    sub = parser.add_subparsers(dest="command", required=True)
    q = sub.add_parser("quickstart", help="run a short end-to-end demo")
    q.add_argument("--size", type=int, default=1024, help="matmul size for the GFLOP/s figure")
    q.add_argument("--repeats", type=int, default=5)
    q.add_argument("--epochs", type=int, default=30, help="training epochs on the digits")
    c = sub.add_parser("csl", help="CSL backend tools")
    csub = c.add_subparsers(dest="csl_command", required=True)
    v = csub.add_parser("validate", help="check a generated CSL program directory")
    v.add_argument("dir", help="directory with layout.csl, PE programs, run.py, commands_*.sh")
    args = parser.parse_args(argv)
    if args.command == "csl":
        return csl_validate(args.dir)
    if args.command == "quickstart":
        from pyflame.quickstart import run

        return run(args.size, args.repeats, args.epochs)
    return 2


if __name__ == "__main__":
    sys.exit(main())
