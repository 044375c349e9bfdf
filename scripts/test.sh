#!/usr/bin/env bash
# Run every test (the README's test command). Assumes scripts/setup.sh has run (./.venv, or the
# interpreter in $PYTHON).
#   1. the unit/integration suite, two workers;
#   2. the notebooks under notebooks/, executed and compared cell by cell with nbval
#      (text renderer, ids/paths/times sanitized).
# Temporary folders the notebooks make go to one scratch folder that is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_python.sh
asm_use_python
"$PY" -m pytest -n 2 -q -p no:cacheprovider tests "$@"
scratch=$(mktemp -d /tmp/asm-nbval-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
TMPDIR=$scratch ASM_DEFAULT_RENDERER=studio "$PY" -m pytest -q -p no:cacheprovider --nbval notebooks \
  --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg
