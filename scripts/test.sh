#!/usr/bin/env bash
# Installs PyFlame from this checkout and runs every test: Rust unit tests, then pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
python3 -m pip install --quiet ".[test]"
cargo test --workspace --exclude pyflame-py --quiet
# Run from outside the checkout so the installed wheel (not python/) is imported.
cd tests && python3 -m pytest -q -p no:cacheprovider .
