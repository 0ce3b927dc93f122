"""The worst case input we know of for each parser of outside input, timed: the max per parser.

Why: issue 19 asks that work on outside input be bounded before it starts. The fuzz tests (docs/fuzzing.md)
prove each parser's outcome is well typed; this prints what its most expensive known input costs, so a bound
that slips (a huge key reaching OpenSSL's primality checks, a deep JSON reaching the recursion limit slowly)
shows up as a number. Each case is the largest input the parser's own limit lets through, or its nastiest
shape (a 16384-bit key, JSON nested as deep as the byte limit allows, the longest token).

    .venv/bin/python bench/parser_bounds.py [--repeat 5]

Runs with the code on PYTHONPATH (PYTHONPATH=/work/baseline for an older tree whose modules sit where these
do; cases whose parser is missing there are skipped).
"""

from __future__ import annotations

import argparse
import base64
import importlib
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Not bench/ itself (its eventlog.py would shadow the package), and the tree appended: an outer PYTHONPATH wins.
sys.path[:] = [entry for entry in sys.path if Path(entry or ".").resolve() != Path(__file__).resolve().parent]
sys.path.append(str(Path(__file__).resolve().parent.parent))

Case = tuple[str, str, Callable[[], Callable[[], object]]]
"""(parser, worst case, a maker of the call to time: input made once, outside the timing)."""


_OLDER_HOMES = {
    "broker.credentials.cloud_sam_file": "broker.cloud_sam_file",
    "broker.credentials.virtual_hc_token": "broker.virtual_hc_token",
    "broker.dc.answers": "broker.dc_answers",
    "contract.protocol": "broker.protocol",
}
"""Where a parser lived before the December restructuring (issue 18), for a before/after run."""


def _module(name: str) -> Any:
    """The parser's module from the tree under test (setuptools' editable finder would fill a name that tree
    lacks from the installed one, so each candidate is checked to come from the same tree as `broker`)."""
    import broker

    root = Path(broker.__file__).resolve().parent.parent
    for candidate in (name, _OLDER_HOMES.get(name, name)):
        try:
            module = importlib.import_module(candidate)
        except ImportError:
            continue
        if root in Path(module.__file__ or "").resolve().parents:
            return module
    raise ImportError(name)


def _swallow(call: Callable[[], object]) -> Callable[[], object]:
    def run() -> object:
        try:
            return call()
        except Exception as error:  # the documented refusals: what is timed is how long they take
            return error

    return run


def _cloud_sam(bits: int) -> Callable[[], object]:
    from sim.oversized_keys import oversized_sam_file

    parser = _module("broker.credentials.cloud_sam_file")
    raw = oversized_sam_file(bits)
    return _swallow(lambda: parser.parse_cloud_sam_file(raw))


def _cloud_sam_nested() -> Callable[[], object]:
    parser = _module("broker.credentials.cloud_sam_file")
    raw = parser.MAGIC + b"[" * (parser.MAX_FILE_BYTES - len(parser.MAGIC))
    return _swallow(lambda: parser.parse_cloud_sam_file(raw))


def _cloud_sam_pem_without_end() -> Callable[[], object]:
    parser = _module("broker.credentials.cloud_sam_file")
    document = {
        "format": parser.FORMAT,
        "samId": "901000000919",
        "hospitalId": "777777777",
        "hospitalName": "x",
        "hospitalShortName": "x",
        "privateKey": ("-----BEGIN PRIVATE KEY-----" * 700)[: 16 * 1024],
        "certificate": "-----BEGIN CERTIFICATE-----",
    }
    raw = parser.MAGIC + json.dumps(document).encode("ascii")
    return _swallow(lambda: parser.parse_cloud_sam_file(raw))


def _cloud_sam_context() -> Callable[[], object]:
    parser = _module("broker.credentials.cloud_sam_file")
    text = base64.encodebytes(b"\xa5" * (parser.MAX_FILE_BYTES + 1)).decode("ascii")
    return _swallow(lambda: parser.decode_context(text))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _token(payload: bytes) -> Callable[[], object]:
    from sim.virtual_hc import make_issuer

    parser = _module("broker.credentials.virtual_hc_token")
    issuers = [make_issuer()[0].public_key()]
    header = _b64url(json.dumps({"alg": "RS256", "typ": "NHI-VHC"}).encode())
    room = parser.MAX_TOKEN_LENGTH - len(header) - 2 - 344  # 344: an RSA-2048 signature in base64url
    body = _b64url(payload)[:room]
    body = body[: len(body) - (len(body) % 4 == 1)]  # a length base64url can have
    signature = _b64url(bytes([1]) * 256)
    token = f"{header}.{body}.{signature}"
    return _swallow(lambda: parser.verify_token(token, issuers=issuers, now=1_740_830_400))


def _dc_answer_nested() -> Callable[[], object]:
    parser = _module("broker.dc.answers")
    body = b"[" * parser.MAX_ANSWER_BYTES
    return _swallow(lambda: parser.interpret_answer("/dc/v1/Nonce", 200, body))


def _dc_crls_largest() -> Callable[[], object]:
    parser = _module("broker.dc.answers")
    crl = base64.b64encode(b"\x30" * (parser.MAX_CRL_BYTES * 3 // 4 - 16)).decode("ascii")
    body = json.dumps({"crls": [crl, crl]}).encode()[: parser.MAX_CRL_ANSWER_BYTES]
    return _swallow(
        lambda: parser.parse_crls(
            "/dc/v1/Crls", parser.interpret_answer("/dc/v1/Crls", 200, body, parser.MAX_CRL_ANSWER_BYTES)
        )
    )


def _wire_nested() -> Callable[[], object]:
    parser = _module("contract.protocol")
    header = parser.build(parser.Reply(id="r", code=0, body={}))[0]
    body = b"\x81\xa4body" + b"\x91" * (parser.MAX_BODY_BYTES - 6) + b"\xc0"
    return _swallow(lambda: parser.parse([header, body[: parser.MAX_BODY_BYTES]]))


def _wire_largest() -> Callable[[], object]:
    parser = _module("contract.protocol")
    frames = parser.build(parser.Reply(id="r", code=0, body={"data": "x" * (parser.MAX_BODY_BYTES - 64)}))
    return _swallow(lambda: parser.parse(frames))


def _card_answer_largest() -> Callable[[], object]:
    parser = _module("workers.apdu")
    raw = bytes(65_536) + b"\x90\x00"  # an extended-length answer: more than any command here asks for
    return _swallow(lambda: parser.parse_response(raw))


CASES: list[Case] = [
    ("cloud SAM file", "RSA key of 16384 bits", lambda: _cloud_sam(16384)),
    ("cloud SAM file", "RSA key of 8192 bits", lambda: _cloud_sam(8192)),
    ("cloud SAM file", "RSA key of 4096 bits", lambda: _cloud_sam(4096)),
    ("cloud SAM file", "48 KiB of '[' (JSON nested to the byte limit)", _cloud_sam_nested),
    ("cloud SAM file", "16 KiB of PEM BEGIN lines, no END", _cloud_sam_pem_without_end),
    ("cloudSamContext", "base64 of a file one byte over the limit", _cloud_sam_context),
    ("virtual HC token", "longest token, payload nested '['", lambda: _token(b"[" * 8192)),
    ("virtual HC token", "longest token, payload a long string", lambda: _token(b'{"a":"' + b"x" * 8192)),
    ("DC answer", "64 KiB of '[' (JSON nested to the byte limit)", _dc_answer_nested),
    ("DC answer (CRLs)", "2 MiB answer, two CRLs of 1 MiB", _dc_crls_largest),
    ("wire protocol", "256 KiB of msgpack arrays nested", _wire_nested),
    ("wire protocol", "256 KiB string body", _wire_largest),
    ("card answer", "64 KiB response APDU", _card_answer_largest),
]


def main() -> None:
    options = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    options.add_argument("--repeat", type=int, default=5, help="timed runs per case (default 5)")
    args = options.parse_args()
    import broker

    print(f"code under test: {Path(broker.__file__).parent.parent}")
    worst: dict[str, float] = {}
    print(f"{'parser':<18} {'worst case':<50} {'max ms':>10}  outcome")
    for parser, case, make in CASES:
        try:
            call = make()
        except (ImportError, AttributeError) as missing:
            print(f"{parser:<18} {case:<50} {'skipped':>10}  ({type(missing).__name__}: not in this tree)")
            continue
        longest, outcome = 0.0, None
        for _ in range(args.repeat):
            started = time.perf_counter()
            outcome = call()
            longest = max(longest, time.perf_counter() - started)
        worst[parser] = max(worst.get(parser, 0.0), longest)
        shown = type(outcome).__name__ if isinstance(outcome, Exception) else "accepted"
        print(f"{parser:<18} {case:<50} {longest * 1000:>10.2f}  {shown}", flush=True)
    print("\nmax per parser:")
    for parser, seconds in worst.items():
        print(f"  {parser:<18} {seconds * 1000:>10.2f} ms")


if __name__ == "__main__":
    main()
