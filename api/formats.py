"""The spec's field formats ("String(12)", "Number (1)", "Bool Null") as JSON Schema, named once per field.

A field name means the same thing in every answer of the spec (`samId` is
always String(12)), so each name is given its format here, once, and the
OpenAPI document takes every answer field's schema from this table. A field an
operation answers that is missing here fails the document's build, so a new
field cannot ship undocumented.
"""

from __future__ import annotations

from typing import Final

from contract.schemas import BASE64_PATTERN, Schema, text
from contract.status_codes import StatusCode


def level(description: str, levels: tuple[int, ...]) -> Schema:
    return {"type": "integer", "enum": list(levels), "description": description}


STATUS_CODE: Final[Schema] = {
    "type": "integer",
    "enum": [int(code) for code in StatusCode],
    "description": "The spec's status code (section 六); 0 is success. "
    "1099 is nhi-console's own: its core is restarting.",
}

MESSAGE: Final[Schema] = text(description="What went wrong, for a person; never holds a PIN, PUK, token or SAM file.")

_CARD_STATUS_HC: Final = level(
    "0: no health card, 1: inserted, 2: authenticated with the SAM, 3: with the HCA", (0, 1, 2, 3)
)
_STATUS: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["hc", "hpc", "initialized", "name", "readerName", "sam"],
    "properties": {
        "hc": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status", "type", "expireTime", "hasPin", "verifiedPin"],
            "properties": {
                "status": _CARD_STATUS_HC,
                "type": level("0: none, 1: physical health card, 2: virtual health card", (0, 1, 2)),
                "expireTime": text(nullable=True, description="The virtual card's verification ends (virtual only)"),
                "hasPin": {"type": ["boolean", "null"], "description": "null: not read yet"},
                "verifiedPin": {"type": ["boolean", "null"], "description": "null: the card has no PIN"},
            },
        },
        "hpc": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status", "type", "expireTime"],
            "properties": {
                "status": level("0: no staff card, 1: inserted, 2: authenticated, 3: PIN verified", (0, 1, 2, 3)),
                "type": level("0: none, 1: doctor card, 2: other staff card, 3: mobile HCA", (0, 1, 2, 3)),
                "expireTime": text(nullable=True),
            },
        },
        "initialized": {"type": "boolean"},
        "name": text(nullable=True, description="The cloud SAM's samId or the NHI reader's port"),
        "readerName": text(nullable=True, description="The PC/SC reader's name or the NHI reader's port"),
        "sam": {
            "type": "object",
            "additionalProperties": False,
            "required": ["status", "type", "expireTime"],
            "properties": {
                "status": level("0: no SAM, 1: SAM present, 2: verified with the DC", (0, 1, 2)),
                "type": level("0: none, 1: cloud SAM, 2: physical SAM", (0, 1, 2)),
                "expireTime": text(nullable=True),
            },
        },
    },
}

_CLOUD_SAM: Final[Schema] = {
    "type": "object",
    "required": ["samId", "hospitalId"],
    "properties": {
        "samId": text(12),
        "hospitalId": text(10),
        "hospitalName": text(nullable=True),
        "hospitalShortName": text(nullable=True),
        "comport": text(nullable=True),
    },
}

ANSWER_FIELDS: Final[dict[str, Schema]] = {
    "status": _STATUS,
    "names": {"type": "array", "items": text(), "description": "Cloud SAMs, then serial ports"},
    "serverDateTime": text(13, pattern="^[0-9]{13}$", description="yyyMMddHHmmss, ROC year, Taipei time"),
    "samId": text(12),
    "hospitalId": text(10),
    "hospitalName": text(nullable=True),
    "hospitalShortName": text(nullable=True),
    "signature": text(pattern=BASE64_PATTERN, description="Base64"),
    "clientRandom": text(pattern=BASE64_PATTERN, description="Base64"),
    "serviceType": text(2),
    "hpcId": text(12),
    "hpcIdNo": text(10),
    "hcId": text(12),
    "hcIdNo": text(10),
    "cardId": text(12),
    "name": text(),
    "idNo": text(10),
    "birthday": text(10, description="ROC yyyMMdd on the health card; yyyy-MM-dd on the staff card"),
    "sex": text(1, description="M or F"),
    "dateIssue": text(7, nullable=True, description="ROC yyyMMdd; physical health cards only"),
    "identityStatus": text(1),
    "cName": text(),
    "eName": text(nullable=True),
    "hasPin": {"type": "boolean"},
    "transferToken": text(),
    "readers": {"type": "array", "items": text()},
    "readerName": text(nullable=True),
    "sams": {"type": "array", "items": text(12)},
    "sam": _CLOUD_SAM,
    "cors": {"type": "array", "items": text()},
    "fileVersion": text(),
    "shortVersion": text(),
    "longVersion": text(),
    "location": text(),
}

RECORD: Final[Schema] = {
    "type": "object",
    "additionalProperties": False,
    "required": ["url", "uuid", "timestamp", "statusCode"],
    "properties": {
        "url": text(),
        "uuid": text(),
        "timestamp": text(description="ISO 8601 with the offset"),
        "statusCode": STATUS_CODE,
    },
}
