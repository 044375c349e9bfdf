# Sourced by the set-up scripts (not run): apt helpers that work as root or through sudo and wait
# for another apt/dpkg run (unattended-upgrades, a second terminal) instead of failing on its lock.
#   ASM_SKIP_APT=1      never call apt (install the system packages yourself)
#   ASM_APT_WAIT=600    seconds to wait for the dpkg/apt locks
asm_apt_ok() {
  [ "${ASM_SKIP_APT:-0}" != "1" ] && command -v apt-get >/dev/null 2>&1
}

asm_sudo() {
  if [ "$(id -u)" -eq 0 ]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    echo "apt: not root and no sudo; install these yourself or set ASM_SKIP_APT=1: $*" >&2
    return 1
  fi
}

_asm_apt_updated=0
asm_apt_install() {  # asm_apt_install PKG... (installs only what is missing)
  local need=() pkg
  for pkg in "$@"; do dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg"); done
  [ "${#need[@]}" -gt 0 ] || return 0
  local wait=${ASM_APT_WAIT:-600} i
  echo "apt: installing ${need[*]}"
  if [ "$_asm_apt_updated" = 0 ]; then
    # `apt-get update` has no lock timeout option: retry while another apt holds the lists lock
    for ((i = 0; i < wait; i += 5)); do
      asm_sudo apt-get -o DPkg::Lock::Timeout="$wait" update -qq && break
      echo "apt: update failed (another apt running?), retrying in 5 s" >&2
      sleep 5
    done
    _asm_apt_updated=1
  fi
  asm_sudo env DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$wait" install -y -qq \
    --no-install-recommends "${need[@]}" >/dev/null
}

asm_apt_candidate_major() {  # major version apt would install for PKG, or 0
  apt-cache policy "$1" 2>/dev/null | awk '/Candidate:/ {print $2}' | sed -E 's/^[0-9]+://; s/[^0-9].*//' | grep -E '^[0-9]+$' || echo 0
}
