#!/usr/bin/env bash
# Build the JupyterLab extension (extension/) into asm_nb/labextension/, the folder that
# pyproject's [tool.hatch.build.targets.wheel.shared-data] ships as
# share/jupyter/labextensions/asm-nb-extension, so `pip install .` enables it with no Node.js.
#
#   bash scripts/build_extension.sh            # build if a source is newer than the output
#   ASM_EXT_FORCE=1 bash scripts/build_extension.sh    # rebuild anyway
#
# Needs Node.js >= 20 and npm (packages come from the npm registry; package-lock.json pins
# them, so `npm ci` is used when node_modules is missing or older than the lock file).
# Idempotent: a second run with nothing changed does nothing but print that.
#
# Development link: when asm_nb is installed in editable mode from this work tree, the
# prefix's share/jupyter/labextensions/asm-nb-extension is pointed at asm_nb/labextension (a
# symlink, as `jupyter labextension develop` does), so a rebuild shows up in JupyterLab
# without reinstalling. ASM_EXT_LINK=0 turns that off; ASM_EXT_LINK=1 links even when asm_nb
# is not installed yet (into the prefix of $PYTHON).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
EXT="$ROOT/extension"
OUT="$ROOT/asm_nb/labextension"
# the environment to link into: $PYTHON, else ./.venv, else none (ASM_EXT_LINK=0 is implied)
if [ -n "${PYTHON:-}" ] || [ -x .venv/bin/python ]; then
  . scripts/_python.sh
  asm_use_python
else
  PY=false
fi

log() { echo "build_extension: $*"; }

# newest modification time (epoch seconds) among the extension's sources
newest_source() {
  find "$EXT/src" "$EXT/style" "$EXT/package.json" "$EXT/tsconfig.json" \
    $( [ -f "$EXT/package-lock.json" ] && echo "$EXT/package-lock.json" ) \
    -type f -printf '%T@\n' 2>/dev/null | sort -n | tail -1 | cut -d. -f1
}

needs_build() {
  [ "${ASM_EXT_FORCE:-0}" = "1" ] && return 0
  [ -f "$OUT/package.json" ] || return 0
  ls "$OUT"/static/remoteEntry.*.js >/dev/null 2>&1 || return 0
  local out_time src_time
  out_time=$(stat -c %Y "$OUT/package.json")
  src_time=$(newest_source)
  [ "${src_time:-0}" -gt "$out_time" ]
}

if needs_build; then
  command -v node >/dev/null 2>&1 || { echo "build_extension: Node.js >= 20 is needed to build extension/ (bash scripts/setup.sh says how to get it)" >&2; exit 1; }
  command -v npm >/dev/null 2>&1 || { echo "build_extension: npm is needed to build extension/" >&2; exit 1; }
  cd "$EXT"
  export npm_config_fund=false npm_config_audit=false npm_config_update_notifier=false
  if [ ! -d node_modules ] || { [ -f package-lock.json ] && [ package-lock.json -nt node_modules ]; }; then
    if [ -f package-lock.json ]; then
      log "npm ci"
      npm ci --no-audit --no-fund --loglevel=error
    else
      log "npm install"
      npm install --no-audit --no-fund --loglevel=error
    fi
    touch node_modules
  fi
  log "building (tsc + @jupyter/builder)"
  rm -rf lib tsconfig.tsbuildinfo "$OUT"
  npm run --silent build
  touch "$OUT/package.json"
  cd "$ROOT"
  log "built $OUT"
else
  log "up to date: $OUT"
fi

# Development link into the Python prefix (see the header).
link=${ASM_EXT_LINK:-auto}
prefix=""
[ "$link" != "0" ] && prefix=$("$PY" -c 'import sys; print(sys.prefix)' 2>/dev/null || true)
dest="$prefix/share/jupyter/labextensions/asm-nb-extension"
if [ -n "$prefix" ] && [ -L "$dest" ] && [ "$(readlink -f "$dest")" != "$(realpath "$OUT")" ]; then
  # a development link to another checkout: drop it, so a pip install here writes real files
  rm -f "$dest"
  log "removed the link $dest (it pointed at another checkout)"
fi
if [ "$link" != "0" ] && [ -n "$prefix" ]; then
  installed_from=$(cd / && "$PY" -c 'import asm_nb, os; print(os.path.dirname(os.path.dirname(os.path.realpath(asm_nb.__file__))))' 2>/dev/null || true)
  if [ "$link" = "1" ] || [ "$installed_from" = "$(realpath "$ROOT")" ]; then
    if [ "$(readlink -f "$dest" 2>/dev/null || true)" != "$(realpath "$OUT")" ]; then
      mkdir -p "$(dirname "$dest")"
      rm -rf "$dest"
      ln -s "$OUT" "$dest"
      log "linked $dest -> $OUT"
    fi
  fi
fi
