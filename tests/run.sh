#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it. pytest's exit code 5 ("no tests
# collected") would otherwise pass silently: here it fails loudly.
set -uo pipefail
cd "$(dirname "$0")/.."
mkdir -p test-artifacts
.venv/bin/python -m pytest -ra --junitxml=test-artifacts/junit.xml "$@"
status=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
exit "$status"
