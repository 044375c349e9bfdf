#!/usr/bin/env bash
# Install what the browser tests (tests/browser, marker `browser`) drive: Debian's headless
# Chromium (apt) and Playwright for Python (pip; it never downloads a browser here, the tests
# launch /usr/bin/chromium). Idempotent: installs only what is missing.
#   ASM_SKIP_APT=1 skips the apt step (e.g. no root).
set -euo pipefail
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3}

if [ "${ASM_SKIP_APT:-0}" != "1" ] && ! [ -x /usr/bin/chromium ]; then
  if command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null
  else
    echo "install_browser: no apt-get; install Chromium at /usr/bin/chromium by hand" >&2
    exit 1
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
