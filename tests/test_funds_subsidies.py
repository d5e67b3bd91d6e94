"""Subsidy policies and entitlement runs: who is owed what, commit by a second user, pay, reverse, summary."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models.audit import AuditLog
from app.models.funds.subsidies import SubsidyLine
from app.models.people import Person
from app.services import people as people_service
from app.services.funds.entitlements import service_years_from_spans
from tests.factories import World, make_org, make_person, make_position
from tests.funds_support import (
    CITY,
    TOWNSHIP,
    cadre,
    count_statements,
    extra_user,
    headers,
    make_line,
    policy,
    reload_line,
)

RUNS = "/api/v1/subsidy-runs"
POLICIES = "/api/v1/subsidy-policies"
D = dt.date


def start_run(client: TestClient, world: World, kinds: list[tuple[str, int]], *, year: int = 2019,
              org_id: int | None = None, who: str = "city", month: int | None = None, **extra: Any) -> dict:
    body: dict[str, Any] = {"year": year, "org_id": org_id or world.city.id,
                            "kinds": [{"kind": k, "budget_line_id": lid} for k, lid in kinds], **extra}
    if month is not None:
        body["month"] = month
    r = client.post(RUNS, headers=world.auth(who), json=body)
    assert r.status_code == 201, r.text
    return r.json()


def lines_of(client: TestClient, world: World, run_id: int, who: str = "city", **params: Any) -> list[dict]:
    r = client.get(f"{RUNS}/{run_id}/lines", headers=world.auth(who), params={"limit": 200, **params})
    assert r.status_code == 200, r.text
    items: list[dict] = r.json()["items"]
    return items


def by_person(lines: list[dict]) -> dict[int, dict]:
    return {ln["person_id"]: ln for ln in lines}


# --- yearly kinds -----------------------------------------------------------------------


@pytest.mark.parametrize(("year", "expected"), [(2018, "60000.00"), (2019, "110000.00")])
def test_community_fund_preview_per_community(client: TestClient, world: World, db: Session, year: int,
                                               expected: str) -> None:
    policy(db, "community_work_fund", 60_000_00, valid_from=D(2010, 1, 1), valid_to=D(2018, 12, 31))
    policy(db, "community_work_fund", 110_000_00, valid_from=D(2019, 1, 1))
    line = make_line(db, world.city, year=year, category="community_work", allocated_fen=10_000_000_00)
    run = start_run(client, world, [("community_work_fund", line.id)], year=year)
    lines = lines_of(client, world, run["id"])
    assert {ln["beneficiary_id"] for ln in lines} == {world.v1.id, world.v1b.id}  # v2 is a rural village
    assert {ln["amount"] for ln in lines} == {expected}
    assert all(ln["beneficiary_type"] == "organization" and ln["period"] == str(year) for ln in lines)
    assert run["status"] == "draft" and run["kinds"][0]["beneficiaries"] == 2
    # The preview changes nothing else.
    assert reload_line(db, line.id).committed_fen == 0


def test_insurance_total_is_100_per_cadre_in_office_on_the_reference_date(client: TestClient, world: World,
                                                                          db: Session) -> None:
    policy(db, "accident_insurance", 100_00, valid_from=D(2019, 1, 1))
    in_office = [
        cadre(db, world.v1, "secretary"),
        cadre(db, world.v1b, "committee_member", started=D(2019, 1, 1)),
        cadre(db, world.v2, "village_committee_director", ended=D(2019, 1, 1)),
        cadre(db, world.v2, "deputy_secretary"),
    ]
    both = cadre(db, world.v2, "secretary")
    make_position(db, both, world.v2, "village_committee_director", D(2016, 1, 1))  # two posts: paid once
    in_office.append(both)
    cadre(db, world.v1, "secretary", started=D(2019, 1, 2))  # not yet in office on 1 January
    cadre(db, world.v1, "secretary", ended=D(2018, 12, 31))  # left the day before
    cadre(db, world.v2, "resident_first_secretary")  # paid by the sending unit
    cadre(db, world.t1, "secretary")  # a township post is no village cadre
    line = make_line(db, world.city, category="accident_insurance", allocated_fen=1_000_000_00)
    run = start_run(client, world, [("accident_insurance", line.id)])
    assert run["total"] == f"{100 * len(in_office)}.00"
    assert run["kinds"][0]["beneficiaries"] == len(in_office)
    lines = lines_of(client, world, run["id"])
    assert {ln["person_id"] for ln in lines} == {p.id for p in in_office}
    assert by_person(lines)[both.id]["basis"].startswith("in office on 2019-01-01 as secretary at 日头村")
    # Another reference date counts who held office that day.
    # On 30 June the director who left on 1 January is out and the secretary who started on 2 January is in.
    later = start_run(client, world, [("accident_insurance", line.id)], reference_date="2019-06-30")
    assert later["total"] == f"{100 * len(in_office)}.00"


def test_pension_subsidy_uses_the_policy_valid_that_day(client: TestClient, world: World, db: Session) -> None:
    policy(db, "pension_subsidy", 600_00, valid_from=D(2015, 1, 1), valid_to=D(2018, 12, 31))
    policy(db, "pension_subsidy", 800_00, valid_from=D(2019, 1, 1))
    cadre(db, world.v2)
    line = make_line(db, world.city, category="pension_subsidy", allocated_fen=1_000_000_00)
    run = start_run(client, world, [("pension_subsidy", line.id)])
    assert run["total"] == "800.00"
    line18 = make_line(db, world.city, year=2018, category="pension_subsidy", allocated_fen=1_000_000_00)
    assert start_run(client, world, [("pension_subsidy", line18.id)], year=2018)["total"] == "600.00"


def test_no_policy_for_the_period_is_422(client: TestClient, world: World, db: Session) -> None:
    line = make_line(db, world.city, year=2030, category="accident_insurance")
    r = client.post(RUNS, headers=world.auth("city"), json={
        "year": 2030, "org_id": world.city.id, "kinds": [{"kind": "accident_insurance", "budget_line_id": line.id}]})
    assert r.status_code == 422 and r.json()["code"] == "no_policy"


# --- monthly kinds ---------------------------------------------------------------------------


@pytest.mark.parametrize(("started", "ended", "months"), [
    (D(2015, 1, 1), None, 12),
    (D(2015, 1, 1), D(2019, 6, 14), 5),  # left before the 15th of June: January to May
    (D(2015, 1, 1), D(2019, 6, 15), 6),  # in office on 15 June: June counts
    (D(2019, 3, 16), None, 9),  # started after 15 March: April to December
    (D(2019, 3, 15), D(2019, 3, 15), 1),  # one day, the 15th
    (D(2019, 12, 16), None, 0),
])
def test_a_month_counts_when_in_office_on_the_15th(client: TestClient, world: World, db: Session,
                                                    started: dt.date, ended: dt.date | None, months: int) -> None:
    policy(db, "basic_pay", valid_from=D(2019, 1, 1), rates=[
        {"title": "secretary", "amount_fen": 2000_00}, {"title": "committee_member", "amount_fen": 1500_00}])
    person = cadre(db, world.v2, "secretary", started=started, ended=ended)
    line = make_line(db, world.city, category="cadre_pay", allocated_fen=10_000_000_00)
    run = start_run(client, world, [("basic_pay", line.id)])
    got = by_person(lines_of(client, world, run["id"])).get(person.id)
    if months == 0:
        assert got is None
        return
    assert got is not None and got["months"] == months
    assert got["amount"] == f"{2000 * months}.00"
    assert got["basis"] == f"{months} month{'s' if months > 1 else ''} × 2000.00 (secretary at 日头村)"


def test_basic_pay_follows_title_changes_and_rate_changes(client: TestClient, world: World, db: Session) -> None:
    policy(db, "basic_pay", valid_from=D(2018, 1, 1), valid_to=D(2019, 6, 30),
           rates=[{"title": "secretary", "amount_fen": 1800_00}, {"title": "committee_member", "amount_fen": 1000_00}])
    policy(db, "basic_pay", valid_from=D(2019, 7, 1),
           rates=[{"title": "secretary", "amount_fen": 2000_00}, {"title": "committee_member", "amount_fen": 1200_00}])
    person = make_person(db, world.v1, name="升任者")
    make_position(db, person, world.v1, "committee_member", D(2016, 1, 1), D(2019, 3, 31))
    make_position(db, person, world.v1, "secretary", D(2019, 4, 1))
    line = make_line(db, world.city, category="cadre_pay", allocated_fen=10_000_000_00)
    run = start_run(client, world, [("basic_pay", line.id)])
    got = by_person(lines_of(client, world, run["id"]))[person.id]
    # Jan–Mar committee member 1,000; Apr–Jun secretary 1,800; Jul–Dec secretary 2,000.
    assert got["amount"] == f"{3 * 1000 + 3 * 1800 + 6 * 2000}.00" and got["months"] == 12
    assert "3 months × 1000.00 (committee_member at 将军桥社区)" in got["basis"]
    assert "6 months × 2000.00 (secretary at 将军桥社区)" in got["basis"]


def test_altitude_allowance_by_band_of_the_organisation(client: TestClient, world: World, db: Session) -> None:
    policy(db, "altitude_allowance", valid_from=D(2019, 1, 1), rates=[
        {"band_min": 3000, "band_max": 3500, "amount_fen": 200_00},
        {"band_min": 3500, "band_max": 4000, "amount_fen": 300_00},
        {"band_min": 4000, "amount_fen": 400_00}])
    high = cadre(db, world.v2)  # 3,720 m
    low = cadre(db, world.v1)  # 2,600 m: below every band
    line = make_line(db, world.city, category="altitude_allowance", allocated_fen=10_000_000_00)
    run = start_run(client, world, [("altitude_allowance", line.id)], month=3)
    lines = by_person(lines_of(client, world, run["id"]))
    assert low.id not in lines
    assert lines[high.id]["amount"] == "300.00" and lines[high.id]["period"] == "2019-03"
    assert lines[high.id]["basis"] == "1 month × 300.00 (日头村 3720 m, band 3500–4000 m)"


def test_retired_allowance_by_years_of_service(client: TestClient, world: World, db: Session) -> None:
    policy(db, "retired_allowance", valid_from=D(2019, 1, 1), rates=[
        {"band_min": 3, "band_max": 10, "amount_fen": 100_00},
        {"band_min": 10, "band_max": 20, "amount_fen": 300_00},
        {"band_min": 20, "amount_fen": 500_00}])
    long_ago = cadre(db, world.v2, "secretary", started=D(2000, 1, 1), ended=D(2012, 12, 31))  # 13 years
    mid_year = cadre(db, world.v1, "committee_member", started=D(2009, 7, 1), ended=D(2019, 6, 30))  # 10 years
    short = cadre(db, world.v1, "committee_member", started=D(2017, 1, 1), ended=D(2018, 12, 31))  # 2 years
    serving = cadre(db, world.v2, "secretary", started=D(1990, 1, 1))
    returned = cadre(db, world.v1b, "secretary", started=D(1995, 1, 1), ended=D(2015, 12, 31))
    make_position(db, returned, world.v1b, "committee_member", D(2019, 1, 1))  # back in office
    died = cadre(db, world.v2, "secretary", started=D(1990, 1, 1), ended=D(2010, 12, 31))
    died.status, died.left_on = "deceased", D(2019, 3, 20)
    db.flush()
    line = make_line(db, world.city, category="retired_allowance", allocated_fen=10_000_000_00)
    run = start_run(client, world, [("retired_allowance", line.id)])
    lines = by_person(lines_of(client, world, run["id"]))
    assert lines[long_ago.id]["months"] == 12 and lines[long_ago.id]["amount"] == "3600.00"
    assert "13 years of service" in lines[long_ago.id]["basis"]
    assert lines[mid_year.id]["months"] == 6 and lines[mid_year.id]["amount"] == "1800.00"
    # Died on 20 March: alive on the 15th of January to March, nothing from April.
    assert lines[died.id]["months"] == 3 and lines[died.id]["amount"] == "1500.00"
    assert short.id not in lines and serving.id not in lines and returned.id not in lines


def test_service_years_count_like_the_people_service(db: Session, world: World) -> None:
    person = make_person(db, world.v1, name="履历")
    spans = [(D(2001, 3, 1), D(2004, 2, 28)), (D(2003, 1, 1), D(2006, 5, 31)), (D(2010, 2, 1), D(2013, 9, 15)),
             (D(2016, 8, 8), None)]
    for start, end in spans:
        make_position(db, person, world.v1, "committee_member", start, end)
    for as_of in (D(2005, 1, 1), D(2013, 9, 15), D(2019, 6, 15), D(2020, 2, 29)):
        expected = people_service.service_years(db, person_id=person.id, as_of=as_of).years
        assert service_years_from_spans(spans, as_of) == expected, as_of


def test_run_computation_is_set_based(client: TestClient, world: World, db: Session, engine: Engine) -> None:
    policy(db, "basic_pay", valid_from=D(2019, 1, 1), rates=[{"title": "secretary", "amount_fen": 2000_00}])
    line = make_line(db, world.city, category="cadre_pay", allocated_fen=10_000_000_00)
    for _ in range(3):
        cadre(db, world.v2)
    with count_statements(engine) as few:
        start_run(client, world, [("basic_pay", line.id)])
    for _ in range(20):
        cadre(db, world.v1)
    with count_statements(engine) as many:
        run = start_run(client, world, [("basic_pay", line.id)])
    assert run["line_count"] == 23
    assert len(many) == len(few)


# --- commit, pay, reverse ----------------------------------------------------------------------


def insurance_run(client: TestClient, world: World, db: Session, allocated_fen: int = 1_000_000_00,
                  cadres: int = 3, who: str = "city") -> tuple[dict, int, list[Person]]:
    policy(db, "accident_insurance", 100_00, valid_from=D(2019, 1, 1))
    people = [cadre(db, world.v2) for _ in range(cadres)]
    line = make_line(db, world.city, category="accident_insurance", allocated_fen=allocated_fen)
    return start_run(client, world, [("accident_insurance", line.id)], who=who), line.id, people


def test_commit_by_another_user_draws_the_total_from_the_line(client: TestClient, world: World,
                                                              db: Session) -> None:
    # Rows committed by the concurrency tests stay in the run's database (and SQLite reuses rolled-back
    # ids), so look only at the audit rows this test writes.
    start = db.scalar(select(func.max(AuditLog.id))) or 0
    run, line_id, _ = insurance_run(client, world, db)
    r = client.post(f"{RUNS}/{run['id']}/commit", headers=world.auth("city"))
    assert r.status_code == 403 and r.json()["code"] == "maker_checker"
    checker = extra_user(db, world, CITY, world.city)
    r = client.post(f"{RUNS}/{run['id']}/commit", headers=headers(checker))
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "committed" and r.json()["committed_by"] == checker.id
    line = reload_line(db, line_id)
    assert (line.approved_fen, line.committed_fen) == (300_00, 300_00)
    assert {ln["status"] for ln in lines_of(client, world, run["id"])} == {"committed"}
    again = client.post(f"{RUNS}/{run['id']}/commit", headers=headers(checker))
    assert again.status_code == 409 and again.json()["code"] == "invalid_status"
    assert db.scalar(select(func.count()).select_from(AuditLog).where(
        AuditLog.id > start, AuditLog.action == "subsidy_run.commit", AuditLog.entity_id == str(run["id"]))) == 1
    row = db.scalar(select(AuditLog).where(AuditLog.id > start, AuditLog.action == "budget_line.approve",
                                           AuditLog.entity_id == str(line_id)))
    assert row is not None and row.before["approved"] == "0.00" and row.after["approved"] == "300.00"


def test_commit_fails_whole_with_the_shortfall_per_line(client: TestClient, world: World, db: Session) -> None:
    policy(db, "accident_insurance", 100_00, valid_from=D(2019, 1, 1))
    policy(db, "pension_subsidy", 800_00, valid_from=D(2019, 1, 1))
    for _ in range(3):
        cadre(db, world.v2)
    ins = make_line(db, world.city, category="accident_insurance", allocated_fen=1000_00)
    pen = make_line(db, world.city, category="pension_subsidy", allocated_fen=2000_00)  # needs 2,400
    run = start_run(client, world, [("accident_insurance", ins.id), ("pension_subsidy", pen.id)])
    r = client.post(f"{RUNS}/{run['id']}/commit", headers=headers(extra_user(db, world, CITY, world.city)))
    assert r.status_code == 409 and r.json()["code"] == "budget_exceeded"
    assert r.json()["errors"] == [{"loc": ["budget_line", pen.id],
                                   "msg": "needed 2400.00, available 2000.00, short by 400.00"}]
    assert "short by 400.00" in r.json()["detail"]
    assert reload_line(db, ins.id).committed_fen == 0 and reload_line(db, pen.id).committed_fen == 0
    assert client.get(f"{RUNS}/{run['id']}", headers=world.auth("city")).json()["status"] == "draft"


def test_a_beneficiary_kind_and_period_is_in_one_committed_run_only(client: TestClient, world: World,
                                                                    db: Session) -> None:
    first, line_id, _ = insurance_run(client, world, db)
    second = start_run(client, world, [("accident_insurance", line_id)])
    checker = extra_user(db, world, CITY, world.city)
    assert client.post(f"{RUNS}/{first['id']}/commit", headers=headers(checker)).status_code == 200
    r = client.post(f"{RUNS}/{second['id']}/commit", headers=headers(checker))
    assert r.status_code == 409 and r.json()["code"] == "overlapping_run"
    assert f"run {first['id']}" in r.json()["detail"]
    assert reload_line(db, line_id).committed_fen == 300_00  # the failed commit drew nothing
    # The database itself refuses a second claim.
    claimed = db.scalar(select(SubsidyLine).where(SubsidyLine.run_id == first["id"]).limit(1))
    assert claimed is not None
    with pytest.raises(IntegrityError), db.begin_nested():
        db.execute(insert(SubsidyLine).values(
            run_id=second["id"], kind=claimed.kind, beneficiary_type="person", beneficiary_id=claimed.beneficiary_id,
            person_id=claimed.person_id, org_id=claimed.org_id, period=claimed.period, amount_fen=1, basis="dup",
            status="committed", claimed=True))


def test_an_overlap_with_a_run_outside_the_callers_scope_does_not_name_it(client: TestClient, world: World,
                                                                           db: Session) -> None:
    city_run, _, _ = insurance_run(client, world, db)  # the city's run pays v2's cadres
    assert client.post(f"{RUNS}/{city_run['id']}/commit",
                       headers=headers(extra_user(db, world, CITY, world.city))).status_code == 200
    line = make_line(db, world.t2, category="accident_insurance", allocated_fen=1000_00)
    own = start_run(client, world, [("accident_insurance", line.id)], org_id=world.t2.id, who="t2")
    assert client.get(f"{RUNS}/{city_run['id']}", headers=world.auth("t2")).status_code == 404
    r = client.post(f"{RUNS}/{own['id']}/commit", headers=headers(extra_user(db, world, TOWNSHIP, world.t2)))
    assert r.status_code == 409 and r.json()["code"] == "overlapping_run", r.text
    assert f"run {city_run['id']}" not in r.json()["detail"] and "another run" in r.json()["detail"]


def test_month_runs_and_year_runs_of_a_kind_never_mix_in_a_year(client: TestClient, world: World,
                                                                db: Session) -> None:
    policy(db, "basic_pay", valid_from=D(2019, 1, 1), rates=[{"title": "secretary", "amount_fen": 2000_00}])
    cadre(db, world.v2)
    line = make_line(db, world.city, category="cadre_pay", allocated_fen=10_000_000_00)
    march = start_run(client, world, [("basic_pay", line.id)], month=3)
    year = start_run(client, world, [("basic_pay", line.id)])
    checker = extra_user(db, world, CITY, world.city)
    assert client.post(f"{RUNS}/{march['id']}/commit", headers=headers(checker)).status_code == 200
    r = client.post(f"{RUNS}/{year['id']}/commit", headers=headers(checker))
    assert r.status_code == 409 and r.json()["code"] == "overlapping_run"
    april = start_run(client, world, [("basic_pay", line.id)], month=4)
    assert client.post(f"{RUNS}/{april['id']}/commit", headers=headers(checker)).status_code == 200
    assert reload_line(db, line.id).approved_fen == 4000_00


def test_pay_by_line_then_the_rest_then_reverse_one_line(client: TestClient, world: World, db: Session) -> None:
    run, line_id, people = insurance_run(client, world, db)
    checker = extra_user(db, world, CITY, world.city)
    h = headers(checker)
    lines = lines_of(client, world, run["id"])
    assert client.post(f"{RUNS}/{run['id']}/lines/{lines[0]['id']}/pay", headers=h).status_code == 409  # draft
    assert client.post(f"{RUNS}/{run['id']}/commit", headers=h).status_code == 200
    one = client.post(f"{RUNS}/{run['id']}/lines/{lines[0]['id']}/pay", headers=h)
    assert one.status_code == 200 and one.json()["status"] == "paid"
    assert (reload_line(db, line_id).paid_fen, reload_line(db, line_id).approved_fen) == (100_00, 200_00)
    rest = client.post(f"{RUNS}/{run['id']}/pay", headers=h)
    assert rest.status_code == 200 and rest.json()["status"] == "paid"
    assert reload_line(db, line_id).paid_fen == 300_00
    no_reason = client.post(f"{RUNS}/{run['id']}/lines/{lines[1]['id']}/reverse", headers=h, json={})
    assert no_reason.status_code == 422
    rev = client.post(f"{RUNS}/{run['id']}/lines/{lines[1]['id']}/reverse", headers=h,
                      json={"reason": "已由派出单位投保"})
    assert rev.status_code == 200 and rev.json()["status"] == "reversed"
    assert rev.json()["reversal_reason"] == "已由派出单位投保"
    line = reload_line(db, line_id)
    assert (line.paid_fen, line.committed_fen) == (200_00, 200_00)
    shown = client.get(f"{RUNS}/{run['id']}", headers=h).json()  # the run's totals are its lines' not reversed
    assert (shown["total"], shown["line_count"], shown["status"]) == ("200.00", 2, "paid")
    assert [(k["total"], k["beneficiaries"]) for k in shown["kinds"]] == [("200.00", 2)]
    noted = db.scalar(select(AuditLog).where(AuditLog.action == "subsidy_line.reverse",
                                             AuditLog.entity_id == str(lines[1]["id"])))
    assert noted is not None and (noted.after["run_total"], noted.after["run_line_count"]) == ("200.00", 2)
    assert client.post(f"{RUNS}/{run['id']}/lines/{lines[1]['id']}/reverse", headers=h,
                       json={"reason": "again"}).status_code == 409
    # The reversed beneficiary may be paid by a later run; the others may not.
    again = start_run(client, world, [("accident_insurance", line_id)])
    assert client.post(f"{RUNS}/{again['id']}/commit", headers=h).json()["code"] == "overlapping_run"
    summary = client.get("/api/v1/subsidies/summary", params={"year": 2019}, headers=world.auth("auditor")).json()
    ins = next(r for r in summary["by_kind"] if r["kind"] == "accident_insurance")
    assert (ins["beneficiaries"], ins["total"], ins["paid"]) == (2, "200.00", "200.00")
    assert [r["township_id"] for r in summary["rows"]] == [world.t2.id]
    assert summary["rows"][0]["township_name"] == "姑咱镇"
    assert people


def test_payments_and_reversals_of_a_run_queue_on_its_row(client: TestClient, world: World, db: Session,
                                                            engine: Engine) -> None:
    """A whole-run payment summed the committed lines, then paid that sum from the budget line: a reversal committed
    in between took a line out of the UPDATE but not out of the sum (PostgreSQL, READ COMMITTED). Each payment and
    reversal now first locks the run's row, before it reads a line."""
    from sqlalchemy import event

    run, _, _ = insurance_run(client, world, db)
    checker = headers(extra_user(db, world, CITY, world.city))
    assert client.post(f"{RUNS}/{run['id']}/commit", headers=checker).status_code == 200
    lines = lines_of(client, world, run["id"])
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        seen.append(" ".join(statement.split()))

    event.listen(engine, "before_cursor_execute", note)
    try:
        for path, body in ((f"{RUNS}/{run['id']}/lines/{lines[0]['id']}/pay", None),
                           (f"{RUNS}/{run['id']}/lines/{lines[1]['id']}/reverse", {"reason": "重复"}),
                           (f"{RUNS}/{run['id']}/pay", None)):
            seen.clear()
            assert client.post(path, headers=checker, json=body).status_code == 200, path
            lock = next(i for i, sql in enumerate(seen) if sql.startswith("SELECT subsidy_run.id FROM subsidy_run"))
            first_line = next(i for i, sql in enumerate(seen)  # summing or changing lines
                              if sql.startswith("UPDATE subsidy_line") or "sum(subsidy_line" in sql)
            assert lock < first_line, seen
            if engine.dialect.name == "postgresql":
                assert seen[lock].endswith("FOR UPDATE"), seen[lock]
    finally:
        event.remove(engine, "before_cursor_execute", note)


def test_village_cannot_draft_or_commit_and_township_commits_only_in_its_scope(client: TestClient, world: World,
                                                                               db: Session) -> None:
    policy(db, "accident_insurance", 100_00, valid_from=D(2019, 1, 1))
    cadre(db, world.v1)
    cadre(db, world.v2)
    line = make_line(db, world.t1, category="accident_insurance", allocated_fen=1000_00)
    body = {"year": 2019, "org_id": world.t1.id, "kinds": [{"kind": "accident_insurance", "budget_line_id": line.id}]}
    assert client.post(RUNS, headers=world.auth("v1"), json=body).status_code == 403
    assert client.post(RUNS, headers=world.auth("t2"), json=body).status_code == 404
    run = start_run(client, world, [("accident_insurance", line.id)], org_id=world.t1.id, who="t1")
    assert run["total"] == "100.00"  # only t1's cadre
    assert client.post(f"{RUNS}/{run['id']}/commit", headers=world.auth("t2")).status_code == 404
    assert client.post(f"{RUNS}/{run['id']}/commit", headers=world.auth("auditor")).status_code == 403
    second = extra_user(db, world, TOWNSHIP, world.t1)
    assert client.post(f"{RUNS}/{run['id']}/commit", headers=headers(second)).status_code == 200
    assert lines_of(client, world, run["id"], who="t1")[0]["org_id"] == world.v1.id
    # The run belongs to the township: a village does not see it.
    assert client.get(f"{RUNS}/{run['id']}/lines", headers=world.auth("v1")).status_code == 404


def test_kind_must_draw_on_a_line_of_its_category_and_year(client: TestClient, world: World, db: Session) -> None:
    wrong_cat = make_line(db, world.city, category="training")
    wrong_year = make_line(db, world.city, year=2018, category="accident_insurance")
    below = make_line(db, world.v2, category="accident_insurance")
    for line in (wrong_cat, wrong_year, below):
        r = client.post(RUNS, headers=world.auth("city"), json={
            "year": 2019, "org_id": world.city.id, "kinds": [{"kind": "accident_insurance",
                                                              "budget_line_id": line.id}]})
        assert r.status_code == 422, r.text
        assert r.json()["errors"][0]["loc"] == ["body", "kinds", 0, "budget_line_id"]
    r = client.post(RUNS, headers=world.auth("city"), json={
        "year": 2019, "month": 3, "org_id": world.city.id,
        "kinds": [{"kind": "accident_insurance", "budget_line_id": wrong_year.id}]})
    assert r.status_code == 422


def test_a_recompute_of_a_run_committed_meanwhile_changes_nothing(client: TestClient, world: World,
                                                                   db: Session) -> None:
    """A recompute that loaded the draft just before another user's commit went through (PostgreSQL lets both read
    it) wrote fresh draft lines into the committed run and overwrote its totals. It now claims the draft first."""
    from sqlalchemy import update

    from app.core.errors import ProblemError
    from app.models.funds.subsidies import SubsidyRun
    from app.services.funds import subsidies as service
    from tests.funds_support import city_actor

    run_json, _, _ = insurance_run(client, world, db, cadres=2)
    stale = db.get(SubsidyRun, run_json["id"])
    assert stale is not None and stale.status == "draft"
    db.execute(update(SubsidyRun).where(SubsidyRun.id == stale.id).values(status="committed")  # another commit
               .execution_options(synchronize_session=False))
    cadre(db, world.v1)  # would add a line
    lines_before = db.scalar(select(func.count()).select_from(SubsidyLine).where(SubsidyLine.run_id == stale.id))
    with pytest.raises(ProblemError) as refused:
        service.recompute_run(db, city_actor(world), stale)
    assert refused.value.status == 409 and refused.value.code == "invalid_status"
    assert db.scalar(select(func.count()).select_from(SubsidyLine).where(SubsidyLine.run_id == stale.id)) \
        == lines_before == 2
    assert stale.status == "committed" and stale.total_fen == 200_00


def test_recompute_picks_up_new_cadres_and_cancel_ends_a_draft(client: TestClient, world: World,
                                                               db: Session) -> None:
    run, _, _ = insurance_run(client, world, db, cadres=1)
    cadre(db, world.v1)
    r = client.post(f"{RUNS}/{run['id']}/recompute", headers=world.auth("city"))
    assert r.status_code == 200 and r.json()["total"] == "200.00" and r.json()["line_count"] == 2
    assert len(lines_of(client, world, run["id"])) == 2
    assert client.post(f"{RUNS}/{run['id']}/cancel", headers=world.auth("city")).json()["status"] == "cancelled"
    assert client.post(f"{RUNS}/{run['id']}/recompute", headers=world.auth("city")).status_code == 409


def test_lines_filter_and_csv(client: TestClient, world: World, db: Session) -> None:
    run, _, people = insurance_run(client, world, db, cadres=2)
    cadre(db, world.v1)
    client.post(f"{RUNS}/{run['id']}/recompute", headers=world.auth("city"))
    assert len(lines_of(client, world, run["id"], township_id=world.t2.id)) == 2
    assert len(lines_of(client, world, run["id"], person_id=people[0].id)) == 1
    csv = client.get(f"{RUNS}/{run['id']}/lines", headers={**world.auth("auditor"), "Accept": "text/csv"})
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    rows = csv.text.lstrip("\ufeff").splitlines()
    assert rows[0].startswith("id,run_id,kind") and len(rows) == 4


# --- policies -----------------------------------------------------------------------------------


def test_only_the_city_records_policies_and_periods_never_overlap(client: TestClient, world: World) -> None:
    body = {"kind": "pension_subsidy", "name": "养老保险补贴", "valid_from": "2040-01-01",
            "rates": [{"amount": "800.00"}]}
    refused = client.post(POLICIES, headers=world.auth("t1"), json=body).json()
    assert refused["code"] == "permission_denied" and "funds_configure" in refused["detail"]
    r = client.post(POLICIES, headers=world.auth("city"), json=body)
    assert r.status_code == 201, r.text
    assert r.json()["rates"] == [{"title": None, "band_min": None, "band_max": None, "amount": "800.00"}]
    overlap = client.post(POLICIES, headers=world.auth("city"), json={**body, "valid_from": "2041-01-01"})
    assert overlap.status_code == 409 and overlap.json()["code"] == "policy_overlap"
    closed = client.post(f"{POLICIES}/{r.json()['id']}/close", headers=world.auth("city"),
                         json={"valid_to": "2040-12-31"})
    assert closed.status_code == 200 and closed.json()["valid_to"] == "2040-12-31"
    assert client.post(POLICIES, headers=world.auth("city"), json={**body, "valid_from": "2041-01-01"}
                       ).status_code == 201
    listed = client.get(POLICIES, headers=world.auth("auditor"), params={"kind": "pension_subsidy",
                                                                        "on": "2041-06-01"}).json()
    assert [p["valid_from"] for p in listed["items"]] == ["2041-01-01"]


@pytest.mark.parametrize("rates", [
    [],
    [{"amount": "100.00"}, {"amount": "200.00"}],
    [{"title": "secretary", "amount": "100.00"}],
    [{"amount": "-1.00"}],
])
def test_a_flat_policy_has_exactly_one_plain_rate(client: TestClient, world: World, rates: list) -> None:
    r = client.post(POLICIES, headers=world.auth("city"), json={
        "kind": "accident_insurance", "name": "x", "valid_from": "2042-01-01", "rates": rates})
    assert r.status_code == 422


def test_bands_must_not_overlap(client: TestClient, world: World) -> None:
    r = client.post(POLICIES, headers=world.auth("city"), json={
        "kind": "altitude_allowance", "name": "x", "valid_from": "2042-01-01", "rates": [
            {"band_min": 3000, "band_max": 3600, "amount": "1.00"}, {"band_min": 3500, "amount": "2.00"}]})
    assert r.status_code == 422


def test_a_cadre_of_a_new_village_is_counted_in_its_township(client: TestClient, world: World, db: Session) -> None:
    new_village = make_org(db, world.t2, level="village", domain="rural", name="新村", code="513301101099",
                           altitude_m=3100)
    person = cadre(db, new_village)
    run, _, _ = insurance_run(client, world, db, cadres=0)
    got = by_person(lines_of(client, world, run["id"]))[person.id]
    assert got["township_id"] == world.t2.id and got["org_id"] == new_village.id
