from __future__ import annotations

from fastapi.testclient import TestClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.models.audit import AuditLog
from app.models.organizations import Organization
from tests.factories import World


def test_city_admin_lists_whole_tree(client: TestClient, world: World) -> None:
    r = client.get("/api/v1/organizations", headers=world.auth("city"))
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["total"] == 6
    assert {o["code"] for o in body["items"]} >= {"513301", "513301001", "513301101001"}


def test_village_admin_sees_only_own_village(client: TestClient, world: World) -> None:
    r = client.get("/api/v1/organizations", headers=world.auth("v1"))
    assert [o["id"] for o in r.json()["items"]] == [world.v1.id]
    assert client.get(f"/api/v1/organizations/{world.v2.id}", headers=world.auth("v1")).status_code == 404


def test_township_creates_village_with_extended_code(client: TestClient, world: World, db: Session) -> None:
    mark = db.scalar(select(func.max(AuditLog.id))) or 0  # other tests commit creates of their own
    body = {"parent_id": world.t1.id, "level": "village", "domain": "community", "name": "新社区",
            "code": "513301001099", "altitude_m": 2700}
    r = client.post("/api/v1/organizations", json=body, headers=world.auth("t1"))
    assert r.status_code == 201, r.text
    assert r.headers["Location"].endswith(f"/{r.json()['id']}")
    created = r.json()
    assert created["path"] == f"{world.t1.path}{created['id']}/"
    rows = list(db.scalars(select(AuditLog).where(AuditLog.action == "organization.create", AuditLog.id > mark)))
    assert len(rows) == 1
    # The path is set after the insert (it ends in the new id): the stored row, its audit row and a later read
    # all agree with the answer, and the answer's updated_at is the stored one.
    assert rows[0].after is not None and rows[0].after["path"] == created["path"]
    assert rows[0].after["updated_at"] == db.scalar(select(Organization.updated_at).where(
        Organization.id == created["id"])).isoformat()
    again = client.get(r.headers["Location"], headers=world.auth("t1"))
    assert again.json() == created and again.headers["ETag"] == r.headers["ETag"]


def test_bad_code_and_level_mismatch_store_nothing(client: TestClient, world: World, db: Session) -> None:
    before = db.scalar(select(func.count()).select_from(Organization))
    cases = [
        {"parent_id": world.t1.id, "level": "village", "domain": "community", "name": "x", "code": "513301002001"},
        {"parent_id": world.t1.id, "level": "village", "domain": "community", "name": "x", "code": "5133010010"},
        {"parent_id": world.city.id, "level": "village", "domain": "rural", "name": "x", "code": "513301001077"},
        {"parent_id": world.t1.id, "level": "village", "domain": "organ", "name": "x", "code": "513301001078"},
        {"parent_id": world.t1.id, "level": "village", "domain": "rural", "name": "x", "code": "513301001079",
         "credit_code": "91513301MA6X00000X"},
    ]
    for body in cases:
        r = client.post("/api/v1/organizations", json=body, headers=world.auth("city"))
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"]
    assert db.scalar(select(func.count()).select_from(Organization)) == before


def test_duplicate_code_is_conflict(client: TestClient, world: World) -> None:
    body = {"parent_id": world.t1.id, "level": "village", "domain": "community", "name": "x",
            "code": world.v1.code}
    r = client.post("/api/v1/organizations", json=body, headers=world.auth("city"))
    assert r.status_code == 409 and r.json()["code"] == "duplicate_code"


def test_patch_needs_if_match_and_detects_stale(client: TestClient, world: World) -> None:
    url = f"/api/v1/organizations/{world.v1.id}"
    h = world.auth("t1")
    etag = client.get(url, headers=h).headers["ETag"]
    assert client.patch(url, json={"name": "改名"}, headers=h).status_code == 428
    r = client.patch(url, json={"name": "改名"}, headers={**h, "If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.json()["name"] == "改名" and r.headers["ETag"] != etag
    stale = client.patch(url, json={"name": "再改"}, headers={**h, "If-Match": etag})
    assert stale.status_code == 412


def test_patch_rejects_unknown_fields(client: TestClient, world: World) -> None:
    url = f"/api/v1/organizations/{world.v1.id}"
    h = {**world.auth("t1"), "If-Match": '"1"'}
    assert client.patch(url, json={"path": "/9/"}, headers=h).status_code == 422


def test_village_cannot_edit_itself_and_auditor_cannot_write(client: TestClient, world: World) -> None:
    url = f"/api/v1/organizations/{world.v1.id}"
    assert client.patch(url, json={"name": "x"}, headers={**world.auth("v1"), "If-Match": '"1"'}).status_code == 403
    auditor = {**world.auth("auditor"), "If-Match": '"1"'}
    assert client.patch(url, json={"name": "x"}, headers=auditor).status_code == 403


def test_move_rewrites_subtree_paths_and_refuses_cycles(client: TestClient, world: World, db: Session) -> None:
    h = world.auth("city")
    branch = client.post("/api/v1/organizations", headers=h, json={
        "parent_id": world.v1b.id, "level": "branch", "domain": "community", "name": "第一支部"}).json()
    cyc = client.post(f"/api/v1/organizations/{world.v1b.id}/move", headers=h, json={"parent_id": branch["id"]})
    assert cyc.status_code in (409, 422)
    no_code = client.post(f"/api/v1/organizations/{world.v1b.id}/move", headers=h, json={"parent_id": world.t2.id})
    assert no_code.status_code == 422
    r = client.post(f"/api/v1/organizations/{world.v1b.id}/move", headers=h,
                    json={"parent_id": world.t2.id, "code": "513301101002"})
    assert r.status_code == 200, r.text
    assert r.json()["path"] == f"{world.t2.path}{world.v1b.id}/"
    moved_branch = client.get(f"/api/v1/organizations/{branch['id']}", headers=h).json()
    assert moved_branch["path"] == f"{world.t2.path}{world.v1b.id}/{branch['id']}/"
    # t1's administrator no longer sees it; t2's does
    assert client.get(f"/api/v1/organizations/{branch['id']}", headers=world.auth("t1")).status_code == 404
    assert client.get(f"/api/v1/organizations/{branch['id']}", headers=world.auth("t2")).status_code == 200


def test_dissolve_refused_with_active_children(client: TestClient, world: World) -> None:
    h = world.auth("city")
    r = client.post(f"/api/v1/organizations/{world.t2.id}/dissolve", headers=h)
    assert r.status_code == 409 and r.json()["code"] == "has_active_children"


def test_dissolve_leaf(client: TestClient, world: World) -> None:
    h = world.auth("t1")
    leaf = client.post("/api/v1/organizations", headers=h, json={
        "parent_id": world.t1.id, "level": "village", "domain": "community", "name": "临时",
        "code": "513301001055"}).json()
    r = client.post(f"/api/v1/organizations/{leaf['id']}/dissolve", headers=h)
    assert r.status_code == 200 and r.json()["status"] == "dissolved"
    assert client.post(f"/api/v1/organizations/{leaf['id']}/dissolve", headers=h).status_code == 409


def test_tree_is_nested_and_depth_limited(client: TestClient, world: World) -> None:
    r = client.get(f"/api/v1/organizations/{world.city.id}/tree?depth=1", headers=world.auth("city"))
    assert r.status_code == 200
    root = r.json()
    assert {c["code"] for c in root["children"]} == {"513301001", "513301101"}
    assert all(c["children"] == [] and c["children_truncated"] for c in root["children"])
    full = client.get(f"/api/v1/organizations/{world.city.id}/tree?depth=3", headers=world.auth("city")).json()
    assert sum(len(c["children"]) for c in full["children"]) == 3


def test_filters_and_sort(client: TestClient, world: World) -> None:
    h = world.auth("city")
    r = client.get("/api/v1/organizations?level=village&sort=-code", headers=h).json()
    assert [o["code"] for o in r["items"]] == ["513301101001", "513301001002", "513301001001"]
    r = client.get(f"/api/v1/organizations?org_id={world.t1.id}&subtree=true", headers=h).json()
    assert r["total"] == 3
    assert client.get("/api/v1/organizations?sort=secret", headers=h).status_code == 422
    assert client.get("/api/v1/organizations?q=社区", headers=h).json()["total"] == 2
    assert client.get("/api/v1/organizations?limit=201", headers=h).status_code == 422


def test_csv_export(client: TestClient, world: World) -> None:
    r = client.get("/api/v1/organizations", headers={**world.auth("city"), "Accept": "text/csv"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    assert r.text.startswith("\ufeffid,parent_id")
    assert "康定市" in r.text


def test_sort_puts_nulls_last_in_both_directions(client: TestClient, world: World) -> None:
    h = world.auth("city")
    branch = client.post("/api/v1/organizations", headers=h, json={
        "parent_id": world.v1.id, "level": "branch", "domain": "community", "name": "无编码支部"}).json()
    for sort in ("code", "-code"):
        items = client.get(f"/api/v1/organizations?sort={sort}&limit=200", headers=h).json()["items"]
        assert items[-1]["id"] == branch["id"], sort
