"""Party dues: national rates (whole base at one rate), fixed amounts, payments, reductions, statement, arrears."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models.audit import AuditLog
from app.models.funds.budgets import BudgetLine
from app.models.funds.dues import DuesPaymentMonth
from app.models.people import Person
from tests.factories import World, make_person
from tests.funds_support import TOWNSHIP, count_statements, extra_user, headers

DUES = "/api/v1/party-dues"


def member(db: Session, org: Any, **kw: Any) -> Person:
    return make_person(db, org, name=kw.pop("name", "党员"), **kw)


def profile(client: TestClient, world: World, person: Person, who: str = "v1", month: str = "2019-01",
            **body: Any) -> Any:
    return client.post(f"{DUES}/profiles", headers=world.auth(who),
                       json={"member_id": person.id, "effective_from": month, **body})


def pay(client: TestClient, world: World, person: Person, first: str, last: str | None, amount: str,
        who: str = "v1", paid_on: str = "2019-06-10") -> Any:
    body = {"member_id": person.id, "month_from": first, "amount": amount, "paid_on": paid_on, "method": "wechat"}
    if last:
        body["month_to"] = last
    return client.post(f"{DUES}/payments", headers=world.auth(who), json=body)


# --- the monthly due -----------------------------------------------------------------------


@pytest.mark.parametrize(("category", "base", "due"), [
    ("employed", "3000.00", "15.00"),
    ("employed", "3000.01", "30.00"),  # the whole base at 1 %, not 0.5 % of 3,000 plus 1 % of 0.01
    ("employed", "5000.00", "50.00"),
    ("employed", "5000.01", "75.00"),
    ("employed", "10000.00", "150.00"),
    ("employed", "10000.01", "200.00"),
    ("employed", "1234.50", "6.17"),  # 6.1725
    ("employed", "1235.00", "6.18"),  # 6.175: half up
    ("employed", "0.00", "0.00"),
    ("retired", "5000.00", "25.00"),
    ("retired", "5000.01", "50.00"),
])
def test_dues_brackets_apply_one_rate_to_the_whole_base(client: TestClient, world: World, db: Session,
                                                        category: str, base: str, due: str) -> None:
    r = profile(client, world, member(db, world.v1), category=category, base=base)
    assert r.status_code == 201, r.text
    assert r.json()["monthly_due"] == due and r.json()["base"] == base


@pytest.mark.parametrize(("category", "fixed", "status", "due"), [
    ("farmer", "0.20", 201, "0.20"),
    ("farmer", "1.00", 201, "1.00"),
    ("farmer", "0.50", 201, "0.50"),
    ("farmer", "0.19", 422, None),
    ("farmer", "1.01", 422, None),
    ("farmer", None, 422, None),
    ("student", None, 201, "0.20"),
    ("unemployed", "0.20", 201, "0.20"),
    ("relief", "0.30", 422, None),
])
def test_fixed_amounts_for_farmers_students_and_relief(client: TestClient, world: World, db: Session,
                                                        category: str, fixed: str | None, status: int,
                                                        due: str | None) -> None:
    body = {"category": category} | ({"fixed": fixed} if fixed else {})
    r = profile(client, world, member(db, world.v1), **body)
    assert r.status_code == status, r.text
    if due:
        assert r.json()["monthly_due"] == due


def test_profile_shape_and_membership_are_checked(client: TestClient, world: World, db: Session) -> None:
    m = member(db, world.v1)
    assert profile(client, world, m, category="employed").status_code == 422  # no base
    assert profile(client, world, m, category="farmer", base="100.00", fixed="0.50").status_code == 422
    assert profile(client, world, m, category="employed", base="-1.00").status_code == 422
    assert profile(client, world, m, month="2019-13", category="student").status_code == 422
    outsider = member(db, world.v2)
    assert profile(client, world, outsider, category="student").status_code == 404
    not_member = make_person(db, world.v1, name="群众", member_status="none")
    assert profile(client, world, not_member, category="student").status_code == 422
    assert profile(client, world, m, category="student").status_code == 201
    dup = profile(client, world, m, category="student")
    assert dup.status_code == 409 and dup.json()["code"] == "duplicate_profile"
    assert client.post(f"{DUES}/profiles", headers=world.auth("auditor"), json={
        "member_id": m.id, "effective_from": "2019-05", "category": "student"}).status_code == 403


def test_rates_are_data(client: TestClient, world: World) -> None:
    r = client.get(f"{DUES}/rates", headers=world.auth("auditor"), params={"category": "employed",
                                                                          "on": "2019-01-01"})
    assert r.status_code == 200
    assert [(x["upper"], x["rate_percent"]) for x in r.json()] == [
        ("3000.00", "0.50"), ("5000.00", "1.00"), ("10000.00", "1.50"), (None, "2.00")]


# --- payments ------------------------------------------------------------------------------------


def test_a_payment_covers_months_and_accrues_to_the_dues_line(client: TestClient, world: World,
                                                              db: Session) -> None:
    m = member(db, world.v1)
    assert profile(client, world, m, category="employed", base="4000.00").json()["monthly_due"] == "40.00"
    r = pay(client, world, m, "2019-01", "2019-03", "120.00")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["due"], body["extra"], body["remit_to_centre"]) == ("120.00", "0.00", False)
    line = db.scalar(select(BudgetLine).where(BudgetLine.id == body["budget_line_id"]))
    assert line is not None and (line.category, line.org_id, line.fiscal_year) == ("party_dues", world.v1.id, 2019)
    assert line.allocated_fen == 120_00
    assert pay(client, world, m, "2019-04", None, "40.00").status_code == 201
    db.expire_all()
    assert db.scalar(select(BudgetLine.allocated_fen).where(BudgetLine.id == line.id)) == 160_00
    row = db.scalar(select(AuditLog).where(AuditLog.action == "budget_line.receive",
                                           AuditLog.entity_id == str(line.id)).order_by(AuditLog.id.desc()))
    assert row is not None and row.before["allocated"] == "120.00" and row.after["allocated"] == "160.00"
    again = pay(client, world, m, "2019-03", "2019-05", "120.00")
    assert again.status_code == 409 and again.json()["code"] == "already_paid"
    short = pay(client, world, m, "2019-05", None, "39.99")
    assert short.status_code == 422
    assert db.scalar(select(func.count()).select_from(DuesPaymentMonth).where(DuesPaymentMonth.person_id == m.id)) == 4


@pytest.mark.parametrize(("amount", "extra", "remit"), [
    ("1015.00", "1000.00", True), ("1014.99", "999.99", False), ("5015.00", "5000.00", True)])
def test_a_voluntary_extra_from_1000_is_remitted_to_the_centre(client: TestClient, world: World, db: Session,
                                                               amount: str, extra: str, remit: bool) -> None:
    m = member(db, world.v1)
    profile(client, world, m, category="employed", base="3000.00")
    r = pay(client, world, m, "2019-01", None, amount)
    assert r.status_code == 201, r.text
    assert (r.json()["extra"], r.json()["remit_to_centre"]) == (extra, remit)
    listed = client.get(f"{DUES}/payments", headers=world.auth("t1"), params={"remit_to_centre": remit,
                                                                            "member_id": m.id})
    assert listed.json()["total"] == 1


def test_probationary_members_pay_from_the_month_admitted(client: TestClient, world: World, db: Session) -> None:
    m = member(db, world.v1, member_status="probationary")
    m.joined_party_on = dt.date(2019, 4, 10)
    db.flush()
    profile(client, world, m, category="student")
    assert pay(client, world, m, "2019-03", None, "0.20").status_code == 422
    assert pay(client, world, m, "2019-04", None, "0.20").status_code == 201
    st = client.get(f"{DUES}/statement", headers=world.auth("v1"), params={"member_id": m.id, "year": 2019}).json()
    assert [x["status"] for x in st["months"][:5]] == ["not_due"] * 3 + ["paid", "unpaid"]


# --- reductions -------------------------------------------------------------------------------------


def test_a_hardship_exemption_needs_approval_by_the_level_above(client: TestClient, world: World,
                                                                db: Session) -> None:
    m = member(db, world.v1)
    profile(client, world, m, category="retired", base="2000.00")
    r = client.post(f"{DUES}/reductions", headers=world.auth("v1"), json={
        "member_id": m.id, "from_month": "2019-03", "to_month": "2019-12", "monthly_due": "0.00",
        "reason": "重病住院,生活困难"})
    assert r.status_code == 201 and r.json()["status"] == "pending"
    rid = r.json()["id"]
    st = client.get(f"{DUES}/statement", headers=world.auth("v1"), params={"member_id": m.id, "year": 2019}).json()
    assert st["months"][2]["due"] == "10.00"  # pending: not applied
    decision = {"approve": True, "approval_ref": "炉城党工委〔2019〕12号"}
    mine = client.post(f"{DUES}/reductions/{rid}/decide", headers=world.auth("v1"), json=decision)
    assert mine.status_code == 403 and mine.json()["code"] == "level_above_required"
    assert client.post(f"{DUES}/reductions/{rid}/decide", headers=world.auth("t2"), json=decision).status_code == 404
    ok = client.post(f"{DUES}/reductions/{rid}/decide", headers=world.auth("t1"), json=decision)
    assert ok.status_code == 200 and ok.json()["status"] == "approved"
    assert client.post(f"{DUES}/reductions/{rid}/decide", headers=world.auth("t1"), json=decision).status_code == 409
    st = client.get(f"{DUES}/statement", headers=world.auth("v1"), params={"member_id": m.id, "year": 2019}).json()
    assert [x["status"] for x in st["months"][:4]] == ["unpaid", "unpaid", "exempt", "exempt"]
    assert st["due"] == "20.00" and st["balance"] == "20.00"
    assert "炉城党工委〔2019〕12号" in st["months"][2]["basis"]


def test_the_user_who_asked_cannot_approve_the_reduction(client: TestClient, world: World, db: Session) -> None:
    m = member(db, world.v1)
    profile(client, world, m, category="employed", base="6000.00")
    r = client.post(f"{DUES}/reductions", headers=world.auth("t1"), json={
        "member_id": m.id, "from_month": "2019-01", "monthly_due": "10.00", "reason": "困难"})
    decision = {"approve": True, "approval_ref": "x"}
    own = client.post(f"{DUES}/reductions/{r.json()['id']}/decide", headers=world.auth("t1"), json=decision)
    assert own.status_code == 403 and own.json()["code"] == "maker_checker"
    other = extra_user(db, world, TOWNSHIP, world.t1)
    assert client.post(f"{DUES}/reductions/{r.json()['id']}/decide", headers=headers(other),
                       json=decision).status_code == 200


def test_a_reduction_never_raises_the_dues(client: TestClient, world: World, db: Session) -> None:
    """A "reduction" of 500.00 a month for a member who owes 10.00 was approved and then asked 500.00 of them."""
    m = member(db, world.v1)
    profile(client, world, m, category="employed", base="2000.00")  # 10.00 a month
    ask = {"member_id": m.id, "from_month": "2019-03", "reason": "困难"}
    for above in ("10.00", "500.00"):
        r = client.post(f"{DUES}/reductions", headers=world.auth("v1"), json={**ask, "monthly_due": above})
        assert r.status_code == 422 and r.json()["errors"][0]["loc"] == ["body", "monthly_due"], r.text
    early = client.post(f"{DUES}/reductions", headers=world.auth("v1"),
                        json={**ask, "from_month": "2018-12", "monthly_due": "5.00"})
    assert early.status_code == 422 and early.json()["errors"][0]["loc"] == ["body", "from_month"], early.text
    r = client.post(f"{DUES}/reductions", headers=world.auth("v1"), json={**ask, "monthly_due": "8.00"})
    assert r.status_code == 201, r.text
    assert client.post(f"{DUES}/reductions/{r.json()['id']}/decide", headers=world.auth("t1"),
                       json={"approve": True, "approval_ref": "x"}).status_code == 200
    # From July the member's base falls and the profile asks 5.00: the reduction to 8.00 no longer applies.
    assert profile(client, world, m, month="2019-07", category="employed", base="1000.00").status_code == 201
    st = client.get(f"{DUES}/statement", headers=world.auth("v1"), params={"member_id": m.id, "year": 2019}).json()
    assert [x["due"] for x in st["months"]] == ["10.00"] * 2 + ["8.00"] * 4 + ["5.00"] * 6


def test_a_reduction_in_force_can_be_replaced_by_a_later_one(client: TestClient, world: World, db: Session) -> None:
    """Reductions are never edited: a later one, approved, takes over from its month. It is measured against the
    profile's due, not against the reduction it replaces (an exemption would otherwise hold for ever)."""
    m = member(db, world.v1)
    profile(client, world, m, category="employed", base="2000.00")  # 10.00 a month
    for month, amount in (("2019-03", "0.00"), ("2019-07", "5.00")):
        r = client.post(f"{DUES}/reductions", headers=world.auth("v1"), json={
            "member_id": m.id, "from_month": month, "monthly_due": amount, "reason": "困难"})
        assert r.status_code == 201, r.text
        assert client.post(f"{DUES}/reductions/{r.json()['id']}/decide", headers=world.auth("t1"),
                           json={"approve": True, "approval_ref": month}).status_code == 200
    st = client.get(f"{DUES}/statement", headers=world.auth("v1"), params={"member_id": m.id, "year": 2019}).json()
    assert [x["due"] for x in st["months"]] == ["10.00"] * 2 + ["0.00"] * 4 + ["5.00"] * 6


def test_of_two_decisions_on_one_reduction_the_second_is_refused(client: TestClient, world: World,
                                                                  db: Session) -> None:
    """Both deciders read it pending (as on PostgreSQL at the same time): the conditional update lets one through."""
    from sqlalchemy import update

    from app.core.errors import ProblemError
    from app.models.funds.dues import DuesReduction, ReductionDecision
    from app.services.funds import dues as service
    from tests.funds_support import city_actor

    m = member(db, world.v1)
    profile(client, world, m, category="retired", base="2000.00")
    r = client.post(f"{DUES}/reductions", headers=world.auth("v1"), json={
        "member_id": m.id, "from_month": "2019-03", "monthly_due": "0.00", "reason": "困难"})
    reduction = db.get(DuesReduction, r.json()["id"])
    assert reduction is not None and reduction.status == "pending"
    db.execute(update(DuesReduction).where(DuesReduction.id == reduction.id)  # the other decider's rejection
               .values(status="rejected", approval_ref="另一人").execution_options(synchronize_session=False))
    with pytest.raises(ProblemError) as refused:
        service.decide_reduction(db, city_actor(world, "t1"), reduction.id,
                                 ReductionDecision(approve=True, approval_ref="x"))
    assert refused.value.status == 409 and refused.value.code == "invalid_status"
    db.expire_all()
    kept = db.get(DuesReduction, reduction.id)
    assert kept is not None and (kept.status, kept.approval_ref) == ("rejected", "另一人")


# --- statement and arrears ---------------------------------------------------------------------------


def test_statement_shows_due_paid_and_balance_per_month(client: TestClient, world: World, db: Session) -> None:
    m = member(db, world.v1)
    profile(client, world, m, category="employed", base="3000.00")
    profile(client, world, m, month="2019-07", category="employed", base="6000.00")
    pay(client, world, m, "2019-01", "2019-06", "90.00")
    pay(client, world, m, "2019-07", None, "1090.00")
    st = client.get(f"{DUES}/statement", headers=world.auth("auditor"), params={"member_id": m.id, "year": 2019})
    assert st.status_code == 200, st.text
    months = st.json()["months"]
    assert [x["due"] for x in months] == ["15.00"] * 6 + ["90.00"] * 6
    assert [x["paid"] for x in months] == ["15.00"] * 6 + ["90.00"] + ["0.00"] * 5
    assert months[7]["balance"] == "90.00" and months[7]["status"] == "unpaid"
    assert (st.json()["due"], st.json()["paid"], st.json()["balance"]) == ("630.00", "180.00", "450.00")
    assert st.json()["voluntary_extra"] == "1000.00"


def arrears(client: TestClient, world: World, who: str = "t1", **params: Any) -> list[dict]:
    r = client.get(f"{DUES}/arrears", headers=world.auth(who), params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    items: list[dict] = r.json()["items"]
    return items


def test_arrears_pages_in_a_fixed_number_of_statements(client: TestClient, world: World, db: Session,
                                                       engine: Any) -> None:
    """Whatever the page size and the number of members in arrears (and their organisations): the same statements.
    The page is cut before names and decisions are read, and `total` counts every member in arrears."""
    def page(limit: int) -> tuple[dict, int]:
        with count_statements(engine) as seen:
            r = client.get(f"{DUES}/arrears", headers=world.auth("city"), params={"as_of": "2019-08", "limit": limit})
        assert r.status_code == 200, r.text
        return r.json(), len(seen)

    first = member(db, world.v1, name="甲")
    profile(client, world, first, category="farmer", fixed="1.00", who="t1")
    one, few = page(1)
    for i, org in enumerate([world.v1, world.v1b, world.v2, world.t1, world.t2] * 2):
        m = member(db, org, name=f"乙{i}")
        profile(client, world, m, category="farmer", fixed="1.00", who="city")
        assert pay(client, world, m, "2019-01", f"2019-0{1 + i % 5}", f"{1 + i % 5}.00", who="city").status_code == 201
        client.post(f"{DUES}/arrears-decisions", headers=world.auth("city"), json={
            "member_id": m.id, "decision": "talked", "note": "x", "decided_on": "2019-08-20"})
    small, many_small = page(2)
    large, many_large = page(20)
    assert few == many_small == many_large, (few, many_small, many_large)
    assert one["total"] == 1 and small["total"] == large["total"] == 11
    assert len(small["items"]) == 2 and small["items"] == large["items"][:2]
    runs = [(not r["flagged"], -r["consecutive_unpaid"], r["member_id"]) for r in large["items"]]
    assert runs == sorted(runs) and large["items"][0]["consecutive_unpaid"] == 8


def test_six_consecutive_unpaid_months_are_flagged(client: TestClient, world: World, db: Session) -> None:
    six = member(db, world.v1, name="欠六月")
    five = member(db, world.v1, name="欠五月")
    gaps = member(db, world.v1b, name="隔月交")
    for m in (six, five, gaps):
        profile(client, world, m, category="farmer", fixed="1.00", who="t1")
    assert pay(client, world, six, "2019-01", "2019-02", "2.00").status_code == 201  # Mar–Aug unpaid: six
    assert pay(client, world, five, "2019-01", "2019-03", "3.00").status_code == 201  # Apr–Aug unpaid: five
    assert pay(client, world, gaps, "2019-01", None, "1.00", who="v1").status_code == 404  # v1b is not v1's
    for month in ("2019-02", "2019-04", "2019-06", "2019-08"):
        assert pay(client, world, gaps, month, None, "1.00", who="t1").status_code == 201
    rows = {r["member_id"]: r for r in arrears(client, world, org_id=world.t1.id, subtree="true", as_of="2019-08")}
    assert rows[six.id]["consecutive_unpaid"] == 6 and rows[six.id]["flagged"] is True
    assert rows[six.id]["owed"] == "6.00" and rows[six.id]["first_unpaid"] == "2019-03"
    assert rows[five.id]["consecutive_unpaid"] == 5 and rows[five.id]["flagged"] is False
    assert rows[gaps.id]["unpaid_months"] == 4 and rows[gaps.id]["flagged"] is False
    assert arrears(client, world, org_id=world.t1.id, subtree="true", as_of="2019-08")[0]["member_id"] == six.id
    flagged = arrears(client, world, org_id=world.t1.id, subtree="true", as_of="2019-08", flagged="true")
    assert [r["member_id"] for r in flagged] == [six.id]
    a_month_earlier = {r["member_id"]: r for r in arrears(client, world, as_of="2019-07")}
    assert a_month_earlier[six.id]["flagged"] is False
    # The system flags, the branch decides, and the decision is recorded with the months that had ended unpaid by
    # then: in August, August may still be paid.
    early = client.post(f"{DUES}/arrears-decisions", headers=world.auth("v1"), json={
        "member_id": six.id, "decision": "talked", "note": "提醒", "decided_on": "2019-08-20"})
    assert early.status_code == 201 and early.json()["consecutive_months"] == 5, early.text
    d = client.post(f"{DUES}/arrears-decisions", headers=world.auth("v1"), json={
        "member_id": six.id, "decision": "talked", "note": "支部书记谈话,承诺补交", "decided_on": "2019-09-05"})
    assert d.status_code == 201, d.text
    assert d.json()["consecutive_months"] == 6
    row = next(r for r in arrears(client, world, as_of="2019-08") if r["member_id"] == six.id)
    assert (row["last_decision"], row["last_decision_on"]) == ("talked", "2019-09-05")
    nothing_owed = member(db, world.v1, name="按时交")
    profile(client, world, nothing_owed, category="student")
    none = client.post(f"{DUES}/arrears-decisions", headers=world.auth("v1"), json={
        "member_id": nothing_owed.id, "decision": "talked", "note": "x", "decided_on": "2018-12-20"})
    assert none.status_code == 409
    # Villages see their own members only; CSV for auditors.
    assert {r["member_id"] for r in arrears(client, world, who="v1", as_of="2019-08")} <= {
        six.id, five.id, nothing_owed.id}
    csv = client.get(f"{DUES}/arrears", headers={**world.auth("auditor"), "Accept": "text/csv"},
                     params={"as_of": "2019-08", "org_id": world.v1.id})
    assert csv.status_code == 200 and "flagged" in csv.text.splitlines()[0]


def test_arrears_count_up_to_the_last_month_that_has_ended_by_default(client: TestClient, world: World,
                                                                      db: Session,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    """The current month may still be paid: counted by default, five unpaid months looked like the six that flag a
    member for leaving the Party. The month is Beijing's: at 01:00 on 1 March there, a UTC server is still in
    February."""
    from app.services.responsibilities import clock

    monkeypatch.setattr(clock, "today", lambda: dt.date(2019, 11, 1))
    this_month = dt.date(2019, 11, 1)
    m = member(db, world.v1)
    assert profile(client, world, m, month=f"{this_month:%Y-%m}", category="retired", base="2000.00").status_code \
        == 201
    assert m.id not in [r["member_id"] for r in arrears(client, world)]
    asked = arrears(client, world, as_of=f"{this_month:%Y-%m}")
    assert [(r["unpaid_months"], r["first_unpaid"]) for r in asked if r["member_id"] == m.id] \
        == [(1, f"{this_month:%Y-%m}")]


def test_arrears_reject_a_bad_month_and_a_sort(client: TestClient, world: World) -> None:
    assert client.get(f"{DUES}/arrears", headers=world.auth("t1"), params={"as_of": "2019-13"}).status_code == 422
    assert client.get(f"{DUES}/arrears", headers=world.auth("t1"), params={"sort": "member_id"}).status_code == 422
