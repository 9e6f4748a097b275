#!/usr/bin/env bash
# Installs the Debian packages some tests and benchmarks need: a PostgreSQL server (store tests), wrk (HTTP
# load benchmark), Chromium and its driver (browser tests), a Java runtime (the Spark engine's tests), SuiteSparse's
# headers (the sparse extra builds scikit-sparse for sparse EASE). Only the missing ones, and never fails the set-up:
# when it cannot install them it prints one line naming what is missing (those tests are skipped) and exits 0.
set -u

PACKAGES=(postgresql wrk chromium chromium-driver default-jre-headless libsuitesparse-dev)

# True when the package's program is usable (the store tests also look under /usr/lib/postgresql/*/bin).
present() {
  case "$1" in
    postgresql)
      command -v initdb >/dev/null 2>&1 || compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null ;;
    chromium-driver) command -v chromedriver >/dev/null 2>&1 ;;
    default-jre-headless) command -v java >/dev/null 2>&1 ;;
    *) command -v "$1" >/dev/null 2>&1 || dpkg -s "$1" >/dev/null 2>&1 ;;
  esac
}

missing_packages() {
  local package
  for package in "${PACKAGES[@]}"; do
    present "$package" || printf '%s\n' "$package"
  done
}

give_up() {
  echo "system packages missing: ${missing[*]} ($1); the tests and benchmarks needing them will be skipped"
  exit 0
}

mapfile -t missing < <(missing_packages)
if [ "${#missing[@]}" -eq 0 ]; then
  echo "system packages: ${PACKAGES[*]} present"
  exit 0
fi
[ "$(id -u)" -eq 0 ] || give_up "not root: run 'sudo $0'"
command -v apt-get >/dev/null 2>&1 || give_up "no apt-get on this system"

log=$(mktemp /tmp/install-system-deps.XXXXXX.log)
apt_install() {
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "$@" >>"$log" 2>&1
}
apt-get update >>"$log" 2>&1 || give_up "apt-get update failed, see $log"
# One transaction first; if a package is unknown here (apt then installs nothing), each one on its own.
if ! apt_install "${missing[@]}"; then
  for package in "${missing[@]}"; do
    apt_install "$package" || true
  done
fi

installed=("${missing[@]}")
mapfile -t missing < <(missing_packages)
[ "${#missing[@]}" -eq 0 ] || give_up "apt-get install failed, see $log"
rm -f "$log"
echo "system packages: installed ${installed[*]}"
