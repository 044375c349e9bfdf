# Sourced by the scripts (not run): picks the Python they use and puts its bin folder first on
# PATH, so console scripts (jupyter, asm, lint-imports) come from the same environment.
#   PYTHON=/path/to/python   a developer's own interpreter or venv (used as is, never modified
#                            by anything but setup.sh's pip install)
#   otherwise                ./.venv/bin/python, which scripts/setup.sh creates
# Never the system Python: PEP 668 distributions refuse pip there, and it is not ours to change.
asm_use_python() {
  if [ -n "${PYTHON:-}" ]; then
    PY=$(command -v "$PYTHON" || true)
    [ -n "$PY" ] || { echo "$(basename "$0"): PYTHON=$PYTHON is not an executable" >&2; exit 1; }
  elif [ -x .venv/bin/python ]; then
    PY=$PWD/.venv/bin/python
  else
    echo "$(basename "$0"): no .venv in $PWD; run: bash scripts/setup.sh   (or set PYTHON=/path/to/python)" >&2
    exit 1
  fi
  export PATH="$(cd "$(dirname "$PY")" && pwd):$PATH"
}
