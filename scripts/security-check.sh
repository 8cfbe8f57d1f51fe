#!/usr/bin/env bash
# security-check.sh: scan the files git tracks for credentials, with detect-secrets.
#
# Usage:
#   scripts/security-check.sh                      scan the repository this script lives in
#   scripts/security-check.sh DIR                  scan the git repository at DIR
#   scripts/security-check.sh --include-untracked  also scan untracked, non-ignored files
#                                                  (useful before `git add`)
#   scripts/security-check.sh --self-test          plant generated fake keys of several
#                                                  providers in a temporary repository and
#                                                  check that every one is found
#
# The scanner is detect-secrets (its detectors for OpenAI, AWS, GitHub, Slack, private keys,
# secret-named assignments and high-entropy strings, plus this project's own for OpenRouter,
# Anthropic, OpenAI project and Databricks keys in scripts/secret_plugins.py). Findings are
# compared with the committed, reviewed baseline `.secrets.baseline` (fake test fixtures,
# hashes): only new ones fail. A finding prints as `path:line:type: <masked value>`; the
# secret itself is never printed. A fake fixture can be marked on its line with
# `# pragma: allowlist secret`.
#
# Exit status: 0 = PASS, 1 = findings (FAIL), 2 = usage or environment error.

set -uo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
PYTHON="${PYTHON:-python3}"

scan() {  # scan REPO [--include-untracked] [--settings-from BASELINE]
    "$PYTHON" "$SCRIPT_DIR/secret_scan.py" "$@"
}

random_hex() { "$PYTHON" -c "import secrets,sys; print(secrets.token_hex(int(sys.argv[1])))" "$1"; }
random_alnum() {
    "$PYTHON" -c "import secrets,string,sys; a=string.ascii_letters+string.digits; print(''.join(secrets.choice(a) for _ in range(int(sys.argv[1]))))" "$1"
}

FAILURES=0
check() {  # check DESCRIPTION CONDITION...
    local what="$1"; shift
    if "$@"; then echo "  ok   $what"; else echo "  FAIL $what"; FAILURES=$((FAILURES + 1)); fi
}

self_test() {
    local tmp out status
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/security-check-selftest.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" RETURN
    git -C "$tmp" init -q
    # Every value is generated now: none of them exists anywhere but in this temporary tree.
    local openrouter="sk-or-v1-$(random_hex 32)"
    local anthropic="sk-ant-api03-$(random_alnum 80)"
    local openai="sk-proj-$(random_alnum 48)"
    local databricks="dapi$(random_hex 16)"
    local aws="AKIA$(random_alnum 16 | tr '[:lower:]' '[:upper:]')"
    local github="ghp_$(random_alnum 36)"
    printf 'OPENROUTER = "%s"\n' "$openrouter" > "$tmp/openrouter.py"
    printf 'ANTHROPIC_API_KEY=%s\n' "$anthropic" > "$tmp/anthropic.env.sample"
    printf 'client:\n  key: %s\n' "$openai" > "$tmp/openai.yaml"
    printf 'export DATABRICKS_PAT=%s\n' "$databricks" > "$tmp/databricks.sh"
    printf '{"aws_access_key_id": "%s"}\n' "$aws" > "$tmp/aws.json"
    printf 'token = "%s"\n' "$github" > "$tmp/github.toml"
    printf -- '-----BEGIN RSA PRIVATE KEY-----\nMIIEow\n-----END RSA PRIVATE KEY-----\n' > "$tmp/id_rsa"
    git -C "$tmp" add -A
    echo "security-check self-test in $tmp"
    out="$(scan "$tmp" --settings-from "$ROOT/.secrets.baseline" 2>&1)"
    status=$?
    check "planted keys fail the scan (exit 1)" test "$status" -eq 1
    local name
    for name in openrouter.py anthropic.env.sample openai.yaml databricks.sh aws.json github.toml id_rsa; do
        check "found in $name" grep -q "^$name:" <<<"$out"
    done
    local value
    for value in "$openrouter" "$anthropic" "$openai" "$databricks" "$aws" "$github"; do
        check "value not printed (${value:0:6}...)" bash -c '! grep -qF -- "$1" <<<"$2"' _ "$value" "$out"
    done
    # A clean tree passes.
    git -C "$tmp" rm -q --cached -r . && rm -f "$tmp"/*.py "$tmp"/*.sample "$tmp"/*.yaml \
        "$tmp"/*.sh "$tmp"/*.json "$tmp"/*.toml "$tmp"/id_rsa
    printf 'print("hello")\nAPI_KEY = os.environ["OPENROUTER_API_KEY"]\n' > "$tmp/clean.py"
    git -C "$tmp" add -A
    scan "$tmp" --settings-from "$ROOT/.secrets.baseline" >/dev/null 2>&1
    check "a clean tree passes (exit 0)" test "$?" -eq 0
    if [ "$FAILURES" -eq 0 ]; then
        echo "security-check self-test: PASS"
        return 0
    fi
    echo "$out"
    echo "security-check self-test: FAIL ($FAILURES check(s) failed)"
    return 1
}

main() {
    local repo="$ROOT" extra=()
    while [ $# -gt 0 ]; do
        case "$1" in
            --self-test) self_test; return $? ;;
            --include-untracked) extra+=(--include-untracked) ;;
            -h | --help) sed -n '2,20p' "${BASH_SOURCE[0]}" | sed 's/^# \{0,1\}//'; return 0 ;;
            -*) echo "security-check: unknown option $1 (see --help)" >&2; return 2 ;;
            *) repo="$1" ;;
        esac
        shift
    done
    if ! git -C "$repo" rev-parse --git-dir >/dev/null 2>&1; then
        echo "security-check: $repo is not a git repository" >&2
        return 2
    fi
    scan "$repo" "${extra[@]}"
}

main "$@"
