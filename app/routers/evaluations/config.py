"""HTTP for the evaluation settings: weights, grade thresholds and the village cadres' duty list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.core.errors import problem_responses
from app.deps import EvaluationsConfigure, EvaluationsRead, ItemId, SessionDep
from app.models.evaluations.common import (
    CadreDutyCreate,
    CadreDutyPublic,
    CadreDutyRetire,
    GradeScheme,
    SettingCreate,
    SettingKey,
    SettingPublic,
    ThresholdCreate,
    ThresholdPublic,
)
from app.routers.evaluations._shared import WRITE_ERRORS, OptionalYear
from app.services.evaluations import common as service

settings = APIRouter(prefix="/api/v1/evaluation-settings", tags=["evaluations"])
thresholds = APIRouter(prefix="/api/v1/grade-thresholds", tags=["evaluations"])
duties = APIRouter(prefix="/api/v1/cadre-duties", tags=["evaluations"])
LIST_ERRORS = problem_responses(401, 403, 422)


@settings.get("", response_model=list[SettingPublic], operation_id="evaluation_settings_list",
              summary="Weights and vote points by effective year", responses=LIST_ERRORS)
def list_settings(session: SessionDep, actor: EvaluationsRead, key: SettingKey | None = None) -> Any:
    """For a year, the row of each key with the latest effective_year not after it applies."""
    return [SettingPublic.of(r) for r in service.list_settings(session, key)]


@settings.post("", response_model=SettingPublic, status_code=201, operation_id="evaluation_settings_create",
               summary="Set a weight from a year on", responses=WRITE_ERRORS)
def create_setting(body: SettingCreate, session: SessionDep, actor: EvaluationsConfigure) -> Any:
    """Sets an evaluation weight (for example the villagers' weight in dual evaluations) from an effective year on;
    earlier years keep their value. One value per key and year (409 duplicate_setting)."""
    return SettingPublic.of(service.create_setting(session, actor, body))


@thresholds.get("", response_model=list[ThresholdPublic], operation_id="grade_thresholds_list",
                summary="Grade thresholds by scheme and effective year", responses=LIST_ERRORS)
def list_thresholds(session: SessionDep, actor: EvaluationsRead, scheme: GradeScheme | None = None) -> Any:
    """Each threshold is the lowest score (inclusive) of its grade; below basically_competent is incompetent."""
    return [ThresholdPublic.of(r) for r in service.list_thresholds(session, scheme)]


@thresholds.post("", response_model=ThresholdPublic, status_code=201, operation_id="grade_thresholds_create",
                 summary="Set a scheme's grade thresholds from a year on", responses=WRITE_ERRORS)
def create_threshold(body: ThresholdCreate, session: SessionDep, actor: EvaluationsConfigure) -> Any:
    """Sets a grade scheme's score thresholds from an effective year on; evaluations of earlier years keep the
    thresholds they were graded with. One set per scheme and year (409 duplicate_thresholds)."""
    return ThresholdPublic.of(service.create_threshold(session, actor, body))


@duties.get("", response_model=list[CadreDutyPublic], operation_id="cadre_duties_list",
            summary="The village cadres' duty list (八大员)", responses=LIST_ERRORS)
def list_duties(session: SessionDep, actor: EvaluationsRead, year: OptionalYear = None) -> Any:
    """With `year`: the duties on the list that year."""
    return service.list_duties(session, year)


@duties.post("", response_model=CadreDutyPublic, status_code=201, operation_id="cadre_duties_create",
             summary="Add a duty to the list from a year on", responses=WRITE_ERRORS)
def create_duty(body: CadreDutyCreate, session: SessionDep, actor: EvaluationsConfigure) -> Any:
    """Adds a duty to the list that dual evaluations score, from a year on. Codes are unique (409 duplicate_duty)."""
    return service.create_duty(session, actor, body)


@duties.post("/{duty_id}/retire", response_model=CadreDutyPublic, operation_id="cadre_duties_retire",
             summary="Take a duty off the list after a year", responses=WRITE_ERRORS)
def retire_duty(duty_id: ItemId, body: CadreDutyRetire, session: SessionDep, actor: EvaluationsConfigure) -> Any:
    """Takes a duty off the list after `to_year` (not before its first year); evaluations up to that year keep it. A
    duty already retired is a 409 already_retired."""
    return service.retire_duty(session, actor, duty_id, body.to_year)
