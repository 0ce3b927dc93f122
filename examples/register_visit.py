"""A registration at the counter, as a HIS does it: the console signs, the NHI web API acts on the signature.

SIMULATION: this is a bench example. The web API it calls is the bench's twin (docs/web-api-twin.md), found through
the bench's `GET /api/sim/v1/WebApi`; it is not the NHI's service, and the cards, the SAM and the data center behind
the console are simulated too. A HIS must be checked against the NHI's own test environment before it goes near a
real card.

Run it against the bench:

    make demo                                    # terminal 1: the console with the bench on https://localhost:5066
    python3 examples/register_visit.py           # terminal 2 (standard library only; .venv/bin/python works too)

Options (or environment variables):

    --console URL      NHI_CONSOLE_URL   the console's address (https://localhost:5066)
    --console-ca FILE  NHI_CONSOLE_CA    the CA the console's certificate is checked against: by default the one in
                                         its data dir (NHI_CONSOLE_DATA_DIR, or ~/.local/share/nhi-console), as
                                         `nhi-console cert --export FILE` writes it
    --device NAME                        what `Initial` opens (a cloud SAM id or the NHI reader's port); by default
                                         nothing, and the console picks (the bench's cloud SAM 901000000047)

The steps, each printed with its outcome:

    console  POST /api/common/v1/Initial               open the session
    console  POST /api/sam/v1/Verification             the SAM at the data center (level 2)
    console  POST /api/hc/v1/Signature/Hc  01  → twin  BasicData/Register        the insurance data
    console  POST /api/hc/v1/Signature/Hc  03  → twin  SequelNumber/Next         the visit: sequence and 就醫識別碼
    console  POST /api/hc/v1/Signature/Hc  02  → twin  Treatment/WriteCodeFee    the diagnosis codes and fees
    console  POST /api/hc/v1/Signature/Hc  02  → twin  Prescription/Write        the prescriptions, signed
    console  POST /api/hc/v1/Signature/Hc  01  → twin  Treatment/NoNeedHPC       the card's visits show this one
    console  POST /api/hc/v1/Signature/Hc  03  → twin  SequelNumber/Rollback     the visit rolled back (退掛)
    console  POST /api/hc/v1/Signature/Hc  01  → twin  Treatment/NoNeedHPC       and it is gone

The console is called the way public HIS code calls the official console: every request carries a JSON body with
`Content-Type: application/json`, `{}` on GET and DELETE too, and any HTTP status but 2xx means the console itself
failed (business outcomes are HTTP 200 with a `statusCode`). The exit status is 0 when every step gave statusCode 0
and the reads agreed, 1 at the first step that did not (its answer printed), 2 for a usage error.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import ssl
import sys
import urllib.parse
from pathlib import Path
from typing import Any

Json = dict[str, Any]

HC_SIGNATURE = "/api/hc/v1/Signature/Hc"
SIGNATURE_BLOCK = ("clientRandom", "hospitalId", "samId", "signature", "hcId", "hcIdNo")
"""What the web API takes of the console's `Signature/Hc` answer (docs/web-api-twin.md, "Requests and answers")."""
ALREADY_INITIALIZED = 1001
"""`Initial` on an open session: the session stays as it is, and a HIS goes on with it."""
TIMEOUT_SECONDS = 70.0
"""Card and data-center steps may take up to 60 s at the console (docs/decisions.md): wait a little longer."""

DIAGNOSIS = {"afterCheck": "1", "mainCode": "J069", "outpatientFee": 350, "costFee": 50}
PRESCRIPTION = {
    "treatmentItem": "1",
    "treatmentItemCode": "A000001100",
    "treatmentPosition": "",
    "usage": "TID",
    "days": "3",
    "totalQuantity": "9.00",
    "deliveryNotes": "01",
}


class StepFailed(Exception):
    """A step that did not end with statusCode 0 (or the reads disagreed): the message says which and why."""


def default_console_ca() -> Path:
    """The CA file in the console's data dir, found the way the console finds its data dir (deploy/paths.py)."""
    configured = os.environ.get("NHI_CONSOLE_DATA_DIR")
    data_dir = Path(configured) if configured else None
    if data_dir is None:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
        data_dir = Path(base) / "nhi-console"
    return data_dir / "tls" / "ca.pem"


class JsonService:
    """An HTTPS service called with JSON bodies, its certificate checked against one CA only (not the system's
    store: the console's CA vouches for the console, the twin's `caPem` for the twin, and for nothing else)."""

    def __init__(
        self, name: str, base_url: str, context: ssl.SSLContext, *, hint: str = "", timeout: float = TIMEOUT_SECONDS
    ) -> None:
        url = urllib.parse.urlsplit(base_url)
        if url.scheme != "https" or not url.hostname:
            raise ValueError(f"{name}: the address must be https://host:port, not {base_url!r}")
        self.name = name
        self.host = url.hostname
        self.port = url.port or 443
        self.context = context
        self.timeout = timeout
        self.hint = hint
        """Said when the service does not answer at all: what to check first."""

    def call(self, method: str, path: str, body: Json | None = None) -> Json:
        """One request with a JSON body (`{}` when there is nothing to send, on GET and DELETE too, as public HIS
        code does); the answer's JSON object, or StepFailed for anything but HTTP 2xx with a JSON object."""
        payload = json.dumps({} if body is None else body, ensure_ascii=False).encode("utf-8")
        connection = http.client.HTTPSConnection(self.host, self.port, context=self.context, timeout=self.timeout)
        try:
            connection.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            response = connection.getresponse()
            raw = response.read()
        except ssl.SSLError as error:
            raise StepFailed(f"{self.name}: TLS failed ({error}); is the CA the right one?") from None
        except OSError as error:
            raise StepFailed(
                f"{self.name}: no answer from https://{self.host}:{self.port} ({error}){self.hint}"
            ) from None
        except http.client.HTTPException as error:
            raise StepFailed(f"{self.name}: a broken answer ({error!r})") from None
        finally:
            connection.close()
        text = raw.decode("utf-8", errors="replace")
        if not 200 <= response.status < 300:
            raise StepFailed(f"{self.name} answered HTTP {response.status} to {method} {path}: {text[:500]}")
        try:
            answer = json.loads(text)
        except ValueError:
            raise StepFailed(
                f"{self.name} answered {method} {path} with something that is not JSON: {text[:200]}"
            ) from None
        if not isinstance(answer, dict):
            raise StepFailed(f"{self.name} answered {method} {path} with JSON that is not an object: {text[:200]}")
        return answer


def shown(answer: Json) -> str:
    """An answer for the terminal: its statusCode first, its message if any."""
    code = answer.get("statusCode")
    return f"statusCode {code}" + (f" ({answer['message']})" if answer.get("message") else "")


def done(step: str, answer: Json, *also_fine: int) -> Json:
    """The answer of a step that must end with statusCode 0 (or one of `also_fine`); StepFailed otherwise."""
    if answer.get("statusCode") not in (0, *also_fine):
        raise StepFailed(f"{step}: {shown(answer)}\n  the whole answer: {json.dumps(answer, ensure_ascii=False)}")
    return answer


def say(step: str, outcome: str) -> None:
    print(f"{step:<58} {outcome}", flush=True)


class Registration:
    """The registration's steps, in order, over the console and the twin."""

    def __init__(self, console: JsonService, device: str | None) -> None:
        self.console = console
        self.device = device
        self.twin: JsonService | None = None

    def find_twin(self) -> None:
        step = "bench    GET  /api/sim/v1/WebApi"
        where = done(step, self.console.call("GET", "/api/sim/v1/WebApi"))
        context = ssl.create_default_context(cadata=str(where["caPem"]))
        self.twin = JsonService("the web-API twin", str(where["baseUrl"]), context)
        say(step, f"the twin at {where['baseUrl']} (SIMULATION, not the NHI)")

    def open_session(self) -> None:
        step = "console  POST /api/common/v1/Initial"
        answer = done(step, self.console.call("POST", "/api/common/v1/Initial", self._initial()), ALREADY_INITIALIZED)
        if answer["statusCode"] == ALREADY_INITIALIZED:
            say(step, f"{shown(answer)}: going on with the open session")
        else:
            say(step, shown(answer))
        step = "console  POST /api/sam/v1/Verification"
        say(step, shown(done(step, self.console.call("POST", "/api/sam/v1/Verification"))))

    def _initial(self) -> Json:
        return {"name": self.device} if self.device else {}

    def signed(self, service_type: str) -> Json:
        """The console's health-card signature for `service_type`, as the block the web API takes."""
        step = f"console  POST {HC_SIGNATURE} {{serviceType {service_type}}}"
        answer = done(step, self.console.call("POST", HC_SIGNATURE, {"serviceType": service_type}))
        say(step, f"{shown(answer)}, SAM {answer['samId']}, card {answer['hcId']}")
        return {name: answer[name] for name in SIGNATURE_BLOCK}

    def web_api(self, path: str, service_type: str, fields: Json | None = None) -> Json:
        """Sign for `service_type`, then call the web API's `path` with the signature and `fields`."""
        assert self.twin is not None, "find_twin first"
        body = {**self.signed(service_type), **(fields or {})}
        step = f"twin     POST {path}"
        answer = done(step, self.twin.call("POST", path, body))
        return answer

    def visits(self) -> list[Json]:
        answer = self.web_api("/api/v1/Treatment/NoNeedHPC", "01")
        treatments: list[Json] = answer.get("treatments") or []
        return treatments

    def run(self) -> None:
        self.find_twin()
        self.open_session()

        data = self.web_api("/api/v1/BasicData/Register", "01")
        say(
            "twin     POST /api/v1/BasicData/Register",
            f"{shown(data)}: {data['name']} {data['idCardNum']}, card {data['cardSn']}, "
            f"valid to {data['cardValidity']}, {data['treatmentCounter']} visits left",
        )

        visit = self.web_api(
            "/api/v1/SequelNumber/Next", "03", {"treatmentItem": "01", "babyTreatment": " ", "afterCheck": "1"}
        )
        when, number = visit["treatmentDateTime"], visit["sequenceNumber"]
        say(
            "twin     POST /api/v1/SequelNumber/Next",
            f"{shown(visit)}: visit {when}, sequence {number}, 就醫識別碼 {visit['treatmentNumber']}"
            f"{', same day' if visit['isSameDay'] else ''}",
        )

        written = self.web_api("/api/v1/Treatment/WriteCodeFee", "02", {"treatmentDateTime": when, **DIAGNOSIS})
        say(
            "twin     POST /api/v1/Treatment/WriteCodeFee",
            f"{shown(written)}: {DIAGNOSIS['mainCode']}, fees {DIAGNOSIS['outpatientFee']} + {DIAGNOSIS['costFee']}",
        )

        prescriptions = [{**PRESCRIPTION, "treatmentDateTime": when}]
        signed = self.web_api(
            "/api/v1/Prescription/Write", "02", {"treatmentDateTime": when, "prescriptions": prescriptions}
        )
        if len(signed.get("signatureItems") or []) != len(prescriptions):
            raise StepFailed(f"Prescription/Write: {len(prescriptions)} prescription(s) but not as many signatures")
        say("twin     POST /api/v1/Prescription/Write", f"{shown(signed)}: {len(prescriptions)} prescription(s) signed")

        shown_visits = [entry for entry in self.visits() if entry.get("treatDateTime") == when]
        if not shown_visits or shown_visits[0].get("hospitalVisit") != number:
            raise StepFailed(f"Treatment/NoNeedHPC: the visit {when} (sequence {number}) is not among the card's")
        say(
            "twin     POST /api/v1/Treatment/NoNeedHPC",
            f"statusCode 0: the visit {when} is there, fees {shown_visits[0].get('outpatientFee')}",
        )

        rolled = self.web_api("/api/v1/SequelNumber/Rollback", "03", {"treatmentDateTime": when})
        say("twin     POST /api/v1/SequelNumber/Rollback", f"{shown(rolled)}: the visit {when} rolled back")

        if any(entry.get("treatDateTime") == when for entry in self.visits()):
            raise StepFailed(f"Treatment/NoNeedHPC: the visit {when} is still shown after its rollback")
        say("twin     POST /api/v1/Treatment/NoNeedHPC", f"statusCode 0: the visit {when} is gone")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="A bench registration through nhi-console and the bench's web-API twin (SIMULATION).",
    )
    parser.add_argument(
        "--console",
        default=os.environ.get("NHI_CONSOLE_URL", "https://localhost:5066"),
        help="the console's address (NHI_CONSOLE_URL; default https://localhost:5066)",
    )
    parser.add_argument(
        "--console-ca",
        type=Path,
        default=Path(os.environ["NHI_CONSOLE_CA"]) if os.environ.get("NHI_CONSOLE_CA") else default_console_ca(),
        help="the console's CA certificate (NHI_CONSOLE_CA; default: tls/ca.pem in the console's data dir)",
    )
    parser.add_argument("--device", help="what Initial opens: a cloud SAM id or a port (default: the console picks)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = arguments(argv)
    if not args.console_ca.is_file():
        print(
            f"no CA certificate at {args.console_ca}: give the console's with --console-ca "
            "(nhi-console cert --export FILE writes it) or NHI_CONSOLE_CA",
            file=sys.stderr,
        )
        return 2
    try:
        trusted = ssl.create_default_context(cafile=str(args.console_ca))
        console = JsonService("the console", args.console, trusted, hint="; is it running (make demo)?")
    except ValueError as error:
        print(error, file=sys.stderr)
        return 2
    print(f"SIMULATION: a bench registration through {args.console} and the bench's NHI web-API twin", flush=True)
    try:
        Registration(console, args.device).run()
    except StepFailed as failure:
        print(f"FAILED: {failure}", file=sys.stderr)
        return 1
    print("done: every step answered statusCode 0", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
