"""`Record?skip=999900&take=100` at 1,000,000 calls: latency p50/p99, at the store (what the broker runs).

Why: before issue 19 the Record's query was `ORDER BY seq DESC LIMIT take OFFSET skip`, which walks `skip`
rows, in the broker's only thread, for a number any caller chooses (`skip=999999999` walked every call). It
now pages by sequence number (eventlog/sqlite_store.py `calls_newest_first`), so the cost is O(take).

    .venv/bin/python bench/record_depth.py                              # this tree
    PYTHONPATH=/work/baseline .venv/bin/python bench/record_depth.py    # an older tree, same log file

The log (a valid hash-chained one, bench/make_log.py) is built once and kept (`--log`), so both runs read
the same file; it is only read here.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

# Not bench/ itself (its eventlog.py would shadow the package), and the tree appended: an outer PYTHONPATH wins.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent.parent))

from bench.percentiles import percentile  # noqa: E402 - after the path is set

WINDOWS = ((999_900, 100), (0, 100), (500_000, 100), (999_999_999, 100))
"""(skip, take): the issue's deep page first, then the newest page, the middle, and past the end."""


def _build(log: Path, calls: int) -> None:
    """With this tree's writer (bench/make_log.py), whatever tree is measured: the file format is the same."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_log", Path(__file__).with_name("make_log.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    started = time.monotonic()
    module.make_log(log, events=0, calls=calls)
    print(f"built {log} with {calls:,} calls in {time.monotonic() - started:.0f} s", flush=True)


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--calls", type=int, default=1_000_000)
    options.add_argument("--samples", type=int, default=200, help="timed queries per window (default 200)")
    options.add_argument("--log", type=Path, help="default: /tmp/nhi-bench-record-depth-<calls>.db")
    args = options.parse_args()
    log = args.log or Path(f"/tmp/nhi-bench-record-depth-{args.calls}.db")
    if not log.exists():
        _build(log, args.calls)
    import eventlog.sqlite_store as store_module

    print(f"code under test: {Path(store_module.__file__).resolve().parent.parent}; log {log}")
    store = store_module.SqliteEventStore(log, durability="normal")
    try:
        print(f"{'window':<28} {'p50 ms':>9} {'p99 ms':>9} {'mean ms':>9} rows")
        for skip, take in WINDOWS:
            rows = store.calls_newest_first(skip, take)  # warm: the page cache, and the first query's checks
            samples = []
            for _ in range(args.samples):
                started = time.perf_counter()
                store.calls_newest_first(skip, take)
                samples.append((time.perf_counter() - started) * 1000)
                if sum(samples) > 60_000:  # the old walk on a slow disk: a minute per window is plenty
                    break
            label = f"skip={skip}&take={take}"
            print(
                f"{label:<28} {percentile(samples, 0.5):>9.3f} {percentile(samples, 0.99):>9.3f}"
                f" {statistics.fmean(samples):>9.3f} {len(rows)} (n={len(samples)})",
                flush=True,
            )
    finally:
        store.close()


if __name__ == "__main__":
    main()
