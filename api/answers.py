"""The spec's answer shape: statusCode, then the endpoint's fields on success, our message on failure."""

from __future__ import annotations

from typing import Any


def spec_answer(code: int, body: dict[str, Any], *fields: str) -> dict[str, Any]:
    answer: dict[str, Any] = {"statusCode": code}
    if code == 0:
        answer.update({name: body[name] for name in fields})
    elif "message" in body:
        answer["message"] = body["message"]
    return answer
