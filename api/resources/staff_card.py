"""HCA: the staff card's endpoints and the mobile HCA login. Thin: validate, ask the broker, render the spec's fields.

PINs and PUKs are checked here for format (digits, lengths) so a malformed one
is a 400 that never reaches a card; they are passed on once and never logged.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import falcon

from api.body import json_object, text_field, unicode_text
from api.errors import BadRequest
from api.formats import NO_CONTROLS, base64_chars, base64_text, digits as digit_text, name_text, text
from api.operations import Operation, documented
from api.resources.session import SERVICE_TYPE, FlowResource, service_type, with_base64
from contract.text import CONTROL_CHARACTERS

HPC_BASIC_FIELDS = ("cardId", "idNo", "cName", "eName", "birthday")
HPC_SIGNATURE_FIELDS = ("signature", "clientRandom", "samId", "hospitalId", "serviceType", "hpcId", "hpcIdNo")


def digits(body: dict[str, Any], name: str, shortest: int, longest: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() \
            or not shortest <= len(value) <= longest:
        raise BadRequest(f"{name} must be {shortest} to {longest} digits")
    return value


def strict_base64(body: dict[str, Any], name: str, longest: int) -> bytes:
    """Standard padded base64 of at most the characters `longest` bytes take (the schema's maxLength)."""
    value = text_field(body, name, max_length=base64_chars(longest))
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name} is not valid base64") from None
    if not decoded:
        raise BadRequest(f"{name} must not be empty")
    return decoded


HPC_PIN = digit_text(4, 8)
CERTIFICATE_BYTES = 16 * 1024
SIGNATURE_BYTES = 512


HPC_VERIFICATION = Operation("Verify the staff card with its PIN (levels 2 and 3)", "HPC", body={"pin": HPC_PIN}, required=("pin",))


class HpcVerificationResource(FlowResource):
    @documented(HPC_VERIFICATION)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        pin = digits(json_object(req), "pin", 4, 8)
        reply = self._call(req, "VerifyHpcPin", {"pin": pin})
        resp.media = HPC_VERIFICATION.render(reply.code, reply.body)


HPC_BASIC = Operation("The staff card's public data", "HPC", answers=HPC_BASIC_FIELDS)


class HpcBasicResource(FlowResource):
    @documented(HPC_BASIC)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ReadHpcBasic")
        resp.media = HPC_BASIC.render(reply.code, reply.body)


HPC_LOGOUT = Operation("Log the staff card out", "HPC")


class HpcLogoutResource(FlowResource):
    @documented(HPC_LOGOUT)
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "LogoutHpc")
        resp.media = HPC_LOGOUT.render(reply.code, reply.body)


HPC_PIN_CHANGE = Operation("Change the staff card's PIN (level 3)", "HPC", body={"newPin": HPC_PIN}, required=("newPin",))


HPC_PIN_UNBLOCK = Operation("Unblock the staff card with its PUK and set a new PIN", "HPC", body={"puk": digit_text(1, 8), "newPin": HPC_PIN}, required=("puk", "newPin"))


class HpcPinResource(FlowResource):
    @documented(HPC_PIN_CHANGE)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Change the PIN (level 3)."""
        new_pin = digits(json_object(req), "newPin", 4, 8)
        reply = self._call(req, "ChangeHpcPin", {"newPin": new_pin})
        resp.media = HPC_PIN_CHANGE.render(reply.code, reply.body)

    @documented(HPC_PIN_UNBLOCK)
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Unblock with the PUK and set a new PIN (level 1)."""
        body = json_object(req)
        puk, new_pin = digits(body, "puk", 1, 8), digits(body, "newPin", 4, 8)
        reply = self._call(req, "ResetHpcPin", {"puk": puk, "newPin": new_pin})
        resp.media = HPC_PIN_UNBLOCK.render(reply.code, reply.body)


HPC_SIGNATURE = Operation("Sign with the SAM and the staff card", "HPC", answers=HPC_SIGNATURE_FIELDS, body={"serviceType": SERVICE_TYPE}, required=("serviceType",))


class HpcSignatureResource(FlowResource):
    @documented(HPC_SIGNATURE)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        kind = service_type(json_object(req))
        reply = self._call(req, "SignWithHpc", {"serviceType": kind})
        body = with_base64(reply.body, "signature", "clientRandom") if reply.code == 0 else reply.body
        resp.media = HPC_SIGNATURE.render(reply.code, body)


MOBILE_HCA = Operation(
    "Log in with a mobile HCA certificate", "HPC",
    body={
        "idNo": name_text(10), "birthday": name_text(10), "cName": name_text(64),
        "eName": text(64, pattern=NO_CONTROLS, nullable=True), "hospitalId": name_text(10), "medId": name_text(1),
        "loginDateTime": name_text(20),
        "signatureCertificate": base64_text(CERTIFICATE_BYTES, "The certificate, DER in base64"),
        "signature": base64_text(SIGNATURE_BYTES, "The login's signature, base64"),
    },
    required=("idNo", "birthday", "cName", "hospitalId", "medId", "loginDateTime", "signatureCertificate", "signature"),
)


class MobileHcaResource(FlowResource):
    """`POST /api/hpc/v1/Verification/MobiliHca` (the spec's spelling)."""

    @documented(MOBILE_HCA)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        e_name = body.get("eName", "")
        if e_name is None:
            e_name = ""
        if not isinstance(e_name, str) or len(e_name) > 64:
            raise BadRequest("eName must be a string of at most 64 characters")
        if CONTROL_CHARACTERS.search(e_name):
            raise BadRequest("eName must not hold control characters")
        unicode_text(e_name, "eName")
        args = {
            "idNo": text_field(body, "idNo", max_length=10),
            "birthday": text_field(body, "birthday", max_length=10),
            "cName": text_field(body, "cName", max_length=64),
            "eName": e_name,
            "hospitalId": text_field(body, "hospitalId", max_length=10),
            "medId": text_field(body, "medId", max_length=1),
            "loginDateTime": text_field(body, "loginDateTime", max_length=20),
            "signatureCertificate": strict_base64(body, "signatureCertificate", CERTIFICATE_BYTES),
            "signature": strict_base64(body, "signature", SIGNATURE_BYTES),
        }
        reply = self._call(req, "VerifyMobileHca", args)
        resp.media = MOBILE_HCA.render(reply.code, reply.body)
