"""The hypothesis profiles of the fuzz tests (issue 9): a short run in every `make unit`, a long one on demand.

`NHI_FUZZ_PROFILE` picks the profile: `ci` (the default) keeps the whole fuzz run around half a minute on a
two-core machine, so it can run with every test run; `nightly` runs a hundred times more examples per target
(docs/fuzzing.md says how long that takes and what it found).

The profile is applied per test with `@fuzz()`, not loaded globally: loading it would also change the
hypothesis tests of other modules (their own `@settings` keep `max_examples` but inherit the rest), and a
nightly run must not make the whole suite run twenty thousand examples of a state machine.
"""

from __future__ import annotations

import os

from hypothesis import HealthCheck, settings

PROFILE_VARIABLE = "NHI_FUZZ_PROFILE"
CI = "ci"
NIGHTLY = "nightly"

_SHARED = settings(
    deadline=None,  # one slow example (an RSA key load, a GC pause) on a busy machine is not a finding
    print_blob=True,  # a failure in CI prints what reproduces it: @reproduce_failure(...)
    derandomize=False,  # each run explores new inputs; the example database replays old failures
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

settings.register_profile(CI, parent=_SHARED, max_examples=200)
settings.register_profile(NIGHTLY, parent=_SHARED, max_examples=20_000)


def profile_name() -> str:
    """The profile `NHI_FUZZ_PROFILE` names; a misspelt one is an error rather than a silent short run."""
    name = os.environ.get(PROFILE_VARIABLE, "").strip() or CI
    if name not in (CI, NIGHTLY):
        raise RuntimeError(f"{PROFILE_VARIABLE} must be {CI!r} or {NIGHTLY!r}, not {name!r}")
    return name


def fuzz(share: float = 1.0) -> settings:
    """The active profile's settings for one target, as a decorator.

    `share` scales the examples for a target whose single example costs far more than a parser call (a whole
    HTTP request, an RSA-2048 key check), so that the CI run stays short and every target still gets a
    proportionate share of a nightly run.
    """
    profile = settings.get_profile(profile_name())
    return settings(profile, max_examples=max(20, round(profile.max_examples * share)))
