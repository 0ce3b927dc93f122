"""HCA: the staff card's endpoints and the mobile HCA login. Thin: validate, ask the broker, render the spec's fields.

PINs and PUKs are checked here for format (digits, lengths) so a malformed one
is a 400 that never reaches a card; they are passed on once and never logged.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

import falcon

from api.answers import spec_answer
from api.body import json_object, text_field
from api.errors import BadRequest
from api.resources.session import FlowResource, service_type, with_base64

HPC_BASIC_FIELDS = ("cardId", "idNo", "cName", "eName", "birthday")
HPC_SIGNATURE_FIELDS = ("signature", "clientRandom", "samId", "hospitalId", "serviceType", "hpcId", "hpcIdNo")


def digits(body: dict[str, Any], name: str, shortest: int, longest: int) -> str:
    value = body.get(name)
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() \
            or not shortest <= len(value) <= longest:
        raise BadRequest(f"{name} must be {shortest} to {longest} digits")
    return value


def strict_base64(body: dict[str, Any], name: str, longest: int) -> bytes:
    value = text_field(body, name, max_length=longest * 2)
    try:
        decoded = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BadRequest(f"{name} is not valid base64") from None
    if not decoded or len(decoded) > longest:
        raise BadRequest(f"{name} must decode to 1 to {longest} bytes")
    return decoded


class HpcVerificationResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        pin = digits(json_object(req), "pin", 4, 8)
        reply = self._call(req, "VerifyHpcPin", {"pin": pin})
        resp.media = spec_answer(reply.code, reply.body)


class HpcBasicResource(FlowResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ReadHpcBasic")
        resp.media = spec_answer(reply.code, reply.body, *HPC_BASIC_FIELDS)


class HpcLogoutResource(FlowResource):
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "LogoutHpc")
        resp.media = spec_answer(reply.code, reply.body)


class HpcPinResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Change the PIN (level 3)."""
        new_pin = digits(json_object(req), "newPin", 4, 8)
        reply = self._call(req, "ChangeHpcPin", {"newPin": new_pin})
        resp.media = spec_answer(reply.code, reply.body)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        """Unblock with the PUK and set a new PIN (level 1)."""
        body = json_object(req)
        puk, new_pin = digits(body, "puk", 1, 8), digits(body, "newPin", 4, 8)
        reply = self._call(req, "ResetHpcPin", {"puk": puk, "newPin": new_pin})
        resp.media = spec_answer(reply.code, reply.body)


class HpcSignatureResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        kind = service_type(json_object(req))
        reply = self._call(req, "SignWithHpc", {"serviceType": kind})
        body = with_base64(reply.body, "signature", "clientRandom") if reply.code == 0 else reply.body
        resp.media = spec_answer(reply.code, body, *HPC_SIGNATURE_FIELDS)


class MobileHcaResource(FlowResource):
    """`POST /api/hpc/v1/Verification/MobiliHca` (the spec's spelling)."""

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        body = json_object(req)
        e_name = body.get("eName", "")
        if e_name is None:
            e_name = ""
        if not isinstance(e_name, str) or len(e_name) > 64:
            raise BadRequest("eName must be a string of at most 64 characters")
        args = {
            "idNo": text_field(body, "idNo", max_length=10),
            "birthday": text_field(body, "birthday", max_length=10),
            "cName": text_field(body, "cName", max_length=64),
            "eName": e_name,
            "hospitalId": text_field(body, "hospitalId", max_length=10),
            "medId": text_field(body, "medId", max_length=1),
            "loginDateTime": text_field(body, "loginDateTime", max_length=20),
            "signatureCertificate": strict_base64(body, "signatureCertificate", 16 * 1024),
            "signature": strict_base64(body, "signature", 512),
        }
        reply = self._call(req, "VerifyMobileHca", args)
        resp.media = spec_answer(reply.code, reply.body)
