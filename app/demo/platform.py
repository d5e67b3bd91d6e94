"""Platform demo data: the city, its township units, villages, people and one user per role.

What is real: the city 康定市 (513301, 2,560 m) and its 21 township-level units with their
2019 statistical codes (`data/kangding-2019-township-units.csv`). Everything below them is
synthetic and deterministic (a fixed random seed): 3-5 communities (社区, codes 001, 002…)
under each street and 3-5 villages (村, codes 200, 201…) under each town or township, at
2,500-4,300 m; for each a secretary, a deputy secretary, 2-3 committee members, a (village)
committee director, in some villages a resident first secretary, members without office
(some probationary) and left-office cadres whose positions ended after 3-20 years.

The plan is built in memory first, then only the rows missing from the database are
inserted (organisations by code, people by the keyed hash of their ID number, positions by
person, organisation, title and start date, users by username).
"""

from __future__ import annotations

import csv
import datetime as dt
import os
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session
from sqlmodel import col

from app.core.db import utcnow
from app.core.permissions import Role
from app.core.security import encrypt_pii, hash_password, mask_id_number, mask_phone, pii_lookup_hash
from app.models.accounts import User
from app.models.organizations import Organization, OrgDomain, OrgLevel, OrgStatus
from app.models.people import Gender, MemberStatus, Person, PersonStatus, Position, PositionTitle

ORDER = 0
DATA_DIR = Path(__file__).resolve().parent / "data"
TOWNSHIP_UNITS_CSV = DATA_DIR / "kangding-2019-township-units.csv"
RANDOM_SEED = 2019
# The demo describes Kangding at the end of 2019: no date in it is later.
REFERENCE_DATE = dt.date(2019, 12, 31)
CITY_CODE, CITY_NAME, CITY_ALTITUDE_M = "513301", "康定市", 2560
# Pre-2015 ID numbers of the former Kangding county.
OLD_ID_PREFIX = "513321"
# Documented in README.md; DEMO_PASSWORD overrides it (and is required in production).
DEFAULT_DEMO_PASSWORD = "kangding-demo-2019"

KIND_DOMAIN = {"street": OrgDomain.street, "town": OrgDomain.township, "township": OrgDomain.township}

# Street communities: names by street code, used in this order.
COMMUNITY_NAMES: dict[str, list[str]] = {
    "513301001": ["将军桥社区", "向阳社区", "西大街社区", "光明社区", "子耳坡社区"],
    "513301002": ["榆林新区社区", "营盘街社区", "东关社区", "驷马桥社区", "二道桥社区"],
}
# Village name stems (Tibetan place names in Chinese transcription and Han names).
VILLAGE_STEMS = [
    "色龙", "日头", "木雅", "俄达门巴", "菜园子", "昌昌", "拉哈", "江巴", "然米", "龙灯", "莫西", "新沟",
    "日地", "生古", "呷拉", "德西", "偏道", "瓦斯沟", "朋布", "居里", "蒙布", "加拉", "若吉", "杰坝",
    "拉日", "茶马", "红岩", "跑马", "大坝", "雪门坎", "野坝", "汤坝", "柳杨", "舍联", "冷竹关", "大草坝",
    "上木居", "下木居", "卡恰", "麻布", "中谷", "日吾", "龙古", "各卡", "格西", "扎日", "多拉", "木枯",
    "菜子坝", "三道桥", "六巴", "热贡", "措卡", "鲁日", "生龙", "俄巴绒", "日央", "甲拉西", "降巴",
    "唐古", "章古", "冻坡", "紫石", "榆林宫", "头道桥", "瓦约", "孔色", "热水", "长坝", "火山",
    "下索子", "上索子", "若米", "雅拉", "折多", "阿加", "古瓦", "达杠", "贡巴", "新都", "俄色", "然久",
    "所冲", "甲吉", "鸡丑", "仲尼", "团结", "幸福", "和平", "高峰", "前进", "胜利", "联合", "光辉",
    "兴隆", "青杠", "核桃坪", "石门坎", "野牛坪", "花椒坪", "黄金坪", "松林", "洪坝", "湾东", "草科",
    "日乌", "都吉", "甲宗", "朋那", "吉拉", "江德", "色卡", "宜代", "觉吾", "勒树",
]
HAN_SURNAMES = list("王李张刘陈杨赵黄周吴徐孙胡朱高林何郭马罗梁宋郑谢韩唐冯邓曾彭蒋蔡余杜叶程苏魏吕丁任姚卢钟谭廖")
HAN_GIVEN_MALE = ["建国", "志强", "国华", "明", "勇", "军", "伟", "刚", "平", "斌", "涛", "林", "波", "海",
                  "峰", "磊", "强", "杰", "文华", "成", "德明", "兵", "小龙", "永红", "春生", "学文", "光荣"]
HAN_GIVEN_FEMALE = ["秀英", "桂英", "丽", "敏", "静", "燕", "霞", "芳", "娟", "红", "玲", "梅", "萍", "琴",
                    "兰", "英", "丹", "雪", "婷", "慧", "晓燕", "春梅"]
TIBETAN_MALE = ["扎西", "次仁", "泽仁", "格桑", "尼玛", "降措", "多吉", "洛绒", "罗布", "登真", "仁青",
                "阿旺", "益西", "呷绒", "贡布", "四郎", "土登", "邓珠", "彭措", "顿珠", "巴桑", "平措",
                "丹增", "索朗", "翁堆", "泽绒", "昂翁", "降初"]
TIBETAN_FEMALE_SUFFIX = ["卓玛", "拉姆", "央宗", "曲珍", "志玛", "措姆", "永宗", "娜姆", "翁姆", "白玛",
                         "德吉", "央金", "巴姆"]
MOBILE_PREFIXES = ["135", "136", "138", "139", "150", "151", "152", "157", "158", "180", "181", "182",
                   "183", "187", "188", "189", "199"]


@dataclass(frozen=True)
class OrgPlan:
    code: str
    name: str
    level: OrgLevel
    domain: OrgDomain
    altitude_m: int
    parent_code: str | None


@dataclass(frozen=True)
class PersonPlan:
    org_code: str
    name: str
    gender: Gender
    ethnicity: str
    birth_date: dt.date
    id_number: str
    phone: str
    member_status: MemberStatus
    joined_party_on: dt.date | None


@dataclass(frozen=True)
class PositionPlan:
    id_number: str
    org_code: str
    title: PositionTitle
    started_on: dt.date
    ended_on: dt.date | None = None


@dataclass(frozen=True)
class UserPlan:
    username: str
    full_name: str
    role: Role
    org_code: str


# One user per role: the city, 炉城街道 and its first community, 将军桥社区.
DEMO_USERS = (
    UserPlan("city_admin", "市委组织部管理员", Role.city_admin, CITY_CODE),
    UserPlan("auditor", "市纪委审计员", Role.auditor, CITY_CODE),
    UserPlan("lucheng_admin", "炉城街道管理员", Role.township_admin, "513301001"),
    UserPlan("jiangjunqiao_admin", "将军桥社区管理员", Role.village_admin, "513301001001"),
)


@dataclass
class Plan:
    orgs: list[OrgPlan] = field(default_factory=list)
    people: list[PersonPlan] = field(default_factory=list)
    positions: list[PositionPlan] = field(default_factory=list)
    users: list[UserPlan] = field(default_factory=list)


def township_units() -> list[tuple[str, str, str]]:
    """(code, name, kind) of the 21 township-level units, from the project's copy of the 2019 list."""
    with TOWNSHIP_UNITS_CSV.open(encoding="utf-8", newline="") as fh:
        return [(row["code"], row["name"], row["kind"]) for row in csv.DictReader(fh)]


def demo_password() -> str:
    return os.environ.get("DEMO_PASSWORD") or DEFAULT_DEMO_PASSWORD


# --- the plan -------------------------------------------------------------


class _People:
    """Deterministic synthetic people with unique, valid ID and phone numbers."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.ids: set[str] = set()
        self.phones: set[str] = set()

    def name(self, gender: Gender, tibetan: bool) -> str:
        r = self.rng
        if tibetan:
            first = r.choice(TIBETAN_MALE)
            if gender == Gender.female:
                return first + r.choice(TIBETAN_FEMALE_SUFFIX)
            return first + r.choice([n for n in TIBETAN_MALE if n != first])
        given = HAN_GIVEN_FEMALE if gender == Gender.female else HAN_GIVEN_MALE
        return r.choice(HAN_SURNAMES) + r.choice(given)

    def id_number(self, birth: dt.date, gender: Gender) -> str:
        from stdnum.cn import ric

        old = birth.year < 1975 and self.rng.random() < 0.6
        prefix = OLD_ID_PREFIX if old else CITY_CODE
        while True:
            seq = self.rng.randrange(0, 500) * 2 + (1 if gender == Gender.male else 0)  # odd = male
            body = f"{prefix}{birth:%Y%m%d}{seq:03d}"
            number = body + ric.calc_check_digit(body + "0")
            if number not in self.ids:
                self.ids.add(number)
                return number

    def phone(self) -> str:
        while True:
            number = self.rng.choice(MOBILE_PREFIXES) + f"{self.rng.randrange(100_000_000):08d}"
            if number not in self.phones:
                self.phones.add(number)
                return number

    def make(self, org: OrgPlan, *, born: tuple[int, int], member: MemberStatus = MemberStatus.full,
             female_share: float = 0.35, joined_by: dt.date = dt.date(2017, 12, 31)) -> PersonPlan:
        r = self.rng
        gender = Gender.female if r.random() < female_share else Gender.male
        rural = org.domain == OrgDomain.rural
        roll = r.random()
        if roll < (0.8 if rural else 0.45):
            ethnicity, tibetan = "藏族", True
        elif roll < 0.97:
            ethnicity, tibetan = "汉族", False
        else:
            ethnicity, tibetan = r.choice(["彝族", "回族"]), False
        birth = _random_date(r, dt.date(born[0], 1, 1), dt.date(born[1], 12, 31))
        joined: dt.date | None = None
        if member == MemberStatus.probationary:
            joined = _random_date(r, dt.date(2019, 1, 1), dt.date(2019, 11, 30))
        elif member == MemberStatus.full:
            earliest = _add_years(birth, 18)
            joined = _random_date(r, earliest, max(earliest, joined_by))
        return PersonPlan(
            org_code=org.code, name=self.name(gender, tibetan), gender=gender, ethnicity=ethnicity,
            birth_date=birth, id_number=self.id_number(birth, gender), phone=self.phone(),
            member_status=member, joined_party_on=joined,
        )


def _random_date(rng: random.Random, start: dt.date, end: dt.date) -> dt.date:
    return start + dt.timedelta(days=rng.randrange((end - start).days + 1))


def _add_years(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year + years)
    except ValueError:  # 29 February
        return day.replace(year=day.year + years, day=28)


def build_plan() -> Plan:
    """The whole demo platform data set, the same on every call."""
    rng = random.Random(RANDOM_SEED)  # noqa: S311  (reproducible demo data, not secrets)
    plan = Plan()
    city = OrgPlan(CITY_CODE, CITY_NAME, OrgLevel.city, OrgDomain.organ, CITY_ALTITUDE_M, None)
    plan.orgs.append(city)
    stems = VILLAGE_STEMS.copy()
    rng.shuffle(stems)
    people = _People(rng)

    for code, name, kind in township_units():
        domain = KIND_DOMAIN[kind]
        villages: list[OrgPlan] = []
        for i in range(rng.randint(3, 5)):
            if domain == OrgDomain.street:
                villages.append(OrgPlan(f"{code}{i + 1:03d}", COMMUNITY_NAMES[code][i], OrgLevel.village,
                                        OrgDomain.community, rng.randrange(2500, 2800, 10), code))
            else:
                villages.append(OrgPlan(f"{code}{200 + i:03d}", stems.pop() + "村", OrgLevel.village,
                                        OrgDomain.rural, rng.randrange(2600, 4301, 10), code))
        # The township seat lies in the valley, below its villages.
        plan.orgs.append(OrgPlan(code, name, OrgLevel.township, domain,
                                 min(v.altitude_m for v in villages), CITY_CODE))
        plan.orgs.extend(villages)
        for village in villages:
            _plan_village(plan, people, rng, village)

    plan.users = list(DEMO_USERS)
    return plan


def _plan_village(plan: Plan, people: _People, rng: random.Random, village: OrgPlan) -> None:
    """One village's committee (两委), its members without office and its left-office cadres."""
    rural = village.domain == OrgDomain.rural
    term_start = _random_date(rng, dt.date(2016, 11, 1), dt.date(2017, 3, 31))

    def office(title: PositionTitle, *, born: tuple[int, int], member: MemberStatus = MemberStatus.full,
               started_on: dt.date = term_start) -> PersonPlan:
        person = people.make(village, born=born, member=member, joined_by=min(started_on, dt.date(2014, 12, 31)))
        plan.people.append(person)
        plan.positions.append(PositionPlan(person.id_number, village.code, title, started_on))
        return person

    secretary = office(PositionTitle.secretary, born=(1962, 1985))
    if rng.random() < 0.3:  # served on the committee before becoming secretary
        earlier = _random_date(rng, dt.date(2005, 1, 1), dt.date(2013, 12, 31))
        plan.positions.append(PositionPlan(secretary.id_number, village.code, PositionTitle.committee_member,
                                           earlier, term_start - dt.timedelta(days=1)))
    office(PositionTitle.deputy_secretary, born=(1965, 1988))
    for _ in range(rng.randint(2, 3)):
        office(PositionTitle.committee_member, born=(1960, 1993))
    director_member = MemberStatus.full if rng.random() < 0.8 else MemberStatus.none
    office(PositionTitle.village_committee_director, born=(1963, 1988), member=director_member)
    if rural and rng.random() < 0.4:
        office(PositionTitle.resident_first_secretary, born=(1980, 1992),
               started_on=_random_date(rng, dt.date(2018, 3, 1), dt.date(2019, 7, 31)))

    for _ in range(rng.randint(4, 8)):
        member = MemberStatus.probationary if rng.random() < 0.2 else MemberStatus.full
        plan.people.append(people.make(village, born=(1945, 1998) if member == MemberStatus.full else (1985, 1999),
                                       member=member))

    for _ in range(rng.randint(1, 2)):
        cadre = people.make(village, born=(1940, 1962), female_share=0.15)
        plan.people.append(cadre)
        years = rng.randint(3, 20)
        ended = _random_date(rng, dt.date(2005, 1, 1), term_start - dt.timedelta(days=1))
        started = _random_date(rng, _add_years(ended, -years) - dt.timedelta(days=180), _add_years(ended, -years))
        title = rng.choice([PositionTitle.secretary, PositionTitle.village_committee_director,
                            PositionTitle.committee_member])
        plan.positions.append(PositionPlan(cadre.id_number, village.code, title, started, ended))


# --- writing it -----------------------------------------------------------


def seed(session: Session) -> dict[str, int]:
    """Insert what of the plan is missing; return how many rows of each kind were created."""
    plan = build_plan()
    now = utcnow()
    counts = {"organizations": 0, "people": 0, "positions": 0, "users": 0}

    orgs: dict[str, tuple[int, str]] = {
        code: (org_id, path)
        for org_id, code, path in session.execute(
            select(Organization.id, Organization.code, Organization.path)
            .where(col(Organization.code).in_([o.code for o in plan.orgs]))
        )
    }
    for level in (OrgLevel.city, OrgLevel.township, OrgLevel.village):
        missing = [o for o in plan.orgs if o.level == level and o.code not in orgs]
        counts["organizations"] += _insert_orgs(session, missing, orgs, now)

    counts["people"] = _insert_people(session, plan.people, orgs, now)
    person_ids: dict[str, int] = dict(
        session.execute(
            select(Person.id_number_hash, Person.id)
            .where(col(Person.id_number_hash).in_([pii_lookup_hash(p.id_number) for p in plan.people]))
        ).all()
    )
    counts["positions"] = _insert_positions(session, plan.positions, orgs, person_ids, now)
    counts["users"] = _insert_users(session, plan.users, orgs)
    session.flush()
    return counts


def _insert_orgs(session: Session, missing: list[OrgPlan], orgs: dict[str, tuple[int, str]],
                 now: dt.datetime) -> int:
    if not missing:
        return 0
    rows = [
        {"parent_id": orgs[o.parent_code][0] if o.parent_code else None, "level": o.level, "domain": o.domain,
         "name": o.name, "code": o.code, "altitude_m": o.altitude_m, "status": OrgStatus.active,
         "path": "/", "version": 1, "created_at": now, "updated_at": now}
        for o in missing
    ]
    ids = session.scalars(insert(Organization).returning(Organization.id, sort_by_parameter_order=True), rows).all()
    paths = []
    for org_id, o in zip(ids, missing, strict=True):
        path = (orgs[o.parent_code][1] if o.parent_code else "/") + f"{org_id}/"
        orgs[o.code] = (org_id, path)
        paths.append({"id": org_id, "path": path})
    session.execute(update(Organization), paths)
    return len(missing)


def _insert_people(session: Session, planned: list[PersonPlan], orgs: dict[str, tuple[int, str]],
                   now: dt.datetime) -> int:
    id_hashes = {p.id_number: pii_lookup_hash(p.id_number) for p in planned}
    phone_hashes = {p.phone: pii_lookup_hash(p.phone) for p in planned}
    existing_ids = set(session.scalars(
        select(Person.id_number_hash).where(col(Person.id_number_hash).in_(list(id_hashes.values())))))
    # A phone already recorded for someone else stays theirs: the demo person goes without.
    taken_phones = set(session.scalars(
        select(Person.phone_hash).where(col(Person.phone_hash).in_(list(phone_hashes.values())))))
    rows: list[dict[str, Any]] = []
    for p in planned:
        if id_hashes[p.id_number] in existing_ids:
            continue
        phone = None if phone_hashes[p.phone] in taken_phones else p.phone
        rows.append({
            "org_id": orgs[p.org_code][0], "name": p.name, "gender": p.gender, "ethnicity": p.ethnicity,
            "birth_date": p.birth_date,
            "id_number_cipher": encrypt_pii(p.id_number), "id_number_hash": id_hashes[p.id_number],
            "id_number_masked": mask_id_number(p.id_number),
            "phone_cipher": encrypt_pii(phone) if phone else None,
            "phone_hash": phone_hashes[p.phone] if phone else None,
            "phone_masked": mask_phone(phone) if phone else None,
            "member_status": p.member_status, "joined_party_on": p.joined_party_on,
            "status": PersonStatus.active, "version": 1, "created_at": now, "updated_at": now,
        })
    if rows:
        session.execute(insert(Person), rows)
    return len(rows)


def _insert_positions(session: Session, planned: list[PositionPlan], orgs: dict[str, tuple[int, str]],
                      person_ids: dict[str, int], now: dt.datetime) -> int:
    org_ids = sorted({orgs[p.org_code][0] for p in planned})
    existing = set(session.execute(
        select(Position.person_id, Position.org_id, Position.title, Position.started_on)
        .where(col(Position.org_id).in_(org_ids))
    ).all())
    rows: list[dict[str, Any]] = []
    for p in planned:
        key = (person_ids[pii_lookup_hash(p.id_number)], orgs[p.org_code][0], p.title.value, p.started_on)
        if key in existing:
            continue
        rows.append({"person_id": key[0], "org_id": key[1], "title": p.title, "started_on": p.started_on,
                     "ended_on": p.ended_on, "created_at": now, "updated_at": now})
    if rows:
        session.execute(insert(Position), rows)
    return len(rows)


def _insert_users(session: Session, planned: list[UserPlan], orgs: dict[str, tuple[int, str]]) -> int:
    existing = set(session.scalars(select(User.username).where(col(User.username).in_([u.username for u in planned]))))
    missing = [u for u in planned if u.username not in existing]
    # They share one published password, so one (deliberately slow) argon2 hash serves them all.
    password_hash = hash_password(demo_password()) if missing else ""
    for u in missing:
        session.add(User(username=u.username, full_name=u.full_name, password_hash=password_hash,
                         role=u.role, org_id=orgs[u.org_code][0]))
    return len(missing)


# --- for other demo modules and the report --------------------------------


def org_ids_by_code(session: Session) -> dict[str, int]:
    """Every organisation with a code, by code: how other demo modules find the platform's rows."""
    return dict(session.execute(
        select(Organization.code, Organization.id).where(col(Organization.code).is_not(None))).all())


def city_id(session: Session) -> int | None:
    return session.scalar(select(Organization.id).where(Organization.code == CITY_CODE))


def logins_text(session: Session, *, created: bool = False) -> str:
    """The demo users present in the database, with the password they were seeded with."""
    wanted = [u.username for u in DEMO_USERS]
    rows = session.execute(
        select(User.username, User.role, Organization.name, Organization.code)
        .join(Organization, col(Organization.id) == User.org_id)
        .where(col(User.username).in_(wanted))
        .order_by(User.id)
    ).all()
    if not rows:
        return "demo logins: none (the demo users are not in this database)"
    note = f"password: {demo_password()}"
    if not created:
        note += ", unless DEMO_PASSWORD gave another when they were seeded"
    lines = [f"demo logins ({note}):"]
    lines += [f"  {username:<20} {role:<15} {name} ({code})" for username, role, name, code in rows]
    return "\n".join(lines)
