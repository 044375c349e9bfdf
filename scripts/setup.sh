#!/usr/bin/env bash
# Set asm_nb up in this checkout, on a stock Debian/Ubuntu machine (or anywhere with Python >= 3.10):
#   bash scripts/setup.sh              everything the tests need (the default; .ci/run uses it)
#   bash scripts/setup.sh quickstart   only what the quickstart needs: the package + the notebook extra
#
# Each step installs only what is missing, so a second run installs nothing:
#   1. system packages with apt, as root or through sudo, waiting for another apt run to finish:
#      python3-venv when Python cannot create a venv; for the tests also git, bubblewrap, the PostgreSQL server
#      binaries (the SqlStore tests start a throwaway cluster), Chromium (browser tests) and
#      Node.js + npm when the distribution's nodejs is version 20 or newer;
#   2. ./.venv (never the system Python) with `pip install -e ".[notebook]"` (quickstart) or
#      `pip install -e ".[dev]"` (every extra and the test tools);
#   3. for the tests: the JupyterLab extension built with npm (Node.js >= 20) and linked into .venv.
# Environment:
#   ASM_SKIP_APT=1    never call apt (then install the system packages yourself)
#   PYTHON=/path      install into that interpreter or venv instead of creating ./.venv
#   ASM_BASE_PYTHON   the interpreter that creates ./.venv (default: python3)
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_apt.sh

profile=${1:-all}
case "$profile" in all|quickstart) ;; *) echo "usage: bash scripts/setup.sh [all|quickstart]" >&2; exit 2 ;; esac
export PIP_DISABLE_PIP_VERSION_CHECK=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
t0=$(date +%s)
step() { echo "== setup ($profile): $* ($(( $(date +%s) - t0 ))s)"; }

node_major() { command -v node >/dev/null 2>&1 && node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0; }
need_node() {
  [ "$(node_major)" -ge 20 ] && command -v npm >/dev/null 2>&1 && return 0
  if asm_apt_ok && [ "$(asm_apt_candidate_major nodejs)" -ge 20 ]; then
    asm_apt_install nodejs npm
    [ "$(node_major)" -ge 20 ] && command -v npm >/dev/null 2>&1 && return 0
  fi
  cat >&2 <<MSG
setup: Node.js >= 20 and npm are needed to build the JupyterLab extension (found: $(command -v node >/dev/null && node --version || echo none)).
  Debian 12 and Ubuntu 22.04 ship Node 18. Get Node 20 or newer with one of:
    - NodeSource: curl -fsSL https://deb.nodesource.com/setup_22.x | sudo -E bash - && sudo apt-get install -y nodejs
    - the nodejs and npm packages of Debian 13 or Ubuntu 24.04 and later
    - nvm (https://github.com/nvm-sh/nvm): nvm install 22
  Then run this script again. (The quickstart needs no Node: bash scripts/quickstart.sh)
MSG
  exit 1
}

# -- 1. system packages ---------------------------------------------------------------------------
base=${ASM_BASE_PYTHON:-python3}
if [ -z "${PYTHON:-}" ] && [ ! -x .venv/bin/python ]; then
  command -v "$base" >/dev/null 2>&1 || { echo "setup: $base not found; install Python >= 3.10" >&2; exit 1; }
  "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { echo "setup: $("$base" --version 2>&1) is too old; asm_nb needs Python >= 3.10 (ASM_BASE_PYTHON=...)" >&2; exit 1; }
  if ! "$base" -c 'import ensurepip, venv' >/dev/null 2>&1; then
    if asm_apt_ok; then
      step "apt: python3-venv"
      asm_apt_install "python3-venv" || asm_apt_install "python$("$base" -c 'import sys; print("%d.%d" % sys.version_info[:2])')-venv"
    else
      echo "setup: $base cannot create a venv (Debian/Ubuntu: apt-get install python3-venv)" >&2; exit 1
    fi
  fi
fi
if [ "$profile" = all ]; then
  if asm_apt_ok; then
    step "apt: git, bubblewrap (the opt-in command sandbox; tests/security/test_sandbox.py)"
    asm_apt_install git bubblewrap
    step "PostgreSQL server binaries"
    bash scripts/install_postgres.sh
  fi
  step "Node.js >= 20"
  need_node
fi

# -- 2. the Python environment --------------------------------------------------------------------
if [ -z "${PYTHON:-}" ] && [ ! -x .venv/bin/python ]; then
  step "python -m venv .venv"
  "$base" -m venv .venv
fi
. scripts/_python.sh
asm_use_python
# A development link from an earlier run (scripts/build_extension.sh) points the prefix's
# labextension folder into this checkout: drop it first, or pip's uninstall step would delete the
# build output through the link.
dev_link="$("$PY" -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions/asm-nb-extension"
[ -L "$dev_link" ] && rm -f "$dev_link"
if [ "$profile" = quickstart ]; then
  step "pip install -e .[notebook] into $PY"
  # the quickstart runs headless (nbconvert): no JupyterLab, so no extension build and no Node
  ASM_SKIP_EXTENSION_BUILD=1 "$PY" -m pip install -q -e ".[notebook]"
else
  step "pip install -e .[dev] into $PY (builds the extension)"
  "$PY" -m pip install -q -e ".[dev]"
  step "browser (Chromium; Playwright without a browser download)"
  bash scripts/install_browser.sh
  step "JupyterLab extension (link into the environment)"
  bash scripts/build_extension.sh
fi
step "done"
