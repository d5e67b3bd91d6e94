"""Matrix cases of the change feed and of every record history.

A history (`GET <item>/history`, added by app.core.history for each item GET marked @recorded) is allowed exactly
when its item GET is, so its case is the item GET's case with "/history" added to the path: same record, same
owner, same overrides.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil

import tests.authz as package
from app.models.organizations import Organization
from app.routers import ROUTERS
from app.routers.changes import history_operation_id, recorded_items
from tests.authz.registry import CASES, Build, Ctx, Req, case


@case("changes_list")
def changes_list(ctx: Ctx, owner: Organization) -> Req:
    return Req("GET", "/api/v1/changes", params={"org_id": owner.id, "subtree": "true"})


def _history_of(item: Build) -> Build:
    def build(ctx: Ctx, owner: Organization) -> Req:
        req = item(ctx, owner)
        return dataclasses.replace(req, path=f"{req.path}/history")

    return build


def _register_histories() -> None:
    # The item GETs' cases live in the other area modules: load them first.
    for module in pkgutil.iter_modules(package.__path__):
        if module.name not in ("registry", __name__.rsplit(".", 1)[-1]):
            importlib.import_module(f"{package.__name__}.{module.name}")
    for route, _info in recorded_items(route for router in ROUTERS for route in router.routes):
        item = CASES[route.operation_id or ""]
        case(history_operation_id(route), township_owner=item.township_owner, expect=item.expect,
             any_user=item.any_user, targetless=item.targetless, item_orgs=item.item_orgs)(_history_of(item.build))


_register_histories()
