#!/usr/bin/env bash
# The whole suite, as `make test` and CI run it. pytest's exit code 5 ("no tests
# collected") would otherwise pass silently: here it fails loudly.
#
# pytest's output is kept in test-artifacts/pytest-output.txt, and once pytest has
# exited that file is searched for the PINs, PUKs and tokens
# the tests typed (tests/scan_secrets.py): a find fails the run. The tokens made
# during the run reach the scan through a temporary file of ours, removed on exit.
#
# The suite runs in NHI_TEST_PROCESSES pytest-xdist workers (2 by default: the machine's cores), the PC/SC
# tests all in one of them (tests/conftest.py); NHI_TEST_PROCESSES=0 runs it in this one process.
#
# Before pytest, the static checks (tests/lint.sh: ruff's lint rules and formatting, mypy; `make lint`) run, and a
# finding fails the run; NHI_LINT=0 skips them (for a quick local rerun of the tests alone).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ "${NHI_LINT:-1}" = "1" ]; then
  if ! bash tests/lint.sh; then
    echo "the static checks failed (tests/lint.sh; NHI_LINT=0 skips them)" >&2
    exit 1
  fi
fi
mkdir -p test-artifacts
remembered="$(mktemp)"
trap 'rm -f "$remembered"' EXIT
color=()
if [ -t 1 ]; then color=(--color=yes); fi  # pytest sees a pipe, not the terminal
NHI_TEST_REMEMBERED_SECRETS="$remembered" .venv/bin/python -m pytest -ra "${color[@]}" -n "${NHI_TEST_PROCESSES:-2}" \
  --junitxml=test-artifacts/junit.xml "$@" 2>&1 | tee test-artifacts/pytest-output.txt
statuses=("${PIPESTATUS[@]}")
status="${statuses[0]}"
if [ "${statuses[1]}" -ne 0 ]; then
  echo "could not keep pytest's output in test-artifacts/pytest-output.txt" >&2
  exit 1
fi
# Not junit.xml: its test names carry the parametrize ids, which are the tests' own inputs (an APDU holding a
# test PIN, say), not output; the failures it reports are in pytest's output too.
.venv/bin/python -m tests.scan_secrets --remembered "$remembered" test-artifacts/pytest-output.txt
scan=$?
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: that is a failure, not a pass" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  exit "$status"
fi
if [ "$scan" -ne 0 ]; then
  exit 1
fi
exit 0
