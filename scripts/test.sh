#!/usr/bin/env bash
# The one command that installs everything the tests need and runs all of them:
#   bash scripts/test.sh            (extra arguments go to pytest, e.g. -k stream)
# Lint (ruff), format check, type check (mypy strict) and pytest, in that order.
set -euo pipefail
cd "$(dirname "$0")/.."

python -m pip install --quiet --disable-pip-version-check -e '.[test,litellm]'
if [ -x scripts/setup-e2e.sh ]; then
  bash scripts/setup-e2e.sh
fi
bash scripts/setup-llama.sh  # llama-cpp-python's server for tests/integration/test_local_server.py

echo "== ruff check"; ruff check .
echo "== ruff format --check"; ruff format --check .
echo "== mypy"; mypy
echo "== pytest"; python -m pytest "$@"
