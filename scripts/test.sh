#!/usr/bin/env bash
# The one command that installs everything the tests need and runs all of them:
#   bash scripts/test.sh            (extra arguments go to pytest, e.g. -k stream)
# Lint (ruff), format check, type check (mypy strict) and pytest, in that order.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -e '.[test,litellm]'
bash scripts/setup-services.sh
if [ -x scripts/setup-e2e.sh ]; then
  bash scripts/setup-e2e.sh
fi

echo "== ruff check"; ruff check .
echo "== ruff format --check"; ruff format --check .
echo "== mypy"; mypy
echo "== pytest"; python -m pytest "$@"
