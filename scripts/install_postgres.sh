#!/usr/bin/env bash
# Install Debian's PostgreSQL server binaries for the SqlStore tests (tests/pg.py starts a
# throwaway cluster from them). Idempotent: does nothing when initdb is already present under
# /usr/lib/postgresql/*/bin. The tests never use the system cluster; we stop any that apt starts.
set -euo pipefail

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "install_postgres.sh: apt-get not found; install PostgreSQL (initdb, pg_ctl) yourself" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# policy-rc.d 101: do not start the packaged cluster service during the install
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  trap '$SUDO rm -f /usr/sbin/policy-rc.d' EXIT
fi
$SUDO apt-get install -y -qq postgresql >/dev/null
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "install_postgres.sh: initdb still missing" >&2; exit 1; }
