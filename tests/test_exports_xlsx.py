"""Lists answer `Accept: application/vnd.openxmlformats-officedocument.spreadsheetml.sheet` with an .xlsx of
the same page: same filters, same scope, personal data masked as in JSON."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest
from fastapi.testclient import TestClient
from openpyxl import load_workbook
from sqlalchemy.orm import Session

from app.core.config import get_settings
from app.core.pagination import XLSX_MEDIA_TYPE
from tests.factories import World, id_number, make_org, make_person

from test_races import race  # isort: skip

XLSX = {"Accept": XLSX_MEDIA_TYPE}


def _rows(body: bytes) -> list[dict[str, Any]]:
    book = load_workbook(io.BytesIO(body), read_only=True)
    [sheet] = book.worksheets
    header, *rows = [list(r) for r in sheet.iter_rows(values_only=True)]
    return [dict(zip(header, r, strict=True)) for r in rows]


def test_organizations_xlsx_follows_filters_and_scope(client: TestClient, world: World) -> None:
    r = client.get(f"/api/v1/organizations?org_id={world.t1.id}&subtree=true&sort=code",
                   headers={**world.auth("t1"), **XLSX})
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == XLSX_MEDIA_TYPE
    assert r.headers["content-disposition"] == 'attachment; filename="organizations.xlsx"'
    rows = _rows(r.content)
    as_json = client.get(f"/api/v1/organizations?org_id={world.t1.id}&subtree=true&sort=code",
                         headers=world.auth("t1")).json()["items"]
    assert [row["id"] for row in rows] == [o["id"] for o in as_json]
    assert {row["code"] for row in rows} == {world.t1.code, world.v1.code, world.v1b.code}
    assert rows[0]["name"] == world.t1.name  # Chinese text intact
    assert isinstance(rows[0]["id"], int)
    # Out of scope: the village sees only itself, whatever it asks for.
    mine = _rows(client.get("/api/v1/organizations", headers={**world.auth("v1"), **XLSX}).content)
    assert [row["id"] for row in mine] == [world.v1.id]
    # Paging is the JSON's.
    one = _rows(client.get("/api/v1/organizations?limit=1&offset=1&sort=id",
                           headers={**world.auth("city"), **XLSX}).content)
    assert len(one) == 1


def test_text_that_looks_like_a_formula_stays_text(client: TestClient, world: World, db: Session) -> None:
    make_org(db, world.t1, level="village", domain="community", name="=HYPERLINK(\"http://x\")\x07", code=None)
    r = client.get("/api/v1/organizations?q=HYPERLINK", headers={**world.auth("city"), **XLSX})
    assert r.status_code == 200, r.text
    book = load_workbook(io.BytesIO(r.content))
    cell = next(c for row in book.active.iter_rows() for c in row if str(c.value).startswith("=HYPER"))
    assert cell.data_type == "s" and cell.value == "=HYPERLINK(\"http://x\")"


def test_people_xlsx_masks_personal_data_as_json_does(client: TestClient, world: World, db: Session) -> None:
    number = id_number("513321", "19620315")
    person = make_person(db, world.v1, id_no=number, name="张三")
    db.flush()
    got = client.get(f"/api/v1/people?org_id={world.v1.id}", headers={**world.auth("t1"), **XLSX})
    assert got.status_code == 200, got.text
    [row] = [r for r in _rows(got.content) if r["id"] == person.id]
    [item] = [p for p in client.get(f"/api/v1/people?org_id={world.v1.id}", headers=world.auth("t1")).json()["items"]
              if p["id"] == person.id]
    assert row["name"] == "张三"
    assert row["id_number"] == item["id_number"] != number
    assert number.encode() not in got.content and b"1962-03-15" not in got.content


def test_json_stays_the_default_and_wins_when_listed_first(client: TestClient, world: World) -> None:
    headers = {**world.auth("city"), "Accept": f"application/json, {XLSX_MEDIA_TYPE}"}
    assert client.get("/api/v1/organizations", headers=headers).json()["total"] >= 6


def test_the_format_named_first_wins(client: TestClient, world: World) -> None:
    both = client.get("/api/v1/organizations", headers={**world.auth("city"), "Accept": f"text/csv, {XLSX_MEDIA_TYPE}"})
    assert both.headers["content-type"].startswith("text/csv")
    both = client.get("/api/v1/organizations", headers={**world.auth("city"), "Accept": f"{XLSX_MEDIA_TYPE}, text/csv"})
    assert both.headers["content-type"] == XLSX_MEDIA_TYPE


def test_lists_document_the_xlsx_answer(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    content = spec["paths"]["/api/v1/organizations"]["get"]["responses"]["200"]["content"]
    assert XLSX_MEDIA_TYPE in content and "text/csv" in content


@pytest.mark.parametrize(("held", "probe"), [
    ([XLSX_MEDIA_TYPE] * 3, None), (["text/csv"] * 3, None), ([XLSX_MEDIA_TYPE] * 2, "text/csv"),
], ids=["workbooks, a read", "csv exports, a read", "workbooks, a csv export"])
def test_exports_being_written_leave_the_threads_to_other_requests(
    world: World, monkeypatch: pytest.MonkeyPatch, held: list[str], probe: str | None
) -> None:
    """Exports whose first step in a thread is held (a large list) on a pool of two threads: a list read, or a
    CSV export beside two workbooks, sent while they are held, is answered before any of them goes on.

    An export's steps used to run in threads of the routes' pool, a workbook holding its thread to the end, so
    two exports held every thread and the read waited for them (and a CSV step waiting for SQLite's write lock
    could hold a thread the lock's holder needed); a CSV export's steps queued behind two workbooks."""
    from app.core import pagination
    from app.main import app

    monkeypatch.setattr(get_settings(), "worker_threads", 2)
    begun, release, let_go = threading.Event(), threading.Event(), []
    write_xlsx, csv_body = pagination._write_xlsx, pagination._csv_body

    def held_step() -> None:
        begun.set()
        release.wait(10)
        let_go.append(True)

    def held_xlsx(*args: Any) -> None:
        held_step()
        write_xlsx(*args)

    def held_csv(*args: Any) -> Iterator[bytes]:
        held_step()
        yield from csv_body(*args)

    monkeypatch.setattr(pagination, "_write_xlsx", held_xlsx)
    if probe is None:
        monkeypatch.setattr(pagination, "_csv_body", held_csv)
    city = world.auth("city")
    finished: list[str] = []
    with TestClient(app) as http:

        def export(media_type: str) -> Any:
            answer = http.get("/api/v1/organizations", headers={**city, "Accept": media_type})
            finished.append("export")
            return answer

        def probing() -> Any:
            begun.wait(10)
            time.sleep(0.05)  # the other exports have begun or queued by now
            try:
                return http.get("/api/v1/organizations", params={"limit": 5},
                                headers={**city, "Accept": probe or "application/json"})
            finally:
                finished.append(f"probe answered after {len(let_go)} held steps went on")
                release.set()

        answers = race([partial(export, media) for media in held] + [probing])
    assert [a.status_code for a in answers] == [200] * len(answers), [a.text for a in answers]
    for answer, media_type in zip(answers[:-1], held, strict=True):
        assert answer.headers["content-type"].startswith(media_type) and len(answer.content) > 100
    assert finished[0] == "probe answered after 0 held steps went on", finished


@pytest.fixture
def one_export_at_a_time(monkeypatch: pytest.MonkeyPatch) -> tuple[threading.Event, threading.Event]:
    """Room for one export, whose first CSV step is held until `release` is set; `begun` is set when it holds."""
    from app.core import pagination

    monkeypatch.setattr(pagination, "EXPORTS_AT_ONCE", 1)
    begun, release = threading.Event(), threading.Event()
    csv_body = pagination._csv_body

    def held_csv(*args: Any) -> Iterator[bytes]:
        if not begun.is_set():
            begun.set()
            release.wait(10)
        yield from csv_body(*args)

    monkeypatch.setattr(pagination, "_csv_body", held_csv)
    return begun, release


def test_an_export_past_the_open_ones_waits_its_turn(
    world: World, one_export_at_a_time: tuple[threading.Event, threading.Event]
) -> None:
    """Each export holds a database connection until its last row is sent; a burst of them took the whole pool.
    One more than EXPORTS_AT_ONCE waits in the event loop and goes on when one ends; other requests don't wait."""
    from app.main import app

    begun, release = one_export_at_a_time
    city = {**world.auth("city"), "Accept": "text/csv"}
    order: list[str] = []
    with TestClient(app) as http:
        def export(name: str) -> Any:
            answer = http.get("/api/v1/organizations", headers=city)
            order.append(name)
            return answer

        def second() -> Any:
            begun.wait(10)
            return export("second")

        def probe() -> Any:
            begun.wait(10)
            time.sleep(0.1)  # the second export is waiting by now
            try:
                answer = http.get("/api/v1/organizations", headers=world.auth("city"))
                order.append("read")
                return answer
            finally:
                release.set()

        answers = race([partial(export, "first"), second, probe])
    assert [a.status_code for a in answers] == [200, 200, 200], [a.text for a in answers]
    assert order[0] == "read" and order.index("first") < order.index("second"), order
    assert answers[0].content == answers[1].content


def test_an_export_that_waits_too_long_answers_503_as_documented(
    world: World, monkeypatch: pytest.MonkeyPatch, one_export_at_a_time: tuple[threading.Event, threading.Event]
) -> None:
    from app.core import pagination
    from app.main import app

    monkeypatch.setattr(pagination, "EXPORT_WAIT_SECONDS", 0.2)
    begun, release = one_export_at_a_time
    city = {**world.auth("city"), "Accept": "text/csv"}
    with TestClient(app) as http:
        def late() -> Any:
            begun.wait(10)
            try:
                return http.get("/api/v1/organizations", headers={**city, "Accept-Language": "zh-CN"})
            finally:
                release.set()

        first, refused = race([lambda: http.get("/api/v1/organizations", headers=city), late])
        after = http.get("/api/v1/organizations", headers=city)  # its turn came back
    assert first.status_code == 200 and after.status_code == 200
    assert refused.status_code == 503 and refused.headers["Retry-After"].isdigit()
    assert refused.headers["content-type"].startswith("application/problem+json")
    body = refused.json()
    assert body["code"] == "service_unavailable" and body["detail"] == "正在生成的导出文件过多，请稍后重试。"
    contract = app.openapi()
    shared = contract["paths"]["/api/v1/organizations"]["get"]["responses"]["503"]["$ref"].rsplit("/", 1)[-1]
    documented = contract["components"]["responses"][shared]
    example = documented["content"]["application/problem+json"]["examples"]["too_many_exports"]["value"]
    assert {k: body[k] for k in ("type", "status", "code")} == {k: example[k] for k in ("type", "status", "code")}
    assert "Retry-After" in documented["headers"]


def test_rows_in_memory_take_no_reading_turn(world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    """Only an export that reads the database waits for a turn; a report's rows are in memory already."""
    from app.core import pagination
    from app.main import app

    monkeypatch.setattr(pagination, "EXPORTS_AT_ONCE", 0)  # no reading turn is ever free
    monkeypatch.setattr(pagination, "EXPORT_WAIT_SECONDS", 0.1)
    city = world.auth("city")
    with TestClient(app) as http:
        for media_type in ("text/csv", XLSX_MEDIA_TYPE):
            listed = http.get("/api/v1/organizations", headers={**city, "Accept": media_type})
            assert listed.status_code == 503, listed.text
            report = http.get(f"/api/v1/budgets/execution?year=2019&org_id={world.city.id}&subtree=true",
                              headers={**city, "Accept": media_type})
            assert report.status_code == 200 and report.headers["content-type"].startswith(media_type), report.text


def test_an_export_cut_short_closes_its_snapshot_before_its_turn_is_given_back() -> None:
    import asyncio

    from starlette.requests import ClientDisconnect

    from app.core import pagination

    closed: list[bool] = []

    def source() -> Iterator[list[dict[str, Any]]]:  # stands for the read snapshot (app.core.pagination._streamed)
        try:
            for i in range(1000):
                yield [{"n": i}]
        finally:
            closed.append(True)

    async def main() -> None:
        response = pagination.ExportResponse(source, ["n"], "cut", "text/csv")
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)
            if len(sent) == 3:
                raise OSError("the client went away")

        async def receive() -> Any:
            await asyncio.sleep(60)

        scope = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "path": "/", "headers": []}
        with pytest.raises(ClientDisconnect):
            await response(scope, receive, send)
        assert closed == [True]  # closed by the time the turn came back, not when the collector finds it
        assert not pagination._export_turns().locked()

    asyncio.run(main())


@pytest.mark.parametrize("media_type", ["text/csv", XLSX_MEDIA_TYPE])
def test_an_export_whose_client_leaves_while_it_waits_reads_nothing_and_holds_no_turn(media_type: str) -> None:
    """A client that gave up while its export waited for a turn (up to EXPORT_WAIT_SECONDS) is no longer waited
    for: the export neither reads nor sends, later takes no turn, and is logged as 499, not 500."""
    import asyncio

    from app.core import pagination
    from app.core.observability import CLIENT_LEFT, CLIENT_LEFT_SCOPE_KEY

    read: list[bool] = []

    def source() -> Iterator[list[dict[str, Any]]]:  # stands for the read snapshot
        read.append(True)
        yield [{"n": 1}]

    async def main() -> None:
        turns = pagination._export_turns()
        for _ in range(pagination.EXPORTS_AT_ONCE):  # every reading turn is taken
            await turns.acquire()
        response = pagination.ExportResponse(source, ["n"], "left", media_type)
        sent: list[Any] = []
        messages = iter([{"type": "http.request", "body": b"", "more_body": False}, {"type": "http.disconnect"}])

        async def receive() -> Any:
            await asyncio.sleep(0.05)
            return next(messages)

        async def send(message: Any) -> None:
            sent.append(message)

        scope: dict[str, Any] = {"type": "http", "asgi": {"spec_version": "2.4"}, "method": "GET", "path": "/",
                                 "headers": []}
        await asyncio.wait_for(response(scope, receive, send), 5)  # not EXPORT_WAIT_SECONDS (30)
        assert sent == [] and read == []
        assert scope[CLIENT_LEFT_SCOPE_KEY] is True and CLIENT_LEFT == 499
        for _ in range(pagination.EXPORTS_AT_ONCE):
            turns.release()
        # Its wait took no turn with it: all of them are free again, and the workbooks' one too.
        for _ in range(pagination.EXPORTS_AT_ONCE):
            await asyncio.wait_for(turns.acquire(), 1)
        assert turns.locked()
        await asyncio.wait_for(pagination._workbook_turns().acquire(), 1)

    asyncio.run(main())


def test_a_turn_given_as_its_waiter_leaves_goes_to_the_next_waiter() -> None:
    """app.core.loops.turn with `gone`: whichever ends first, the wait or the client, no place is lost or kept."""
    import asyncio

    from app.core.loops import Abandoned, turn

    def busy() -> Exception:
        return TimeoutError("busy")

    async def main() -> None:
        gate = asyncio.Semaphore(1)
        await gate.acquire()
        left = asyncio.Event()
        waiting = asyncio.ensure_future(turn(gate, within=5, busy=busy, gone=left.wait).__aenter__())
        await asyncio.sleep(0.01)
        gate.release()  # the place goes to the waiter ...
        left.set()  # ... as its client leaves, before it runs again
        with pytest.raises(Abandoned):
            await waiting
        await asyncio.wait_for(gate.acquire(), 1)  # given back
        gate.release()

        # Nobody leaves and no place comes: busy() after `within`.
        await gate.acquire()
        with pytest.raises(TimeoutError, match="busy"):
            async with turn(gate, within=0.05, busy=busy, gone=asyncio.Event().wait):
                pass
        gate.release()
        assert not gate.locked()
        # A request cancelled while it waits takes nothing with it either, whenever the cancellation comes: before
        # the place is given, as it is given, or in any of the loop's turns after.
        for gate in (asyncio.Semaphore(1), asyncio.Lock()):
            for turns_after in range(8):
                await gate.acquire()

                async def waiter(gate: Any = gate) -> None:
                    async with turn(gate, within=5, busy=busy, gone=asyncio.Event().wait):
                        pass

                task = asyncio.ensure_future(waiter())
                await asyncio.sleep(0.01)
                gate.release()
                for _ in range(turns_after):
                    await asyncio.sleep(0)
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                await asyncio.wait_for(gate.acquire(), 1)  # free again, whichever way it went
                gate.release()

        # A failure reading the request while waiting is that failure, not a client gone.
        async def broken() -> None:
            raise OSError("reading the request failed")

        await gate.acquire()
        with pytest.raises(OSError, match="reading the request failed"):
            async with turn(gate, within=5, busy=busy, gone=broken):
                pass
        gate.release()
        await asyncio.wait_for(gate.acquire(), 1)

    asyncio.run(main())


def test_a_request_whose_client_left_is_counted_as_499() -> None:
    import asyncio

    from app.core.observability import CLIENT_LEFT_SCOPE_KEY, REGISTRY, ObservabilityMiddleware

    async def left(scope: Any, _receive: Any, _send: Any) -> None:
        scope[CLIENT_LEFT_SCOPE_KEY] = True  # as an export whose client left while it waited

    async def silent(_scope: Any, _receive: Any, _send: Any) -> None:
        pass  # returned without an answer and without saying why: still a 500

    def count(status: str) -> float:
        labels = {"method": "GET", "route": "unmatched", "status": status}
        return REGISTRY.get_sample_value("http_requests_total", labels) or 0.0

    async def call(app: Any) -> None:
        async def receive() -> Any:
            return {"type": "http.disconnect"}

        async def send(_message: Any) -> None:
            raise AssertionError("nothing is sent")

        scope = {"type": "http", "method": "GET", "path": "/x", "query_string": b"", "headers": []}
        await ObservabilityMiddleware(app, max_body_bytes=1024)(scope, receive, send)

    before_499, before_500 = count("499"), count("500")
    asyncio.run(call(left))
    assert (count("499"), count("500")) == (before_499 + 1, before_500)
    asyncio.run(call(silent))
    assert (count("499"), count("500")) == (before_499 + 1, before_500 + 1)
