#!/usr/bin/env bash
# Runs every test: the Swift suite (library, formats, interop with h5py) and the Python suite
# (the lookm binary end to end, checked from h5py/NumPy). Sets up first, so a fresh clone works.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

export LOOKM_PYTHON="$PWD/.venv/bin/python"
export LOOKM_BIN="$PWD/.build/release/lookm"

echo "== swift format lint" >&2
swift format lint --strict -r Sources Tests/LookMTests Package.swift
echo "== layers (scripts/check_layers.py)" >&2
.venv/bin/python scripts/check_layers.py

echo "== swift test" >&2
swift test 2>&1 | grep -Ev '^(◇|\[[0-9]+/[0-9]+\]) '

echo "== pytest" >&2
.venv/bin/python -m pytest -q -rs Tests/python
