"""Matrix cases of the audit log."""

from __future__ import annotations

from app.models.organizations import Organization
from tests.authz.registry import Ctx, Req, case


@case("audit_list")
def audit_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/audit-log", params={"org_id": owner.id, "subtree": "true"})


@case("audit_verify", targetless="verifies the whole chain, which belongs to no organisation")
def audit_verify(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/audit-log/verify")
