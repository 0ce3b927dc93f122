"""schemathesis against the console's own OpenAPI document, through the running console in `--sim` mode.

Every operation is fuzzed over real HTTPS with schema-valid requests (they must be
accepted) and schema-violating ones (they must be refused with a documented 4xx),
and every answer is checked against the document: no 5xx, no undocumented status,
content type, header or body. A validation that drifts from the document, or an
answer field that does, fails here.

`NHI_SCHEMATHESIS_EXAMPLES` sets the examples per operation: 100 by default (CI),
more in the long run (`make fuzz-long`, docs/fuzzing.md).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

from tests.integration.console import RunningConsole, running_console

CONFIG = Path(__file__).with_name("schemathesis.toml")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "schemathesis"
EXAMPLES = int(os.environ.get("NHI_SCHEMATHESIS_EXAMPLES", "100"))
RUN_SECONDS = 600 + 3 * EXAMPLES
STREAMING = {"/api/events/v1/Stream"}
"""Never-ending answers, which schemathesis would wait on until its request timeout: tested on their own
(tests/integration/test_event_stream.py), their schema included."""
"""About 1.6 s per example per operation on a 2-core machine; generous, since a slow run is not a finding."""

pytestmark = [pytest.mark.integration, pytest.mark.timeout(2 * RUN_SECONDS + 120)]  # a run, maybe one more


@pytest.fixture
def fuzzed_console(tmp_path: Path) -> Iterator[RunningConsole]:
    with running_console(tmp_path / "data") as console:
        yield console


def _templates(document: dict[str, object]) -> list[tuple[str, re.Pattern[str]]]:
    paths = document["paths"]
    assert isinstance(paths, dict)
    return [(path, re.compile("^" + re.sub(r"\\{[^}]+\\}", "[^/]+", re.escape(path)) + "$")) for path in paths]


def _operation(method: str, url: str, templates: list[tuple[str, re.Pattern[str]]]) -> str:
    path = "/" + url.split("://", 1)[1].split("/", 1)[1].split("?", 1)[0]
    for template, pattern in templates:
        if pattern.match(path):
            return f"{method} {template}"
    return f"{method} (unrouted) {path}"


ENGINE_INTERNALS = "/hypothesis/internal/"
"""Where Hypothesis's own search engine lives. schemathesis 4.32 steers fuzzing with `hypothesis.target()`, and
Hypothesis 6.170's target optimiser can raise IndexError inside itself (`optimiser.py`, `attempt.spans[j]`),
which schemathesis reports as a "Runtime Error" of whichever operation it was fuzzing (seen once in CI, on
`DELETE /api/sim/v1/Readers/{name}/Card`). Neither tool lets the target phase be switched off."""


def _only_engine_crashes(report: Mapping[str, object], stdout: str) -> bool:
    """Whether every problem the run reported is a crash inside Hypothesis's engine: no check failed, and each
    error's traceback ends in Hypothesis's internals. Such a run says nothing about the console either way."""
    errors = report["errors"]
    if report["failures"] != [] or not isinstance(errors, list) or not errors:
        return False
    if any(not isinstance(error, dict) or error.get("title") != "Runtime Error" for error in errors):
        return False
    section = stdout[stdout.find("= ERRORS =") : stdout.find("= SUMMARY =")]
    tracebacks = section.split("Traceback (most recent call last):")[1:]
    frames = [re.findall(r'File "([^"]+)"', traceback) for traceback in tracebacks]
    return len(tracebacks) >= len(errors) and all(found and ENGINE_INTERNALS in found[-1] for found in frames)


def _fuzz(console: RunningConsole, reports: Path, cwd: Path) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One schemathesis run over every operation; its JSON and HAR reports go to `reports`."""
    command = [
        str(Path(sys.executable).with_name("st")),
        "--config-file",
        str(CONFIG),
        "run",
        f"https://localhost:{console.port}/api/swagger/v1/swagger.json",
        "--tls-verify",
        str(console.ca_file),
        "--checks",
        "all",
        "--max-examples",
        str(EXAMPLES),
        "--workers",
        "2",
        "--no-color",
        "--request-timeout",
        "90",
        *[option for path in sorted(STREAMING) for option in ("--exclude-path", path)],
        "--report",
        "json,har",
        "--report-dir",
        str(reports),
    ]
    run = subprocess.run(command, capture_output=True, text=True, timeout=RUN_SECONDS, cwd=cwd)  # its cache goes there
    [report_file] = reports.glob("json-*.json")
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "report.json").write_bytes(report_file.read_bytes())
    return run, report_file


def test_every_operation_conforms_to_the_document_under_fuzzing(fuzzed_console: RunningConsole, tmp_path: Path) -> None:
    console = fuzzed_console
    document = console.request("GET", "/api/swagger/v1/swagger.json").body
    reports = tmp_path / "reports"
    run, report_file = _fuzz(console, reports, tmp_path)
    if run.returncode != 0 and _only_engine_crashes(json.loads(report_file.read_text()), run.stdout):
        # Not a finding: run once more, in full, and judge that run alone. Said in the output, so it is seen.
        print("\nschemathesis: Hypothesis's engine crashed inside itself (no check failed); running once more")
        reports = tmp_path / "reports-again"
        run, report_file = _fuzz(console, reports, tmp_path)
    summary = run.stdout[run.stdout.find("=== SUMMARY") :] if "=== SUMMARY" in run.stdout else run.stdout[-4000:]
    assert run.returncode == 0, f"schemathesis found problems:\n{run.stdout[-20000:]}\n{run.stderr[-4000:]}"

    report = json.loads(report_file.read_text())
    assert report["complete"] and report["failures"] == [] and report["errors"] == []
    # schemathesis reads the document itself rather than fuzzing it; this test fetched it above.
    documented = {
        f"{method.upper()} {path}"
        for path, methods in document["paths"].items()
        for method in methods
        if path != "/api/swagger/v1/swagger.json" and path not in STREAMING
    }

    # Counted from the requests themselves, not from schemathesis's verdict.
    [har_file] = reports.glob("har-*.json")
    entries = json.loads(har_file.read_text())["log"]["entries"]
    templates = _templates(document)
    per_operation = Counter(
        _operation(entry["request"]["method"], entry["request"]["url"], templates) for entry in entries
    )
    statuses = Counter(entry["response"]["status"] for entry in entries)
    server_errors = [entry for entry in entries if entry["response"]["status"] >= 500]
    print(
        f"\nschemathesis: {len(entries)} requests over {len(per_operation)} operations, "
        f"{report['test_cases']['generated']} test cases, HTTP statuses {dict(sorted(statuses.items()))}"
    )
    print(
        "fewest requests: "
        + ", ".join(
            f"{name}: {per_operation[name]}" for name in sorted(documented, key=lambda name: per_operation[name])[:5]
        )
    )
    print(summary)
    assert not server_errors, f"{len(server_errors)} answers were 5xx"
    assert not documented - per_operation.keys(), f"never requested: {sorted(documented - per_operation.keys())}"
    # The console survived it all, and nothing it logged was a crash.
    assert console.status_ok()
    assert "Traceback" not in console.log_path.read_text(errors="replace")


ENGINE_CRASH_OUTPUT = """
==================================== ERRORS ====================================
____________________ DELETE /api/sim/v1/Readers/{name}/Card ____________________
Runtime Error

Index 25 out of range [-25, 25)

    Traceback (most recent call last):
      File "/v/site-packages/schemathesis/engine/run/unit/_hypothesis_executor.py", line 51, in run_test
      File "/v/site-packages/hypothesis/internal/conjecture/optimiser.py", line 185, in attempt_replace
        ex_attempt = attempt.spans[j]
      File "/v/site-packages/hypothesis/internal/conjecture/data.py", line 579, in __getitem__
        raise IndexError(f"Index {i} out of range [-{n}, {n})")
    IndexError: Index 25 out of range [-25, 25)

=================================== SUMMARY ====================================
"""
"""Trimmed from the CI run that showed it (frames between cut)."""


def test_a_crash_inside_hypothesis_engine_is_told_from_a_finding() -> None:
    crashed = {"failures": [], "errors": [{"title": "Runtime Error", "count": 1}]}
    assert _only_engine_crashes(crashed, ENGINE_CRASH_OUTPUT)
    # A failed check, another kind of error, or a traceback ending anywhere else is a finding, judged as one.
    assert not _only_engine_crashes(
        {**crashed, "failures": [{"title": "Server error", "count": 1}]}, ENGINE_CRASH_OUTPUT
    )
    assert not _only_engine_crashes(
        {**crashed, "errors": [{"title": "Network Error", "count": 1}]}, ENGINE_CRASH_OUTPUT
    )
    elsewhere = ENGINE_CRASH_OUTPUT.replace("hypothesis/internal/conjecture/data.py", "schemathesis/checks.py")
    assert not _only_engine_crashes(crashed, elsewhere)
    two_errors = {**crashed, "errors": [{"title": "Runtime Error", "count": 1}] * 2}
    assert not _only_engine_crashes(two_errors, ENGINE_CRASH_OUTPUT)  # one traceback cannot account for two
    assert not _only_engine_crashes({"failures": [], "errors": []}, ENGINE_CRASH_OUTPUT)
