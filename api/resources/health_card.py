"""HC: the health card's endpoints, physical and virtual. Thin: validate, ask the broker, render the spec's fields.

PINs are checked for format here (4 to 6 digits) so a malformed one is a 400
that never reaches a card; tokens and transfer tokens are passed on as they
are. None of them is ever logged.
"""

from __future__ import annotations


import falcon

from api.body import json_object, optional_json_object, text_field
from api.formats import digits as digit_text, name_text
from api.operations import Operation, documented
from api.resources.session import SERVICE_TYPE, FlowResource, service_type, with_base64
from api.resources.staff_card import digits
from contract.commands import MAX_TOKEN
from contract.deadlines import KEYPAD_FLOW_SECONDS

HC_BASIC_FIELDS = ("cardId", "name", "idNo", "birthday", "sex", "dateIssue", "identityStatus")
HC_SIGNATURE_FIELDS = ("signature", "clientRandom", "samId", "hospitalId", "serviceType", "hcId", "hcIdNo")
HPC_HC_SIGNATURE_FIELDS = ("signature", "clientRandom", "samId", "hospitalId", "serviceType", "hpcId", "hpcIdNo",
                           "hcId", "hcIdNo")
HC_PIN = digit_text(4, 6, "4 to 6 digits; on an NHI reader the keypad is used and this value is ignored")
TOKEN = name_text(MAX_TOKEN)
EMPTY_BODY = {"type": "object", "description": "The spec sends {}"}


HC_BASIC = Operation("The health card's public data", "HC", answers=HC_BASIC_FIELDS)


class HcBasicResource(FlowResource):
    @documented(HC_BASIC)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ReadHcBasic")
        resp.media = HC_BASIC.render(reply.code, reply.body)


HC_LOGOUT = Operation("Log the health card out", "HC")


class HcLogoutResource(FlowResource):
    @documented(HC_LOGOUT)
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "LogoutHc")
        resp.media = HC_LOGOUT.render(reply.code, reply.body)


HC_PIN_GET = Operation("Has the health card a PIN", "HC", answers=("hasPin",))


HC_PIN_VERIFY = Operation("Verify the health card's PIN", "HC", body={"pin": HC_PIN}, required=("pin",))


HC_PIN_SET = Operation("Set a new PIN on the health card", "HC", body={"newPin": HC_PIN}, required=("newPin",))


HC_PIN_REMOVE = Operation("Remove the health card's PIN", "HC")


class HcPinResource(FlowResource):
    """GET: has the card a PIN; POST: verify it; PUT: set a new one; DELETE: remove it."""

    @documented(HC_PIN_GET)
    def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "GetHcPin")
        resp.media = HC_PIN_GET.render(reply.code, reply.body)

    @documented(HC_PIN_VERIFY)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        pin = digits(json_object(req), "pin", 4, 6)
        reply = self._call(req, "VerifyHcPin", {"pin": pin}, timeout=KEYPAD_FLOW_SECONDS)
        resp.media = HC_PIN_VERIFY.render(reply.code, reply.body)

    @documented(HC_PIN_SET)
    def on_put(self, req: falcon.Request, resp: falcon.Response) -> None:
        new_pin = digits(json_object(req), "newPin", 4, 6)
        reply = self._call(req, "SetHcPin", {"newPin": new_pin}, timeout=KEYPAD_FLOW_SECONDS)
        resp.media = HC_PIN_SET.render(reply.code, reply.body)

    @documented(HC_PIN_REMOVE)
    def on_delete(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "RemoveHcPin")
        resp.media = HC_PIN_REMOVE.render(reply.code, reply.body)


HC_SIGNATURE = Operation("Sign with the SAM and the health card", "HC", answers=HC_SIGNATURE_FIELDS, body={"serviceType": SERVICE_TYPE}, required=("serviceType",))


class HcSignatureResource(FlowResource):
    @documented(HC_SIGNATURE)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "SignWithHc", {"serviceType": service_type(json_object(req))})
        body = with_base64(reply.body, "signature", "clientRandom") if reply.code == 0 else reply.body
        resp.media = HC_SIGNATURE.render(reply.code, body)


HPC_HC_SIGNATURE = Operation("Sign with the SAM, the staff card and the health card", "HC", answers=HPC_HC_SIGNATURE_FIELDS, body={"serviceType": SERVICE_TYPE}, required=("serviceType",))


class HpcHcSignatureResource(FlowResource):
    @documented(HPC_HC_SIGNATURE)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "SignWithHpcHc", {"serviceType": service_type(json_object(req))})
        body = with_base64(reply.body, "signature", "clientRandom") if reply.code == 0 else reply.body
        resp.media = HPC_HC_SIGNATURE.render(reply.code, body)


def _token(req: falcon.Request, name: str) -> str:
    return text_field(json_object(req), name, max_length=MAX_TOKEN)


VIRTUAL_HC_VERIFICATION = Operation("Verify a virtual health card's token", "HC", body={"token": TOKEN}, required=("token",))


class VirtualHcVerificationResource(FlowResource):
    @documented(VIRTUAL_HC_VERIFICATION)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "VerifyVirtualHc", {"token": _token(req, "token")})
        resp.media = VIRTUAL_HC_VERIFICATION.render(reply.code, reply.body)


VIRTUAL_HC_READ_BASIC = Operation("A virtual health card's public data", "HC", answers=HC_BASIC_FIELDS, body={"token": TOKEN}, required=("token",))


class VirtualHcReadBasicResource(FlowResource):
    @documented(VIRTUAL_HC_READ_BASIC)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ReadVirtualHcBasic", {"token": _token(req, "token")})
        resp.media = VIRTUAL_HC_READ_BASIC.render(reply.code, reply.body)


VIRTUAL_HC_EXPORT = Operation("Export the virtual health card for a transfer", "HC", answers=("transferToken",), body_schema=EMPTY_BODY, body_optional=True)


class VirtualHcExportResource(FlowResource):
    @documented(VIRTUAL_HC_EXPORT)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        optional_json_object(req)  # the spec sends {}
        reply = self._call(req, "ExportVirtualHc")
        resp.media = VIRTUAL_HC_EXPORT.render(reply.code, reply.body)


VIRTUAL_HC_IMPORT = Operation("Import a transferred virtual health card", "HC", body={"transferToken": TOKEN}, required=("transferToken",))


class VirtualHcImportResource(FlowResource):
    @documented(VIRTUAL_HC_IMPORT)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        reply = self._call(req, "ImportVirtualHc", {"transferToken": _token(req, "transferToken")})
        resp.media = VIRTUAL_HC_IMPORT.render(reply.code, reply.body)


REAL_HC_UPDATE = Operation("Update the health card from the DC", "HC", body_schema=EMPTY_BODY, body_optional=True)


class RealHcUpdateResource(FlowResource):
    @documented(REAL_HC_UPDATE)
    def on_post(self, req: falcon.Request, resp: falcon.Response) -> None:
        optional_json_object(req)  # the spec sends {}
        reply = self._call(req, "UpdateRealHc")
        resp.media = REAL_HC_UPDATE.render(reply.code, reply.body)
