#!/usr/bin/env bash
# Benchmarks lookm against the machine's lower bounds (see scripts/bench.py). Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
exec .venv/bin/python scripts/bench.py "$@"
