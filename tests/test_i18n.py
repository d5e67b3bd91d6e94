"""Problem documents and enum labels follow Accept-Language; `code` never changes."""

from __future__ import annotations

import ast
import pathlib

import pytest
from fastapi.testclient import TestClient

from app.core.errors import _TITLES
from app.core.i18n import MESSAGES, parse_accept_language, preferred_language
from tests.factories import World

APP = pathlib.Path(__file__).resolve().parent.parent / "app"


@pytest.mark.parametrize(("header", "language"), [
    ("zh-CN", "zh"),
    ("zh", "zh"),
    ("zh-Hans-CN", "zh"),
    ("zh;q=0.9,en;q=0.8", "zh"),
    ("en;q=0.8, zh-CN;q=0.9", "zh"),
    ("fr-FR, zh-CN;q=0.5", "zh"),
    ("en-US", "en"),
    ("en-US,en;q=0.9,zh-CN;q=0.8", "en"),
    ("zh;q=0, en", "en"),
    ("zh-CN;q=0", "en"),
    ("*", "en"),
    ("fr", "en"),
    ("", "en"),
    (None, "en"),
    ("garbage!!;;q=zz", "en"),
    ("zh;q=nan", "en"),
    ("zh;q=2", "en"),
    ("zh;q=abc, en;q=0.1", "en"),
    (",,,;q=1,zh-CN", "zh"),
    ("x" * 5000 + ",zh", "en"),
])
def test_accept_language_negotiation(header: str | None, language: str) -> None:
    assert preferred_language(header) == language


def test_parser_orders_by_q_then_position() -> None:
    assert parse_accept_language("en;q=0.5, zh-CN, de;q=0.5") == [("zh-cn", 1.0), ("en", 0.5), ("de", 0.5)]


def test_unauthenticated_problem_in_chinese_keeps_its_code(client: TestClient) -> None:
    r = client.get("/api/v1/auth/me", headers={"Accept-Language": "zh-CN"})
    assert r.status_code == 401
    body = r.json()
    assert body["code"] == "unauthenticated"
    assert body["title"] == "需要登录"
    assert body["detail"] == "需要有效的访问令牌（Bearer token）。"
    assert r.headers["Content-Language"] == "zh-CN"
    assert "Accept-Language" in r.headers["Vary"]


@pytest.mark.parametrize("header", ["en-US", "garbage;;;", None])
def test_problem_in_english_otherwise(client: TestClient, header: str | None) -> None:
    r = client.get("/api/v1/auth/me", headers={"Accept-Language": header} if header else {})
    body = r.json()
    assert (body["code"], body["title"], body["detail"]) == (
        "unauthenticated", "Unauthenticated", "A valid bearer token is required.")
    assert r.headers["Content-Language"] == "en"


def test_dynamic_detail_stays_english_under_a_chinese_title(client: TestClient, world: World) -> None:
    headers = {**world.auth("city"), "Accept-Language": "zh;q=0.9,en;q=0.8"}
    r = client.get("/api/v1/organizations/999999", headers=headers)
    assert r.status_code == 404
    body = r.json()
    assert body["code"] == "not_found"
    assert body["title"] == "未找到"
    assert "999999" in body["detail"]  # the values are never lost to a translation
    english = client.get("/api/v1/organizations/999999", headers=world.auth("city")).json()
    assert english["code"] == body["code"] and english["type"] == body["type"]
    assert english["title"] == "Not found"


def test_area_conflict_title_in_chinese(client: TestClient, world: World) -> None:
    body = {"parent_id": world.t1.id, "level": "village", "domain": "community", "name": "重复",
            "code": world.v1.code}
    r = client.post("/api/v1/organizations", json=body, headers={**world.auth("t1"), "Accept-Language": "zh-CN"})
    assert r.status_code == 409, r.text
    assert r.json()["code"] == "duplicate_code"
    assert r.json()["title"] == "代码重复"


def test_validation_errors_titled_and_explained_in_chinese(client: TestClient, world: World) -> None:
    headers = {**world.auth("t1"), "Accept-Language": "zh-CN,zh;q=0.9"}
    r = client.post("/api/v1/organizations", json={"name": "x" * 500}, headers=headers)
    assert r.status_code == 422
    body = r.json()
    assert body["code"] == "validation_error"
    assert body["title"] == "输入无效"
    msgs = {tuple(e["loc"]): e["msg"] for e in body["errors"]}
    assert msgs[("body", "level")] == "缺少必填字段"
    assert msgs[("body", "name")] == "最多只能有 100 个字符"
    assert r.headers["Content-Language"] == "zh-CN"
    english = client.post("/api/v1/organizations", json={"name": "x" * 500}, headers=world.auth("t1")).json()
    assert english["title"] == "Invalid input"
    assert {tuple(e["loc"]): e["msg"] for e in english["errors"]}[("body", "level")] == "Field required"


def test_query_bounds_explained_with_their_limits(client: TestClient, world: World) -> None:
    r = client.get("/api/v1/organizations?limit=999", headers={**world.auth("city"), "Accept-Language": "zh"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["msg"] == "应小于或等于 200"


def test_body_too_large_answered_in_chinese_below_the_framework(client: TestClient, world: World) -> None:
    headers = {**world.auth("t1"), "Accept-Language": "zh-CN", "Content-Type": "application/json"}
    r = client.post("/api/v1/organizations", content=b"x" * (2 * 1024 * 1024), headers=headers)
    assert r.status_code == 413
    assert (r.json()["code"], r.json()["title"]) == ("payload_too_large", "请求体过大")
    assert r.headers["Content-Language"] == "zh-CN"


def test_enum_labels_follow_accept_language(client: TestClient, world: World) -> None:
    zh = client.get("/api/v1/meta/enums", headers={**world.auth("v1"), "Accept-Language": "zh-CN"})
    en = client.get("/api/v1/meta/enums", headers={**world.auth("v1"), "Accept-Language": "en-US,en;q=0.9"})
    assert zh.headers["Content-Language"] == "zh-CN" and en.headers["Content-Language"] == "en"
    level_zh = {v["value"]: v for v in zh.json()["org_level"]}
    level_en = {v["value"]: v for v in en.json()["org_level"]}
    for value, item in level_zh.items():
        assert item["label"] == item["zh"]
        assert level_en[value]["label"] == level_en[value]["en"]
        assert (item["zh"], item["en"]) == (level_en[value]["zh"], level_en[value]["en"])


def _raised_codes() -> dict[str, str]:
    """Every literal problem code raised in app/ (ProblemError, conflict, problem_response), with its file."""
    found: dict[str, str] = {}
    for path in APP.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call):
                continue
            name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
            position = {"ProblemError": 1, "conflict": 0, "problem_response": 2}.get(str(name))
            if position is None or len(node.args) <= position:
                continue
            arg = node.args[position]
            candidates = [arg] if not isinstance(arg, ast.IfExp) else [arg.body, arg.orelse]
            for c in candidates:
                if isinstance(c, ast.Constant) and isinstance(c.value, str):
                    found.setdefault(c.value, str(path.relative_to(APP.parent)))
    return found


def test_every_code_has_a_chinese_title() -> None:
    codes = _raised_codes()
    assert len(codes) > 50
    codes.update({code: "app/core/errors.py" for code, _ in _TITLES.values()})
    # Codes built at run time: already_{post status}, duplicate_{id_number|phone}.
    codes.update({c: "app/services" for c in ("already_open", "already_closed", "duplicate_id_number",
                                               "duplicate_phone")})
    missing = {code: where for code, where in codes.items() if code not in MESSAGES}
    assert not missing, f"add these codes to app/core/i18n.py MESSAGES: {missing}"


def test_translated_details_are_sentences_and_titles_chinese() -> None:
    for code, message in MESSAGES.items():
        assert any("\u4e00" <= ch <= "\u9fff" for ch in message.zh), code
        for english, chinese in message.details.items():
            assert english and chinese and english != chinese, code
