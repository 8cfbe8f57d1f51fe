#!/usr/bin/env bash
# Installs the Node clients the end-to-end tests drive (tests/e2e): the Claude Code CLI and the
# TypeScript SDK, at the exact versions of tests/e2e/package.json + package-lock.json, into
# .cache/e2e/node_modules. Called by scripts/test.sh; a second run with the same pins is a no-op.
# Needs node and npm (Node 20+, npm 11) and the npm registry; nothing else.
set -euo pipefail
cd "$(dirname "$0")/.."

PINS=tests/e2e
DEST=.cache/e2e
CLAUDE="$DEST/node_modules/.bin/claude"
INSTALL_TIMEOUT="${E2E_INSTALL_TIMEOUT:-900}"

pinned() {  # the exact version tests/e2e/package.json pins for package $1
  node -p "require('./$PINS/package.json').dependencies['$1']"
}
claude_version="$(pinned @anthropic-ai/claude-code)"
sdk_version="$(pinned @anthropic-ai/sdk)"
stamp="$(cat "$PINS/package.json" "$PINS/package-lock.json" | sha256sum | cut -d' ' -f1)"

installed_ok() {
  [ -f "$DEST/.stamp" ] && [ "$(cat "$DEST/.stamp")" = "$stamp" ] || return 1
  [ "$(node -p "require('./$DEST/node_modules/@anthropic-ai/sdk/package.json').version" 2>/dev/null)" \
    = "$sdk_version" ] || return 1
  [ "$(timeout 60 "$CLAUDE" --version 2>/dev/null)" = "$claude_version (Claude Code)" ]
}

if installed_ok; then
  echo "== e2e clients: cached (claude-code $claude_version, sdk $sdk_version)"
  exit 0
fi

echo "== e2e clients: installing claude-code $claude_version and sdk $sdk_version into $DEST"
mkdir -p "$DEST"
rm -rf "$DEST/node_modules" "$DEST/.stamp"
cp "$PINS/package.json" "$PINS/package-lock.json" "$DEST/"
log="$DEST/npm-install.log"
# Quiet: warnings (the CLI wrapper asks for Node >= 22, but the CLI itself is a native binary
# that does not use Node) go to the log, which is shown only when the install fails.
# Lifecycle scripts are skipped; the CLI's postinstall is run below only if it is needed.
if ! (cd "$DEST" && timeout "$INSTALL_TIMEOUT" npm ci --ignore-scripts --engine-strict=false \
  --no-audit --no-fund --no-progress --loglevel=warn) >"$log" 2>&1; then
  cat "$log" >&2
  echo "setup-e2e: npm ci failed (log: $log)" >&2
  exit 1
fi

# The package's postinstall puts the native binary of the platform package at bin/claude.exe;
# npm may have done it already (hard link), else run that script ourselves.
if ! timeout 60 "$CLAUDE" --version >/dev/null 2>&1; then
  (cd "$DEST/node_modules/@anthropic-ai/claude-code" && timeout 300 node install.cjs) >>"$log" 2>&1 || true
fi
actual="$(timeout 60 "$CLAUDE" --version 2>&1 || true)"
if [ "$actual" != "$claude_version (Claude Code)" ]; then
  cat "$log" >&2
  echo "setup-e2e: $CLAUDE --version printed '$actual', expected '$claude_version (Claude Code)'" >&2
  exit 1
fi
echo "$stamp" >"$DEST/.stamp"
echo "== e2e clients: installed ($actual)"
