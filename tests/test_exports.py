"""Exports: every list answers Accept: text/csv and the .xlsx media type with the WHOLE filtered result in the
caller's scope, streamed (bounded memory), UTF-8 with BOM, a header row, presented and masked as in JSON."""

from __future__ import annotations

import csv
import datetime as dt
import io
import tracemalloc
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy import func, insert, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.core import db as core_db
from app.core.pagination import XLSX_MEDIA_TYPE, _csv_cell, negotiate
from app.models.audit import AuditLog
from app.models.funds.budgets import ExecutionRow
from app.models.organizations import Organization
from app.models.people import Person
from tests.factories import World, id_number, make_org, make_person
from tests.pii_guard import unmasked_values

CSV = {"Accept": "text/csv"}
BOM = "\ufeff".encode()


def _csv(body: bytes) -> list[dict[str, str]]:
    assert body.startswith(BOM)
    return list(csv.DictReader(io.StringIO(body[len(BOM):].decode("utf-8"))))


def _people(db: Session, org_id: int, n: int, prefix: str) -> None:
    """n people in one statement (no PII but a masked-looking ID): cheap rows for a large export."""
    now = dt.datetime.now(dt.UTC)
    db.execute(insert(Person), [
        {"org_id": org_id, "name": f"{prefix}{i:06d}", "gender": "female" if i % 2 else "male",
         "member_status": "full", "status": "active", "id_number_masked": "513301********123X", "version": 1,
         "created_at": now, "updated_at": now}
        for i in range(n)
    ])


ROWS = 100_000


def _streamed_csv(client: TestClient, url: str, headers: dict[str, str]) -> tuple[int, int, bytes, bytes, int]:
    """Read an export chunk by chunk, keeping only its head and tail: (lines, bytes, head, tail, tracemalloc peak)."""
    lines = size = 0
    head = tail = b""
    tracemalloc.start()
    try:
        with client.stream("GET", url, headers=headers) as r:
            assert r.status_code == 200, r.read()
            assert r.headers["content-type"] == "text/csv; charset=utf-8"
            assert "content-length" not in r.headers  # streamed, not buffered
            for chunk in r.iter_bytes():
                if len(head) < 4096:
                    head += chunk[:4096]
                size += len(chunk)
                lines += chunk.count(b"\n")
                assert not unmasked_values(chunk.decode("utf-8", "ignore"))  # the PII guard, chunk by chunk
                tail = (tail + chunk)[-500:]
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return lines, size, head, tail, peak


def test_a_100000_row_export_streams_in_bounded_memory(app_client: TestClient, world: World, db: Session) -> None:
    _people(db, world.v1.id, ROWS, "导出")
    _people(db, world.v2.id, 50, "导出")  # same name, another village: out of v1's scope
    _people(db, world.v1.id, 1000, "小")
    headers = {**world.auth("v1"), **CSV}
    # A 1,000-row export first: its peak is what an export costs whatever its size.
    small_lines, _, _, _, small_peak = _streamed_csv(app_client, "/api/v1/people?q=小", headers)
    assert small_lines == 1001
    lines, size, head, tail, peak = _streamed_csv(app_client, "/api/v1/people?q=导出", headers)  # the filter applies
    assert head.startswith(BOM)
    header, first = head[len(BOM):].decode().split("\r\n")[:2]
    assert header.split(",")[:4] == ["id", "org_id", "name", "gender"]
    assert first.split(",")[2] == "导出000000" and "513301********123X" in first  # default order: by name
    assert tail.decode("utf-8", "ignore").rstrip().rsplit("\r\n", 1)[-1].split(",")[2] == f"导出{ROWS - 1:06d}"
    assert lines == ROWS + 1  # header + every row in scope: not one page, nothing from v2
    # The CSV alone is ~12 MB (as ORM objects and models the rows would be many times that). Measured: ~7 MB peak
    # for 1,000 rows and the same for 100,000: memory follows the chunk, not the result.
    assert size > 10_000_000
    assert peak < size / 1.5, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.1f} MB export"
    assert peak < 1.5 * small_peak + 1_000_000, f"peak {peak / 1e6:.1f} MB, {small_peak / 1e6:.1f} MB for 1,000 rows"


def test_exports_are_the_whole_filtered_result_in_scope(client: TestClient, world: World, db: Session) -> None:
    _people(db, world.v1.id, 250, "全量")  # more than the largest page
    _people(db, world.v2.id, 5, "全量")
    _people(db, world.v1.id, 3, "其他")
    rows = _csv(client.get("/api/v1/people?q=全量", headers={**world.auth("v1"), **CSV}).content)
    assert len(rows) == 250 and {r["org_id"] for r in rows} == {str(world.v1.id)}
    # The township sees both villages of its subtree... v2 is not under t1: still 250.
    assert len(_csv(client.get("/api/v1/people?q=全量", headers={**world.auth("t1"), **CSV}).content)) == 250
    assert len(_csv(client.get("/api/v1/people?q=全量", headers={**world.auth("city"), **CSV}).content)) == 255
    # Filters apply: v2 only, as the city asks for it.
    only_v2 = _csv(client.get(f"/api/v1/people?q=全量&org_id={world.v2.id}", headers={**world.auth("city"), **CSV}
                              ).content)
    assert len(only_v2) == 5
    # limit and offset apply only when given, and then exactly as for the JSON page.
    url = "/api/v1/people?q=全量&sort=-name&limit=7&offset=3"
    page = _csv(client.get(url, headers={**world.auth("v1"), **CSV}).content)
    as_json = client.get(url, headers=world.auth("v1")).json()["items"]
    assert [r["id"] for r in page] == [str(p["id"]) for p in as_json] and len(page) == 7
    # A village asking for an organisation outside its scope: 404 problem, as for JSON.
    r = client.get(f"/api/v1/people?org_id={world.v2.id}", headers={**world.auth("v1"), **CSV})
    assert r.status_code == 404 and r.headers["content-type"] == "application/problem+json"


def test_xlsx_is_the_whole_result_too(client: TestClient, world: World, db: Session) -> None:
    _people(db, world.v1.id, 230, "表格")
    r = client.get("/api/v1/people?q=表格", headers={**world.auth("v1"), "Accept": XLSX_MEDIA_TYPE})
    assert r.status_code == 200 and r.headers["content-type"] == XLSX_MEDIA_TYPE
    sheet = load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    header, *data = list(sheet.iter_rows(values_only=True))
    assert header[:3] == ("id", "org_id", "name") and len(data) == 230
    assert data[0][2] == "表格000000"


def test_csv_masks_personal_data_as_json_does(client: TestClient, world: World, db: Session) -> None:
    number = id_number("513321", "19700101")
    person = make_person(db, world.v1, name="李四", id_no=number, phone="13812345678")
    db.flush()
    url = f"/api/v1/people?org_id={world.v1.id}"
    # The village (no pii_read): masked, and the suite's PII guard reads this body too.
    [row] = [r for r in _csv(client.get(url, headers={**world.auth("v1"), **CSV}).content) if r["id"] == str(person.id)]
    [item] = [p for p in client.get(url, headers=world.auth("v1")).json()["items"] if p["id"] == person.id]
    assert row["id_number"] == item["id_number"] != number and row["phone"] == item["phone"] == "138****5678"
    assert row["birth_date"] == ""


def test_an_unmasked_export_is_audited_before_it_is_sent(client: TestClient, world: World, db: Session) -> None:
    number = id_number("513321", "19710101")
    person = make_person(db, world.v1, name="王五", id_no=number)
    db.flush()
    before = db.scalar(select(func.max(AuditLog.id))) or 0
    body = client.get(f"/api/v1/people?org_id={world.v1.id}", headers={**world.auth("city"), **CSV}).content
    [row] = [r for r in _csv(body) if r["id"] == str(person.id)]
    assert row["id_number"] == number  # the city holds pii_read
    audits = list(db.scalars(select(AuditLog).where(AuditLog.id > before, AuditLog.action == "person.pii_read")))
    assert audits and any(person.id in (a.after or {})["person_ids"] for a in audits)


def test_text_that_looks_like_a_formula_is_quoted_in_csv(client: TestClient, world: World, db: Session) -> None:
    make_org(db, world.t1, level="village", domain="community", name="=cmd|'/c calc'!A1", code=None)
    rows = _csv(client.get("/api/v1/organizations?q=cmd", headers={**world.auth("city"), **CSV}).content)
    assert [r["name"] for r in rows] == ["'=cmd|'/c calc'!A1"]
    assert rows[0]["id"].isdigit()  # numbers are not quoted


@pytest.mark.parametrize(("accept", "expected"), [
    ("", None),
    ("*/*", None),
    ("application/json", None),
    ("text/csv", "text/csv"),
    ("text/csv, application/json", "text/csv"),  # equal q: the one named first
    ("application/json, text/csv", None),
    ("application/json;q=0.5, text/csv", "text/csv"),  # the higher q wins
    ("text/csv;q=0.4, application/json;q=0.9", None),
    (f"text/csv;q=0.5, {XLSX_MEDIA_TYPE}", XLSX_MEDIA_TYPE),
    ("text/csv;q=0, */*", None),  # q=0: not acceptable
    ("TEXT/CSV", "text/csv"),
    ("text/csv;q=abc", None),
    ("image/png", None),  # nothing we make: JSON, the default (API.md has no 406)
    ("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8", None),  # a browser
])
def test_accept_negotiation(accept: str, expected: str | None) -> None:
    assert negotiate(accept) == expected


def test_accept_with_q_values_over_http(client: TestClient, world: World) -> None:
    auth = world.auth("city")
    r = client.get("/api/v1/organizations", headers={**auth, "Accept": "application/json;q=0.5, text/csv"})
    assert r.headers["content-type"].startswith("text/csv") and r.headers["vary"] == "Accept"
    r = client.get("/api/v1/organizations", headers={**auth, "Accept": "text/csv;q=0.5, application/json"})
    assert r.json()["total"] >= 6
    r = client.get("/api/v1/organizations", headers={**auth, "Accept": "image/png"})
    assert r.status_code == 200 and r.json()["total"] >= 6


def test_the_budget_execution_report_exports_through_the_same_helper(client: TestClient, world: World) -> None:
    url = "/api/v1/budgets/execution?year=2024"
    csv_ = client.get(url, headers={**world.auth("city"), **CSV})
    assert csv_.status_code == 200, csv_.text
    assert csv_.content.startswith(BOM) and csv_.headers["content-disposition"].endswith('-2024.csv"')
    xlsx = client.get(url, headers={**world.auth("city"), "Accept": XLSX_MEDIA_TYPE})
    assert xlsx.status_code == 200 and xlsx.headers["content-type"] == XLSX_MEDIA_TYPE
    sheet = load_workbook(io.BytesIO(xlsx.content), read_only=True).worksheets[0]
    header = list(next(sheet.iter_rows(max_row=1, values_only=True)))
    assert header == next(csv.reader(io.StringIO(csv_.content[len(BOM):].decode()))) == list(ExecutionRow.model_fields)


def _list_operations(client: TestClient) -> list[tuple[str, str]]:
    spec = client.get("/openapi.json").json()
    found = []
    for path, item in spec["paths"].items():
        get = item.get("get")
        if get and "{" not in path and "text/csv" in get["responses"].get("200", {}).get("content", {}) \
                and "items" in str(get["responses"]["200"]["content"].get("application/json", {})):
            found.append((get["operationId"], path))
    return found


def test_every_list_exports_what_its_json_shows(client: TestClient, world: World, db: Session) -> None:
    """For every list (as the city and as a village): the CSV of the first page is the JSON page, cell for cell
    (same presentation, same masking), and the export without limit is the whole result (the JSON's total)."""
    make_person(db, world.v1, name="赵六", id_no=id_number("513321", "19750505"), phone="13900001111")
    operations = _list_operations(client)
    assert len(operations) >= 35
    exported = 0
    for who in ("city", "v1"):
        for operation_id, path in operations:
            as_json = client.get(f"{path}?limit=200", headers=world.auth(who))
            if as_json.status_code != 200:
                continue  # a list that needs a filter (e.g. a year) or a permission this role lacks
            page = as_json.json()
            whole = client.get(path, headers={**world.auth(who), **CSV})
            assert whole.status_code == 200, (operation_id, whole.text)
            rows = _csv(whole.content)
            assert len(rows) == page["total"], operation_id
            first = _csv(client.get(f"{path}?limit=200", headers={**world.auth(who), **CSV}).content)
            expected = [{k: _as_cell(v) for k, v in item.items()} for item in page["items"]]
            assert first == expected, operation_id
            exported += bool(rows)
    assert exported >= 10  # not vacuous: lists with rows were compared


def _as_cell(value: Any) -> str:
    return str(_csv_cell(value))


def test_an_export_reads_one_read_only_snapshot(engine: Engine, database_url: str,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """The session an export streams from (its own: the request's has closed) sees one snapshot and cannot write;
    on PostgreSQL it is REPEATABLE READ, READ ONLY, and the pooled connection goes back to the defaults."""
    own = core_db.create_db_engine(database_url, pool_size=1)
    monkeypatch.setattr(core_db._holder, "factory", sessionmaker(bind=own, expire_on_commit=False, autoflush=False))
    pg = own.dialect.name == "postgresql"
    try:
        with own.begin() as c:
            c.execute(text("CREATE TABLE export_snapshot_probe (x integer)"))
        with core_db.read_snapshot() as s:
            assert s.scalar(text("SELECT count(*) FROM export_snapshot_probe")) == 0
            with own.begin() as other:  # a writer commits while the export is being read
                other.execute(text("INSERT INTO export_snapshot_probe VALUES (1)"))
            assert s.scalar(text("SELECT count(*) FROM export_snapshot_probe")) == 0  # still the export's snapshot
            if pg:
                assert s.scalar(text("SHOW transaction_isolation")) == "repeatable read"
                assert s.scalar(text("SHOW transaction_read_only")) == "on"
        with core_db.read_snapshot() as s:
            assert s.scalar(text("SELECT count(*) FROM export_snapshot_probe")) == 1  # a new export, a new snapshot
        with pytest.raises(RuntimeError, match="read-only"), core_db.read_snapshot() as s:
            s.add(Organization(level="village", domain="community", name="x", path="/x/"))
            s.flush()
        if pg:
            with own.connect() as a, own.connect() as b:
                for c in (a, b):
                    assert c.scalar(text("SHOW transaction_isolation")) == "read committed"
                    assert c.scalar(text("SHOW transaction_read_only")) == "off"
    finally:
        with own.begin() as c:
            c.execute(text("DROP TABLE IF EXISTS export_snapshot_probe"))
        own.dispose()
