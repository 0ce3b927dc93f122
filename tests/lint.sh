#!/usr/bin/env bash
# The static checks (issue 18), as `make lint` and tests/run.sh run them: ruff's lint rules, ruff's formatting
# (checked, never applied here) and mypy, configured in pyproject.toml. Every check runs; any finding fails.
set -uo pipefail
cd "$(dirname "$0")/.."
paths=(api broker contract workers eventlog sim deploy bench tests examples)
status=0
.venv/bin/ruff check "${paths[@]}" || status=1
.venv/bin/ruff format --check "${paths[@]}" || status=1
.venv/bin/mypy "${paths[@]}" || status=1
exit "$status"
