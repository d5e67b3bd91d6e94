"""Matrix cases of training: the policy, classes, enrolment and attendance, coverage, schools and compliance."""

from __future__ import annotations

import datetime as dt
import itertools

from app.models.organizations import Organization
from app.models.training import School, SchoolSession, TrainingClass, TrainingClassRole, TrainingEnrolment
from tests.authz.registry import Ctx, Req, case, if_match, unique
from tests.factories import make_person

YEAR = 2019
POLICY = "the training policy is city-wide reference data, owned by no organisation"
_policy_years = itertools.cycle(range(2040, 2100))


def class_at(ctx: Ctx, owner: Organization, *, starts_on: dt.date = dt.date(YEAR, 3, 4)) -> TrainingClass:
    cls = TrainingClass(year=starts_on.year, title=unique("培训班"), org_id=owner.id, starts_on=starts_on,
                        ends_on=starts_on, hours=16)
    ctx.db.add(cls)
    ctx.db.flush()
    ctx.db.add(TrainingClassRole(class_id=cls.id, role="secretary"))
    ctx.db.flush()
    return cls


def enrolment_at(ctx: Ctx, owner: Organization) -> TrainingEnrolment:
    """A person of `owner` enrolled in a class of the city (offered to every organisation)."""
    cls = class_at(ctx, ctx.org("city"))
    person = make_person(ctx.db, owner)
    row = TrainingEnrolment(class_id=cls.id, person_id=person.id, org_id=owner.id)
    ctx.db.add(row)
    ctx.db.flush()
    return row


def school_at(ctx: Ctx, owner: Organization) -> School:
    school = School(org_id=owner.id, kind="night_school", name=unique("夜校"), opened_on=dt.date(2018, 1, 1))
    ctx.db.add(school)
    ctx.db.flush()
    ctx.db.add(SchoolSession(school_id=school.id, org_id=owner.id, held_on=dt.date(YEAR, 10, 8), hours=2,
                             topic="gratitude", attendance_count=20, teacher="洛桑"))
    ctx.db.flush()
    return school


@case("training_policies_list", targetless=POLICY)
def training_policies_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/training/policies")


@case("training_policies_create", targetless=POLICY)
def training_policies_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/training/policies", json={
        "effective_year": next(_policy_years), "main_classes_target": 12, "school_min_sessions": 3,
        "school_min_hours": 6})


@case("training_coverage")
def training_coverage(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/training/coverage", params={"year": YEAR, "org_id": owner.id, "subtree": "true"})


@case("training_classes_list")
def training_classes_list(ctx: Ctx, owner: Organization) -> Req:
    class_at(ctx, owner)
    return Req("GET", "/api/v1/training-classes", params={"org_id": owner.id, "subtree": "true"})


@case("training_classes_create")
def training_classes_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/training-classes", json={
        "year": YEAR, "title": "村(社区)党组织书记培训班", "org_id": owner.id, "starts_on": "2019-04-01",
        "ends_on": "2019-04-03", "hours": 24, "target_roles": ["secretary"]})


@case("training_classes_get")
def training_classes_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/training-classes/{class_at(ctx, owner).id}")


@case("training_classes_update")
def training_classes_update(ctx: Ctx, owner: Organization) -> Req:
    cls = class_at(ctx, owner)
    return Req("PATCH", f"/api/v1/training-classes/{cls.id}", json={"title": "改名"}, headers=if_match(cls.version))


@case("training_classes_cancel")
def training_classes_cancel(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/training-classes/{class_at(ctx, owner).id}/cancel")


@case("training_enrolments_create")
def training_enrolments_create(ctx: Ctx, owner: Organization) -> Req:
    cls = class_at(ctx, ctx.org("city"))
    return Req("POST", f"/api/v1/training-classes/{cls.id}/enrolments",
               json={"person_ids": [make_person(ctx.db, owner).id]})


@case("training_enrolments_list")
def training_enrolments_list(ctx: Ctx, owner: Organization) -> Req:
    cls = class_at(ctx, owner)
    ctx.db.add(TrainingEnrolment(class_id=cls.id, person_id=make_person(ctx.db, owner).id, org_id=owner.id))
    ctx.db.flush()
    return Req("GET", f"/api/v1/training-classes/{cls.id}/enrolments")


@case("training_enrolments_attendance")
def training_enrolments_attendance(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/training-enrolments/{enrolment_at(ctx, owner).id}/attendance",
               json={"attended_hours": 12})


@case("schools_list")
def schools_list(ctx: Ctx, owner: Organization) -> Req:
    school_at(ctx, owner)
    return Req("GET", "/api/v1/schools", params={"org_id": owner.id, "subtree": "true"})


@case("schools_create")
def schools_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", "/api/v1/schools", json={"org_id": owner.id, "kind": "night_school", "name": unique("夜校"),
                                                "opened_on": "2018-03-01"})


@case("schools_compliance")
def schools_compliance(ctx: Ctx, owner: Organization) -> Req:
    school_at(ctx, owner)
    return Req("GET", "/api/v1/schools/compliance", params={"year": YEAR, "month": 10, "org_id": owner.id})


@case("schools_get")
def schools_get(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/schools/{school_at(ctx, owner).id}")


@case("schools_close")
def schools_close(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/schools/{school_at(ctx, owner).id}/close", json={"closed_on": "2019-12-31"})


@case("school_sessions_create")
def school_sessions_create(ctx: Ctx, owner: Organization) -> Req:
    return Req("POST", f"/api/v1/schools/{school_at(ctx, owner).id}/sessions", json={
        "held_on": "2019-10-15", "hours": 2, "topic": "poverty_exit", "attendance_count": 25, "teacher": "扎西"})


@case("school_sessions_list")
def school_sessions_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", f"/api/v1/schools/{school_at(ctx, owner).id}/sessions")
