"""The web-API twin's answer codes: each one, its meaning, and the one exception that carries it.

Why these numbers: the NHI's web-API specification is not public. Public HIS code that calls the 6.0 web API
keeps one table of the codes it shows its users (`cshis_utils.ERROR_MESSAGE`): the console's 1xxx, and 3xxx
that only the web API answers (3100 驗證簽章錯誤, 3201 超過卡片有期限, 3208 找不到「就醫資料登錄」中的該組資料, ...).
The twin answers those numbers for those meanings, so a HIS's own code table shows the right text. Where the 3xxx
list has nothing (a revoked SAM, a contract that ended, a bad request), the twin answers the console's code of
the same meaning from the same table (1304 SAM 已註銷, 1302, 1303, 1704 參數格式異常, 1701): one table, one
meaning per number. docs/web-api-twin.md lists every code and why.
"""

from __future__ import annotations

import enum
from typing import Final


class Code(enum.IntEnum):
    DONE = 0
    UNKNOWN_PATH = 1701
    """No such path (HTTP 404): 與 DC 通訊命令代碼不存在."""
    BAD_REQUEST = 1704
    """Not a JSON object, a required field missing or malformed (HTTP 400): 參數格式異常."""
    TWIN_FAILED = 1799
    """A bug of the twin (HTTP 500): DC 端未定義錯誤."""
    CONTRACT_EXPIRED = 1302
    HOSPITAL_SUSPENDED = 1303
    SAM_REVOKED = 1304
    SIGNATURE_INVALID = 3100
    CARD_EXPIRED = 3201
    TREATMENT_NUMBER_FAILED = 3204
    NO_SUCH_VISIT = 3208
    CODES_WRITTEN = 3209
    OTHER_HOSPITAL = 3211
    COUNTER_ZERO = 3213
    ROLLBACK_TOO_LATE = 3218
    ROLLBACK_NOT_NUMERIC = 3219
    ROLLED_BACK_ALREADY = 3220
    NOT_INSURED = 3228
    ACCESS_TOKEN_UNKNOWN = 3237
    ACCESS_TOKEN_EXPIRED = 3238
    SIGNATURE_USED = 3245
    UNKNOWN_SAM = 3302


NAMES: Final[dict[Code, str]] = {
    Code.UNKNOWN_PATH: "與 DC 通訊命令代碼不存在",
    Code.BAD_REQUEST: "參數格式異常",
    Code.TWIN_FAILED: "DC 端未定義錯誤",
    Code.CONTRACT_EXPIRED: "醫事機構已超過合約起迄",
    Code.HOSPITAL_SUSPENDED: "醫事機構已停權",
    Code.SAM_REVOKED: "SAM 已註銷",
    Code.SIGNATURE_INVALID: "驗證簽章錯誤",
    Code.CARD_EXPIRED: "超過卡片有期限",
    Code.TREATMENT_NUMBER_FAILED: "就醫識別碼編碼失敗",
    Code.NO_SUCH_VISIT: "找不到「就醫資料登錄」中的該組資料",
    Code.CODES_WRITTEN: "已寫入診斷碼",
    Code.OTHER_HOSPITAL: "非同一家醫事機構",
    Code.COUNTER_ZERO: "就醫可用次數為零",
    Code.ROLLBACK_TOO_LATE: "不允許退掛，退掛時間已超過 24 小時",  # noqa: RUF001 - the table's own text
    Code.ROLLBACK_NOT_NUMERIC: "就醫類別為數值才可退掛",
    Code.ROLLED_BACK_ALREADY: "本筆就醫記錄已經退掛過，不可重覆退掛",  # noqa: RUF001 - the table's own text
    Code.NOT_INSURED: "不在保",
    Code.ACCESS_TOKEN_UNKNOWN: "未查詢到 Access Token",
    Code.ACCESS_TOKEN_EXPIRED: "Access Token 已逾時",
    Code.SIGNATURE_USED: "簽章已取得就醫資料",
    Code.UNKNOWN_SAM: "無 SAM 資料",
}
"""Each refusal's name in the public HIS code table, the start of every `message` the twin answers."""


class Refused(Exception):
    """A refusal: its code and what the twin says about it (names a field or a rule, never a value sent)."""

    def __init__(self, code: Code, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.message = f"{NAMES[code]}: {detail} (SIMULATION: the NHI web-API twin)"
