"""The OpenAPI document is the app's routes and the operations they declare: no more, no less.

The running console is fuzzed against this document by
tests/integration/test_openapi_conformance.py; here, in milliseconds, the
document's build rules: every route is documented, every documented path is
routed, every answer field has a format, and answers render the declared fields.
"""

from __future__ import annotations

from typing import Any

import falcon
import falcon.inspect
import falcon.testing
import jsonschema_rs
import pytest

from api.app import create_app
from api.formats import ANSWER_FIELDS
from api.openapi import UndocumentedRoute, build_document, routed_operations
from api.operations import Operation, documented
from api.resources.common import VersionInfo
from contract.status_codes import StatusCode
from sim.control_api import mount
from sim.profiles import PROFILES
from tests.spec_samples import EMPTY_STATUS
from tests.unit.test_api import FakeCore

HOST = {"Host": "localhost:5066"}


def _app(core: FakeCore | None = None, *, sim: bool = True) -> falcon.App:
    return create_app(
        core or FakeCore(),  # type: ignore[arg-type]  # a stand-in core: only .call is used
        VersionInfo("1.2.3", "/opt/nhi-console/bin/nhi-console"),
        extra_routes=mount if sim else None,
    )


def _document(app: falcon.App) -> dict[str, Any]:
    return build_document(app, title="nhi-console", version="1.2.3", description="test")


def _routed(app: falcon.App) -> set[tuple[str, str]]:
    """Every routed method but the pages' (Swagger UI, /console/: files, not API operations)."""
    return {
        (route.path, method.method)
        for route in falcon.inspect.inspect_routes(app)
        for method in route.methods
        if not method.internal and not _is_page(route.path)
    }


def _is_page(path: str) -> bool:
    return path.startswith("/console") or path in ("/api/swagger", "/api/swagger/{name}")


@pytest.mark.parametrize("sim", [True, False])
def test_every_route_is_documented_and_every_documented_path_is_routed(sim: bool) -> None:
    app = _app(sim=sim)
    document = _document(app)
    documented_pairs = {(path, method.upper()) for path, methods in document["paths"].items() for method in methods}
    assert documented_pairs == _routed(app)
    assert any(path.startswith("/api/sim/") for path, _ in documented_pairs) is sim


def test_the_spec_endpoints_are_all_there() -> None:
    paths = _document(_app(sim=False))["paths"]
    spec_operations = [
        (path, method)
        for path, methods in paths.items()
        for method in methods
        if not path.startswith(("/api/swagger/", "/api/events/"))
    ]
    assert len(spec_operations) == 43  # the spec's 43 (issue 10 counts them so)


def test_a_route_without_an_operation_fails_the_build() -> None:
    class Undeclared:
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {}

    app = _app()
    app.add_route("/api/extra/v1/Thing", Undeclared())
    with pytest.raises(UndocumentedRoute, match="GET /api/extra/v1/Thing"):
        _document(app)


def test_an_answer_field_without_a_format_fails_the_build() -> None:
    class Declared:
        @documented(Operation("A thing", "TEST", answers=("noSuchField",)))
        def on_get(self, req: falcon.Request, resp: falcon.Response) -> None:
            resp.media = {}

    app = _app()
    app.add_route("/api/extra/v1/Thing", Declared())
    with pytest.raises(UndocumentedRoute, match="noSuchField"):
        _document(app)


def test_every_operation_renders_exactly_its_declared_fields() -> None:
    everything = dict.fromkeys(ANSWER_FIELDS, "x") | {"message": "m", "internal": "never shown"}
    for (path, method), operation in routed_operations(_app()).items():
        if operation.answer_schema is not None:
            continue
        assert set(operation.render(0, everything)) == {"statusCode", *operation.answers}, (method, path)
        assert operation.render(int(StatusCode.NOT_INITIALIZED), everything) == {
            "statusCode": int(StatusCode.NOT_INITIALIZED),
            "message": "m",
        }


def test_every_schema_in_the_document_is_valid_json_schema() -> None:
    document = _document(_app())
    for methods in document["paths"].values():
        for operation in methods.values():
            for response in operation["responses"].values():
                for media in response.get("content", {}).values():
                    schema = {**media["schema"], "components": document["components"]}
                    schema = _resolved(schema, document)
                    jsonschema_rs.validator_for(schema)  # raises on a malformed schema
            body = operation.get("requestBody")
            if body is not None:
                jsonschema_rs.validator_for(body["content"]["application/json"]["schema"])


def _resolved(schema: dict[str, Any], document: dict[str, Any]) -> dict[str, Any]:
    reference = schema.get("$ref")
    if isinstance(reference, str):
        return dict(document["components"]["schemas"][reference.rsplit("/", 1)[1]])
    return {key: value for key, value in schema.items() if key != "components"}


def _answer_schema(document: dict[str, Any], path: str, method: str = "get") -> Any:
    schema = document["paths"][path][method]["responses"]["200"]["content"]["application/json"]["schema"]
    return jsonschema_rs.validator_for(schema)


def test_the_spec_samples_fit_the_documented_answers() -> None:
    document = _document(_app())
    assert _answer_schema(document, "/api/common/v1/Status").is_valid({"statusCode": 0, "status": EMPTY_STATUS})
    hc_basic = {
        "statusCode": 0,
        "cardId": "900000000711",
        "name": "測試資料",
        "idNo": "R88855084A",
        "birthday": "0741201",
        "sex": "F",
        "dateIssue": "1070101",
        "identityStatus": "3",
    }
    validator = _answer_schema(document, "/api/hc/v1/Basic")
    assert validator.is_valid(hc_basic)
    assert validator.is_valid({"statusCode": 1000, "message": "not initialized"})
    assert not validator.is_valid({**hc_basic, "extra": 1}), "an undeclared field must not pass"
    assert not validator.is_valid({**hc_basic, "statusCode": 4242}), "only the spec's codes"
    records = _answer_schema(document, "/api/common/v1/Record")
    assert records.is_valid([{"url": "/api/common/v1/Status", "uuid": "u", "timestamp": "t", "statusCode": 0}])


def test_request_schemas_agree_with_the_validation_on_samples() -> None:
    """A few hand-picked edges; schemathesis explores the rest against the running console."""
    document = _document(_app())

    def body(path: str, method: str = "post") -> Any:
        return jsonschema_rs.validator_for(
            document["paths"][path][method]["requestBody"]["content"]["application/json"]["schema"]
        )

    pin = body("/api/hc/v1/Pin")
    assert pin.is_valid({"pin": "1234"}) and pin.is_valid({"pin": "123456"})
    assert not pin.is_valid({"pin": "123"}) and not pin.is_valid({"pin": "12a4"}) and not pin.is_valid({})
    signature = body("/api/sam/v1/Signature")
    assert signature.is_valid({"serviceType": "11"}) and not signature.is_valid({"serviceType": "1"})
    assert not signature.is_valid({"serviceType": "中1"})
    keypad = body("/api/sim/v1/Keypad")
    assert keypad.is_valid({"keys": "1234"}) and keypad.is_valid({"cancel": True})
    assert not keypad.is_valid({"keys": "1234", "cancel": True}) and not keypad.is_valid({"cancel": False})


def test_the_bench_profiles_in_the_document_are_the_bench_s() -> None:
    document = _document(_app())
    schema = document["paths"]["/api/sim/v1/Readers/{name}/Card"]["put"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    assert schema["properties"]["profile"]["enum"] == sorted(PROFILES)


def test_the_document_is_served_and_the_call_is_not_recorded() -> None:
    core = FakeCore()
    client = falcon.testing.TestClient(_app(core), headers=HOST)
    answer = client.simulate_get("/api/swagger/v1/swagger.json")
    assert answer.status_code == 200
    assert answer.json["openapi"] == "3.1.0"
    assert "/api/hc/v1/Basic" in answer.json["paths"]
    assert core.sent == []
