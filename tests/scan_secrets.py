"""The end of a test run's secret check over what pytest itself wrote: its output.

tests/run.sh runs this after pytest (the session fixture in tests/integration/conftest.py checks the consoles'
data dirs and logs while the run is still going, but pytest's own output is complete only once pytest exits).
The sources are not scanned: the tests hold the secrets they type, by design.

The tokens the run made live only in pytest's process; run.sh hands them over in a temporary file of its own
(`--remembered`, one per line, written by the session fixture, removed by run.sh), so they are searched too.

    python -m tests.scan_secrets [--remembered FILE] PATH...

Exit status 1 when a secret is found (the findings, which never show the secret, on stderr), else 0.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tests.typed_secrets import files_holding_secrets

REMEMBERED_ENV = "NHI_TEST_REMEMBERED_SECRETS"
"""Where the session fixture writes the run's tokens, if run.sh asked (the name of the temporary file)."""


def read_remembered(path: Path | None) -> list[bytes]:
    if path is None or not path.exists():
        return []
    return [line for line in path.read_bytes().splitlines() if line]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.scan_secrets", description=__doc__.splitlines()[0])
    parser.add_argument("paths", nargs="+", type=Path, help="files (or directories) pytest wrote")
    parser.add_argument("--remembered", type=Path, help="the tokens the run made, one per line")
    args = parser.parse_args(argv)
    present = [path for path in args.paths if path.exists()]
    for missing in sorted(set(args.paths) - set(present)):
        print(f"secret scan: {missing} does not exist; not scanned", file=sys.stderr)
    findings = files_holding_secrets(present, read_remembered(args.remembered))
    if findings:
        print("a PIN, PUK or token reached the test output:", *findings[:50], sep="\n  ", file=sys.stderr)
        return 1
    print(f"secret scan: no PIN, PUK or token in {', '.join(str(path) for path in present)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
