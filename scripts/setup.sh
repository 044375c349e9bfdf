#!/usr/bin/env bash
# Install everything asm_nb needs on a fresh Debian machine with Python >= 3.10 and Node 20:
# the package with all extras and test tools, plus the system packages the tests use.
# Idempotent: re-running it installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1
PY=${PYTHON:-python3}

if [ "${ASM_SKIP_APT:-0}" != "1" ] && command -v apt-get >/dev/null 2>&1; then
  need=()
  for pkg in git; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
  if [ "${#need[@]}" -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  fi
fi

"$PY" -m pip install -q -e ".[all]"
