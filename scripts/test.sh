#!/usr/bin/env bash
# Run every test (the README's test command). Assumes scripts/setup.sh has run.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
"$PY" -m pytest -n 2 -q -p no:cacheprovider tests "$@"
