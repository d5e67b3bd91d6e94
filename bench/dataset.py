"""A prefecture-scale dataset, reproducible from a seed, loaded with bulk inserts.

Shape (issue 8): 18 counties x ~20 townships x ~12 villages (~4,700 organisations), 150,000 people
with position histories, users for every level and a year (2019) of records in the areas below.

The organisation tree is city -> township -> village, and `Actor.sees_everything` treats any
organisation at the root of the tree as "the whole city". Eighteen separate root "city"
organisations would therefore let each county administrator see every county. The least-wrong
model is ONE root city organisation standing for the prefecture (code 513300), with the 18 counties'
townships directly under it (20 per county, named after their county, codes 513300001..513300360):
the county level itself has no organisation of its own, so a "county" is a set of townships and
has no administrator. City scope = the prefecture = the full dataset, the hardest case for
the reports and the deep page.

Areas with a year of records: responsibilities (problems, the city's monthly lists with one
assignment per village and task), funds (budget lines with paid disbursements, subsidy runs with
insurance/pension/basic-pay lines for every village cadre, party dues profiles, payments and their
months for the members of the first `dues_counties` counties). Not generated (say so in the README):
standards audits (need the scored catalogue), letters, duty posts, evaluations, training, frontline.

Rows are built in memory with ids assigned here (so no round trip per parent row), then written
with one executemany per table on SQLite and COPY on PostgreSQL; PostgreSQL sequences are moved
past the ids at the end.
"""

from __future__ import annotations

import datetime as dt
import random
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, Table, func, select, text
from sqlmodel import SQLModel

from app import models  # noqa: F401  (every table registered)
from app.core.permissions import Role
from app.core.security import encrypt_pii, hash_password, mask_id_number, mask_phone, pii_lookup_hash

BENCH_PASSWORD = "bench-password-2019"
YEAR = 2019
ROOT_CODE = "513300"
COUNTIES = ["康定", "泸定", "丹巴", "九龙", "雅江", "道孚", "炉霍", "甘孜", "新龙", "德格", "白玉", "石渠",
            "色达", "理塘", "巴塘", "乡城", "稻城", "得荣"]
SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯邓曾彭蒋")
GIVEN = ["扎西", "次仁", "泽仁", "格桑", "尼玛", "卓玛", "拉姆", "建国", "志强", "秀英", "明", "丽", "军", "芳", "勇",
         "德吉", "央金", "罗布", "平措", "春梅"]
PROBLEM_SOURCES = ["debriefing_appraisal", "quarterly_inspection", "standards_audit", "frontline_visit", "other"]
TASK_CATEGORIES = ["poverty_alleviation", "anti_gang_crime", "rural_revitalization", "organization_building",
                   "other"]
# Yearly / monthly subsidy amounts in fen (the bench's own figures, not the seeded policy).
INSURANCE_FEN, PENSION_FEN = 10_000, 80_000
BASIC_PAY_FEN = {"secretary": 250_000, "village_committee_director": 230_000, "deputy_secretary": 200_000,
                 "committee_member": 180_000, "resident_first_secretary": 100_000}


@dataclass(frozen=True)
class Scale:
    counties: int = 18
    townships: int = 20  # per county
    villages: int = 12  # per township
    people: int = 150_000
    dues_counties: int = 3  # counties whose members get dues profiles and a year of payments
    seed: int = 2019


FULL = Scale()
TINY = Scale(counties=1, townships=2, villages=2, people=80, dues_counties=1)


@dataclass
class Manifest:
    """What the load run needs to know about the generated data (ids and usernames)."""

    password: str = BENCH_PASSWORD
    city_id: int = 0
    township_ids: list[int] = field(default_factory=list)
    village_ids: list[int] = field(default_factory=list)
    users: dict[str, str] = field(default_factory=dict)  # role key -> username
    sample_village_id: int = 0
    sample_township_id: int = 0
    sample_person_id: int = 0  # a person of the sample village
    # Where the create case adds its branches: a village of the last township, away from the sample township and
    # village that the read cases page and get, so a reused dataset reads the same rows run after run.
    creates_under: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0


class _Ids:
    def __init__(self, conn: Connection, table: str) -> None:
        self.next = (conn.scalar(select(func.max(SQLModel.metadata.tables[table].c.id))) or 0) + 1

    def take(self) -> int:
        value = self.next
        self.next += 1
        return value


def _table(name: str) -> Table:
    return SQLModel.metadata.tables[name]


def _rows_for(table: Table, rows: Sequence[dict[str, Any]], now: dt.datetime) -> tuple[list[str], list[tuple]]:
    """Every column of the table, in order: missing ones get their scalar default, timestamps `now`, else None."""
    defaults: dict[str, Any] = {}
    for c in table.columns:
        if c.name in ("created_at", "updated_at"):
            defaults[c.name] = now
        elif c.default is not None and not callable(getattr(c.default, "arg", None)):
            arg = getattr(c.default, "arg", None)
            defaults[c.name] = getattr(arg, "value", arg)
        else:
            defaults[c.name] = None
    names = [c.name for c in table.columns]
    return names, [tuple(r.get(n, defaults[n]) for n in names) for r in rows]


def bulk_insert(conn: Connection, table_name: str, rows: Sequence[dict[str, Any]], now: dt.datetime) -> int:
    if not rows:
        return 0
    table = _table(table_name)
    names, tuples = _rows_for(table, rows, now)
    if conn.dialect.name == "postgresql":
        raw = conn.connection.driver_connection
        cols = ", ".join(f'"{n}"' for n in names)
        with raw.cursor() as cur, cur.copy(f'COPY "{table_name}" ({cols}) FROM STDIN') as copy:
            for t in tuples:
                copy.write_row(t)
    else:
        # The driver directly, with values in the exact form SQLAlchemy stores them on SQLite
        # (naive UTC "YYYY-MM-DD HH:MM:SS.ffffff", ISO dates, 0/1): several times faster than Core.
        raw = conn.connection.driver_connection
        sql = f'INSERT INTO "{table_name}" ({", ".join(names)}) VALUES ({", ".join("?" * len(names))})'
        raw.executemany(sql, [tuple(_sqlite_value(v) for v in t) for t in tuples])
    return len(rows)


def _sqlite_value(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    return value


def _date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def _at(day: dt.date, hour: int = 10) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, tzinfo=dt.UTC)


def _month_end(month: int) -> dt.date:
    return (dt.date(YEAR + (month == 12), month % 12 + 1, 1)) - dt.timedelta(days=1)


class _IdNumbers:
    def __init__(self) -> None:
        self.used: dict[dt.date, int] = {}

    def make(self, birth: dt.date, male: bool) -> str:
        from stdnum.cn import ric

        n = self.used.get(birth, 0)
        self.used[birth] = n + 1
        seq = n * 2 + (1 if male else 0)
        if seq > 999:
            raise RuntimeError("too many people born on one day")
        body = f"513301{birth:%Y%m%d}{seq:03d}"
        return body + ric.calc_check_digit(body + "0")


def generate(conn: Connection, scale: Scale = FULL, *, log: Any = None) -> Manifest:
    """Write the dataset through `conn` (one transaction, committed by the caller); return the manifest."""
    clock = time.perf_counter()
    say = log or (lambda *_: None)
    rng = random.Random(scale.seed)  # reproducible benchmark data, not secrets
    now = dt.datetime(YEAR, 12, 31, 12, tzinfo=dt.UTC)
    m = Manifest()
    counts: dict[str, int] = {}
    ids = {t: _Ids(conn, t) for t in (
        "organization", "person", "position", "user_account", "problem", "monthly_list", "monthly_task",
        "task_assignment", "budget_line", "disbursement", "subsidy_run", "subsidy_run_kind", "subsidy_line",
        "dues_profile", "dues_payment", "dues_payment_month")}

    def put(table: str, rows: list[dict[str, Any]]) -> None:
        t0 = time.perf_counter()
        counts[table] = counts.get(table, 0) + bulk_insert(conn, table, rows, now)
        say(f"  {table:<20} {len(rows):>9,} rows  {time.perf_counter() - t0:6.1f} s")

    # --- organisations -------------------------------------------------------------------------
    orgs: list[dict[str, Any]] = []
    city_id = ids["organization"].take()
    city_path = f"/{city_id}/"
    orgs.append({"id": city_id, "parent_id": None, "level": "city", "domain": "organ", "name": "甘孜州(基准数据)",
                 "code": ROOT_CODE, "status": "active", "path": city_path, "altitude_m": 2560})
    townships: list[tuple[int, str, int]] = []  # (id, path, county)
    villages: list[tuple[int, str, int, int, bool]] = []  # (id, path, township id, county, rural)
    n_township = 0
    for county in range(scale.counties):
        for t in range(scale.townships):
            n_township += 1
            tid = ids["organization"].take()
            tpath = f"{city_path}{tid}/"
            street = t == 0
            tcode = f"{ROOT_CODE}{n_township:03d}"
            orgs.append({"id": tid, "parent_id": city_id, "level": "township", "domain": "street" if street else
                         "township", "name": f"{COUNTIES[county % len(COUNTIES)]}第{t + 1}{'街道' if street else '乡'}",
                         "code": tcode, "status": "active", "path": tpath, "altitude_m": rng.randrange(2000, 3500)})
            townships.append((tid, tpath, county))
            for v in range(scale.villages):
                vid = ids["organization"].take()
                rural = not street
                orgs.append({"id": vid, "parent_id": tid, "level": "village", "domain": "rural" if rural else
                             "community", "name": f"{tcode[-3:]}-{v + 1}{'村' if rural else '社区'}",
                             "code": f"{tcode}{v + 1:03d}", "status": "active", "path": f"{tpath}{vid}/",
                             "altitude_m": rng.randrange(2500, 4300)})
                villages.append((vid, f"{tpath}{vid}/", tid, county, rural))
    put("organization", orgs)
    m.city_id = city_id
    m.township_ids = [t[0] for t in townships]
    m.village_ids = [v[0] for v in villages]
    township_county = {t[0]: t[2] for t in townships}

    # --- users ---------------------------------------------------------------------------------
    password_hash = hash_password(BENCH_PASSWORD)
    users: list[dict[str, Any]] = []
    user_of_org: dict[int, int] = {}

    def user(username: str, role: Role, org_id: int) -> int:
        uid = ids["user_account"].take()
        users.append({"id": uid, "username": username, "password_hash": password_hash, "role": role.value,
                      "org_id": org_id, "is_active": True, "token_version": 1})
        return uid

    city_user = user("bench_city", Role.city_admin, city_id)
    user("bench_auditor", Role.auditor, city_id)
    for tid, _, _ in townships:
        user_of_org[tid] = user(f"bench_t{tid}", Role.township_admin, tid)
    for vid, *_ in villages:
        user_of_org[vid] = user(f"bench_v{vid}", Role.village_admin, vid)
    put("user_account", users)
    m.sample_village_id = villages[0][0]
    m.sample_township_id = villages[0][2]
    m.creates_under = villages[-1][0]
    m.users = {"city": "bench_city", "auditor": "bench_auditor", "township": f"bench_t{m.sample_township_id}",
               "village": f"bench_v{m.sample_village_id}", "creator": f"bench_t{villages[-1][2]}"}

    # --- people and positions ------------------------------------------------------------------
    people: list[dict[str, Any]] = []
    positions: list[dict[str, Any]] = []
    cadres: list[tuple[int, int, int, str]] = []  # (person id, village id, township id, title) in office on 31 Dec
    members_by_village: dict[int, list[tuple[int, bool]]] = {}  # village -> [(person id, rural)]
    secretary_of: dict[int, int] = {}
    id_numbers = _IdNumbers()
    per_village, extra = divmod(scale.people, len(villages))
    phone_n = 0
    for i, (vid, _path, tid, _county, rural) in enumerate(villages):
        n = per_village + (1 if i < extra else 0)
        term = _date(rng, dt.date(2016, 11, 1), dt.date(2017, 3, 31))
        titles = ["secretary", "deputy_secretary", "committee_member", "committee_member",
                  "village_committee_director"]
        if rural and rng.random() < 0.4:
            titles.append("resident_first_secretary")
        for k in range(n):
            pid = ids["person"].take()
            male = rng.random() < 0.65
            birth = _date(rng, dt.date(1940, 1, 1), dt.date(1999, 12, 31))
            roll = rng.random()
            member = "none" if roll < 0.05 else "probationary" if roll < 0.12 else "full"
            joined = None if member == "none" else (
                _date(rng, dt.date(2019, 1, 1), dt.date(2019, 11, 30)) if member == "probationary"
                else _date(rng, min(birth + dt.timedelta(days=366 * 18 + 30), dt.date(2017, 12, 31)),
                           dt.date(2017, 12, 31)))
            id_number = id_numbers.make(birth, male)
            phone_n += 1
            phone = f"1{3 + phone_n % 6}{(phone_n * 7919) % 1_000_000_000:09d}"
            people.append({
                "id": pid, "org_id": vid, "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
                "gender": "male" if male else "female", "ethnicity": "藏族" if rural else "汉族",
                "birth_date": birth, "id_number_cipher": encrypt_pii(id_number),
                "id_number_hash": pii_lookup_hash(id_number), "id_number_masked": mask_id_number(id_number),
                "phone_cipher": encrypt_pii(phone), "phone_hash": pii_lookup_hash(phone),
                "phone_masked": mask_phone(phone), "member_status": member, "joined_party_on": joined,
                "status": "active",
            })
            if k < len(titles):
                title = titles[k]
                started = term if title != "resident_first_secretary" else _date(
                    rng, dt.date(2018, 3, 1), dt.date(2019, 7, 31))
                positions.append({"id": ids["position"].take(), "person_id": pid, "org_id": vid, "title": title,
                                  "started_on": started, "ended_on": None})
                if title == "secretary":
                    secretary_of[vid] = pid
                    if rng.random() < 0.3:
                        earlier = _date(rng, dt.date(2008, 1, 1), dt.date(2013, 12, 31))
                        positions.append({"id": ids["position"].take(), "person_id": pid, "org_id": vid,
                                          "title": "committee_member", "started_on": earlier,
                                          "ended_on": term - dt.timedelta(days=1)})
                cadres.append((pid, vid, tid, title))
            elif k < len(titles) + 2 and birth.year < 1965:
                ended = _date(rng, dt.date(2005, 1, 1), term - dt.timedelta(days=1))
                positions.append({"id": ids["position"].take(), "person_id": pid, "org_id": vid,
                                  "title": rng.choice(["secretary", "committee_member",
                                                       "village_committee_director"]),
                                  "started_on": ended - dt.timedelta(days=365 * rng.randint(3, 15)),
                                  "ended_on": ended})
            elif member != "none":
                members_by_village.setdefault(vid, []).append((pid, rural))
    m.sample_person_id = next(p["id"] for p in people if p["org_id"] == m.sample_village_id)
    put("person", people)
    put("position", positions)
    del people

    # --- responsibilities: problems, monthly lists and assignments --------------------------------
    problems: list[dict[str, Any]] = []
    for vid, _path, tid, _county, _rural in villages:
        for _ in range(rng.randint(2, 6)):
            roll = rng.random()
            status = ("open" if roll < 0.2 else "rectifying" if roll < 0.45 else "submitted" if roll < 0.6
                      else "verified")
            opened = _date(rng, dt.date(YEAR, 1, 5), dt.date(YEAR, 10, 31))
            submitted = opened + dt.timedelta(days=rng.randint(10, 50)) if status in ("submitted", "verified") else None
            problems.append({
                "id": ids["problem"].take(), "org_id": vid, "year": YEAR, "source": rng.choice(PROBLEM_SOURCES),
                "description": "会议记录不完整,三会一课落实不到位", "cause_analysis": "制度执行不严",
                "rectification_measures": "补齐记录,每月检查", "responsible_person_id": secretary_of.get(vid),
                "deadline": opened + dt.timedelta(days=60), "status": status,
                "submitted_at": _at(submitted) if submitted else None,
                "verified_by": user_of_org[tid] if status == "verified" else None,
                "verified_at": _at(submitted + dt.timedelta(days=7)) if status == "verified" and submitted else None,
                "opened_by": user_of_org[tid], "created_at": _at(opened), "updated_at": _at(opened),
            })
    put("problem", problems)

    lists: list[dict[str, Any]] = []
    tasks: list[dict[str, Any]] = []
    assignments: list[dict[str, Any]] = []
    for month in range(1, 13):
        mid = ids["monthly_list"].take()
        label = f"{YEAR}-{month:02d}"
        issued = _at(dt.date(YEAR, month, 1), 2)
        lists.append({"id": mid, "org_id": city_id, "month": label, "title": f"{label} 月度清单", "status": "issued",
                      "issued_at": issued, "issued_by": city_user, "created_by": city_user,
                      "created_at": issued, "updated_at": issued})
        deadline = _month_end(month)
        for position in range(1, 4):
            task_id = ids["monthly_task"].take()
            category = TASK_CATEGORIES[(month + position) % len(TASK_CATEGORIES)]
            tasks.append({"id": task_id, "list_id": mid, "position": position, "title": f"任务 {position}",
                          "category": category, "deadline": deadline, "target_mode": "all_villages",
                          "status": "active", "created_at": issued, "updated_at": issued})
            for vid, *_ in villages:
                roll = rng.random()
                status = "done" if roll < 0.7 else "in_progress" if roll < 0.85 else "pending"
                done_on = _date(rng, dt.date(YEAR, month, 5), deadline + dt.timedelta(days=5)) \
                    if status == "done" else None
                assignments.append({
                    "id": ids["task_assignment"].take(), "task_id": task_id, "list_id": mid, "org_id": vid,
                    "month": label, "category": category, "deadline": deadline, "status": status,
                    "done_on": done_on, "done_at": _at(done_on) if done_on else None,
                    "created_at": issued, "updated_at": issued,
                })
    put("monthly_list", lists)
    put("monthly_task", tasks)
    put("task_assignment", assignments)
    del assignments

    # --- funds: budget lines, disbursements, subsidies, dues ---------------------------------------
    lines: list[dict[str, Any]] = []
    disbursements: list[dict[str, Any]] = []

    def line(org_id: int, category: str, name: str, allocated: int, paid: int = 0) -> dict[str, Any]:
        row = {"id": ids["budget_line"].take(), "fiscal_year": YEAR, "org_id": org_id, "category": category,
               "name": name, "source": "市财政", "allocated_fen": allocated, "allocated_down_fen": 0,
               "approved_fen": 0, "paid_fen": paid, "committed_fen": paid, "created_by": city_user}
        lines.append(row)
        return row

    for org_id in [*(t[0] for t in townships), *(v[0] for v in villages)]:
        row = line(org_id, "party_work", f"党建工作经费 {YEAR}", 2_000_000)
        paid_total = 0
        for _ in range(rng.randint(3, 8)):
            amount = rng.randrange(10_000, 200_000, 100)
            on = _date(rng, dt.date(YEAR, 1, 10), dt.date(YEAR, 12, 20))
            disbursements.append({
                "id": ids["disbursement"].take(), "line_id": row["id"], "org_id": org_id, "payee_kind": "other",
                "payee_name": "县城文具店", "purpose": "党建活动物资", "disbursed_on": on, "amount_fen": amount,
                "status": "paid", "created_by": user_of_org[org_id], "approved_by": city_user,
                "approved_at": _at(on, 9), "paid_by": city_user, "paid_at": _at(on, 15),
                "created_at": _at(on, 8), "updated_at": _at(on, 15),
            })
            paid_total += amount
        row["paid_fen"] = row["committed_fen"] = paid_total

    # One yearly run per county: insurance, pension and twelve months of basic pay for every cadre in office.
    runs: list[dict[str, Any]] = []
    run_kinds: list[dict[str, Any]] = []
    sub_lines: list[dict[str, Any]] = []
    kinds = [("accident_insurance", "accident_insurance"), ("pension_subsidy", "pension_subsidy"),
             ("basic_pay", "cadre_pay")]
    city_lines = {kind: line(city_id, category, f"{kind} {YEAR}", 0) for kind, category in kinds}
    by_county: dict[int, list[tuple[int, int, int, str]]] = {}
    for c in cadres:
        by_county.setdefault(township_county[c[2]], []).append(c)
    paid_at = _at(dt.date(YEAR, 12, 20))
    for county, county_cadres in sorted(by_county.items()):
        run_id = ids["subsidy_run"].take()
        totals = {k: [0, 0] for k, _ in kinds}
        for pid, vid, tid, title in county_cadres:
            for kind, _ in kinds:
                amount = {"accident_insurance": INSURANCE_FEN, "pension_subsidy": PENSION_FEN}.get(
                    kind, BASIC_PAY_FEN.get(title, 150_000) * 12)
                sub_lines.append({
                    "id": ids["subsidy_line"].take(), "run_id": run_id, "kind": kind, "beneficiary_type": "person",
                    "beneficiary_id": pid, "person_id": pid, "org_id": vid, "township_id": tid,
                    "period": str(YEAR), "months": 12 if kind == "basic_pay" else None, "amount_fen": amount,
                    "basis": f"{title}, 12 months" if kind == "basic_pay" else "per cadre per year",
                    "status": "paid", "claimed": True, "paid_by": city_user, "paid_at": paid_at,
                })
                totals[kind][0] += amount
                totals[kind][1] += 1
        total = sum(v[0] for v in totals.values())
        runs.append({"id": run_id, "year": YEAR, "month": None, "org_id": city_id,
                     "reference_date": dt.date(YEAR, 12, 31), "status": "paid", "total_fen": total,
                     "line_count": sum(v[1] for v in totals.values()),
                     "note": f"{COUNTIES[county % len(COUNTIES)]} {YEAR}", "created_by": city_user,
                     "computed_at": paid_at, "committed_by": city_user, "committed_at": paid_at})
        for kind, _ in kinds:
            run_kinds.append({"id": ids["subsidy_run_kind"].take(), "run_id": run_id, "kind": kind,
                              "budget_line_id": city_lines[kind]["id"], "total_fen": totals[kind][0],
                              "beneficiaries": totals[kind][1]})
            city_lines[kind]["paid_fen"] += totals[kind][0]
    for row in city_lines.values():
        row["committed_fen"] = row["paid_fen"]
        row["allocated_fen"] = row["paid_fen"] + 1_000_000

    # Party dues: the members of the first `dues_counties` counties, quarterly payments, some quarters missed.
    profiles: list[dict[str, Any]] = []
    payments: list[dict[str, Any]] = []
    payment_months: list[dict[str, Any]] = []
    dues_lines: dict[int, dict[str, Any]] = {}
    for vid, _path, _tid, county, rural in villages:
        if county >= scale.dues_counties:
            continue
        for pid, _ in members_by_village.get(vid, []):
            due = 200 if rural else rng.randrange(500, 3000, 10)
            profiles.append({"id": ids["dues_profile"].take(), "person_id": pid, "effective_from": dt.date(YEAR, 1, 1),
                             "category": "farmer" if rural else "employed", "fixed_fen": due if rural else None,
                             "base_fen": None if rural else due * 200, "monthly_due_fen": due,
                             "basis": "fixed" if rural else "0.5% of base", "created_by": user_of_org[vid],
                             "created_at": _at(dt.date(YEAR, 1, 2))})
            if vid not in dues_lines:
                dues_lines[vid] = line(vid, "party_dues", f"党费 {YEAR}", 0)
            for quarter in range(4):
                if rng.random() < 0.1:
                    continue
                first = dt.date(YEAR, quarter * 3 + 1, 1)
                paid_on = first + dt.timedelta(days=rng.randint(0, 40))
                pay_id = ids["dues_payment"].take()
                payments.append({"id": pay_id, "person_id": pid, "org_id": vid, "month_from": first,
                                 "month_to": dt.date(YEAR, quarter * 3 + 3, 1), "amount_fen": due * 3,
                                 "due_fen": due * 3, "extra_fen": 0, "remit_to_centre": False, "paid_on": paid_on,
                                 "method": "cash", "budget_line_id": dues_lines[vid]["id"],
                                 "recorded_by": user_of_org[vid], "created_at": _at(paid_on)})
                dues_lines[vid]["allocated_fen"] += due * 3
                for k in range(3):
                    payment_months.append({"id": ids["dues_payment_month"].take(), "payment_id": pay_id,
                                           "person_id": pid, "month": dt.date(YEAR, quarter * 3 + 1 + k, 1),
                                           "due_fen": due})
    put("budget_line", lines)
    put("disbursement", disbursements)
    put("subsidy_run", runs)
    put("subsidy_run_kind", run_kinds)
    put("subsidy_line", sub_lines)
    put("dues_profile", profiles)
    put("dues_payment", payments)
    put("dues_payment_month", payment_months)

    if conn.dialect.name == "postgresql":
        for name in ids:
            conn.execute(text(f"SELECT setval(pg_get_serial_sequence('\"{name}\"', 'id'), "
                              f"(SELECT COALESCE(MAX(id), 1) FROM \"{name}\"))"))
    m.counts = counts
    m.seconds = time.perf_counter() - clock
    return m


def analyze(conn: Connection, tables: Iterable[str] | None = None) -> None:
    """Fresh planner statistics after a bulk load (ANALYZE on both databases)."""
    if conn.dialect.name == "postgresql":
        for name in tables or SQLModel.metadata.tables:
            conn.execute(text(f'ANALYZE "{name}"'))
    else:
        conn.execute(text("ANALYZE"))


def migrate(url: str) -> None:
    """Build the schema the way the tests and deployments do: `alembic upgrade heads`."""
    from alembic import command
    from alembic.config import Config

    from app.__main__ import ROOT

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    cfg.attributes["url"] = url
    command.upgrade(cfg, "heads")


def load(url: str, scale: Scale = FULL, *, log: Any = None) -> Manifest:
    """Migrate an empty database at `url`, generate the dataset in one transaction, ANALYZE."""
    from app.core.db import create_db_engine

    say = log or (lambda *_: None)
    t0 = time.perf_counter()
    migrate(url)
    say(f"  schema (alembic upgrade heads)  {time.perf_counter() - t0:6.1f} s")
    engine = create_db_engine(url, pool_size=2, statement_timeout_ms=0)  # bulk loads and ANALYZE
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "sqlite":
                # Keep the whole load's pages in memory until the commit (the default 2 MB cache spills
                # to the WAL on every index page of 150,000 random hashes).
                conn.exec_driver_sql("PRAGMA cache_size=-1000000")
            manifest = generate(conn, scale, log=log)
        t1 = time.perf_counter()
        with engine.begin() as conn:
            analyze(conn)
        say(f"  analyze                        {time.perf_counter() - t1:6.1f} s")
    finally:
        engine.dispose()
    manifest.seconds = time.perf_counter() - t0
    return manifest
