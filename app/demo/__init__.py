"""Demo data: Kangding as the source describes it in 2019. Running it twice changes nothing.

`seed_demo` calls one seeding function per area module in this package, in order:

- every module `app/demo/<area>.py` (names starting with "_" are skipped) defines
  `ORDER: int` and `seed(session: Session) -> dict[str, int]`;
- modules run by ascending `ORDER`, ties by module name. `platform` is 0 (the
  organisation tree, people, positions, users); areas take the number of their
  place in DESIGN.md's list, so a module runs after the data it builds on:
  responsibilities 10, standards 20, funds 30, posts 40, evaluations 50, training 60;
- `seed` adds only what is missing (it looks rows up by a natural key such as a
  division code, a username or a (year, organisation) pair), flushes and never
  commits, and returns how many rows of each kind it created (all zero, or an
  empty dict, on a second run);
- a module finds the platform's rows by their codes (`platform.org_ids_by_code`)
  and must be deterministic (a fixed random seed, dates from `REFERENCE_DATE`).

The whole run is one transaction with ONE audit row, `demo.seed`, holding the counts
(written only when something was created; no audit row per seeded record).
"""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType

from sqlalchemy import select
from sqlalchemy.orm import Session

DEFAULT_ORDER = 100


@dataclass(frozen=True)
class DemoModule:
    name: str
    order: int
    seed: Callable[[Session], dict[str, int]]


def demo_modules() -> list[DemoModule]:
    """The area modules of this package, in the order they run."""
    found: list[DemoModule] = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_") or info.ispkg:
            continue
        module: ModuleType = importlib.import_module(f"{__name__}.{info.name}")
        seed = getattr(module, "seed", None)
        if not callable(seed):
            continue
        found.append(DemoModule(info.name, int(getattr(module, "ORDER", DEFAULT_ORDER)), seed))
    return sorted(found, key=lambda m: (m.order, m.name))


def seed_demo(session: Session, *, only_if_empty: bool = False) -> str:
    """Seed every area (idempotent); return the report the command line prints."""
    from app.core import audit
    from app.core.scope import Actor
    from app.demo import platform
    from app.models.organizations import Organization

    if only_if_empty and session.scalar(select(Organization.id).limit(1)) is not None:
        return "demo data: skipped, the database already has organisations\n" + platform.logins_text(session)

    started = time.perf_counter()
    counts: dict[str, dict[str, int]] = {}
    for module in demo_modules():
        created = {k: v for k, v in module.seed(session).items() if v}
        if created:
            counts[module.name] = created
    elapsed = time.perf_counter() - started

    if not counts:
        return "demo data: already seeded, nothing to add\n" + platform.logins_text(session)

    audit.record(session, actor=Actor.system(), action="demo.seed", entity="demo", entity_id=None,
                 org_id=platform.city_id(session), after=counts)
    lines = [f"demo data: created in {elapsed:.1f} s"]
    for name, created in counts.items():
        lines.append(f"  {name}: " + ", ".join(f"{n} {kind}" for kind, n in created.items()))
    return "\n".join(lines) + "\n" + platform.logins_text(session, created=True)
