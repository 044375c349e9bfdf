#!/usr/bin/env bash
# Install Debian's PostgreSQL server binaries for the SqlStore tests (tests/pg.py starts a
# throwaway cluster from them). Idempotent: does nothing when initdb is already present under
# /usr/lib/postgresql/*/bin. The tests never use the system cluster; the packaged service is not
# started during the install. Runs apt as root or through sudo and waits for another apt run.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/_apt.sh

if compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null; then
  exit 0
fi
if ! asm_apt_ok; then
  echo "install_postgres.sh: apt unavailable or ASM_SKIP_APT=1; install PostgreSQL (initdb, pg_ctl) yourself" >&2
  exit 1
fi
# policy-rc.d exit 101: do not start the packaged cluster service during the install
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | asm_sudo tee /usr/sbin/policy-rc.d >/dev/null
  asm_sudo chmod +x /usr/sbin/policy-rc.d
  trap 'asm_sudo rm -f /usr/sbin/policy-rc.d' EXIT
fi
asm_apt_install postgresql
compgen -G "/usr/lib/postgresql/*/bin/initdb" >/dev/null || { echo "install_postgres.sh: initdb still missing" >&2; exit 1; }
