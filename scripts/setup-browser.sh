#!/usr/bin/env bash
# Installs the browser the status-page test drives (tests/gateway/test_ui.py): Debian's
# `chromium`, run by Playwright with executable_path=/usr/bin/chromium. Playwright's own
# browser download is never used. Called by scripts/test.sh; a no-op when it is there.
set -euo pipefail

if [ -x /usr/bin/chromium ]; then
  echo "== browser: chromium installed"
  exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "== browser: chromium is missing; the status-page test needs it. As root:" >&2
  echo "     apt-get install -y chromium" >&2
  exit 1
fi
echo "== browser: installing chromium (Debian package)"
export DEBIAN_FRONTEND=noninteractive
log="$(mktemp)"
if ! apt-get install -y --no-install-recommends chromium > "$log" 2>&1; then
  # A fresh machine has no package lists yet.
  apt-get update -qq > "$log" 2>&1
  apt-get install -y --no-install-recommends chromium > "$log" 2>&1 || {
    cat "$log" >&2
    exit 1
  }
fi
rm -f "$log"
