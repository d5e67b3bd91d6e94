"""The benchmark's dataset generator keeps working: a tiny dataset into a scratch SQLite database."""

from __future__ import annotations

import importlib
import sys
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, func, select

from app.models.accounts import User
from app.models.funds.subsidies import SubsidyLine
from app.models.organizations import Organization
from app.models.people import Person
from app.models.responsibilities.monthly import TaskAssignment
from bench import dataset


def test_generator_loads_a_tiny_dataset_that_the_service_can_read(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    manifest = dataset.load(url, dataset.TINY)
    scale = dataset.TINY
    engine = create_engine(url)
    with engine.connect() as conn:
        orgs = conn.scalar(select(func.count()).select_from(Organization))
        people = conn.scalar(select(func.count()).select_from(Person))
        users = conn.scalar(select(func.count()).select_from(User))
        assignments = conn.scalar(select(func.count()).select_from(TaskAssignment))
        lines = conn.scalar(select(func.count()).select_from(SubsidyLine))
        paths = conn.execute(select(Organization.id, Organization.parent_id, Organization.path)).all()
    engine.dispose()
    townships = scale.counties * scale.townships
    villages = townships * scale.villages
    assert orgs == 1 + townships + villages == len(manifest.village_ids) + len(manifest.township_ids) + 1
    assert people == scale.people
    assert users == 2 + townships + villages
    assert assignments == 12 * 3 * villages
    assert lines and manifest.counts["subsidy_line"] == lines
    by_id = {i: p for i, _, p in paths}
    assert all(p == (by_id[parent] if parent else "/") + f"{i}/" for i, parent, p in paths)
    assert manifest.users["village"] == f"bench_v{manifest.sample_village_id}"


def test_generator_is_reproducible_from_its_seed(tmp_path: Path) -> None:
    first = dataset.load(f"sqlite:///{tmp_path / 'a.db'}", dataset.TINY)
    second = dataset.load(f"sqlite:///{tmp_path / 'b.db'}", dataset.TINY)
    assert first.counts == second.counts
    assert first.sample_person_id == second.sample_person_id


def test_the_floor_answers_its_three_requests(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/floor.py, the tutorial way the service is measured against, serves what its cases ask for."""
    url = f"sqlite:///{tmp_path / 'bench.db'}"
    manifest = dataset.load(url, dataset.TINY)
    monkeypatch.setenv("DATABASE_URL", url)
    sys.modules.pop("bench.floor", None)
    floor = importlib.import_module("bench.floor")
    try:
        with TestClient(floor.app) as client:
            org = client.get(f"/organizations/{manifest.sample_village_id}")
            assert org.status_code == 200 and org.json()["id"] == manifest.sample_village_id
            assert client.get("/organizations/999999").status_code == 404
            page = client.get("/people", params={"org_id": manifest.sample_township_id, "member_status": "full"})
            assert page.status_code == 200
            body = page.json()
            assert body["total"] > 0 and 0 < len(body["items"]) <= 50
            assert {p["member_status"] for p in body["items"]} == {"full"}
            parent = manifest.creates_under or manifest.sample_village_id
            made = client.post("/organizations", json={"parent_id": parent, "level": "branch", "domain": "rural",
                                                       "name": "floor branch"})
            assert made.status_code == 201, made.text
            parent_path = client.get(f"/organizations/{parent}").json()["path"]
            assert made.json()["path"] == f"{parent_path}{made.json()['id']}/"
    finally:
        floor.engine.dispose()
        sys.modules.pop("bench.floor", None)
