#!/usr/bin/env bash
# Install what the browser tests (tests/browser, marker `browser`) drive: Debian's headless
# Chromium (apt, as root or through sudo) and Playwright for Python (pip; it never downloads a
# browser here, the tests launch /usr/bin/chromium). Idempotent: installs only what is missing.
#   ASM_SKIP_APT=1 skips the apt step (the browser tests then skip when Chromium is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_apt.sh
. scripts/_python.sh
asm_use_python
export PIP_DISABLE_PIP_VERSION_CHECK=1

if ! [ -x /usr/bin/chromium ]; then
  if asm_apt_ok; then
    asm_apt_install chromium fonts-liberation
  else
    echo "install_browser: no Chromium at /usr/bin/chromium (apt skipped); the browser tests will skip" >&2
  fi
fi

# Playwright's Python package only: PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD keeps it from fetching browsers.
if ! "$PY" -c 'import playwright.sync_api' >/dev/null 2>&1; then
  PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 "$PY" -m pip install -q "playwright>=1.40"
fi
# The tests start a JupyterLab server.
if ! "$PY" -c 'import jupyterlab' >/dev/null 2>&1; then
  "$PY" -m pip install -q "jupyterlab>=4.1,<5"
fi

echo "install_browser: $(/usr/bin/chromium --version 2>/dev/null || echo 'no chromium')"
"$PY" -c 'from importlib.metadata import version as v; print("install_browser: playwright", v("playwright"), "jupyterlab", v("jupyterlab"))'
