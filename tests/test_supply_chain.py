"""The pinned dependency set is complete, and the audit's reviewed exceptions are well-formed (the audit
itself, `make audit-deps`, needs the registry and runs in CI, not here)."""

from __future__ import annotations

import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "security"))

import audit_deps  # noqa: E402


def _name(requirement: str) -> str:
    return audit_deps.normalise(re.split(r"[\s\[<>=!~;]", requirement.strip(), maxsplit=1)[0])


def test_every_declared_dependency_is_pinned_in_constraints() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = {_name(r) for r in project["dependencies"]}
    declared |= {_name(r) for group in project.get("optional-dependencies", {}).values() for r in group}
    pins = audit_deps.read_pins()
    assert declared - set(pins) == set(), "declared but not pinned in constraints.txt"
    assert all(re.fullmatch(r"[0-9][0-9A-Za-z.+!_-]*", v) for v in pins.values())


def test_reviewed_exceptions_name_pinned_versions() -> None:
    exceptions = audit_deps.read_exceptions()
    pins = audit_deps.read_pins()
    assert exceptions.vulns or exceptions.unaudited
    for package, version in exceptions.unaudited:
        assert pins.get(package) == version, f"stale exception: {package}=={version} is no longer pinned"
    rows = (ROOT / "security" / "pip-audit-exceptions.md").read_text(encoding="utf-8")
    for package, ident in exceptions.vulns:
        row = next(line for line in rows.splitlines() if ident in line.upper() and package in line.lower())
        version = row.split("|")[3].strip()
        assert pins.get(package) == version, f"stale exception: {ident} names {package}=={version}"


def test_exceptions_parser_reads_ids_and_unaudited_pins(tmp_path: Path) -> None:
    table = tmp_path / "x.md"
    table.write_text("| id | package | version | why | reviewed |\n| --- | --- | --- | --- | --- |\n"
                     "| GHSA-xxxx-yyyy-zzzz | Some_Pkg | 1.2 | because | me |\n"
                     "| unaudited | other.pkg | 0.1 | because | me |\n", encoding="utf-8")
    got = audit_deps.read_exceptions(table)
    assert got.vulns == {("some-pkg", "GHSA-XXXX-YYYY-ZZZZ")} and got.unaudited == {("other-pkg", "0.1")}
