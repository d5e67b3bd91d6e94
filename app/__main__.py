"""Command line: serve, migrate, seed-demo, create-user, purge, export-openapi."""

from __future__ import annotations

import argparse
import getpass
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _alembic_config():
    from alembic.config import Config

    cfg = Config(str(ROOT / "alembic.ini"))
    cfg.set_main_option("script_location", str(ROOT / "migrations"))
    return cfg


def cmd_migrate(_: argparse.Namespace) -> int:
    from alembic import command

    command.upgrade(_alembic_config(), "head")
    print("database migrated to head")
    return 0


def purge_expired() -> dict[str, int]:
    """Delete what the service keeps only for a while: idempotency keys past their 24 h and failed logins that
    fell out of the throttling window. Safe to run at any time, from any number of processes."""
    from app.core import idempotency
    from app.core.db import session_scope
    from app.services.accounts import purge_login_failures

    with session_scope() as session:
        return {"idempotency_keys": idempotency.purge_expired(session),
                "login_failures": purge_login_failures(session)}


def cmd_purge(_: argparse.Namespace) -> int:
    print(" ".join(f"{k}={v}" for k, v in purge_expired().items()))
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    # Opportunistic: every start clears what has expired (a cron of `python -m app purge` covers long uptimes).
    try:
        logging.getLogger("app").info("purged expired rows: %s", purge_expired())
    except Exception as exc:  # a database not migrated yet must not stop the service from starting
        logging.getLogger("app").warning("purge at startup skipped: %s", exc)
    uvicorn.run("app.main:app", host=args.host, port=args.port, workers=args.workers,
                access_log=False, log_config=None, proxy_headers=True)
    return 0


def cmd_seed_demo(args: argparse.Namespace) -> int:
    from app.core.config import get_settings
    from app.core.db import session_scope
    from app.demo import seed_demo

    if get_settings().environment == "production" and not os.environ.get("DEMO_PASSWORD"):
        print("refusing to seed demo users in production with the documented demo password: set DEMO_PASSWORD",
              file=sys.stderr)
        return 2
    with session_scope() as session:
        report = seed_demo(session, only_if_empty=args.if_empty)
    print(report)
    return 0


def cmd_create_user(args: argparse.Namespace) -> int:
    from sqlalchemy import select

    from app.core import audit
    from app.core.db import session_scope
    from app.core.permissions import Role
    from app.core.scope import Actor
    from app.core.security import hash_password
    from app.models.accounts import User
    from app.models.organizations import Organization

    password = args.password or os.environ.get("NEW_USER_PASSWORD") or getpass.getpass("password: ")
    if len(password) < 10:
        print("password must have at least 10 characters", file=sys.stderr)
        return 2
    with session_scope() as session:
        org = session.scalar(select(Organization).where(Organization.code == args.org_code))
        if org is None:
            print(f"no organisation with code {args.org_code}", file=sys.stderr)
            return 2
        if session.scalar(select(User.id).where(User.username == args.username)):
            print(f"user {args.username} exists", file=sys.stderr)
            return 2
        user = User(username=args.username, password_hash=hash_password(password), role=Role(args.role),
                    org_id=org.id)
        session.add(user)
        session.flush()
        audit.record(session, actor=Actor.system(), action="user.create", entity="user", entity_id=user.id,
                     org_id=org.id, after=audit.snapshot(user, exclude={"password_hash"}))
    print(f"created {args.role} {args.username} at {org.name} ({org.code})")
    return 0


def render_openapi() -> str:
    from app.main import create_app

    return json.dumps(create_app().openapi(), ensure_ascii=False, indent=2, sort_keys=False) + "\n"


def cmd_export_openapi(args: argparse.Namespace) -> int:
    os.environ.setdefault("DOCS_ENABLED", "true")
    text = render_openapi()
    target = Path(args.path)
    if args.check:
        if not target.exists() or target.read_text(encoding="utf-8") != text:
            print(f"{target} is out of date: run `make openapi` and commit it", file=sys.stderr)
            return 1
        print(f"{target} matches the code")
        return 0
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(text, encoding="utf-8")
    print(f"wrote {target}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve the API with uvicorn")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1)
    p.set_defaults(func=cmd_serve)

    sub.add_parser("migrate", help="upgrade the database to the newest schema").set_defaults(func=cmd_migrate)

    p = sub.add_parser("seed-demo", help="load the Kangding 2019 demo data (idempotent)")
    p.add_argument("--if-empty", action="store_true", help="only when the database has no organisations")
    p.set_defaults(func=cmd_seed_demo)

    p = sub.add_parser("create-user", help="create a user account")
    p.add_argument("username")
    p.add_argument("--role", required=True, choices=["city_admin", "township_admin", "village_admin", "auditor"])
    p.add_argument("--org-code", required=True, help="division code of the user's organisation")
    p.add_argument("--password", help="default: NEW_USER_PASSWORD or a prompt")
    p.set_defaults(func=cmd_create_user)

    sub.add_parser("purge", help="delete expired idempotency keys and old failed logins (run it daily)") \
        .set_defaults(func=cmd_purge)

    p = sub.add_parser("export-openapi", help="write (or --check) the OpenAPI document")
    p.add_argument("path", nargs="?", default="openapi/openapi.json")
    p.add_argument("--check", action="store_true")
    p.set_defaults(func=cmd_export_openapi)

    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
