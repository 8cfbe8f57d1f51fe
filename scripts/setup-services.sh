#!/usr/bin/env bash
# Installs the real services the tests start (tests/support/services.py): PostgreSQL and
# redis-server, from Debian's packages. Called by scripts/test.sh; a no-op when both are there.
# The tests run their own servers in temporary directories on free loopback ports: nothing
# here starts, configures or depends on the system's own postgresql/redis services.
set -euo pipefail

have_postgres() { compgen -G '/usr/lib/postgresql/*/bin/postgres' > /dev/null; }
have_redis() { command -v redis-server > /dev/null || [ -x /usr/bin/redis-server ]; }

missing=()
have_postgres || missing+=(postgresql)
have_redis || missing+=(redis-server)

if [ ${#missing[@]} -eq 0 ]; then
  echo "== services: postgresql and redis-server installed"
  exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
  echo "== services: missing ${missing[*]}; the tests need them. Install them as root, e.g.:" >&2
  echo "     sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi

echo "== services: installing ${missing[*]} (Debian packages)"
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
if ! apt-get install -y --no-install-recommends "${missing[@]}" > "$log" 2>&1; then
  # A fresh machine has no package lists yet.
  apt-get update > "$log" 2>&1 || { cat "$log" >&2; exit 1; }
  apt-get install -y --no-install-recommends "${missing[@]}" > "$log" 2>&1 || { cat "$log" >&2; exit 1; }
fi
rm -f "$log"
have_postgres && have_redis || { echo "== services: install finished but binaries not found" >&2; exit 1; }
echo "== services: installed ${missing[*]}"
