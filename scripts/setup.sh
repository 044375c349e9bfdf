#!/usr/bin/env bash
# Install everything asm_nb needs on a fresh Debian machine with Python >= 3.10 and Node >= 20:
#   - system packages (apt): git, bubblewrap (the opt-in command sandbox), PostgreSQL server binaries (SqlStore tests start a throwaway
#     cluster), Chromium (browser tests);
#   - the JupyterLab extension, built with npm into asm_nb/labextension/;
#   - the package itself with every extra and the test tools (pip, editable).
# Idempotent: a second run installs nothing new. ASM_SKIP_APT=1 skips the apt steps.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
PY=${PYTHON:-python3}
t0=$(date +%s)
step() { echo "== setup: $* ($(( $(date +%s) - t0 ))s)"; }

if [ "${ASM_SKIP_APT:-0}" != "1" ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  for pkg in git bubblewrap; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
  if [ "${#need[@]}" -gt 0 ]; then
    step "apt: ${need[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
  step "PostgreSQL"
  bash scripts/install_postgres.sh
fi

step "pip install -e .[all]"
# A development link from an earlier run (scripts/build_extension.sh) points the prefix's
# labextension folder into this checkout: drop it first, or pip's uninstall step would delete
# the build output through the link.
dev_link="$("$PY" -c 'import sys; print(sys.prefix)')/share/jupyter/labextensions/asm-nb-extension"
[ -L "$dev_link" ] && rm -f "$dev_link"
"$PY" -m pip install -q -e ".[all]"

step "browser (Chromium, Playwright without a browser download)"
bash scripts/install_browser.sh

step "JupyterLab extension"
bash scripts/build_extension.sh
step "done"
