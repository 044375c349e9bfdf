#!/usr/bin/env bash
# Run every test (the README's test command). Assumes scripts/setup.sh has run (./.venv, or the
# interpreter in $PYTHON).
#   0. static checks: ruff (lint rules in pyproject.toml) and lint-imports (the layer contracts:
#      a module never imports a higher layer);
#   1. the unit/integration suite, two workers;
#   2. the notebooks under notebooks/, executed and compared cell by cell with nbval
#      (runs as their cards, deterministic: ids/timings left out; paths/times sanitized).
# Temporary folders the notebooks make go to one scratch folder that is removed afterwards.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_python.sh
asm_use_python
"$PY" -m ruff check asm_nb tests
lint-imports --no-cache
"$PY" -m pytest -n 2 -q -p no:cacheprovider tests "$@"
scratch=$(mktemp -d /tmp/asm-nbval-XXXXXX)
trap 'rm -rf "$scratch"' EXIT
TMPDIR=$scratch ASM_DEFAULT_RENDERER=card ASM_DETERMINISTIC_DISPLAY=1 "$PY" -m pytest -q -p no:cacheprovider --nbval notebooks \
  --nbval-current-env --nbval-sanitize-with notebooks/sanitize.cfg
# 3. the JupyterLab extension's lint (ESLint + Prettier) and unit tests (Vitest, jsdom, offline,
#    ~15 s); needs extension/node_modules (scripts/build_extension.sh installs it)
if [ -d extension/node_modules ]; then
  (cd extension && npm run --silent lint && npm test --silent)
elif [ -n "${CI:-}" ]; then
  echo "test.sh: extension/node_modules is missing in CI (run scripts/build_extension.sh)" >&2; exit 1
else
  echo "test.sh: extension/node_modules missing: extension lint and unit tests not run" >&2
fi
