from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import event, func, select
from sqlalchemy.orm import Session

from app.core.security import decrypt_pii, pii_lookup_hash
from app.models.audit import AuditLog
from app.models.people import Person, Position
from app.services import people as service
from tests import pii_guard
from tests.factories import World, id_number, make_person, make_position

D = dt.date
MASKED_ID = re.compile(r"^\d{6}\*{8}[\dX]{4}$")
MASKED_MOBILE = re.compile(r"^1\d{2}\*{4}\d{4}$")
_phones = itertools.count(10_000_000)
NO_PII_ROLES = ("t1", "t2", "v1", "v2")


def phone() -> str:
    return f"138{next(_phones) % 100_000_000:08d}"


def person_body(org_id: int, **kw: Any) -> dict[str, Any]:
    body = {"org_id": org_id, "name": "扎西", "gender": "male", "member_status": "full",
            "joined_party_on": "2001-07-01", "ethnicity": "藏族"}
    body.update(kw)
    return body


def audit_rows(db: Session, action: str) -> list[AuditLog]:
    return list(db.scalars(select(AuditLog).where(AuditLog.action == action).order_by(AuditLog.id)))


def count(db: Session, model: Any) -> int:
    return db.scalar(select(func.count()).select_from(model)) or 0


@contextmanager
def counting_statements(db: Session) -> Iterator[list[str]]:
    statements: list[str] = []
    conn = db.get_bind()

    def before(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        statements.append(statement)

    event.listen(conn, "before_cursor_execute", before)
    try:
        yield statements
    finally:
        event.remove(conn, "before_cursor_execute", before)


def etag(client: TestClient, url: str, who: str, world: World) -> str:
    return client.get(url, headers=world.auth(who)).headers["ETag"]


# --- create, read, masking --------------------------------------------------------------


def test_township_admin_creates_person_masked_and_encrypted_at_rest(
    client: TestClient, world: World, db: Session
) -> None:
    number, mobile = id_number("513301", "19800101"), phone()
    r = client.post("/api/v1/people", headers=world.auth("t1"),
                    json=person_body(world.v1.id, id_number=number, phone=mobile))
    assert r.status_code == 201, r.text
    body = r.json()
    assert r.headers["Location"] == f"/api/v1/people/{body['id']}"
    assert r.headers["ETag"] == '"1"'
    assert body["id_number"] == number[:6] + "********" + number[-4:]
    assert body["phone"] == mobile[:3] + "****" + mobile[-4:]
    assert body["birth_date"] is None and body["birth_year"] == 1980
    stored = db.get(Person, body["id"])
    assert stored is not None
    assert number not in (stored.id_number_cipher or "") and decrypt_pii(stored.id_number_cipher or "") == number
    assert stored.id_number_hash == pii_lookup_hash(number) and stored.birth_date == D(1980, 1, 1)
    [row] = audit_rows(db, "person.create")
    assert row.after is not None and row.after["id_number_masked"] == body["id_number"]
    assert row.after["birth_date"] == "1980-**-**"
    assert not audit_rows(db, "person.pii_read")


def test_a_landline_is_masked_whatever_its_length(client: TestClient, world: World, db: Session) -> None:
    """The mask kept three digits and four: a 7-digit landline was shown whole (found in review)."""
    for number, masked in (("0836123", "08****3"), ("08361234", "08****34"), ("08362812345", "083******45")):
        r = client.post("/api/v1/people", headers=world.auth("t1"), json=person_body(world.v1.id, phone=number))
        assert r.status_code == 201, r.text
        assert r.json()["phone"] == masked
        [row] = [a for a in audit_rows(db, "person.create") if a.entity_id == str(r.json()["id"])]
        assert row.after is not None and row.after["phone_masked"] == masked and number not in json.dumps(row.after)


def test_a_mask_stored_before_the_fix_is_masked_again_on_the_way_out(client: TestClient, world: World,
                                                                     db: Session) -> None:
    person = make_person(db, world.v1, name="旧掩码")
    person.phone_masked = "0836123"  # as the old mask stored a 7-digit landline: whole
    db.flush()
    shown = client.get(f"/api/v1/people/{person.id}", headers=world.auth("v1"))
    assert shown.status_code == 200 and shown.json()["phone"] == "08****3", shown.text
    for old, new in (("083*1234", "08****34"), ("083**2345", "08*****45"), ("138****5678", "138****5678")):
        assert service.to_public(person.model_copy(update={"phone_masked": old}), reveal=False).phone == new
    # The history rebuilt from audit rows, and the rows written from now on, show it masked too.
    renamed = client.patch(f"/api/v1/people/{person.id}", json={"phone": "0836765432"},
                           headers={**world.auth("v1"), "If-Match": shown.headers["ETag"]})
    assert renamed.status_code == 200, renamed.text
    history = client.get(f"/api/v1/people/{person.id}/history", headers=world.auth("v1"))
    assert history.status_code == 200 and "0836123" not in history.text, history.text
    assert "0836123" not in json.dumps([a.before for a in audit_rows(db, "person.update")])
    assert "0836123" not in json.dumps([a.after for a in audit_rows(db, "person.update")])


def test_a_number_typed_in_full_width_digits_is_the_same_number(client: TestClient, world: World) -> None:
    """Full-width digits made a second keyed hash for the same phone: two people with one number (found in
    review). An ID number with spaces around it is the same number too."""
    mobile = phone()
    wide = mobile.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    first = client.post("/api/v1/people", headers=world.auth("t1"), json=person_body(world.v1.id, phone=mobile))
    assert first.status_code == 201, first.text
    again = client.post("/api/v1/people", headers=world.auth("t1"), json=person_body(world.v1.id, phone=wide))
    assert again.status_code == 409 and again.json()["code"] == "duplicate_phone", again.text
    other = client.post("/api/v1/people", headers=world.auth("t1"),
                        json=person_body(world.v1.id, phone="١٣٨٠٠١٣٨٠٠٠"))  # Arabic-Indic digits: no number
    assert other.status_code == 422, other.text
    number = id_number("513301", "19790505", seq=707)
    spaced = client.post("/api/v1/people", headers=world.auth("t1"),
                         json=person_body(world.v1.id, id_number=f"  {number}  "))
    assert spaced.status_code == 201, spaced.text
    found = client.post("/api/v1/people/lookup", headers=world.auth("t1"), json={"id_number": number})
    assert found.status_code == 200 and found.json()["id"] == spaced.json()["id"]


def test_only_a_caller_who_may_read_birth_dates_sorts_by_them(client: TestClient, world: World) -> None:
    """Sorting by a hidden birth date places it among dates the caller chooses for people of their own."""
    hidden = client.get("/api/v1/people", headers=world.auth("t1"), params={"sort": "birth_date"})
    assert hidden.status_code == 422 and hidden.json()["code"] == "invalid_sort", hidden.text
    assert client.get("/api/v1/people", headers=world.auth("t1"), params={"sort": "-birth_date"}).status_code == 422
    assert client.get("/api/v1/people", headers=world.auth("city"), params={"sort": "birth_date"}).status_code == 200


@pytest.mark.parametrize("who", NO_PII_ROLES)
def test_every_role_without_pii_read_sees_masked_values(
    client: TestClient, world: World, db: Session, who: str
) -> None:
    org = {"t1": world.v1, "t2": world.v2, "v1": world.v1, "v2": world.v2}[who]
    number, mobile = id_number("513321", "19620315"), phone()
    person = make_person(db, org, id_no=number, phone=mobile)
    person.birth_date = D(1962, 3, 15)
    db.flush()
    listed = client.get(f"/api/v1/people?org_id={org.id}", headers=world.auth(who))
    got = client.get(f"/api/v1/people/{person.id}", headers=world.auth(who))
    found = client.post("/api/v1/people/lookup", json={"phone": mobile}, headers=world.auth(who))
    csv = client.get(f"/api/v1/people?org_id={org.id}", headers={**world.auth(who), "Accept": "text/csv"})
    assert listed.status_code == got.status_code == found.status_code == csv.status_code == 200
    [item] = [p for p in listed.json()["items"] if p["id"] == person.id]
    for shown in (item, got.json(), found.json()):
        assert MASKED_ID.match(shown["id_number"]) and shown["id_number"].startswith("513321")
        assert MASKED_MOBILE.match(shown["phone"])
        assert shown["birth_date"] is None and shown["birth_year"] == 1962
    assert number not in csv.text and mobile not in csv.text and "1962-03-15" not in csv.text
    assert not audit_rows(db, "person.pii_read")


@pytest.mark.parametrize("who", ["city", "auditor"])
def test_city_admin_and_auditor_read_unmasked_and_each_read_is_audited(
    client: TestClient, world: World, db: Session, who: str
) -> None:
    number, mobile = id_number(), phone()
    a = make_person(db, world.v1, id_no=number, phone=mobile, name="甲")
    b = make_person(db, world.v1, name="乙")
    got = client.get(f"/api/v1/people/{a.id}", headers=world.auth(who))
    assert got.status_code == 200
    assert got.json()["id_number"] == number and got.json()["phone"] == mobile
    [row] = audit_rows(db, "person.pii_read")
    assert row.entity == "person" and row.entity_id == str(a.id) and row.after == {"person_ids": [a.id]}
    assert row.username == world.users[who].username
    listed = client.get(f"/api/v1/people?org_id={world.v1.id}", headers=world.auth(who))
    assert listed.status_code == 200
    assert {p["id_number"] for p in listed.json()["items"]} >= {number}
    rows = audit_rows(db, "person.pii_read")
    assert len(rows) == 2 and rows[1].after is not None
    assert sorted(rows[1].after["person_ids"]) == sorted([a.id, b.id])
    # an empty page reveals nothing and records nothing
    client.get("/api/v1/people?q=nobody-like-this", headers=world.auth(who))
    assert len(audit_rows(db, "person.pii_read")) == 2


def test_personal_data_never_reaches_audit_rows_or_logs(
    client: TestClient, world: World, db: Session, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    first, second, mobile = id_number(), id_number(), phone()
    h = world.auth("city")
    created = client.post("/api/v1/people", headers=h, json=person_body(world.v1.id, id_number=first, phone=mobile))
    assert created.status_code == 201
    url = f"/api/v1/people/{created.json()['id']}"
    r = client.patch(url, headers={**h, "If-Match": created.headers["ETag"]}, json={"id_number": second})
    assert r.status_code == 200, r.text
    assert r.json()["id_number"] == second
    dumped = json.dumps([[row.before, row.after] for row in db.scalars(select(AuditLog))], ensure_ascii=False)
    for secret in (first, second, mobile, first[6:14], second[6:14]):
        assert secret not in dumped
        assert secret not in caplog.text
    [update] = audit_rows(db, "person.update")
    assert update.before is not None and update.after is not None
    assert update.before["id_number_masked"] == first[:6] + "********" + first[-4:]
    assert update.after["id_number_masked"] == second[:6] + "********" + second[-4:]


def test_lookup_is_by_body_and_answers_only_within_scope(client: TestClient, world: World, db: Session) -> None:
    number = id_number()
    person = make_person(db, world.v1, id_no=number)
    r = client.post("/api/v1/people/lookup", json={"id_number": number}, headers=world.auth("t1"))
    assert r.status_code == 200 and r.json()["id"] == person.id
    assert client.post("/api/v1/people/lookup", json={"id_number": number},
                       headers=world.auth("v2")).status_code == 404
    assert client.post("/api/v1/people/lookup", json={"id_number": id_number()},
                       headers=world.auth("t1")).status_code == 404
    both = client.post("/api/v1/people/lookup", json={"id_number": number, "phone": phone()},
                       headers=world.auth("t1"))
    assert both.status_code == 422
    # a number in a URL is refused rather than searched
    r = client.get(f"/api/v1/people?q={number}", headers=world.auth("t1"))
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["query", "q"]


def test_every_lookup_is_audited_and_a_caller_gets_so_many(client: TestClient, world: World, db: Session,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    """A masked ID number shows its region and last four digits, and the person's birth year: some thirty numbers to
    try against the lookup for the whole of it (found in review). Misses are audited too, and a caller gets
    LOOKUP_LIMIT lookups per LOOKUP_WINDOW."""
    monkeypatch.setattr(service, "LOOKUP_LIMIT", 3)
    number = id_number(seq=913)
    person = make_person(db, world.v1, id_no=number)
    misses = [id_number(seq=914), id_number(seq=915)]
    for guess in misses:
        r = client.post("/api/v1/people/lookup", json={"id_number": guess}, headers=world.auth("v1"))
        assert r.status_code == 404 and r.json()["code"] == "not_found", r.text
    hit = client.post("/api/v1/people/lookup", json={"id_number": number}, headers=world.auth("v1"))
    assert hit.status_code == 200 and hit.json()["id"] == person.id
    rows = [a for a in audit_rows(db, "person.lookup") if a.user_id == world.users["v1"].id]
    assert [(a.after or {}).get("found") for a in rows] == [False, False, True]
    assert rows[-1].entity_id == str(person.id)
    assert not any(n in json.dumps([a.after for a in rows]) for n in [number, *misses])
    refused = client.post("/api/v1/people/lookup", json={"id_number": number}, headers=world.auth("v1"))
    assert refused.status_code == 429 and refused.json()["code"] == "too_many_lookups", refused.text
    assert 1 <= int(refused.headers["Retry-After"]) <= 15 * 60
    assert len([a for a in audit_rows(db, "person.lookup") if a.user_id == world.users["v1"].id]) == 3
    # Another caller has lookups of their own.
    assert client.post("/api/v1/people/lookup", json={"id_number": number},
                       headers=world.auth("t1")).status_code == 200
    # A lookup is no version of the person: their history shows neither it nor who searched.
    history = client.get(f"/api/v1/people/{person.id}/history", headers=world.auth("t1"))
    assert history.status_code == 200 and "person.lookup" not in history.text, history.text


def test_concurrent_lookups_of_one_caller_are_counted_one_after_the_other(
    client: TestClient, world: World, db: Session
) -> None:
    """Counted and then audited, parallel lookups all saw the count below the limit (PostgreSQL, READ COMMITTED):
    the caller's row is locked before the count."""
    seen: list[str] = []

    def note(_c: Any, _cur: Any, statement: str, *_args: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(db.get_bind(), "before_cursor_execute", note)
    try:
        client.post("/api/v1/people/lookup", json={"id_number": id_number(seq=916)}, headers=world.auth("v1"))
    finally:
        event.remove(db.get_bind(), "before_cursor_execute", note)
    lock = next(i for i, sql in enumerate(seen) if sql.startswith("SELECT user_account.id FROM user_account WHERE"))
    count = next(i for i, sql in enumerate(seen) if sql.startswith("SELECT audit_log.at FROM audit_log"))
    assert lock < count, seen
    if db.get_bind().dialect.name == "postgresql":
        assert seen[lock].endswith("FOR UPDATE"), seen[lock]


# --- validation and uniqueness -------------------------------------------------------------


@pytest.mark.parametrize("kind", ["id_number", "phone"])
def test_duplicate_id_number_or_phone_is_409_and_nothing_stored(
    client: TestClient, world: World, db: Session, kind: str
) -> None:
    value = id_number() if kind == "id_number" else phone()
    make_person(db, world.v2, **({"id_no": value} if kind == "id_number" else {"phone": value}))
    before = count(db, Person)
    r = client.post("/api/v1/people", headers=world.auth("t1"), json=person_body(world.v1.id, **{kind: value}))
    assert r.status_code == 409 and r.json()["code"] == f"duplicate_{kind}"
    assert "by person" not in r.json()["detail"]  # the other record is outside t1's scope
    assert count(db, Person) == before
    assert not audit_rows(db, "person.create")


def test_duplicate_on_patch_is_409(client: TestClient, world: World, db: Session) -> None:
    taken = id_number()
    make_person(db, world.v1, id_no=taken)
    other = make_person(db, world.v1)
    url = f"/api/v1/people/{other.id}"
    r = client.patch(url, json={"id_number": taken}, headers={**world.auth("v1"), "If-Match": '"1"'})
    assert r.status_code == 409 and r.json()["code"] == "duplicate_id_number"


def test_bad_check_digit_is_422_naming_the_field_and_not_echoing_it(
    client: TestClient, world: World, db: Session
) -> None:
    good = id_number()
    bad = good[:-1] + ("1" if good[-1] != "1" else "2")
    before = count(db, Person)
    r = client.post("/api/v1/people", headers=world.auth("city"), json=person_body(world.v1.id, id_number=bad))
    assert r.status_code == 422
    assert r.headers["content-type"].startswith("application/problem+json")
    assert ["body", "id_number"] in [e["loc"] for e in r.json()["errors"]]
    assert bad not in r.text
    assert count(db, Person) == before


@pytest.mark.parametrize(
    ("prefix", "birth"),
    [("513321", "19380512"), ("513301", "19800101"), ("110101", "19900307"), ("510105", "19751231")],
    ids=["kangding-county-old-birth", "kangding-city-1980", "beijing", "chengdu"],
)
def test_valid_numbers_are_accepted(client: TestClient, world: World, prefix: str, birth: str) -> None:
    number = id_number(prefix, birth)
    r = client.post("/api/v1/people", headers=world.auth("city"), json=person_body(world.v1.id, id_number=number))
    assert r.status_code == 201, r.text
    assert r.json()["id_number"] == number
    assert r.json()["birth_date"] == f"{birth[:4]}-{birth[4:6]}-{birth[6:]}"


def test_birth_date_must_agree_with_the_id_number(client: TestClient, world: World) -> None:
    body = person_body(world.v1.id, id_number=id_number("513301", "19800101"), birth_date="1980-01-02")
    r = client.post("/api/v1/people", headers=world.auth("city"), json=body)
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "birth_date"]


def test_birth_date_follows_a_recorded_id_number_and_is_no_oracle(
    client: TestClient, world: World, db: Session
) -> None:
    number = id_number("513301", "19800101")
    person = make_person(db, world.v1, id_no=number)
    url = f"/api/v1/people/{person.id}"
    h = world.auth("v1")
    for guess in ("1980-01-01", "1980-01-02", None):  # the right value is refused like a wrong one
        r = client.patch(url, json={"birth_date": guess}, headers={**h, "If-Match": '"1"'})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "birth_date"], guess
    new = id_number("513321", "19700505")
    r = client.patch(url, json={"id_number": new}, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["birth_year"] == 1970
    db.refresh(person)
    assert person.birth_date == D(1970, 5, 5)
    cleared = client.patch(url, json={"id_number": None, "birth_date": "1970-05-06"}, headers={**h, "If-Match": '"2"'})
    assert cleared.status_code == 200 and cleared.json()["id_number"] is None


def test_membership_fields_are_consistent(client: TestClient, world: World) -> None:
    h = world.auth("t1")
    assert client.post("/api/v1/people", headers=h,
                       json=person_body(world.v1.id, joined_party_on=None)).status_code == 422
    cadre = person_body(world.v1.id, member_status="none", joined_party_on=None)
    assert client.post("/api/v1/people", headers=h, json=cadre).status_code == 201
    assert client.post("/api/v1/people", headers=h, json=person_body(world.v1.id, unknown=1)).status_code == 422
    assert client.post("/api/v1/people", headers=h,
                       json=person_body(world.v1.id, name="x" * 51)).status_code == 422


# --- scope and permissions --------------------------------------------------------------------


def test_village_admin_gets_404_outside_own_village(client: TestClient, world: World, db: Session) -> None:
    sibling = make_person(db, world.v1b)
    elsewhere = make_person(db, world.v2)
    h = world.auth("v1")
    for person in (sibling, elsewhere):
        assert client.get(f"/api/v1/people/{person.id}", headers=h).status_code == 404
        assert client.get(f"/api/v1/people/{person.id}/service-years", headers=h).status_code == 404
        assert client.patch(f"/api/v1/people/{person.id}", json={"name": "x"},
                            headers={**h, "If-Match": '"1"'}).status_code == 404
        assert client.post("/api/v1/positions", headers=h, json={
            "person_id": person.id, "org_id": world.v1.id, "title": "committee_member",
            "started_on": "2019-01-01"}).status_code == 404
    assert client.post("/api/v1/people", headers=h, json=person_body(world.v1b.id)).status_code == 404
    assert client.get(f"/api/v1/people?org_id={world.v2.id}", headers=h).status_code == 404
    ids = {p["id"] for p in client.get("/api/v1/people?limit=200", headers=h).json()["items"]}
    assert sibling.id not in ids and elsewhere.id not in ids
    assert client.get(f"/api/v1/organizations/{world.v2.id}/office-holders", headers=h).status_code == 404


def test_auditor_cannot_write(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    pos = make_position(db, person, world.v1, "secretary", D(2019, 1, 1))
    h = world.auth("auditor")
    assert client.post("/api/v1/people", headers=h, json=person_body(world.v1.id)).status_code == 403
    assert client.patch(f"/api/v1/people/{person.id}", json={"name": "x"},
                        headers={**h, "If-Match": '"1"'}).status_code == 403
    assert client.post("/api/v1/positions", headers=h, json={
        "person_id": person.id, "org_id": world.v1.id, "title": "committee_member",
        "started_on": "2019-01-01"}).status_code == 403
    assert client.post(f"/api/v1/positions/{pos.id}/end", headers=h, json={"ended_on": "2020-01-01"}).status_code == 403
    assert db.get(Position, pos.id).ended_on is None  # type: ignore[union-attr]
    assert not audit_rows(db, "person.create") and not audit_rows(db, "position.create")


def test_list_filters_and_sort(client: TestClient, world: World, db: Session) -> None:
    sec = make_person(db, world.v1, name="书记甲")
    make_position(db, sec, world.v1, "secretary", D(2018, 1, 1))
    member = make_person(db, world.v1, name="党员乙")
    make_person(db, world.v1b, name="非党员丙", member_status="none")
    h = world.auth("t1")

    def names(query: str) -> list[str]:
        r = client.get(f"/api/v1/people?{query}", headers=h)
        assert r.status_code == 200, r.text
        return [p["name"] for p in r.json()["items"]]

    assert set(names(f"org_id={world.t1.id}&subtree=true")) == {"书记甲", "党员乙", "非党员丙"}
    assert names(f"org_id={world.t1.id}") == []
    assert names("member_status=none") == ["非党员丙"]
    assert names("title=secretary&on=2019-06-01") == ["书记甲"]
    assert names("title=secretary&on=2017-12-31") == []
    assert set(names(f"has_position=false&on=2019-06-01&org_id={world.v1.id}")) == {member.name}
    assert names("q=党员&sort=-id") == ["非党员丙", "党员乙"]
    assert client.get("/api/v1/people?sort=id_number_hash", headers=h).status_code == 422


def test_patch_needs_if_match_and_detects_stale(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    url = f"/api/v1/people/{person.id}"
    h = world.auth("v1")
    tag = etag(client, url, "v1", world)
    assert client.patch(url, json={"name": "改名"}, headers=h).status_code == 428
    r = client.patch(url, json={"name": "改名", "ethnicity": "彝族"}, headers={**h, "If-Match": tag})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "改名" and r.headers["ETag"] == '"2"'
    assert client.patch(url, json={"name": "再改"}, headers={**h, "If-Match": tag}).status_code == 412
    assert client.patch(url, json={"name": None}, headers={**h, "If-Match": '"2"'}).status_code == 422
    [row] = audit_rows(db, "person.update")
    assert row.before is not None and row.after is not None
    assert (row.before["name"], row.after["name"], row.after["ethnicity"], row.after["version"]) == (
        person.name, "改名", "彝族", 2)


def test_transfer_moves_person_within_scope_only(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    url = f"/api/v1/people/{person.id}"
    r = client.patch(url, json={"org_id": world.v2.id}, headers={**world.auth("t1"), "If-Match": '"1"'})
    assert r.status_code == 404
    r = client.patch(url, json={"org_id": world.v1b.id}, headers={**world.auth("t1"), "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["org_id"] == world.v1b.id


# --- leaving ------------------------------------------------------------------------------------


def test_leaving_ends_positions_held_after_that_day(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    open_pos = make_position(db, person, world.v1, "secretary", D(2019, 1, 1))
    planned = make_position(db, person, world.t1, "committee_member", D(2018, 1, 1), D(2022, 12, 31))
    past = make_position(db, person, world.v1, "committee_member", D(2010, 1, 1), D(2015, 12, 31))
    url = f"/api/v1/people/{person.id}"
    h = {**world.auth("t1"), "If-Match": '"1"'}
    r = client.patch(url, json={"status": "transferred_out", "left_on": "2020-06-30"}, headers=h)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "transferred_out" and r.json()["left_on"] == "2020-06-30"
    for pos in (open_pos, planned, past):
        db.refresh(pos)
    assert open_pos.ended_on == planned.ended_on == D(2020, 6, 30)
    assert past.ended_on == D(2015, 12, 31)
    assert {row.entity_id for row in audit_rows(db, "position.end")} == {str(open_pos.id), str(planned.id)}
    assert service.is_without_office(db, person_id=person.id, on=D(2020, 7, 1))
    # no new open position for someone who left; history up to the leaving day is fine
    body = {"person_id": person.id, "org_id": world.v1.id, "title": "other", "started_on": "2020-07-01"}
    r = client.post("/api/v1/positions", json=body, headers=world.auth("t1"))
    assert r.status_code == 409 and r.json()["code"] == "person_not_active"
    body |= {"started_on": "2016-01-01", "ended_on": "2016-12-31"}
    assert client.post("/api/v1/positions", json=body, headers=world.auth("t1")).status_code == 201


def test_leaving_before_a_position_starts_is_409(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    make_position(db, person, world.v1, "secretary", D(2021, 1, 1))
    r = client.patch(f"/api/v1/people/{person.id}", json={"status": "deceased", "left_on": "2020-12-31"},
                     headers={**world.auth("v1"), "If-Match": '"1"'})
    assert r.status_code == 409 and r.json()["code"] == "position_starts_after_leaving"
    db.refresh(person)
    assert person.status == "active" and person.version == 1


def test_status_rules(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    url = f"/api/v1/people/{person.id}"
    h = world.auth("v1")
    future = (dt.date.today() + dt.timedelta(days=2)).isoformat()
    r = client.patch(url, json={"status": "removed", "left_on": future}, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 422
    r = client.patch(url, json={"left_on": "2020-01-01"}, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "left_on"]
    r = client.patch(url, json={"status": "transferred_out"}, headers={**h, "If-Match": '"1"'})
    assert r.status_code == 200 and r.json()["left_on"] == dt.date.today().isoformat()
    r = client.patch(url, json={"status": "active"}, headers={**h, "If-Match": '"2"'})
    assert r.status_code == 200 and r.json()["left_on"] is None
    r = client.patch(url, json={"status": "deceased", "left_on": "2020-01-01"}, headers={**h, "If-Match": '"3"'})
    assert r.status_code == 200
    r = client.patch(url, json={"status": "active"}, headers={**h, "If-Match": '"4"'})
    assert r.status_code == 409 and r.json()["code"] == "person_deceased"
    assert client.patch(url, json={"name": "更正"}, headers={**h, "If-Match": '"4"'}).status_code == 200


# --- positions ------------------------------------------------------------------------------------


def test_positions_create_list_get_and_end(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1, name="卓玛")
    h = world.auth("t1")
    body = {"person_id": person.id, "org_id": world.v1.id, "title": "secretary", "started_on": "2019-01-01"}
    r = client.post("/api/v1/positions", json=body, headers=h)
    assert r.status_code == 201, r.text
    pos = r.json()
    assert r.headers["Location"] == f"/api/v1/positions/{pos['id']}" and pos["person_name"] == "卓玛"
    assert client.get(r.headers["Location"], headers=h).json() == pos
    listed = client.get(f"/api/v1/positions?person_id={person.id}", headers=h).json()
    assert [p["id"] for p in listed["items"]] == [pos["id"]]
    assert client.get(f"/api/v1/positions?org_id={world.v2.id}", headers=h).status_code == 404
    url = f"/api/v1/positions/{pos['id']}/end"
    before_start = client.post(url, json={"ended_on": "2018-12-31"}, headers=h)
    assert before_start.status_code == 422 and before_start.json()["errors"][0]["loc"] == ["body", "ended_on"]
    ended = client.post(url, json={"ended_on": "2019-01-01"}, headers=h)
    assert ended.status_code == 200 and ended.json()["ended_on"] == "2019-01-01"
    again = client.post(url, json={"ended_on": "2019-02-01"}, headers=h)
    assert again.status_code == 409 and again.json()["code"] == "position_already_ended"
    assert len(audit_rows(db, "position.create")) == 1 and len(audit_rows(db, "position.end")) == 1


def test_position_ending_before_it_starts_is_422(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    r = client.post("/api/v1/positions", headers=world.auth("t1"), json={
        "person_id": person.id, "org_id": world.v1.id, "title": "secretary",
        "started_on": "2019-01-01", "ended_on": "2018-12-31"})
    assert r.status_code == 422
    assert db.scalar(select(Position).where(Position.person_id == person.id)) is None


def test_overlapping_positions_of_same_title_are_409(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    make_position(db, person, world.v1, "committee_member", D(2015, 1, 1), D(2017, 12, 31))
    h = world.auth("t1")

    def post(title: str, start: str, end: str | None = None, org_id: int | None = None) -> int:
        return client.post("/api/v1/positions", headers=h, json={
            "person_id": person.id, "org_id": org_id or world.v1.id, "title": title,
            "started_on": start, "ended_on": end}).status_code

    assert post("committee_member", "2017-12-31") == 409  # shares the last day
    assert post("committee_member", "2014-01-01", "2015-01-01") == 409  # shares the first day
    assert post("committee_member", "2016-01-01", "2016-02-01") == 409  # inside
    assert post("secretary", "2016-01-01") == 201  # another title
    assert post("committee_member", "2016-01-01", org_id=world.t1.id) == 201  # another organisation
    assert post("committee_member", "2018-01-01") == 201  # the day after
    assert post("committee_member", "2030-01-01") == 409  # the open one runs on


def test_position_organisation_must_be_on_the_persons_line(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    h = world.auth("city")
    body = {"person_id": person.id, "title": "secretary", "started_on": "2019-01-01"}
    r = client.post("/api/v1/positions", headers=h, json=body | {"org_id": world.v1b.id})
    assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "org_id"]
    assert client.post("/api/v1/positions", headers=h, json=body | {"org_id": world.t1.id}).status_code == 201
    # a resident first secretary is sent from elsewhere: any organisation in the actor's scope
    first = body | {"org_id": world.v2.id, "title": "resident_first_secretary"}
    assert client.post("/api/v1/positions", headers=h, json=first).status_code == 201
    # ...but the township admin must see both the person and the organisation
    assert client.post("/api/v1/positions", headers=world.auth("t1"),
                       json=first | {"started_on": "2020-01-01"}).status_code == 404


def test_positions_are_visible_from_the_holders_and_the_organisations_side(
    client: TestClient, world: World, db: Session
) -> None:
    cadre = make_person(db, world.v1, name="派驻干部")
    pos = make_position(db, cadre, world.v2, "resident_first_secretary", D(2019, 3, 1))
    for who in ("t1", "v1", "t2", "v2"):
        listed = client.get("/api/v1/positions", headers=world.auth(who)).json()
        assert pos.id in [p["id"] for p in listed["items"]], who
        assert client.get(f"/api/v1/positions/{pos.id}", headers=world.auth(who)).status_code == 200
    other = make_person(db, world.v1b)
    hidden = make_position(db, other, world.v1b, "secretary", D(2019, 1, 1))
    assert client.get(f"/api/v1/positions/{hidden.id}", headers=world.auth("v1")).status_code == 404
    assert client.post(f"/api/v1/positions/{hidden.id}/end", json={"ended_on": "2020-01-01"},
                       headers=world.auth("v2")).status_code == 404


# --- queries ----------------------------------------------------------------------------------------


def test_office_holders_and_without_office_on_boundary_dates(client: TestClient, world: World, db: Session) -> None:
    sec = make_person(db, world.v1, name="书记")
    member = make_person(db, world.v1, name="委员")
    make_position(db, sec, world.v1, "secretary", D(2019, 1, 1), D(2019, 6, 30))
    make_position(db, member, world.v1, "committee_member", D(2019, 6, 30))
    expected = {
        D(2018, 12, 31): [], D(2019, 1, 1): ["secretary"],
        D(2019, 6, 30): ["secretary", "committee_member"], D(2019, 7, 1): ["committee_member"],
    }
    for day, titles in expected.items():
        held = service.office_holders(db, org_id=world.v1.id, on=day)
        assert [p.title for p in held] == titles, day
        r = client.get(f"/api/v1/organizations/{world.v1.id}/office-holders?on={day}", headers=world.auth("v1"))
        assert r.status_code == 200 and [p["title"] for p in r.json()] == titles, day
        active = client.get(f"/api/v1/positions?org_id={world.v1.id}&active_on={day}", headers=world.auth("v1"))
        assert sorted(p["title"] for p in active.json()["items"]) == sorted(titles)
        assert service.is_without_office(db, person_id=sec.id, on=day) == ("secretary" not in titles)
    only = service.office_holders(db, org_id=world.v1.id, on=D(2019, 6, 30), titles={"committee_member"})
    assert [p.person_id for p in only] == [member.id]
    r = client.get(f"/api/v1/organizations/{world.v1.id}/office-holders?on=2019-06-30&title=secretary",
                   headers=world.auth("v1"))
    assert [p["person_name"] for p in r.json()] == ["书记"]
    assert client.get(f"/api/v1/organizations/{world.v1.id}/office-holders?on=0001-01-01",
                      headers=world.auth("v1")).status_code == 422


def test_service_years_count_overlaps_once(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    make_position(db, person, world.v1, "secretary", D(2010, 1, 1), D(2015, 12, 31))
    make_position(db, person, world.t1, "committee_member", D(2014, 1, 1), D(2018, 6, 30))
    make_position(db, person, world.v1, "other", D(2012, 5, 1), D(2012, 6, 1))  # inside: adds nothing
    make_position(db, person, world.v1, "other", D(2030, 1, 1))  # after as_of: ignored
    r = client.get(f"/api/v1/people/{person.id}/service-years?as_of=2019-01-01", headers=world.auth("v1"))
    assert r.status_code == 200, r.text
    assert r.json() == {"person_id": person.id, "as_of": "2019-01-01",
                        "days": (D(2018, 7, 1) - D(2010, 1, 1)).days, "years": 8}
    mid = service.service_years(db, person_id=person.id, as_of=D(2011, 12, 31))
    assert (mid.years, mid.days) == (2, 730)
    assert service.service_years(db, person_id=person.id, as_of=D(2011, 12, 30)).years == 1


def test_service_years_add_up_separate_stretches(db: Session, world: World) -> None:
    person = make_person(db, world.v1)
    make_position(db, person, world.v1, "committee_member", D(2000, 1, 1), D(2000, 6, 30))  # 182 days
    make_position(db, person, world.v1, "committee_member", D(2002, 1, 1), D(2002, 7, 1))  # 182 days
    assert person.id is not None
    short = service.service_years(db, person_id=person.id, as_of=D(2019, 1, 1))
    assert (short.days, short.years) == (364, 0)
    make_position(db, person, world.v1, "secretary", D(2002, 7, 2), D(2002, 7, 2))  # adjacent: one more day
    full = service.service_years(db, person_id=person.id, as_of=D(2019, 1, 1))
    assert (full.days, full.years) == (365, 1)
    assert service.service_years(db, person_id=person.id, as_of=D(1999, 12, 31)).days == 0


def test_list_query_count_does_not_grow_with_page_size(client: TestClient, world: World, db: Session) -> None:
    for i in range(60):
        p = make_person(db, world.v1, name=f"人{i:02d}", phone=phone())
        make_position(db, p, world.v1, "other", D(2019, 1, 1))
    for who in ("v1", "city"):
        counts = []
        for limit in (5, 50):
            with counting_statements(db) as statements:
                r = client.get(f"/api/v1/people?org_id={world.v1.id}&has_position=true&limit={limit}",
                               headers=world.auth(who))
            assert r.status_code == 200 and len(r.json()["items"]) == limit
            counts.append(len(statements))
        assert 0 < counts[0] == counts[1], (who, counts)
        pos_counts = []
        for limit in (5, 50):
            with counting_statements(db) as statements:
                r = client.get(f"/api/v1/positions?org_id={world.v1.id}&limit={limit}", headers=world.auth(who))
            assert len(r.json()["items"]) == limit and all(p["person_name"] for p in r.json()["items"])
            pos_counts.append(len(statements))
        assert pos_counts[0] == pos_counts[1], (who, pos_counts)


def test_bad_query_values_are_422_not_500(client: TestClient, world: World, db: Session) -> None:
    person = make_person(db, world.v1)
    h = world.auth("city")
    for url in (f"/api/v1/people/{person.id}/service-years?as_of=9999-12-31", "/api/v1/people/99999999999",
                "/api/v1/people?limit=0", "/api/v1/positions?active_on=notadate", "/api/v1/people?q=" + "x" * 51):
        assert client.get(url, headers=h).status_code == 422, url


# --- the suite-wide PII guard -------------------------------------------------------------------------


def test_pii_guard_is_installed_and_checks_bodies(client: TestClient, world: World, db: Session) -> None:
    assert pii_guard.is_installed(client)
    checked = pii_guard.STATS.checked
    make_person(db, world.v1, phone=phone())
    assert client.get("/api/v1/people", headers=world.auth("v1")).status_code == 200
    assert pii_guard.STATS.checked == checked + 1
    skipped = pii_guard.STATS.skipped
    client.get("/api/v1/people", headers=world.auth("city"))  # may read PII: not checked
    assert pii_guard.STATS.skipped == skipped + 1 and pii_guard.STATS.checked == checked + 1


def test_pii_guard_catches_a_planted_unmasked_value(client: TestClient, world: World, db: Session) -> None:
    number, mobile = id_number(), phone()
    leaky = make_person(db, world.v1, name=f"泄露{number}")
    with pytest.raises(pii_guard.PiiLeak, match=f"/api/v1/people/{leaky.id}"):
        client.get(f"/api/v1/people/{leaky.id}", headers=world.auth("v1"))
    leaky.name = f"电话{mobile}"
    db.flush()
    with pytest.raises(pii_guard.PiiLeak):
        client.get("/api/v1/people", headers={**world.auth("t1"), "Accept": "text/csv"})
    # a token that cannot be read is checked like the weakest caller's
    checked = pii_guard.STATS.checked
    assert client.get("/api/v1/people", headers={"Authorization": f"Bearer {world.token('city')}x"}).status_code == 401
    assert pii_guard.STATS.checked == checked + 1
    # the same body to a pii_read holder passes
    assert client.get(f"/api/v1/people/{leaky.id}", headers=world.auth("city")).status_code == 200


def test_pii_guard_patterns() -> None:
    number = id_number()
    assert pii_guard.unmasked_values(f'{{"id_number":"{number}"}}') == [number]
    assert pii_guard.unmasked_values('{"id_number":"51330119800101001X"}') == ["51330119800101001X"]
    assert pii_guard.unmasked_values('{"phone":"13812345678"}') == ["13812345678"]
    assert pii_guard.unmasked_values('{"name":"电话13812345678号"}') == ["13812345678"]
    masked = ('{"id_number":"513301********0011","phone":"138****5678","code":"513301001001","id":2147483647,'
              '"hash":"a13812345678b","amount":"110000.00"}')
    assert pii_guard.unmasked_values(masked) == []
