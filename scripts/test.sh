#!/usr/bin/env bash
# The one command that installs everything the tests need and runs all of them:
#   bash scripts/test.sh            (extra arguments go to pytest, e.g. -k stream)
# Install, then: secret scan (detect-secrets), dependency audit (pip-audit), lint (ruff),
# format check, type check (mypy strict), and pytest under coverage, which must not fall below
# the floor in pyproject.toml ([tool.coverage.report] fail_under) on a full run.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -e '.[test,litellm]'
bash scripts/setup-services.sh
if [ -x scripts/setup-e2e.sh ]; then
  bash scripts/setup-e2e.sh
fi
bash scripts/setup-llama.sh  # llama-cpp-python's server for tests/integration/test_local_server.py

echo "== security-check (detect-secrets)"; bash scripts/security-check.sh
echo "== security-check --self-test"; bash scripts/security-check.sh --self-test >/dev/null
echo "== pip-audit"; python scripts/audit_deps.py
echo "== ruff check"; ruff check .
echo "== ruff format --check"; ruff format --check .
echo "== mypy"; mypy
echo "== pytest (with coverage)"
export COVERAGE_FILE="$PWD/.coverage"
rm -f .coverage .coverage.*
python -m coverage run -m pytest "$@"
python -m coverage combine --quiet
if [ $# -eq 0 ]; then
  python -m coverage report --format=total >/dev/null  # fails below the floor
  echo "coverage: $(python -m coverage report --format=total)% (floor $(sed -n 's/^fail_under = //p' pyproject.toml)%)"
else
  python -m coverage report --fail-under=0 --format=total | sed 's/^/coverage of this partial run: /'
fi
