"""HC: the health card's endpoints, physical and virtual. Thin: validate, ask the broker, render the spec's fields.

PINs are checked for format here (4 to 6 digits) so a malformed one is a 400
that never reaches a card; tokens and transfer tokens are passed on as they
are. None of them is ever logged.
"""

from __future__ import annotations


import falcon

from api.answers import spec_answer
from api.body import json_object, optional_json_object, text_field
from api.resources.session import FlowResource, service_type, with_base64
from api.resources.staff_card import digits
from broker.commands import MAX_TOKEN

HC_BASIC_FIELDS = ("cardId", "name", "idNo", "birthday", "sex", "dateIssue", "identityStatus")
HC_SIGNATURE_FIELDS = ("signature", "clientRandom", "samId", "hospitalId", "serviceType", "hcId", "hcIdNo")
HPC_HC_SIGNATURE_FIELDS = ("signature", "clientRandom", "samId", "hospitalId", "serviceType", "hpcId", "hpcIdNo",
                           "hcId", "hcIdNo")


class HcBasicResource(FlowResource):
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ReadHcBasic")
        resp.media = spec_answer(reply.code, reply.body, *HC_BASIC_FIELDS)


class HcLogoutResource(FlowResource):
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "LogoutHc")
        resp.media = spec_answer(reply.code, reply.body)


class HcPinResource(FlowResource):
    """GET: has the card a PIN; POST: verify it; PUT: set a new one; DELETE: remove it."""

    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "GetHcPin")
        resp.media = spec_answer(reply.code, reply.body, "hasPin")

    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        pin = digits(json_object(req), "pin", 4, 6)
        reply = self._call(req, "VerifyHcPin", {"pin": pin})
        resp.media = spec_answer(reply.code, reply.body)

    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        new_pin = digits(json_object(req), "newPin", 4, 6)
        reply = self._call(req, "SetHcPin", {"newPin": new_pin})
        resp.media = spec_answer(reply.code, reply.body)

    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "RemoveHcPin")
        resp.media = spec_answer(reply.code, reply.body)


class HcSignatureResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "SignWithHc", {"serviceType": service_type(json_object(req))})
        body = with_base64(reply.body, "signature", "clientRandom") if reply.code == 0 else reply.body
        resp.media = spec_answer(reply.code, body, *HC_SIGNATURE_FIELDS)


class HpcHcSignatureResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "SignWithHpcHc", {"serviceType": service_type(json_object(req))})
        body = with_base64(reply.body, "signature", "clientRandom") if reply.code == 0 else reply.body
        resp.media = spec_answer(reply.code, body, *HPC_HC_SIGNATURE_FIELDS)


def _token(req: falcon.Request, name: str) -> str:
    return text_field(json_object(req), name, max_length=MAX_TOKEN)


class VirtualHcVerificationResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "VerifyVirtualHc", {"token": _token(req, "token")})
        resp.media = spec_answer(reply.code, reply.body)


class VirtualHcReadBasicResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ReadVirtualHcBasic", {"token": _token(req, "token")})
        resp.media = spec_answer(reply.code, reply.body, *HC_BASIC_FIELDS)


class VirtualHcExportResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        optional_json_object(req)  # the spec sends {}
        reply = self._call(req, "ExportVirtualHc")
        resp.media = spec_answer(reply.code, reply.body, "transferToken")


class VirtualHcImportResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ImportVirtualHc", {"transferToken": _token(req, "transferToken")})
        resp.media = spec_answer(reply.code, reply.body)


class RealHcUpdateResource(FlowResource):
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        optional_json_object(req)  # the spec sends {}
        reply = self._call(req, "UpdateRealHc")
        resp.media = spec_answer(reply.code, reply.body)
