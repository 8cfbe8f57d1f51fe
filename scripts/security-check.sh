#!/usr/bin/env bash
# security-check.sh: scan the files git tracks for real-looking credentials.
#
# Usage:
#   scripts/security-check.sh                      scan the repository this script lives in
#   scripts/security-check.sh DIR                  scan the git repository at DIR
#   scripts/security-check.sh --include-untracked  also scan untracked, non-ignored files
#                                                  (useful before `git add`)
#   scripts/security-check.sh --self-test          plant generated fake keys in a temporary
#                                                  repository and check they are found
#
# Only files listed by `git ls-files` are read (plus, with --include-untracked, those listed
# by `git ls-files --others --exclude-standard`). Ignored files such as `.env` are never read,
# but a tracked `.env` is itself a finding.
#
# A finding is printed as `path:line:rule: <masked value>`; the secret itself is never printed.
# Values that are obvious placeholders (your_..., xxx, <...>, example, test-, dummy, changeme,
# ...) are ignored, and so is any line carrying the marker `security-check: allow` (for
# example `# security-check: allow` at the end of the line).
#
# Exit status: 0 = PASS, 1 = findings (FAIL), 2 = usage or environment error.
#
# Portable to bash 3.2 (macOS) and BSD/GNU grep: only ERE patterns, no associative arrays.

set -uo pipefail

SCRIPT_PATH="${BASH_SOURCE[0]}"
ALLOW_MARKER='security-check: allow'

# --- Rules ---------------------------------------------------------------------------------
# Parallel arrays: name, extended regex, grep flags, kind, characters of the match to show.
# kind: "key" (a token format: value checks apply to the whole match), "pem" (a header, no
# value), "assign" (a `name = value` assignment: value checks apply to the value only).
# Boundaries are written as `(^|[^A-Za-z0-9_-])` ... `([^A-Za-z0-9_-]|$)` and stripped from
# the match afterwards.
L='(^|[^A-Za-z0-9_-])'
R='([^A-Za-z0-9_-]|$)'
RULE_NAME=()
RULE_RE=()
RULE_FLAGS=()
RULE_KIND=()
RULE_SHOW=()

add_rule() {
    RULE_NAME+=("$1")
    RULE_RE+=("$2")
    RULE_FLAGS+=("$3")
    RULE_KIND+=("$4")
    RULE_SHOW+=("$5")
}

add_rule openrouter-key "${L}sk-or-v1-[0-9a-f]{64}${R}" "" key 11
add_rule anthropic-key "${L}sk-ant-[A-Za-z0-9_-]{32,}${R}" "" key 9
add_rule openai-project-key "${L}sk-(proj|svcacct|admin)-[A-Za-z0-9_-]{32,}${R}" "" key 10
add_rule openai-key "${L}sk-[A-Za-z0-9]{32,}${R}" "" key 5
add_rule databricks-pat "${L}dapi[0-9a-f]{32}(-[0-9]+)?${R}" "" key 6
add_rule aws-access-key "${L}(AKIA|ASIA)[0-9A-Z]{16}${R}" "" key 6
add_rule private-key '-----BEGIN [A-Z0-9 ]*PRIVATE KEY( BLOCK)?-----' "" pem 0
add_rule github-token "${L}gh[pousr]_[A-Za-z0-9]{36,}${R}" "" key 6
add_rule github-token "${L}github_pat_[A-Za-z0-9_]{40,}${R}" "" key 13
add_rule slack-token "${L}xox[abposr]-[A-Za-z0-9-]{10,}${R}" "" key 7
add_rule slack-token "${L}xapp-[0-9]-[A-Za-z0-9-]{10,}${R}" "" key 7
add_rule slack-webhook 'hooks\.slack\.com/services/T[A-Za-z0-9_]+/B[A-Za-z0-9_]+/[A-Za-z0-9_]{12,}' "" key 24
# Generic assignments: a secret-looking name, then `=` or `:`, then a long random value.
SECRET_NAME='(api[_-]?key|apikey|secret[_-]?key|client[_-]?secret|access[_-]?key|access[_-]?token|auth[_-]?token|private[_-]?key|secret|token|password|passwd|pat)'
add_rule generic-secret "${SECRET_NAME}[\"']?[[:space:]]*[:=][[:space:]]*[\"'][^\"'[:space:]]{20,}[\"']" "-i" assign 2
add_rule generic-secret "^[[:space:]]*(export[[:space:]]+)?[A-Z0-9_]*(API_KEY|APIKEY|SECRET|TOKEN|PASSWORD|_PAT)[A-Z0-9_]*[[:space:]]*=[[:space:]]*[^\"'[:space:]#]{20,}" "" assign 2
add_rule generic-secret "^[[:space:]]*${SECRET_NAME}[[:space:]]*:[[:space:]]*[A-Za-z0-9/+=_.-]{20,}[[:space:]]*$" "-i" assign 2

# --- Value checks ----------------------------------------------------------------------------

lower() { printf '%s' "$1" | tr '[:upper:]' '[:lower:]'; }

# True when the value is an obvious placeholder rather than a credential.
is_placeholder() {
    local v
    v="$(lower "$1")"
    case "$v" in
        *your_* | *your-* | *yourkey* | *xxx* | *'<'* | *'>'* | *example* | *test-* | *test_* | \
            *dummy* | *changeme* | *change-me* | *change_me* | *placeholder* | *replace* | \
            *sample* | *redacted* | *'...'* | *'***'* | *'${'* | *'$('* | *'{{'* | *'%('* | \
            *insert* | *'<your'* | *fake*)
            return 0
            ;;
    esac
    # Too few distinct characters to be random (sk-or-v1-0000..., abab...): counted in the
    # longest `-`/`_`-separated segment, so a fixed prefix does not count.
    local longest distinct
    longest="$(printf '%s\n' "$v" | tr '_-' '\n\n' | awk 'length($0) > length(m) { m = $0 } END { print m }')"
    distinct="$(printf '%s' "$longest" | fold -w1 | sort -u | wc -l | tr -d ' ')"
    [ "$distinct" -lt 6 ]
}

# True when a generic assignment's value looks randomly generated: long, letters and digits,
# many distinct characters, and a high character entropy. Identifiers, file paths and prose
# fail this test.
is_random_looking() {
    local v="$1"
    [ "${#v}" -ge 20 ] || return 1
    case "$v" in *[0-9]*) ;; *) return 1 ;; esac
    case "$v" in *[A-Za-z]*) ;; *) return 1 ;; esac
    printf '%s' "$v" | awk '{
        n = length($0)
        for (i = 1; i <= n; i++) f[substr($0, i, 1)]++
        h = 0; d = 0
        for (c in f) { p = f[c] / n; h -= p * log(p) / log(2); d++ }
        exit !(d >= 10 && h >= 3.5)
    }'
}

# `abcdef...` -> `abcd****(64 chars)`: at most `show` leading characters, never more than a
# quarter of the value.
mask() {
    local v="$1" show="$2" cap
    cap=$((${#v} / 4))
    [ "$show" -le "$cap" ] || show="$cap"
    printf '%s****(%d chars)' "${v:0:$show}" "${#v}"
}

# Strip the boundary characters the rule patterns consume on either side.
strip_boundaries() {
    local m="$1"
    case "$m" in [!A-Za-z0-9_-]*) m="${m:1}" ;; esac
    case "$m" in *[!A-Za-z0-9_-]) m="${m%?}" ;; esac
    printf '%s' "$m"
}

# The value of `name = "value"`, `name: value` or `NAME=value`.
assigned_value() {
    printf '%s' "$1" | sed -E "s/^[^:=]*[:=][[:space:]]*[\"']?//; s/[\"'][[:space:]]*\$//; s/[[:space:]]+\$//"
}

# --- Scanning --------------------------------------------------------------------------------

FINDINGS=0
REPORTED=$'\n'   # "path:line" keys already reported, one per line

report() {
    printf '%s:%s:%s: %s\n' "$1" "$2" "$3" "$4"
    FINDINGS=$((FINDINGS + 1))
    REPORTED="${REPORTED}$1:$2"$'\n'
}

already_reported() {
    case "$REPORTED" in *$'\n'"$1:$2"$'\n'*) return 0 ;; esac
    return 1
}

# Check one matching line against rule $1; report the first offending match.
check_line() {
    local i="$1" file="$2" line="$3" content="$4"
    local name="${RULE_NAME[$i]}" re="${RULE_RE[$i]}" flags="${RULE_FLAGS[$i]}"
    local kind="${RULE_KIND[$i]}" show="${RULE_SHOW[$i]}"
    case "$content" in *"$ALLOW_MARKER"*) return ;; esac
    already_reported "$file" "$line" && return
    if [ "$kind" = pem ]; then
        report "$file" "$line" "$name" "PEM private key header"
        return
    fi
    local match value
    while IFS= read -r match; do
        [ -n "$match" ] || continue
        if [ "$kind" = assign ]; then
            value="$(assigned_value "$match")"
            is_random_looking "$value" || continue
        else
            value="$(strip_boundaries "$match")"
        fi
        is_placeholder "$value" && continue
        report "$file" "$line" "$name" "$(mask "$value" "$show")"
        return
    done <<EOF
$(printf '%s\n' "$content" | grep -oE $flags -e "$re" 2>/dev/null)
EOF
}

# Run rule $1 over the NUL-separated file list in $LIST_FILE.
scan_rule() {
    local i="$1" file rest line content
    # `grep --null` ends each file name with NUL, then `line:content` up to the newline.
    while IFS= read -r -d '' file && IFS= read -r rest; do
        line="${rest%%:*}"
        content="${rest#*:}"
        check_line "$i" "$file" "$line" "$content"
    done < <(xargs -0 grep -nsIE --null ${RULE_FLAGS[$i]} -e "${RULE_RE[$i]}" /dev/null \
        <"$LIST_FILE" 2>/dev/null)
}

# A tracked `.env` (or `.env.local`, ...) is a finding whatever it contains.
check_env_files() {
    local file base
    while IFS= read -r -d '' file; do
        base="${file##*/}"
        case "$base" in
            .env.example | .env.sample | .env.template | .env.dist | .env.defaults) ;;
            .env | .env.*) report "$file" 0 tracked-env-file "a .env file must not be committed (add it to .gitignore)" ;;
        esac
    done <"$LIST_FILE"
}

scan() {
    local root="$1" include_untracked="$2"
    if ! git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        echo "security-check: $root is not inside a git work tree" >&2
        return 2
    fi
    root="$(git -C "$root" rev-parse --show-toplevel)"
    cd "$root" || return 2
    LIST_FILE="$(mktemp "${TMPDIR:-/tmp}/security-check.XXXXXX")"
    # Deleted-but-staged files are skipped: grep -s silences the missing-file errors.
    git ls-files -z >"$LIST_FILE"
    if [ "$include_untracked" = 1 ]; then
        git ls-files -z --others --exclude-standard >>"$LIST_FILE"
    fi
    local count
    count="$(tr -cd '\0' <"$LIST_FILE" | wc -c | tr -d ' ')"
    check_env_files
    local i
    for ((i = 0; i < ${#RULE_NAME[@]}; i++)); do
        scan_rule "$i"
    done
    rm -f "$LIST_FILE"
    local scope="tracked"
    [ "$include_untracked" = 1 ] && scope="tracked and untracked"
    if [ "$FINDINGS" -eq 0 ]; then
        echo "security-check: PASS: no credentials found in $count $scope files"
        return 0
    fi
    echo "security-check: FAIL: $FINDINGS finding(s) in $count $scope files" \
        "(remove the secret, use a placeholder, or mark a false positive with" \
        "'# $ALLOW_MARKER')"
    return 1
}

# --- Self-test -------------------------------------------------------------------------------
# Fake keys are generated here at run time; no key-shaped literal appears in this file (every
# prefix is split in two), so the script passes its own scan.

rand_hex() { od -An -vtx1 -N"$1" /dev/urandom | tr -d ' \n'; }          # 2*$1 hex digits
rand_from() {                                                           # $1 chars from set $2
    od -An -vtu1 -N"$1" /dev/urandom |
        awk -v set="$2" '{ for (i = 1; i <= NF; i++) printf "%s", substr(set, $i % length(set) + 1, 1) }'
}
rand_alnum() { rand_from "$1" 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789'; }
rand_upper() { rand_from "$1" 'ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789'; }
rand_digits() { rand_from "$1" '0123456789'; }

SELF_TEST_FAILURES=0
expect() {
    if [ "$1" = ok ]; then
        echo "  ok   $2"
    else
        echo "  FAIL $2"
        SELF_TEST_FAILURES=$((SELF_TEST_FAILURES + 1))
    fi
}

self_test() {
    local tmp
    tmp="$(mktemp -d "${TMPDIR:-/tmp}/security-check-selftest.XXXXXX")"
    # shellcheck disable=SC2064
    trap "rm -rf '$tmp'" EXIT
    git -C "$tmp" init -q || return 2

    # Planted credentials: one per line, each expected as `planted.txt:<line>:<rule>`.
    local -a secrets=() rules=() lines=()
    secrets+=("sk-""or-v1-$(rand_hex 32)")
    lines+=("OPENROUTER_API_KEY=${secrets[0]}")
    rules+=(openrouter-key)
    secrets+=("sk-""ant-api03-$(rand_alnum 93)AA")
    lines+=("client = Anthropic(api_key=\"${secrets[1]}\")")
    rules+=(anthropic-key)
    secrets+=("sk-""proj-$(rand_alnum 60)_$(rand_alnum 40)")
    lines+=("export OPENAI_API_KEY='${secrets[2]}'")
    rules+=(openai-project-key)
    secrets+=("sk-""$(rand_alnum 20)T3Blbk""FJ$(rand_alnum 20)")
    lines+=("openai.api_key = \"${secrets[3]}\"")
    rules+=(openai-key)
    secrets+=("da""pi$(rand_hex 16)")
    lines+=("DATABRICKS_PAT=${secrets[4]}")
    rules+=(databricks-pat)
    secrets+=("AK""IA$(rand_upper 16)")
    lines+=("aws_access_key_id = ${secrets[5]}")
    rules+=(aws-access-key)
    secrets+=("$(rand_alnum 64)")
    lines+=("-----BEGIN RSA PRI""VATE KEY-----")
    rules+=(private-key)
    secrets+=("gh""p_$(rand_alnum 36)")
    lines+=("token: ${secrets[7]}")
    rules+=(github-token)
    secrets+=("github""_pat_$(rand_alnum 22)_$(rand_alnum 59)")
    lines+=("GH_TOKEN=${secrets[8]}")
    rules+=(github-token)
    secrets+=("xo""xb-$(rand_digits 12)-$(rand_digits 13)-$(rand_alnum 24)")
    lines+=("slack = \"${secrets[9]}\"")
    rules+=(slack-token)
    secrets+=("$(rand_alnum 40)7q")
    lines+=("api_key = \"${secrets[10]}\"")
    rules+=(generic-secret)
    secrets+=("$(rand_alnum 32)Z9")
    lines+=("  \"client_secret\": \"${secrets[11]}\",")
    rules+=(generic-secret)
    secrets+=("$(rand_alnum 30)4k")
    lines+=("SERVICE_TOKEN=${secrets[12]}")
    rules+=(generic-secret)
    printf '%s\n' "${lines[@]}" >"$tmp/planted.txt"

    # Placeholders and allowed lines: none of these may be reported.
    {
        echo "OPENROUTER_API_KEY=your_openrouter_api_key_here"
        echo "OPENROUTER_API_KEY=sk-""or-v1-0000000000000000000000000000000000000000000000000000000000000000"
        echo "ANTHROPIC_API_KEY=sk-""ant-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
        echo "ANTHROPIC_API_KEY=sk-""ant-api03-your-key-$(rand_alnum 40)"
        echo "api_key = \"<your-openrouter-api-key-$(rand_alnum 8)>\""
        echo "api_key = \"example-$(rand_alnum 30)\""
        echo "token = \"test-$(rand_alnum 30)\""
        echo "password = \"dummy$(rand_alnum 30)\""
        echo "secret = \"changeme$(rand_alnum 30)\""
        echo "aws_access_key_id = AK""IAIOSFODNN7EXAMPLE"
        echo "DATABRICKS_PAT=your_personal_access_token"
        echo "PROXY_API_KEY=change-me-to-a-long-random-string"
        echo "api_key = \"sk-""or-v1-$(rand_hex 32)\"  # security-check: allow"
        echo "openrouter_api_key: SecretStr | None = None"
        echo "max_tokens = 32000000000000000000000"
        echo "token = \"abcdefghijklmnopqrstuvwxyz\""
    } >"$tmp/placeholders.txt"

    # Untracked and ignored files are never read.
    echo ".env" >"$tmp/.gitignore"
    echo "OPENROUTER_API_KEY=sk-""or-v1-$(rand_hex 32)" >"$tmp/.env"
    echo "OPENROUTER_API_KEY=sk-""or-v1-$(rand_hex 32)" >"$tmp/untracked.txt"
    git -C "$tmp" add planted.txt placeholders.txt .gitignore

    echo "security-check self-test in $tmp"
    local out status i
    out="$("$BASH" "$SCRIPT_PATH" "$tmp" 2>&1)"
    status=$?
    [ "$status" -eq 1 ] && expect ok "exit status 1 with findings" ||
        expect fail "exit status 1 with findings (got $status)"
    for ((i = 0; i < ${#rules[@]}; i++)); do
        case "$out" in
            *"planted.txt:$((i + 1)):${rules[$i]}:"*) expect ok "found ${rules[$i]} on line $((i + 1))" ;;
            *) expect fail "found ${rules[$i]} on line $((i + 1))" ;;
        esac
        case "$out" in
            *"${secrets[$i]}"*) expect fail "secret of line $((i + 1)) is masked in the output" ;;
        esac
    done
    local planted
    planted="$(printf '%s\n' "$out" | grep -c '^planted.txt:')"
    [ "$planted" -eq "${#rules[@]}" ] && expect ok "one finding per planted line" ||
        expect fail "one finding per planted line (got $planted)"
    case "$out" in
        *placeholders.txt*) expect fail "placeholders and allowed lines are ignored" ;;
        *) expect ok "placeholders and allowed lines are ignored" ;;
    esac
    case "$out" in
        *untracked.txt* | *".env:"*) expect fail "untracked and ignored files are not scanned" ;;
        *) expect ok "untracked and ignored files are not scanned" ;;
    esac
    case "$out" in
        *"security-check: FAIL"*) expect ok "FAIL summary printed" ;;
        *) expect fail "FAIL summary printed" ;;
    esac

    # --include-untracked reads untracked files but still not ignored ones.
    out="$("$BASH" "$SCRIPT_PATH" --include-untracked "$tmp" 2>&1)"
    case "$out" in
        *"untracked.txt:1:openrouter-key:"*) expect ok "--include-untracked scans untracked files" ;;
        *) expect fail "--include-untracked scans untracked files" ;;
    esac
    case "$out" in
        *".env:"*) expect fail "--include-untracked still skips ignored files" ;;
        *) expect ok "--include-untracked still skips ignored files" ;;
    esac

    # A clean repository passes.
    git -C "$tmp" rm -q --cached planted.txt
    out="$("$BASH" "$SCRIPT_PATH" "$tmp" 2>&1)"
    status=$?
    [ "$status" -eq 0 ] && expect ok "exit status 0 without findings" ||
        expect fail "exit status 0 without findings (got $status): $out"
    case "$out" in
        *"security-check: PASS"*) expect ok "PASS summary printed" ;;
        *) expect fail "PASS summary printed" ;;
    esac

    # A tracked .env fails, whatever it contains.
    printf 'LOG_LEVEL=INFO\n' >"$tmp/.env"
    git -C "$tmp" add -f .env
    out="$("$BASH" "$SCRIPT_PATH" "$tmp" 2>&1)"
    status=$?
    case "$out" in
        *".env:0:tracked-env-file:"*) [ "$status" -eq 1 ] && expect ok "a tracked .env fails" ||
            expect fail "a tracked .env fails (status $status)" ;;
        *) expect fail "a tracked .env fails" ;;
    esac

    if [ "$SELF_TEST_FAILURES" -eq 0 ]; then
        echo "security-check self-test: PASS"
        return 0
    fi
    echo "security-check self-test: FAIL ($SELF_TEST_FAILURES check(s) failed)"
    return 1
}

# --- Main ------------------------------------------------------------------------------------

main() {
    local root="" include_untracked=0
    while [ $# -gt 0 ]; do
        case "$1" in
            --self-test) self_test; return $? ;;
            --include-untracked) include_untracked=1 ;;
            -h | --help) sed -n '2,24p' "$SCRIPT_PATH" | sed 's/^# \{0,1\}//'; return 0 ;;
            -*) echo "security-check: unknown option $1 (see --help)" >&2; return 2 ;;
            *) root="$1" ;;
        esac
        shift
    done
    if [ -z "$root" ]; then
        root="$(cd "$(dirname "$SCRIPT_PATH")" && pwd)"
    fi
    scan "$root" "$include_untracked"
}

main "$@"
